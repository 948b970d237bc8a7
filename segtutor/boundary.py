"""Accuracy near object edges: mean IoU restricted to a band around the true boundaries.

Whole-image mIoU is dominated by the interiors of objects, which even a coarse prediction
gets right; the differences between, say, FCN-32s and FCN-8s are at the edges. The
*trimap* evaluation (Kohli, Ladicky & Torr 2009, "Robust Higher Order Potentials for
Enforcing Label Consistency", https://doi.org/10.1007/s11263-008-0202-0; used in DeepLab,
https://arxiv.org/abs/1412.7062) therefore counts only the pixels within ``width`` pixels
of a boundary in the *target*, and reports the mean IoU over those pixels.

(Cheng et al.'s "Boundary IoU", https://arxiv.org/abs/2103.16562, is a related measure that
takes bands around both the predicted and the true contours of each object.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .metrics import ConfusionMatrix

__all__ = ["boundary_band", "boundary_iou"]


def boundary_band(target: Tensor, width: int) -> Tensor:
    """Pixels within ``width`` pixels (Chebyshev distance) of a label change in ``target``.

    A pixel is in the band when its ``(2 * width + 1)``-square neighbourhood, clipped to
    the image, holds more than one label (``ignore_index`` counts as a label). The image
    border is not a boundary.

    Args:
        target: integer labels ``[N, H, W]``.
        width: half-width of the band in pixels, at least 1.

    Returns:
        ``bool[N, H, W]``.

    Raises:
        TypeError: ``target`` is not an integer tensor, or ``width`` not an int.
        ValueError: ``target`` is not 3-D, or ``width < 1``.
    """
    if not isinstance(target, Tensor) or target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"target must be an integer tensor [N, H, W], got {_describe(target)}")
    if target.dim() != 3:
        raise ValueError(f"target must be [N, H, W], got shape {tuple(target.shape)}")
    if not isinstance(width, int) or isinstance(width, bool):
        raise TypeError(f"width must be an int >= 1, got {width!r}")
    if width < 1:
        raise ValueError(f"width must be an int >= 1, got {width}")
    labels = target[:, None].double()  # exact for every int32 label
    window = dict(kernel_size=2 * width + 1, stride=1, padding=width)  # pads with -inf
    largest = F.max_pool2d(labels, **window)
    smallest = -F.max_pool2d(-labels, **window)
    return (largest != smallest)[:, 0]


def boundary_iou(pred: Tensor, target: Tensor, num_classes: int, width: int = 3,
                 ignore_index: int | None = 255) -> float:
    """Mean IoU over the pixels within ``width`` pixels of a true boundary (trimap IoU).

    Args:
        pred: logits ``float[N, num_classes, H, W]`` or labels ``int[N, H, W]``.
        target: labels ``int[N, H, W]``.
        num_classes: number of classes.
        width: half-width of the band around the target's boundaries, in pixels.
        ignore_index: target value whose pixels are not counted (they still make a
            boundary with their neighbours); ``None`` counts every pixel.

    Returns:
        the mean over classes of ``TP / (TP + FP + FN)`` within the band, over the classes
        that occur there in the target or the prediction.

    Raises:
        ValueError: no counted pixel lies in the band (e.g. a target with one label).
        TypeError, ValueError: see :func:`boundary_band` and
            :meth:`segtutor.metrics.ConfusionMatrix.update`; also when ``pred``'s shape
            does not fit ``target``'s.
    """
    band = boundary_band(target, width)
    if not isinstance(pred, Tensor):
        raise TypeError(f"pred must be a tensor of logits or labels, got {_describe(pred)}")
    logits_fit = pred.is_floating_point() and pred.dim() == 4 and pred.shape[1] == num_classes
    labels = pred.argmax(dim=1) if logits_fit else pred
    if labels.shape != target.shape or labels.is_floating_point():
        raise ValueError(f"pred of shape {tuple(pred.shape)} does not fit target of shape "
                         f"{tuple(target.shape)}; expected [N, {num_classes}, H, W] logits "
                         "or [N, H, W] labels")
    counted = band if ignore_index is None else band & (target != ignore_index)
    if not counted.any():
        raise ValueError(f"target has no counted pixel within width={width} of a boundary "
                         f"(labels present: {torch.unique(target).tolist()}); boundary IoU "
                         "needs at least two labels other than ignore_index")
    matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    matrix.update(labels[counted], target[counted])
    return matrix.mean_iou()


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of dtype {value.dtype} and shape {tuple(value.shape)}"
    return type(value).__name__
