"""Deprecated: the boundary measures moved to :mod:`segtutor.metrics`.

This module re-exports :func:`~segtutor.metrics.boundary_band` for one release and warns
when imported. Its ``boundary_iou`` keeps the meaning it had here, the *trimap* IoU (mIoU
within a band around the true boundaries), which is now
:func:`segtutor.metrics.trimap_iou`; :func:`segtutor.metrics.boundary_iou` is the Boundary
IoU of Cheng et al. (2021), a different measure. Reading ``boundary_iou`` here warns again,
naming its new name.
"""

from ._deprecated import moved_names, warn_module_moved
from .metrics.boundary import boundary_band  # noqa: F401

warn_module_moved("segtutor.boundary", "segtutor.metrics")

__getattr__ = moved_names(__name__, {"boundary_iou": "segtutor.metrics:trimap_iou"})

__all__ = ["boundary_band", "boundary_iou"]  # noqa: F822 (boundary_iou is served by __getattr__)
