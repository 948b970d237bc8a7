"""Losses for semantic segmentation: pixel-wise cross-entropy, soft Dice, and both.

* :func:`cross_entropy` is ``F.cross_entropy`` with the book's conventions: target
  pixels equal to ``ignore_index`` (255) contribute nothing, classes can be weighted,
  and a per-pixel weight map ``w(x)`` can multiply each pixel's loss -- the weighted
  loss of U-Net (Ronneberger et al., 2015, https://arxiv.org/abs/1505.04597), whose
  map makes the thin borders between touching cells count more.
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

__all__ = [
    "CrossEntropyLoss",
    "DiceCELoss",
    "DiceLoss",
    "cross_entropy",
    "soft_dice_loss",
]


def _check_logits_and_target(logits: Tensor, target: Tensor, ignore_index: int) -> None:
    """Raise a clear error before ``F.cross_entropy`` would raise an obscure one (or, on
    CUDA, a device-side assert)."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor [N, C, H, W], got "
                        f"{getattr(logits, 'dtype', type(logits).__name__)}")
    if not isinstance(target, Tensor) or target.dtype != torch.int64:
        raise TypeError(f"target must be an int64 tensor [N, H, W] of class labels, got "
                        f"{getattr(target, 'dtype', type(target).__name__)}; use target.long()")
    expected = (logits.shape[0], *logits.shape[2:])
    if logits.ndim < 2 or tuple(target.shape) != expected:
        raise ValueError(f"target of shape {tuple(target.shape)} does not match logits of shape "
                         f"{tuple(logits.shape)}: expected target of shape {expected}")
    num_classes = logits.shape[1]
    bad = ((target < 0) | (target >= num_classes)) & (target != ignore_index)
    if bool(bad.any()):
        values = torch.unique(target[bad])[:10].tolist()
        raise ValueError(f"target contains labels {values}; valid labels are [0, {num_classes}) "
                         f"or ignore_index={ignore_index}")


def _check_pixel_weights(pixel_weights: Tensor, target: Tensor) -> None:
    if not isinstance(pixel_weights, Tensor) or not pixel_weights.is_floating_point():
        raise TypeError(f"pixel_weights must be a floating-point tensor, got "
                        f"{getattr(pixel_weights, 'dtype', type(pixel_weights).__name__)}")
    if tuple(pixel_weights.shape) != tuple(target.shape):
        raise ValueError(f"pixel_weights must have the target's shape {tuple(target.shape)}, "
                         f"got {tuple(pixel_weights.shape)}")
    if bool((pixel_weights < 0).any()):
        raise ValueError(f"pixel_weights must be >= 0, got a minimum of {float(pixel_weights.min())}")


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    class_weights: Tensor | None = None,
    pixel_weights: Tensor | None = None,
    ignore_index: int = 255,
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
        ignore_index: target value whose pixels contribute nothing.

    Returns:
        a scalar tensor. If every pixel is ignored it is ``0`` (with a zero gradient), not
        the NaN of ``F.cross_entropy``, so that one fully ignored batch cannot poison
        training.

    Raises:
        TypeError: ``logits`` or ``pixel_weights`` is not floating point, or ``target`` is
            not int64.
        ValueError: shapes do not match, ``target`` holds an invalid label, or a weight is
            negative.
    """
    _check_logits_and_target(logits, target, ignore_index)
    if class_weights is not None and tuple(class_weights.shape) != (logits.shape[1],):
        raise ValueError(f"class_weights must have shape ({logits.shape[1]},) (one weight per "
                         f"class), got {tuple(class_weights.shape)}")
    if pixel_weights is not None:
        _check_pixel_weights(pixel_weights, target)
    counted = target != ignore_index
    if not bool(counted.any()):
        return logits.sum() * 0.0
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
    logits: Tensor, target: Tensor, *, ignore_index: int = 255, smooth: float = 1.0
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
        ignore_index: target value whose pixels are left out.
        smooth: a non-negative constant added to numerator and denominator.

    Returns:
        a scalar tensor in ``[0, 1]``.

    Raises:
        TypeError, ValueError: as :func:`cross_entropy`; ``smooth`` negative.
    """
    _check_logits_and_target(logits, target, ignore_index)
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")
    num_classes = logits.shape[1]
    counted = (target != ignore_index).unsqueeze(1)
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
        ignore_index: target value whose pixels contribute nothing.
    """

    def __init__(self, class_weights: Tensor | None = None, ignore_index: int = 255) -> None:
        super().__init__()
        self.register_buffer("class_weights", class_weights)
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor, pixel_weights: Tensor | None = None) -> Tensor:
        return cross_entropy(logits, target, class_weights=self.class_weights,
                             pixel_weights=pixel_weights, ignore_index=self.ignore_index)


class DiceLoss(nn.Module):
    """:func:`soft_dice_loss` as a module: ``loss(logits, target)``."""

    def __init__(self, ignore_index: int = 255, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.smooth = smooth

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
                 class_weights: Tensor | None = None, ignore_index: int = 255,
                 smooth: float = 1.0) -> None:
        super().__init__()
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight == 0:
            raise ValueError(f"ce_weight and dice_weight must be >= 0 and not both 0, got "
                             f"{ce_weight} and {dice_weight}")
        self.cross_entropy = CrossEntropyLoss(class_weights, ignore_index)
        self.dice = DiceLoss(ignore_index, smooth)
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight

    def forward(self, logits: Tensor, target: Tensor, pixel_weights: Tensor | None = None) -> Tensor:
        return (self.ce_weight * self.cross_entropy(logits, target, pixel_weights)
                + self.dice_weight * self.dice(logits, target))
