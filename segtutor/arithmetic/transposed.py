"""A transposed convolution computed as an ordinary (direct) convolution.

Insert ``s - 1`` zeros between neighbouring inputs, pad ``d(k - 1) - p`` on each side (plus
``output_padding`` on the bottom and right), and convolve at stride 1 with the flipped
kernel: Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", section 4
(https://arxiv.org/abs/1603.07285).

    >>> transposed_as_conv(k=3, s=2, p=0).output_size(2)
    5
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from .._checks import check_int_pair, check_positive_int, check_tensor
from .sizes import _check_transpose_args, conv_transpose_output_size

__all__ = ["TransposedAsConv", "conv_transpose_via_conv", "insert_zeros", "transposed_as_conv"]


@dataclass(frozen=True)
class TransposedAsConv:
    """The direct convolution that computes a transposed convolution.

    Insert ``inserted_zeros`` zeros between neighbouring inputs, pad ``padding`` zeros on
    every side and ``extra_bottom_right`` more on the bottom and right, then convolve
    with the flipped kernel at stride 1 and the same dilation (Dumoulin & Visin,
    section 4). A negative ``padding`` means *crop* that many rows/columns instead: it
    happens when the transposed convolution's ``p`` exceeds ``d(k - 1)``.
    """

    kernel_size: int
    dilation: int
    inserted_zeros: int
    padding: int
    extra_bottom_right: int
    stride: int = 1
    flip_kernel: bool = True

    def padded_input_size(self, i: int) -> int:
        """Size of the zero-inserted, padded input for an input of size ``i``."""
        i = check_positive_int(i, "input size i")
        stretched = i + (i - 1) * self.inserted_zeros
        return stretched + 2 * self.padding + self.extra_bottom_right

    def output_size(self, i: int) -> int:
        """Size after the stride-1 convolution: equals :func:`conv_transpose_output_size`."""
        return self.padded_input_size(i) - self.dilation * (self.kernel_size - 1)


def transposed_as_conv(
    k: int, s: int, p: int, d: int = 1, output_padding: int = 0
) -> TransposedAsConv:
    """Describe the direct convolution equivalent to a transposed convolution.

    Args:
        k, s, p, d: the transposed convolution's kernel size, stride, padding, dilation.
        output_padding: extra size on the bottom/right, ``< max(s, d)``.

    Returns:
        zeros inserted ``s - 1``, padding ``d(k - 1) - p`` per side (negative: a crop),
        ``output_padding`` extra on the bottom/right, flipped kernel, stride 1, dilation ``d``.
    """
    k, s, p, d, output_padding = _check_transpose_args(k, s, p, d, output_padding)
    return TransposedAsConv(
        kernel_size=k,
        dilation=d,
        inserted_zeros=s - 1,
        padding=d * (k - 1) - p,
        extra_bottom_right=output_padding,
    )


def insert_zeros(x: Tensor, stride: int | tuple[int, int]) -> Tensor:
    """Put ``stride - 1`` zeros between neighbouring pixels of ``x[..., H, W]``.

    The result has size ``H + (H - 1)(s - 1)``; this is the "fractional stride" ``1/s``
    of a transposed convolution.
    """
    sh, sw = check_int_pair(stride, "stride", minimum=1)
    check_tensor(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must have at least 2 dimensions [..., H, W], got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    out = x.new_zeros(*x.shape[:-2], (height - 1) * sh + 1, (width - 1) * sw + 1)
    out[..., ::sh, ::sw] = x
    return out


def conv_transpose_via_conv(
    x: Tensor,
    weight: Tensor,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    output_padding: int | tuple[int, int] = 0,
) -> Tensor:
    """Compute ``F.conv_transpose2d(x, weight, ...)`` with an ordinary ``F.conv2d``.

    Zeros are inserted between the inputs, the result is padded ``d(k - 1) - p`` on each
    side (cropped where that is negative) plus ``output_padding`` on the bottom/right,
    and convolved at stride 1 with the kernel flipped and its in/out channels swapped.

    Args:
        x: input ``[N, C_in, H, W]``.
        weight: a transposed convolution's weight ``[C_in, C_out, kh, kw]`` (groups=1).
        stride, padding, dilation, output_padding: as for ``F.conv_transpose2d``.

    Raises:
        TypeError: ``x`` or ``weight`` is not a tensor, or a size is not an ``int``.
        ValueError: wrong shapes, channel mismatch, or invalid sizes (see
            :func:`conv_transpose_output_size`).
    """
    check_tensor(x, "x", dims=4, layout="[N, C_in, H, W]")
    check_tensor(weight, "weight", dims=4, layout="[C_in, C_out, kh, kw]")
    if x.shape[1] != weight.shape[0]:
        raise ValueError(
            f"x has {x.shape[1]} channels but weight expects {weight.shape[0]} "
            f"(weight is [C_in, C_out, kh, kw] for a transposed convolution)"
        )
    params = [check_int_pair(v, n) for n, v in (("stride", stride), ("padding", padding),
                                                ("dilation", dilation),
                                                ("output_padding", output_padding))]
    pads = []
    for axis in range(2):
        s, p, d, op = (param[axis] for param in params)
        k, size = weight.shape[2 + axis], x.shape[2 + axis]
        conv_transpose_output_size(size, k, s, p, d, op)  # validates this axis
        pads.append(transposed_as_conv(k, s, p, d, op))
    (top, left) = (pads[0].padding, pads[1].padding)
    stretched = insert_zeros(x, params[0])
    padded = F.pad(stretched, (left, left + pads[1].extra_bottom_right,
                               top, top + pads[0].extra_bottom_right))
    direct_weight = weight.flip(-2, -1).transpose(0, 1)
    return F.conv2d(padded, direct_weight, stride=1, dilation=params[2])
