"""Deprecated: overlap-tile prediction moved to :mod:`segtutor.ops.tiling`.

This module re-exports its names for one release and warns when imported.
"""

from ._deprecated import warn_module_moved
from .ops.tiling import (  # noqa: F401
    SymmetryAverage,
    center_crop,
    mirror_indices,
    mirror_pad,
    predict_tiled,
)

warn_module_moved("segtutor.tiling", "segtutor.ops.tiling")

__all__ = ["SymmetryAverage", "center_crop", "mirror_indices", "mirror_pad", "predict_tiled"]
