"""A small registry so that every network can be built by name.

    >>> from segtutor import models
    >>> models.list_models()                       # doctest: +SKIP
    ['fcn8s', 'fcn16s', 'fcn32s', 'segnet', 'tiny_fcn', 'unet', ...]
    >>> net = models.create("unet", num_classes=2)  # doctest: +SKIP

Builders are keyword-only functions; :func:`register` records them under their own name,
with a little metadata: the ``task`` the network solves (``"semantic"`` networks follow the
model contract of ``CONTRIBUTING.md`` and run through the shared test battery) and
``tiny_kwargs``, keyword arguments that give a tiny version of the network for smoke tests
and quick CPU demos. Both forms work::

    @register
    def tiny_fcn(*, num_classes: int, ...) -> nn.Module: ...

    @register(task="classification", tiny_kwargs={"width": 8})
    def vgg16(*, num_classes: int = 1000, ...) -> nn.Module: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from torch import nn

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

TASKS = ("semantic", "classification", "instance")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one network.

    Attributes:
        name: the builder's ``__name__``, the name :func:`create` takes.
        builder: the keyword-only function that builds the network.
        task: one of :data:`TASKS`; ``"semantic"`` models return logits
            ``[N, num_classes, H, W]`` at the input's size and carry a ``min_size``.
        tiny_kwargs: keyword arguments for a tiny version (small widths), used by the
            shared test battery and by quick CPU demos.
    """

    name: str
    builder: Callable[..., nn.Module]
    task: str = "semantic"
    tiny_kwargs: Mapping[str, Any] = field(default_factory=dict)


_BUILDERS: dict[str, ModelInfo] = {}


def register(builder: Builder | None = None, *, task: str = "semantic",
             tiny_kwargs: Mapping[str, Any] | None = None) -> Any:
    """Decorator: make ``builder`` available to :func:`create` under its ``__name__``.

    Use it bare (``@register``, a semantic model) or with metadata
    (``@register(task="classification", tiny_kwargs={"width": 8})``).

    Raises:
        ValueError: ``task`` is not one of :data:`TASKS`, or another builder already has
            this name.
        TypeError: ``tiny_kwargs`` is not a mapping, or the builder takes an argument by
            position (builders are keyword-only).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if tiny_kwargs is not None and not isinstance(tiny_kwargs, Mapping):
        raise TypeError(f"tiny_kwargs must be a mapping of keyword arguments, got {tiny_kwargs!r}")

    def record(function: Builder) -> Builder:
        name = function.__name__
        positional = [p.name for p in inspect.signature(function).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        if positional:
            raise TypeError(f"builder {name!r} takes {positional} by position; builders are "
                            f"keyword-only, as torchvision's: def {name}(*, num_classes, ...)")
        if name in _BUILDERS and _BUILDERS[name].builder is not function:
            raise ValueError(f"a model named {name!r} is already registered")
        _BUILDERS[name] = ModelInfo(name, function, task, MappingProxyType(dict(tiny_kwargs or {})))
        return function

    return record if builder is None else record(builder)


def list_models(task: str | None = None) -> list[str]:
    """Names accepted by :func:`create`, sorted; only those of one ``task`` if given.

    Raises:
        ValueError: ``task`` is not ``None`` or one of :data:`TASKS`.
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be None or one of {TASKS}, got {task!r}")
    return sorted(name for name, info in _BUILDERS.items() if task in (None, info.task))


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of the registered network ``name``.

    Raises:
        ValueError: ``name`` is not registered (the message lists the valid names).
    """
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {list_models()}") from None


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered network ``name`` with keyword arguments ``kwargs``.

    Raises:
        ValueError: ``name`` is not registered (the message lists the valid names).
    """
    return model_info(name).builder(**kwargs)
