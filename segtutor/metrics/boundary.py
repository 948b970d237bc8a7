"""Accuracy near object edges: the trimap IoU and the Boundary IoU.

Whole-image mIoU is dominated by the interiors of objects, which even a coarse prediction
gets right; the differences between, say, FCN-32s and FCN-8s are at the edges. Two
measures look at the edges only:

* the *trimap* IoU (Kohli, Ladicky & Torr 2009, "Robust Higher Order Potentials for
  Enforcing Label Consistency", https://doi.org/10.1007/s11263-008-0202-0; used in
  DeepLab, https://arxiv.org/abs/1412.7062), :func:`trimap_iou`: the mean IoU over the
  pixels within ``width`` pixels of a boundary in the *target* (the band of
  :func:`boundary_band`). Only the true boundaries choose the pixels, so a spurious blob
  in the middle of an object costs nothing.
* the *Boundary IoU* (Cheng, Girshick, Dollár, Berg & Kirillov 2021, "Boundary IoU:
  Improving Object-Centric Image Segmentation Evaluation", CVPR,
  https://arxiv.org/abs/2103.16562), :func:`boundary_iou`: per class, the IoU of two
  *inner contour bands*, the pixels of the true mask within ``d`` pixels of its contour
  and those of the predicted mask within ``d`` pixels of its contour
  (:func:`mask_boundary`), with ``d`` a fixed fraction of the image diagonal
  (:func:`boundary_dilation`). Both contours count, so spurious blobs and holes are
  penalised too, and as only a band counts, the score of a large object is not inflated
  by its interior.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import (
    IGNORE_INDEX,
    check_int,
    check_labels,
    check_optional_int,
    check_positive_int,
    check_positive_number,
    check_tensor,
)
from .confusion import ConfusionMatrix, _predicted_labels, _ratio

__all__ = [
    "boundary_band",
    "boundary_dilation",
    "boundary_iou",
    "mask_boundary",
    "per_class_boundary_iou",
    "trimap_iou",
]


# -- the trimap IoU: a band around the true boundaries -----------------------------------


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
    check_tensor(target, "target", dims=3, floating=False, layout="[N, H, W]")
    width = check_positive_int(width, "width")
    labels = target[:, None].double()  # exact for every int32 label
    window = dict(kernel_size=2 * width + 1, stride=1, padding=width)  # pads with -inf
    largest = F.max_pool2d(labels, **window)
    smallest = -F.max_pool2d(-labels, **window)
    return (largest != smallest)[:, 0]


def trimap_iou(pred: Tensor, target: Tensor, num_classes: int, width: int = 3,
               ignore_index: int | None = IGNORE_INDEX) -> float:
    """Mean IoU over the pixels within ``width`` pixels of a true boundary (trimap IoU).

    Args:
        pred: logits ``float[N, num_classes, H, W]`` or labels ``int[N, H, W]``.
        target: labels ``int[N, H, W]``.
        num_classes: number of classes, at least 2.
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
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    ignore_index = check_optional_int(ignore_index, "ignore_index")
    band = boundary_band(target, width)
    check_tensor(pred, "pred", layout="of logits [N, C, H, W] or labels [N, H, W]")
    logits_fit = pred.is_floating_point() and pred.dim() == 4 and pred.shape[1] == num_classes
    labels = pred.argmax(dim=1) if logits_fit else pred
    if labels.shape != target.shape or labels.is_floating_point():
        raise ValueError(f"pred of shape {tuple(pred.shape)} does not fit target of shape "
                         f"{tuple(target.shape)}; expected [N, {num_classes}, H, W] logits "
                         "or [N, H, W] labels")
    counted = band if ignore_index is None else band & (target != ignore_index)
    if not counted.any():
        raise ValueError(f"target has no counted pixel within width={width} of a boundary "
                         f"(labels present: {torch.unique(target).tolist()}); trimap IoU "
                         "needs at least two labels other than ignore_index")
    matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    matrix.update(labels[counted], target[counted])
    return matrix.mean_iou()


# -- the Boundary IoU of Cheng et al.: inner contour bands of both masks -----------------


def boundary_dilation(height: int, width: int, dilation_ratio: float = 0.02) -> int:
    """The band width ``d`` of the Boundary IoU for an image of ``height`` x ``width`` pixels.

    ``d = round(dilation_ratio * sqrt(height**2 + width**2))``, at least 1, as in the
    reference code of Cheng et al. (``boundary_iou/utils/boundary_utils.py`` of
    https://github.com/bowenc0221/boundary-iou-api). Halves round to even (Python's
    ``round``, as there): the default ratio of 2 % gives ``d = round(12.5) = 12`` for a
    500 x 375 Pascal VOC image, and ``d = 1`` for images of up to 53 x 53 pixels.

    Raises:
        TypeError: a size is not an int, or ``dilation_ratio`` not a number.
        ValueError: a size below 1, or ``dilation_ratio <= 0``.
    """
    height = check_positive_int(height, "height")
    width = check_positive_int(width, "width")
    ratio = check_positive_number(dilation_ratio, "dilation_ratio")
    return max(1, int(round(ratio * math.sqrt(height**2 + width**2))))


