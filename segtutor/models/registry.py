"""A small registry so that every network can be built by name.

    >>> from segtutor import models
    >>> models.list_models()                       # doctest: +SKIP
    ['fcn8s', 'fcn16s', 'fcn32s', 'segnet', 'tiny_fcn', 'unet', ...]
    >>> net = models.create("unet", num_classes=2)  # doctest: +SKIP

Builders are keyword-only functions; :func:`register` records them under their own name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register(builder: Builder) -> Builder:
    """Decorator: make ``builder`` available to :func:`create` under its ``__name__``."""
    name = builder.__name__
    if name in _BUILDERS and _BUILDERS[name] is not builder:
        raise ValueError(f"a model named {name!r} is already registered")
    _BUILDERS[name] = builder
    return builder


def list_models() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    return sorted(_BUILDERS)


def create(name: str, **kwargs) -> nn.Module:
    """Build the registered network ``name`` with keyword arguments ``kwargs``.

    Raises:
        ValueError: ``name`` is not registered (the message lists the valid names).
    """
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {list_models()}") from None
    return builder(**kwargs)
