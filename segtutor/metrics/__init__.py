"""Segmentation metrics: what lives where.

* :mod:`segtutor.metrics.confusion`: :class:`ConfusionMatrix`, the streaming ``[C, C]``
  table of pixel counts that pixel accuracy, mean accuracy, IoU and Dice are read off,
  and the one-batch shortcuts :func:`pixel_accuracy`, :func:`per_class_iou`,
  :func:`mean_iou`, :func:`per_class_dice` and :func:`mean_dice`.
* :mod:`segtutor.metrics.boundary`: accuracy near object edges. :func:`boundary_band` and
  :func:`trimap_iou` (mIoU within a band around the *true* boundaries, Kohli et al. 2009);
  :func:`mask_boundary`, :func:`boundary_dilation`, :func:`per_class_boundary_iou` and
  :func:`boundary_iou` (the Boundary IoU of Cheng et al. 2021: the IoU of the inner
  contour bands of the true and the predicted masks).
* :mod:`segtutor.metrics.coco`: instance segmentation, scored per object. :func:`coco_ap`
  hands torchvision's detection outputs to pycocotools (COCO's mask or box AP, AP50, AP75,
  …, named by :data:`COCO_STATS`).
* :mod:`segtutor.metrics.isbi`: the ISBI 2012 challenge's scores of the segmentation a
  membrane map implies (cells merged or split): :func:`isbi_scores` (foreground-restricted
  Rand error and the variation of information, by scikit-image) and :func:`label_segments`.

Every public name of these modules is importable from here, e.g.
``from segtutor.metrics import ConfusionMatrix, boundary_iou``.
"""

from .boundary import (
    boundary_band,
    boundary_dilation,
    boundary_iou,
    mask_boundary,
    per_class_boundary_iou,
    trimap_iou,
)
from .coco import COCO_STATS, coco_ap
from .confusion import (
    ConfusionMatrix,
    mean_dice,
    mean_iou,
    per_class_dice,
    per_class_iou,
    pixel_accuracy,
)
from .isbi import ISBI_SCORES, isbi_scores, label_segments

__all__ = [
    "COCO_STATS",
    "ISBI_SCORES",
    "ConfusionMatrix",
    "boundary_band",
    "boundary_dilation",
    "boundary_iou",
    "coco_ap",
    "isbi_scores",
    "label_segments",
    "mask_boundary",
    "mean_dice",
    "mean_iou",
    "per_class_boundary_iou",
    "per_class_dice",
    "per_class_iou",
    "pixel_accuracy",
    "trimap_iou",
]