def mask_boundary(mask: Tensor, dilation: int) -> Tensor:
    """The inner contour band of binary masks: mask pixels within ``dilation`` of the contour.

    A pixel of ``mask`` is in the band when a pixel outside the mask lies within Chebyshev
    distance ``dilation`` of it, the image's surroundings counting as outside (so a mask
    cut by the image border has a contour there). This is the reference code's
    ``mask - erode(mask)``: the mask padded by one pixel of zeros, eroded ``dilation``
    times with a 3 x 3 square, and cropped back (``G_d ∩ G`` of the paper). Here the
    erosion is a max-pooling of the complement, separably by rows and by columns.

    Args:
        mask: ``bool[..., H, W]``.
        dilation: the band width ``d`` in pixels, at least 1 (see
            :func:`boundary_dilation`).

    Returns:
        ``bool[..., H, W]``, a subset of ``mask``.

    Raises:
        TypeError: ``mask`` is not a bool tensor, or ``dilation`` not an int.
        ValueError: ``mask`` has fewer than two dimensions, or ``dilation < 1``.
    """
    check_tensor(mask, "mask", layout="[..., H, W]")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor [..., H, W], got dtype {mask.dtype}")
    if mask.ndim < 2:
        raise ValueError(f"mask must be at least 2-D [..., H, W], got shape {tuple(mask.shape)}")
    d = check_positive_int(dilation, "dilation")
    height, width = mask.shape[-2:]
    outside = (~mask).reshape(-1, 1, height, width).float()
    outside = F.pad(outside, (1, 1, 1, 1), value=1.0)  # the image's surroundings are outside
    # max-pooling pads with -inf: beyond the one-pixel frame nothing is outside, as cv2.erode
    near = F.max_pool2d(outside, (2 * d + 1, 1), stride=1, padding=(d, 0))
    near = F.max_pool2d(near, (1, 2 * d + 1), stride=1, padding=(0, d))
    near = near[..., 1:height + 1, 1:width + 1] > 0
    return mask & near.reshape(mask.shape)


def per_class_boundary_iou(pred: Tensor, target: Tensor, num_classes: int, *,
                           dilation_ratio: float = 0.02,
                           ignore_index: int | None = IGNORE_INDEX) -> Tensor:
    """Boundary IoU of each class over a batch, float64 ``[num_classes]`` (CPU).

    For class ``c`` let ``G = (target == c)`` and ``P = (pred == c)``, and ``G_d``, ``P_d``
    their inner contour bands (:func:`mask_boundary` with ``d =``
    :func:`boundary_dilation` of the image size). Leaving out the pixels whose target is
    ``ignore_index``, the score is ``|G_d ∩ P_d| / |G_d ∪ P_d|`` with both counts summed
    over the images of the batch (as :class:`~segtutor.metrics.ConfusionMatrix` sums the
    counts of the IoU). A class whose two bands are empty (absent from target and
    prediction) is NaN.

    Args:
        pred: logits ``float[N, num_classes, H, W]`` (the argmax is taken) or labels
            ``int[N, H, W]``.
        target: labels ``int[N, H, W]`` in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: number of classes, at least 2.
        dilation_ratio: band width as a fraction of the image diagonal (Cheng et al.'s
            default 0.02).
        ignore_index: target value whose pixels are left out of both bands (they are
            outside every class's mask, so they make a contour); ``None`` counts every
            pixel.

    Raises:
        TypeError: a tensor of the wrong type or dtype, or an argument of the wrong type.
        ValueError: shapes that do not fit, labels out of range, ``dilation_ratio <= 0``,
            or no counted pixel in any band (e.g. every pixel ignored).
    """
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    ignore_index = check_optional_int(ignore_index, "ignore_index")
    ratio = check_positive_number(dilation_ratio, "dilation_ratio")
    check_tensor(target, "target", dims=3, floating=False, layout="[N, H, W]")
    labels = _predicted_labels(pred, target, num_classes).long()
    target = target.long()
    if target.numel() == 0:
        raise ValueError(f"target must hold at least one pixel, got shape {tuple(target.shape)}")
    dilation = boundary_dilation(target.shape[1], target.shape[2], ratio)
    counted = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        counted = target != ignore_index
    check_labels(target[counted], "target", num_classes, ignore_index)
    check_labels(labels[counted], "pred", num_classes)
    intersection = torch.zeros(num_classes, dtype=torch.int64)
    union = torch.zeros(num_classes, dtype=torch.int64)
    # only the classes that occur can have a band; a few classes at a time bound the memory
    present = torch.unique(torch.cat([target[counted], labels.reshape(-1)]))
    present = present[(present >= 0) & (present < num_classes)]
    for classes in present.split(max(1, 2**22 // (2 * target.numel()))):
        wanted = classes[None, :, None, None]  # [1, K, 1, 1]
        masks = torch.stack([target[:, None] == wanted, labels[:, None] == wanted])
        true_band, pred_band = mask_boundary(masks, dilation) & counted[None, :, None]
        intersection[classes.cpu()] = (true_band & pred_band).sum((0, 2, 3)).cpu()
        union[classes.cpu()] = (true_band | pred_band).sum((0, 2, 3)).cpu()
    if int(union.sum()) == 0:
        raise ValueError("no counted pixel lies in a boundary band (every pixel of target is "
                         "ignore_index, or every band pixel is); Boundary IoU needs at least "
                         "one counted pixel near a contour")
    return _ratio(intersection.double(), union.double())


def boundary_iou(pred: Tensor, target: Tensor, num_classes: int, *,
                 dilation_ratio: float = 0.02, ignore_index: int | None = IGNORE_INDEX) -> float:
    """Mean Boundary IoU of a batch over the classes where it is defined (``nanmean``).

    See :func:`per_class_boundary_iou` for the definition, the arguments and the errors.
    """
    return float(per_class_boundary_iou(pred, target, num_classes, dilation_ratio=dilation_ratio,
                                        ignore_index=ignore_index).nanmean())
