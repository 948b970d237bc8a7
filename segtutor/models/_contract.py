"""The model contract made concrete: input checks and pad-to-multiple-and-crop-back.

Every semantic model of the book takes ``x: float[N, C_in, H, W]`` and returns logits
``float[N, num_classes, H, W]`` at the input's resolution, for any ``H, W`` down to a
documented minimum (see ``CONTRIBUTING.md``). Encoder--decoder networks that downsample by a
factor ``m`` (32 for VGG16's five poolings) can only return the input's size exactly
when ``H`` and ``W`` are multiples of ``m``. The helpers here make every other size work
without a silent shape mismatch::

    check_input(x, in_channels=3, min_size=32, name="fcn8s")
    padded, pads = pad_to_multiple(x, 32)
    logits = crop_padding(network(padded), pads)

A model that uses them sets ``self.min_size`` (an ``int``), which the shared test
battery reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

from .._checks import check_choice, check_positive_int

__all__ = ["PAD_MODES", "Padding", "check_input", "check_positive_int", "crop_padding",
           "pad_and_crop", "pad_to_multiple", "padding_to_multiple"]

PAD_MODES = ("constant", "reflect", "replicate")


class Padding(NamedTuple):
    """Pixels added on each side of an image, in the order ``F.pad`` takes them."""

    left: int
    right: int
    top: int
    bottom: int


def check_input(x: object, in_channels: int, min_size: int, name: str) -> None:
    """Check a batch before it enters a semantic model.

    Args:
        x: the batch; must be a floating-point ``Tensor`` of shape ``[N, in_channels, H, W]``
            with ``H >= min_size`` and ``W >= min_size``.
        in_channels: the number of channels the model was built for.
        min_size: the smallest height and width the model accepts.
        name: the model's name, used in the error message.

    Raises:
        TypeError: ``x`` is not a tensor, or not a floating-point one.
        ValueError: ``x`` is not 4-D, has the wrong number of channels, or is smaller than
            ``min_size`` in height or width.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a torch.Tensor [N, C, H, W], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects a floating-point tensor, got dtype {x.dtype}; "
                        "convert images with x.float()")
    if x.dim() != 4:
        raise ValueError(f"{name} expects a 4-D batch [N, C, H, W], got shape {tuple(x.shape)}; "
                         "add a batch dimension with x.unsqueeze(0)")
    if x.shape[1] != in_channels:
        raise ValueError(f"{name} was built for in_channels={in_channels}, "
                         f"got a batch with {x.shape[1]} channels (shape {tuple(x.shape)})")
    height, width = x.shape[-2:]
    if height < min_size or width < min_size:
        raise ValueError(f"{name} needs height and width >= {min_size}, "
                         f"got {height}x{width} (shape {tuple(x.shape)})")


def padding_to_multiple(height: int, width: int, multiple: int) -> Padding:
    """The smallest padding that makes ``height`` and ``width`` multiples of ``multiple``.

    The padding is split as evenly as possible between the two sides (the extra pixel of
    an odd amount goes right or bottom), so the image stays centred.

    Raises:
        TypeError, ValueError: ``multiple`` is not a positive int.
    """
    check_positive_int(multiple, "multiple")
    extra_h = -height % multiple
    extra_w = -width % multiple
    return Padding(extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "constant") -> tuple[Tensor, Padding]:
    """Pad the last two dimensions of ``x`` up to the next multiples of ``multiple``.

    Args:
        x: a tensor ``[..., H, W]``.
        multiple: the network's total downsampling factor, e.g. 32.
        mode: ``"constant"`` (zeros), ``"reflect"`` or ``"replicate"``, as in ``F.pad``.

    Returns:
        ``(padded, pads)``: the padded tensor and the :class:`Padding` that
        :func:`crop_padding` removes again.

    Raises:
        TypeError, ValueError: ``multiple`` is not a positive int.
        ValueError: ``mode`` is not one of :data:`PAD_MODES`.
    """
    check_choice(mode, "mode", PAD_MODES)
    pads = padding_to_multiple(x.shape[-2], x.shape[-1], multiple)
    if not any(pads):
        return x, pads
    return F.pad(x, tuple(pads), mode=mode), pads


def crop_padding(y: Tensor, pads: Padding) -> Tensor:
    """Remove the padding that :func:`pad_to_multiple` added (``y`` has the padded size)."""
    height, width = y.shape[-2:]
    return y[..., pads.top:height - pads.bottom, pads.left:width - pads.right]


def pad_and_crop(network: Callable[[Tensor], Tensor], x: Tensor, multiple: int) -> Tensor:
    """Run ``network`` on ``x`` padded to ``multiple`` and crop its output back to ``x``'s size."""
    padded, pads = pad_to_multiple(x, multiple)
    return crop_padding(network(padded), pads)
