"""Old import paths kept for one release: each use warns with ``DeprecationWarning``.

Two kinds of shim, both built here so that every moved name warns the same way:

* a module that moved as a whole (``segtutor.tiling`` is now ``segtutor.ops.tiling``) calls
  :func:`warn_module_moved` and re-exports the new module's names;
* a module that lost some names to another (``segtutor.utils.show_source`` is now
  ``segtutor.viz.show_source``) sets ``__getattr__ = moved_names(__name__, {...})``;

and one for a keyword argument that got torchvision's name: :func:`renamed_keyword`.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def warn_module_moved(old: str, new: str) -> None:
    """Warn that module ``old`` is now ``new`` (call it at the top of the old module)."""
    warnings.warn(f"{old} moved to {new}; import from {new} (the old path will be removed "
                  f"in the next release)", DeprecationWarning, stacklevel=3)


def moved_names(old: str, new_homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves each name of ``new_homes`` from its new module.

    Args:
        old: the module the names used to live in (its ``__name__``).
        new_homes: name -> the module that defines it now, e.g.
            ``{"show_source": "segtutor.viz"}``; a value ``"module:other"`` serves the
            name ``other`` of ``module`` (for a renamed function).
    """
    def __getattr__(name: str) -> Any:
        if name not in new_homes:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        module, _, new_name = new_homes[name].partition(":")
        new_name = new_name or name
        warnings.warn(f"{old}.{name} moved to {module}.{new_name}; import it from there (the "
                      f"old name will be removed in the next release)", DeprecationWarning,
                      stacklevel=2)
        return getattr(importlib.import_module(module), new_name)

    return __getattr__


def renamed_keyword(old: str, new: str) -> Callable[[F], F]:
    """Decorator: a function whose keyword ``old`` is now called ``new`` still takes ``old``.

    Passing ``old`` warns with ``DeprecationWarning`` and passes the value on as ``new``;
    passing both is a ``TypeError``.
    """
    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{function.__name__}() got both {old!r} and its new name "
                                    f"{new!r}; pass only {new!r}")
                warnings.warn(f"{function.__name__}(): the keyword {old!r} is now called "
                              f"{new!r} (torchvision's name); the old name will be removed in "
                              f"the next release", DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
