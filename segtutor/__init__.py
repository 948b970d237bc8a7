"""segtutor: the PyTorch package behind the *segtutor* book on semantic segmentation.

Every chapter of the book imports from here, and the book shows this package's own
source, so text and code never drift apart. Submodules load on first use::

    import segtutor
    segtutor.arithmetic.conv_output_size(5, 3, s=2)   # imports segtutor.arithmetic
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

_SUBMODULES = (
    "arithmetic",
    "bench",
    "data",
    "losses",
    "metrics",
    "models",
    "ops",
    "recipes",
    "train",
    "utils",
    "viz",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'segtutor' has no attribute {name!r}; submodules: {_SUBMODULES}")


def __dir__() -> list[str]:
    return sorted(__all__)
