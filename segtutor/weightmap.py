"""Deprecated: the U-Net weight map moved to :mod:`segtutor.data.weightmap`.

This module re-exports its names for one release and warns when imported.
"""

from ._deprecated import warn_module_moved
from .data.weightmap import (  # noqa: F401
    border_weights,
    class_balance_weights,
    label_cells,
    unet_weight_map,
)

warn_module_moved("segtutor.weightmap", "segtutor.data.weightmap")

__all__ = ["border_weights", "class_balance_weights", "label_cells", "unet_weight_map"]
