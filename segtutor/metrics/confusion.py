"""Segmentation metrics from a streaming confusion matrix.

Every metric the book reports comes from one ``[C, C]`` table of pixel counts: row
``i``, column ``j`` counts the pixels whose true class is ``i`` and whose predicted
class is ``j``. The table is accumulated batch by batch (so a whole validation set
never has to sit in memory), and the metrics are read off it:

* pixel accuracy = correct pixels / all counted pixels;
* per-class accuracy (recall) = ``TP / (TP + FN)``; mean accuracy is its mean;
* per-class IoU (Jaccard index) = ``TP / (TP + FP + FN)``; mIoU is its mean;
* per-class Dice (F1) = ``2 TP / (2 TP + FP + FN)``, which equals ``2 IoU / (1 + IoU)``.

Pixels whose target is ``ignore_index`` (``IGNORE_INDEX`` = 255, e.g. Pascal VOC's
object borders) are not counted at all. A class that appears neither in the targets nor
in the predictions has an undefined IoU (0 / 0): it is reported as NaN and left out of
the means (``nanmean``), the convention of the FCN paper's evaluation code.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import IGNORE_INDEX, check_int, check_labels, check_optional_int

__all__ = [
    "ConfusionMatrix",
    "mean_dice",
    "mean_iou",
    "per_class_dice",
    "per_class_iou",
    "pixel_accuracy",
]


class ConfusionMatrix:
    """A ``[C, C]`` table of pixel counts (rows = truth, columns = prediction).

    Args:
        num_classes: ``C``, at least 2.
        ignore_index: target value whose pixels are skipped; ``None`` skips nothing.

    Raises:
        TypeError: ``num_classes`` is not an int (``True`` and ``2.0`` included), or
            ``ignore_index`` is neither an int nor ``None``.
        ValueError: ``num_classes < 2``.

    Example::

        cm = ConfusionMatrix(num_classes=3)
        for images, masks in loader:
            cm.update(model(images), masks)   # logits or integer labels
        cm.compute()["mean_iou"]

    The counts live on the device of the tensors given to :meth:`update` (the counting
    uses ``torch.bincount`` there); the metrics are returned as Python floats and CPU
    tensors.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX) -> None:
        self.num_classes = check_int(num_classes, "num_classes", minimum=2)
        self.ignore_index = check_optional_int(ignore_index, "ignore_index")
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        """Set every count back to zero."""
        self.matrix = torch.zeros_like(self.matrix)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Count one batch.

        Args:
            pred: logits ``float[N, C, *S]`` (the argmax over ``C`` is taken) or integer
                labels ``int[N, *S]`` with values in ``[0, C)``.
            target: integer labels ``int[N, *S]`` (usually ``S = (H, W)``) with values
                in ``[0, C)`` or equal to ``ignore_index``.

        Raises:
            TypeError: ``target`` is not an integer tensor, or ``pred`` is neither
                floating point nor integer.
            ValueError: the shapes do not match, or a label is out of range.
        """
        labels = _predicted_labels(pred, target, self.num_classes)
        truth, guess = target.reshape(-1).long(), labels.reshape(-1).long()
        if self.ignore_index is not None:
            counted = truth != self.ignore_index
            truth, guess = truth[counted], guess[counted]
        check_labels(truth, "target", self.num_classes, self.ignore_index)
        check_labels(guess, "pred", self.num_classes)
        c = self.num_classes
        counts = torch.bincount(truth * c + guess, minlength=c * c).reshape(c, c)
        if self.matrix.device != counts.device:
            self.matrix = self.matrix.to(counts.device)
        self.matrix += counts

    # -- metrics read off the table -------------------------------------------------

    def _counts(self) -> tuple[Tensor, Tensor, Tensor]:
        """True positives, false positives and false negatives per class (float64, CPU)."""
        m = self.matrix.to("cpu", torch.float64)
        if m.sum() == 0:
            raise ValueError(
                "the confusion matrix is empty: call update() with at least one pixel whose "
                "target is not ignore_index before reading metrics"
            )
        tp = m.diagonal()
        return tp, m.sum(dim=0) - tp, m.sum(dim=1) - tp

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels whose predicted class is the true class."""
        tp, _, fn = self._counts()
        return float(tp.sum() / (tp + fn).sum())

    def per_class_accuracy(self) -> Tensor:
        """``TP / (TP + FN)`` per class (recall); NaN for classes absent from the targets."""
        tp, _, fn = self._counts()
        return _ratio(tp, tp + fn)

    def mean_accuracy(self) -> float:
        """Mean of :meth:`per_class_accuracy` over the classes present in the targets."""
        return float(self.per_class_accuracy().nanmean())

    def per_class_iou(self) -> Tensor:
        """``TP / (TP + FP + FN)`` per class, float64 ``[C]``.

        NaN for a class that occurs neither in the targets nor in the predictions
        (its IoU is 0 / 0); :meth:`mean_iou` leaves such classes out.
        """
        tp, fp, fn = self._counts()
        return _ratio(tp, tp + fp + fn)

    def mean_iou(self) -> float:
        """Mean IoU over the classes whose IoU is defined (``nanmean``)."""
        return float(self.per_class_iou().nanmean())

    def per_class_dice(self) -> Tensor:
        """Dice coefficient (F1) ``2 TP / (2 TP + FP + FN)`` per class; NaN where 0 / 0."""
        tp, fp, fn = self._counts()
        return _ratio(2 * tp, 2 * tp + fp + fn)

    def mean_dice(self) -> float:
        """Mean Dice over the classes whose Dice is defined (``nanmean``)."""
        return float(self.per_class_dice().nanmean())

    def compute(self) -> dict[str, float | list[float]]:
        """All metrics in one dict.

        Returns:
            ``pixel_accuracy``, ``mean_accuracy``, ``mean_iou`` and ``mean_dice`` as
            floats; ``per_class_iou`` and ``per_class_dice`` as lists of floats (NaN for
            undefined classes).
        """
        return {
            "pixel_accuracy": self.pixel_accuracy(),
            "mean_accuracy": self.mean_accuracy(),
            "mean_iou": self.mean_iou(),
            "mean_dice": self.mean_dice(),
            "per_class_iou": self.per_class_iou().tolist(),
            "per_class_dice": self.per_class_dice().tolist(),
        }

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self.matrix.sum())})"
        )


