"""Losses for semantic segmentation: pixel-wise cross-entropy, soft Dice, and both.

* :func:`cross_entropy` is ``F.cross_entropy`` with the book's conventions: target
  pixels equal to ``ignore_index`` (``IGNORE_INDEX`` = 255) contribute nothing, classes
  can be weighted, and a per-pixel weight map ``w(x)`` can multiply each pixel's loss --
  the weighted loss of U-Net (Ronneberger et al., 2015, https://arxiv.org/abs/1505.04597),
  whose map makes the thin borders between touching cells count more.
* :func:`soft_dice_loss` is ``1 - mean Dice`` computed on softmax probabilities
  (Milletari et al., 2016, V-Net, https://arxiv.org/abs/1606.04797), which optimises
  the overlap directly and is insensitive to how many background pixels there are.
* :class:`DiceCELoss` adds the two, a common recipe for imbalanced data.

The functions take logits ``float[N, C, *S]`` and targets ``int64[N, *S]`` (usually
``S = (H, W)``); the ``nn.Module`` classes wrap them so that a configured loss can be
passed to :func:`segtutor.train.fit` as ``loss_fn``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import IGNORE_INDEX, check_labels, check_number, check_optional_int, check_tensor

__all__ = [
    "CrossEntropyLoss",
    "DiceCELoss",
    "DiceLoss",
    "cross_entropy",
    "soft_dice_loss",
]


def _check_logits_and_target(logits: Tensor, target: Tensor, ignore_index: int | None) -> Tensor:
    """Raise a clear error before ``F.cross_entropy`` would raise an obscure one (or, on
    CUDA, a device-side assert); return the mask of the counted pixels, ``bool[N, H, W]``."""
    check_tensor(logits, "logits", floating=True, layout="[N, C, H, W]")
    check_tensor(target, "target", layout="[N, H, W] of class labels")
    if target.dtype != torch.int64:
        raise TypeError(f"target must be an int64 tensor [N, H, W] of class labels, got dtype "
                        f"{target.dtype}; use target.long()")
    ignore_index = check_optional_int(ignore_index, "ignore_index")
    expected = (logits.shape[0], *logits.shape[2:])
    if logits.ndim < 2 or tuple(target.shape) != expected:
        raise ValueError(f"target of shape {tuple(target.shape)} does not match logits of shape "
                         f"{tuple(logits.shape)}: expected target of shape {expected}")
    counted = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        counted = target != ignore_index
    check_labels(target[counted], "target", logits.shape[1], ignore_index)
    return counted


def _check_weights(weights: Tensor, name: str, shape: tuple[int, ...], expected: str) -> None:
    """A floating-point tensor of ``shape`` (described by ``expected``), none negative."""
    check_tensor(weights, name, floating=True)
    if tuple(weights.shape) != shape:
        raise ValueError(f"{name} must have {expected}, got {tuple(weights.shape)}")
    if bool((weights < 0).any()):
        raise ValueError(f"{name} must be >= 0, got a minimum of {float(weights.min())}")


def _check_smooth(smooth: float) -> float:
    return check_number(smooth, "smooth", minimum=0)


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    class_weights: Tensor | None = None,
    pixel_weights: Tensor | None = None,
    ignore_index: int | None = IGNORE_INDEX,
) -> Tensor:
    """Mean pixel-wise cross-entropy, skipping ``ignore_index`` pixels.

    Without ``pixel_weights`` this is exactly ``F.cross_entropy(logits, target,
    weight=class_weights, ignore_index=ignore_index)``. With them, each pixel's loss is
    multiplied by its weight and the result is normalised as ``F.cross_entropy`` would
    normalise it (by the summed class weights of the counted pixels, i.e. by their number
    without class weights), so a map of ones changes nothing.

    Args:
        logits: ``float[N, C, H, W]``.
        target: ``int64[N, H, W]``, values in ``[0, C)`` or ``ignore_index``.
        class_weights: optional ``float[C]``, e.g. inverse class frequencies.
        pixel_weights: optional ``float[N, H, W]``, e.g. U-Net's border weight map ``w(x)``.
        ignore_index: target value whose pixels contribute nothing; ``None`` counts every
            pixel.

    Returns:
        a scalar tensor. If every pixel is ignored it is ``0`` (with a zero gradient), not
        the NaN of ``F.cross_entropy``, so that one fully ignored batch cannot poison
        training.

    Raises:
        TypeError: ``logits``, ``class_weights`` or ``pixel_weights`` is not a floating-point
            tensor, ``target`` not an int64 one, or ``ignore_index`` neither an int nor
            ``None``.
        ValueError: shapes do not match, ``target`` holds an invalid label, or a weight is
            negative.
    """
    counted = _check_logits_and_target(logits, target, ignore_index)
    if class_weights is not None:
        shape = (logits.shape[1],)
        _check_weights(class_weights, "class_weights", shape,
                       f"shape {shape} (one weight per class)")
    if pixel_weights is not None:
        shape = tuple(target.shape)
        _check_weights(pixel_weights, "pixel_weights", shape, f"the target's shape {shape}")
    if not bool(counted.any()):
        return logits.sum() * 0.0
    if ignore_index is None:  # every label is in [0, C), so F.cross_entropy's -100 is unused
        ignore_index = -100
    if pixel_weights is None:
        return F.cross_entropy(logits, target, weight=class_weights, ignore_index=ignore_index)
    per_pixel = F.cross_entropy(logits, target, weight=class_weights, ignore_index=ignore_index,
                                reduction="none")
    if class_weights is None:
        normaliser = counted.sum()
    else:
        normaliser = class_weights.to(logits.dtype)[target[counted]].sum()
    return (per_pixel * pixel_weights).sum() / normaliser


def soft_dice_loss(
    logits: Tensor, target: Tensor, *, ignore_index: int | None = IGNORE_INDEX,
    smooth: float = 1.0,
) -> Tensor:
    """Multi-class soft Dice loss: ``1 - mean over classes of the soft Dice coefficient``.

    With softmax probabilities ``p`` and one-hot targets ``g``, summed over every counted
    pixel of the batch, class ``c`` scores
    ``(2 * sum(p_c * g_c) + smooth) / (sum(p_c) + sum(g_c) + smooth)``.
    Pixels whose target is ``ignore_index`` are left out of every sum. ``smooth`` keeps a
    class that is absent from a batch well defined (its score is then close to 1 when it
    is also not predicted) and the gradient finite.

    Args:
        logits: ``float[N, C, H, W]``.
        target: ``int64[N, H, W]``, values in ``[0, C)`` or ``ignore_index``.
        ignore_index: target value whose pixels are left out; ``None`` counts every pixel.
        smooth: a non-negative constant added to numerator and denominator.

    Returns:
        a scalar tensor in ``[0, 1]``.

    Raises:
        TypeError, ValueError: as :func:`cross_entropy`; ``smooth`` not a number
            (``TypeError``) or negative (``ValueError``).
    """
    counted = _check_logits_and_target(logits, target, ignore_index).unsqueeze(1)
    smooth = _check_smooth(smooth)
    num_classes = logits.shape[1]
    at_least_float32 = torch.promote_types(logits.dtype, torch.float32)  # fp16/bf16 -> fp32
    probs = logits.softmax(dim=1, dtype=at_least_float32) * counted
    one_hot = F.one_hot(torch.where(counted.squeeze(1), target, 0), num_classes)
    one_hot = one_hot.movedim(-1, 1).to(probs.dtype) * counted
    sum_dims = [0, *range(2, logits.ndim)]
    intersection = (probs * one_hot).sum(sum_dims)
    sizes = probs.sum(sum_dims) + one_hot.sum(sum_dims)
    dice = (2 * intersection + smooth) / (sizes + smooth).clamp_min(torch.finfo(probs.dtype).tiny)
    return 1 - dice.mean()


class CrossEntropyLoss(nn.Module):
    """:func:`cross_entropy` as a module: ``loss(logits, target, pixel_weights=None)``.

    Args:
        class_weights: optional ``float[C]``.
        ignore_index: target value whose pixels contribute nothing; ``None`` counts every
            pixel.
    """

    def __init__(self, class_weights: Tensor | None = None,
                 ignore_index: int | None = IGNORE_INDEX) -> None:
        super().__init__()
        if class_weights is not None:
            check_tensor(class_weights, "class_weights", dims=1, floating=True, layout="[C]")
        self.register_buffer("class_weights", class_weights)
        self.ignore_index = check_optional_int(ignore_index, "ignore_index")

    def forward(self, logits: Tensor, target: Tensor, pixel_weights: Tensor | None = None) -> Tensor:
        return cross_entropy(logits, target, class_weights=self.class_weights,
                             pixel_weights=pixel_weights, ignore_index=self.ignore_index)


class DiceLoss(nn.Module):
    """:func:`soft_dice_loss` as a module: ``loss(logits, target)``."""

    def __init__(self, ignore_index: int | None = IGNORE_INDEX, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index = check_optional_int(ignore_index, "ignore_index")
        self.smooth = _check_smooth(smooth)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return soft_dice_loss(logits, target, ignore_index=self.ignore_index, smooth=self.smooth)


class DiceCELoss(nn.Module):
    """``ce_weight * cross-entropy + dice_weight * soft Dice``.

    Args:
        ce_weight: factor of the cross-entropy term.
        dice_weight: factor of the soft Dice term.
        class_weights: optional ``float[C]`` for the cross-entropy term.
        ignore_index: target value whose pixels are left out of both terms.
        smooth: see :func:`soft_dice_loss`.

    The per-pixel weight map, if given to ``forward``, weights the cross-entropy term.
    """

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0,
                 class_weights: Tensor | None = None, ignore_index: int | None = IGNORE_INDEX,
                 smooth: float = 1.0) -> None:
        super().__init__()
        ce_weight = check_number(ce_weight, "ce_weight", minimum=0)
        dice_weight = check_number(dice_weight, "dice_weight", minimum=0)
        if ce_weight + dice_weight == 0:
            raise ValueError(f"ce_weight and dice_weight must be >= 0 and not both 0, got "
                             f"{ce_weight:g} and {dice_weight:g}")
        self.cross_entropy = CrossEntropyLoss(class_weights, ignore_index)
        self.dice = DiceLoss(ignore_index, smooth)
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight

    def forward(self, logits: Tensor, target: Tensor, pixel_weights: Tensor | None = None) -> Tensor:
        return (self.ce_weight * self.cross_entropy(logits, target, pixel_weights)
                + self.dice_weight * self.dice(logits, target))
