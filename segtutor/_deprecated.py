"""Old import paths kept for one release: each use warns with ``DeprecationWarning``.

Two kinds of shim, both built here so that every moved name warns the same way:

* a module that moved as a whole (``segtutor.tiling`` is now ``segtutor.ops.tiling``) calls
  :func:`warn_module_moved` and re-exports the new module's names;
* a module that lost some names to another (``segtutor.utils.show_source`` is now
  ``segtutor.viz.show_source``) sets ``__getattr__ = moved_names(__name__, {...})``.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


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