def _predicted_labels(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``pred`` as integer labels shaped like ``target`` (the argmax of logits).

    Shared by the metrics of this package (private to it; see
    :meth:`ConfusionMatrix.update` for the shapes and the errors).
    """
    if not isinstance(target, Tensor) or not isinstance(pred, Tensor):
        raise TypeError(
            f"pred and target must be tensors, got {type(pred).__name__} and "
            f"{type(target).__name__}"
        )
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise TypeError(f"target must be an integer tensor, got dtype {target.dtype}")
    if target.ndim < 1:
        raise ValueError("target must have a batch dimension, got a 0-d tensor")
    if pred.dtype.is_floating_point:
        expected = (target.shape[0], num_classes, *target.shape[1:])
        if tuple(pred.shape) != expected:
            raise ValueError(
                f"logits of shape {tuple(pred.shape)} do not match target of shape "
                f"{tuple(target.shape)}: expected logits of shape {expected} "
                f"(num_classes={num_classes})"
            )
        return pred.argmax(dim=1)
    if pred.dtype.is_complex or pred.dtype == torch.bool:
        raise TypeError(f"pred must be float logits or integer labels, got dtype {pred.dtype}")
    if pred.shape != target.shape:
        raise ValueError(
            f"predicted labels of shape {tuple(pred.shape)} do not match target of "
            f"shape {tuple(target.shape)}"
        )
    return pred


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` with NaN (not a division warning) where the denominator is 0."""
    out = torch.full_like(numerator, float("nan"))
    defined = denominator > 0
    out[defined] = numerator[defined] / denominator[defined]
    return out


def _one_batch(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None
) -> ConfusionMatrix:
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    cm.update(pred, target)
    return cm


def pixel_accuracy(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> float:
    """Pixel accuracy of one batch; see :meth:`ConfusionMatrix.update` for the shapes."""
    return _one_batch(pred, target, num_classes, ignore_index).pixel_accuracy()


def per_class_iou(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> Tensor:
    """Per-class IoU of one batch (NaN for classes absent from truth and prediction)."""
    return _one_batch(pred, target, num_classes, ignore_index).per_class_iou()


def mean_iou(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> float:
    """Mean IoU of one batch over the classes whose IoU is defined."""
    return _one_batch(pred, target, num_classes, ignore_index).mean_iou()


def per_class_dice(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> Tensor:
    """Per-class Dice (F1) of one batch (NaN for classes absent from truth and prediction)."""
    return _one_batch(pred, target, num_classes, ignore_index).per_class_dice()


def mean_dice(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> float:
    """Mean Dice of one batch over the classes whose Dice is defined."""
    return _one_batch(pred, target, num_classes, ignore_index).mean_dice()
