"""Upsampling and unpooling: the ways a decoder makes a feature map larger.

Fixed (nothing to learn):

* :func:`upsample_nearest` and :func:`upsample_bilinear` wrap ``F.interpolate`` with
  ``align_corners=False`` (the convention of torchvision and OpenCV);
* :func:`bed_of_nails` puts each value at the top-left of its ``s x s`` block, zeros elsewhere;
* :func:`max_unpool` puts each value back where max pooling found it (SegNet,
  https://arxiv.org/abs/1511.00561), given the indices :class:`MaxPoolWithIndices` stored.

Learnable:

* :class:`TransposedConvUpsample`, a transposed convolution that enlarges exactly ``factor``
  times, and :class:`BilinearConvTranspose2d`, the same initialised to bilinear
  interpolation as in FCN (https://arxiv.org/abs/1411.4038), optionally frozen;
* :class:`ResizeConv2d`, resize then convolve, the fix for checkerboard artifacts of
  Odena, Dumoulin & Olah (https://distill.pub/2016/deconv-checkerboard/);
* :class:`SubPixelConv2d`, a convolution to ``scale**2`` times the channels followed by
  ``nn.PixelShuffle`` (Shi et al., https://arxiv.org/abs/1609.05158), initialised by
  :func:`icnr_` so that it starts as resize-convolution (Aitken et al.,
  https://arxiv.org/abs/1707.02937).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import (
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_int_pair,
    check_tensor,
)

INTERPOLATION_MODES = ("nearest", "bilinear")


def _check_batch(x: object, name: str = "x") -> Tensor:
    """``x`` must be a floating-point tensor ``[N, C, H, W]``."""
    return check_tensor(x, name, dims=4, floating=True, layout="[N, C, H, W]")


def _interpolate(x: Tensor, scale: int, mode: str) -> Tensor:
    align = False if mode == "bilinear" else None
    return F.interpolate(x, scale_factor=scale, mode=mode, align_corners=align)


# --------------------------------------------------------------------------- fixed


def upsample_nearest(x: Tensor, scale: int) -> Tensor:
    """Repeat every pixel ``scale x scale`` times (nearest-neighbour interpolation).

    Args:
        x: ``float[N, C, H, W]``.
        scale: integer factor >= 1.

    Returns:
        ``float[N, C, H * scale, W * scale]``.
    """
    _check_batch(x)
    return _interpolate(x, check_int(scale, "scale", minimum=1), "nearest")


def upsample_bilinear(x: Tensor, scale: int | None = None, size: int | tuple[int, int] | None = None) -> Tensor:
    """Bilinear interpolation with ``align_corners=False``, by ``scale`` or to ``size``.

    Output pixel ``j`` samples the input at ``(j + 0.5) / scale - 0.5``; samples outside
    the input are clamped to the border pixel.

    Args:
        x: ``float[N, C, H, W]``.
        scale: integer factor >= 1 (give ``scale`` or ``size``, not both).
        size: output size ``H`` or ``(H, W)``.
    """
    _check_batch(x)
    if (scale is None) == (size is None):
        raise ValueError(f"give exactly one of scale and size, got scale={scale!r}, size={size!r}")
    if size is not None:
        return F.interpolate(x, size=check_int_pair(size, "size", minimum=1), mode="bilinear", align_corners=False)
    return _interpolate(x, check_int(scale, "scale", minimum=1), "bilinear")


def bed_of_nails(x: Tensor, scale: int) -> Tensor:
    """Put each value at the top-left corner of its ``scale x scale`` block, zeros elsewhere.

    This is max unpooling with every stored index at the top-left of its window, and a
    transposed convolution (stride ``scale``) whose kernel is 1 at ``(0, 0)`` and 0 elsewhere.
    """
    _check_batch(x)
    scale = check_int(scale, "scale", minimum=1)
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, h * scale, w * scale)
    out[..., ::scale, ::scale] = x
    return out


class PooledWithIndices(NamedTuple):
    """Max pooling's result together with what unpooling needs later."""

    values: Tensor
    indices: Tensor
    input_size: tuple[int, int]


class MaxPoolWithIndices(nn.Module):
    """Max pooling that keeps the position of each maximum (SegNet's encoder pooling).

    ``forward`` returns :class:`PooledWithIndices`; pass its fields to :func:`max_unpool`.
    Indices are flat positions ``row * W + col`` in each input channel, as in PyTorch.

    Args:
        kernel_size, stride, padding, ceil_mode: as for ``nn.MaxPool2d``; ``stride=None``
            means ``kernel_size``.
    """

    def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
        self.stride = kernel_size if stride is None else check_int(stride, "stride", minimum=1)
        self.padding = check_int(padding, "padding", minimum=0)
        if self.padding > self.kernel_size // 2:
            raise ValueError(f"padding={padding} must be at most kernel_size // 2 = "
                             f"{self.kernel_size // 2} (PyTorch's rule for max pooling)")
        check_bool(ceil_mode, "ceil_mode")
        self.ceil_mode = ceil_mode

    def forward(self, x: Tensor) -> PooledWithIndices:
        _check_batch(x)
        values, indices = F.max_pool2d(x, self.kernel_size, self.stride, self.padding,
                                       ceil_mode=self.ceil_mode, return_indices=True)
        return PooledWithIndices(values, indices, (x.shape[-2], x.shape[-1]))

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


def max_unpool(x: Tensor, indices: Tensor, output_size: int | tuple[int, int]) -> Tensor:
    """Put every value back at the position its max pooling took it from; zeros elsewhere.

    Equal to ``nn.MaxUnpool2d`` with the same indices. The following convolutions fill in
    the zeros (SegNet, https://arxiv.org/abs/1511.00561).

    Args:
        x: pooled values ``float[N, C, h, w]``.
        indices: ``int64[N, C, h, w]`` flat positions ``row * W + col`` from
            ``F.max_pool2d(..., return_indices=True)`` or :class:`MaxPoolWithIndices`.
        output_size: the size ``(H, W)`` of the map before pooling.

    Raises:
        ValueError: shapes disagree, or an index is outside ``[0, H * W)``.
        TypeError: ``indices`` is not ``int64``.
    """
    _check_batch(x)
    height, width = check_int_pair(output_size, "output_size", minimum=1)
    if not isinstance(indices, Tensor) or indices.dtype != torch.int64:
        raise TypeError(f"indices must be an int64 tensor, got {getattr(indices, 'dtype', type(indices))}")
    if indices.shape != x.shape:
        raise ValueError(f"indices shape {tuple(indices.shape)} must equal x's shape {tuple(x.shape)}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= height * width):
        raise ValueError(
            f"indices must lie in [0, {height * width}) for output_size {(height, width)}, got "
            f"values from {int(indices.min())} to {int(indices.max())}"
        )
    n, c = x.shape[:2]
    out = x.new_zeros(n, c, height * width)
    out.scatter_(2, indices.flatten(2), x.flatten(2))
    return out.view(n, c, height, width)


# --------------------------------------------------------------------------- learnable


def upsampling_kernel_size(factor: int) -> int:
    """FCN's kernel size for upsampling by ``factor``: ``2 * factor - factor % 2``."""
    factor = check_int(factor, "factor", minimum=1)
    return 2 * factor - factor % 2


class TransposedConvUpsample(nn.ConvTranspose2d):
    """A transposed convolution (stride ``factor``) whose output is exactly ``factor`` times
    larger than its input.

    The size is ``(i - 1)f - 2p + k + output_padding``; choosing ``p = ceil((k - f) / 2)`` and
    ``output_padding = 2p - (k - f)`` makes it ``f * i``. A kernel size not divisible by the
    stride overlaps unevenly, the cause of checkerboard artifacts (Odena et al. 2016).

    Args:
        in_channels, out_channels: channel counts.
        factor: upsampling factor >= 2 (the stride).
        kernel_size: at least ``factor``; ``None`` gives FCN's ``2f - f % 2``.
        bias: learn an additive bias.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int,
                 kernel_size: int | None = None, bias: bool = True) -> None:
        factor = check_int(factor, "factor", minimum=2)
        kernel_size = upsampling_kernel_size(factor) if kernel_size is None else kernel_size
        kernel_size = check_int(kernel_size, "kernel_size", minimum=factor)
        padding = math.ceil((kernel_size - factor) / 2)
        super().__init__(
            check_int(in_channels, "in_channels", minimum=1),
            check_int(out_channels, "out_channels", minimum=1),
            kernel_size, stride=factor, padding=padding,
            output_padding=2 * padding - (kernel_size - factor), bias=bias,
        )
        self.factor = factor


def bilinear_kernel(channels: int, factor: int) -> Tensor:
    """Weights ``[channels, channels, k, k]`` of a transposed convolution that interpolates
    bilinearly, ``k = 2 * factor - factor % 2``: FCN's ``upsample_filt`` on the diagonal
    (channel ``c`` feeds only channel ``c``), zeros off it.

    The 1-D filter is ``1 - |t - centre| / factor`` for ``t = 0 .. k-1``, with the centre
    at ``factor - 1`` (odd ``k``) or ``factor - 0.5`` (even ``k``); the 2-D filter is the
    outer product.
    """
    channels = check_int(channels, "channels", minimum=1)
    size = upsampling_kernel_size(factor)
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor
    filt = (taps[:, None] * taps[None, :]).float()
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = filt
    return weight


class BilinearConvTranspose2d(TransposedConvUpsample):
    """A transposed convolution initialised to bilinear interpolation (FCN's upsampling).

    Kernel ``2f - f % 2``, stride ``f``, padding ``ceil((f - 1) / 2)``, no bias. Away from the
    border it equals ``F.interpolate(mode="bilinear", align_corners=False)``; within
    ``padding`` pixels of each border it differs, because the transposed convolution
    treats the outside as zeros where ``F.interpolate`` repeats the border pixel.

    Args:
        channels: input and output channels.
        factor: upsampling factor >= 2.
        trainable: ``False`` freezes the weights (``requires_grad=False``), as FCN did for
            its final upsampling; ``True`` lets training refine them.
    """

    def __init__(self, channels: int, factor: int, trainable: bool = True) -> None:
        check_bool(trainable, "trainable")
        super().__init__(channels, channels, factor, bias=False)
        with torch.no_grad():
            self.weight.copy_(bilinear_kernel(channels, factor))
        self.weight.requires_grad_(trainable)


class ResizeConv2d(nn.Module):
    """Resize (nearest or bilinear) then convolve: upsampling without checkerboard artifacts.

    Every output pixel sees the same number of input pixels, unlike a transposed
    convolution whose kernel size is not divisible by its stride (Odena, Dumoulin & Olah,
    https://distill.pub/2016/deconv-checkerboard/).

    Args:
        in_channels, out_channels: channel counts.
        scale: integer upsampling factor >= 1.
        kernel_size: odd, so that ``padding = kernel_size // 2`` keeps the resized size.
        mode: ``"nearest"`` or ``"bilinear"`` (``align_corners=False``).
        bias: learn an additive bias.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int, kernel_size: int = 3,
                 mode: str = "nearest", bias: bool = True) -> None:
        super().__init__()
        self.scale = check_int(scale, "scale", minimum=1)
        self.mode = check_choice(mode, "mode", INTERPOLATION_MODES)
        kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the size with symmetric "
                             f"padding, got {kernel_size}")
        self.conv = nn.Conv2d(check_int(in_channels, "in_channels", minimum=1),
                              check_int(out_channels, "out_channels", minimum=1),
                              kernel_size, padding=kernel_size // 2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        _check_batch(x)
        return self.conv(_interpolate(x, self.scale, self.mode))

    def extra_repr(self) -> str:
        return f"scale={self.scale}, mode={self.mode!r}"


def _default_conv_init(weight: Tensor) -> None:
    """``nn.Conv2d``'s own initialisation of a weight (Kaiming-uniform, ``a = sqrt(5)``)."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))


def icnr_(weight: Tensor, scale: int, initializer: Callable[[Tensor], object] | None = None) -> Tensor:
    """Fill, in place, the weight of a convolution that ``nn.PixelShuffle(scale)`` follows
    so that the pair starts as nearest resizing after a convolution: ICNR (Aitken et al.,
    "Checkerboard artifact free sub-pixel convolution", https://arxiv.org/abs/1707.02937).

    ``nn.PixelShuffle(r)`` sends input channel ``c * r**2 + i * r + j`` to output channel
    ``c`` at the offset ``(i, j)`` of every ``r x r`` block. ICNR draws one sub-kernel
    ``[C_out, C_in, kh, kw]`` with ``initializer`` and copies it to all ``r**2`` channels of
    each group, so that the ``r**2`` pixels of a block start equal: no checkerboard at
    initialisation. The fan-in of the sub-kernel is that of the full weight, so the
    default initializer (``nn.Conv2d``'s Kaiming-uniform) gives the same scale.

    Args:
        weight: ``[C_out * scale**2, C_in, kh, kw]``, a floating-point tensor or parameter.
        scale: the pixel-shuffle factor, at least 1.
        initializer: fills the sub-kernel in place (e.g. ``nn.init.kaiming_normal_``);
            ``None``: ``nn.Conv2d``'s default initialisation.

    Returns:
        ``weight``, filled.

    Raises:
        TypeError: ``weight`` is not a floating-point tensor, ``scale`` not an int, or
            ``initializer`` not callable.
        ValueError: ``weight`` is not 4-D, or its first dimension is not a multiple of
            ``scale**2``.
    """
    check_tensor(weight, "weight", dims=4, floating=True, layout="[C_out * scale**2, C_in, kh, kw]")
    scale = check_int(scale, "scale", minimum=1)
    initializer = _default_conv_init if initializer is None else check_callable(initializer, "initializer")
    groups = scale * scale
    if weight.shape[0] % groups:
        raise ValueError(f"weight.shape[0] must be a multiple of scale**2 = {groups}, "
                         f"got {weight.shape[0]}")
    sub = torch.empty(weight.shape[0] // groups, *weight.shape[1:], dtype=weight.dtype,
                      device=weight.device)
    initializer(sub)
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(groups, dim=0))
    return weight


class SubPixelConv2d(nn.Module):
    """Sub-pixel convolution: a stride-1 convolution to ``out_channels * scale**2``
    channels, then ``nn.PixelShuffle(scale)`` (Shi et al., CVPR 2016,
    https://arxiv.org/abs/1609.05158).

    Equivalent to a stride-``scale`` transposed convolution with a ``kernel_size * scale``
    kernel, so randomly initialised it has the same checkerboard; with ``icnr=True``
    (the default) the weight is filled by :func:`icnr_` and the bias copied the same way,
    and the layer starts as a convolution followed by nearest resizing (Aitken et al.,
    https://arxiv.org/abs/1707.02937).

    Args:
        in_channels, out_channels: channel counts.
        scale: integer upsampling factor >= 1.
        kernel_size: odd, so that ``padding = kernel_size // 2`` keeps the size.
        icnr: initialise by ICNR (``True``) or leave ``nn.Conv2d``'s random initialisation.
        bias: learn an additive bias.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int, kernel_size: int = 3,
                 icnr: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.scale = check_int(scale, "scale", minimum=1)
        self.icnr = check_bool(icnr, "icnr")
        out_channels = check_int(out_channels, "out_channels", minimum=1)
        kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the size with symmetric "
                             f"padding, got {kernel_size}")
        self.conv = nn.Conv2d(check_int(in_channels, "in_channels", minimum=1),
                              out_channels * self.scale ** 2, kernel_size,
                              padding=kernel_size // 2, bias=bias)
        self.shuffle = nn.PixelShuffle(self.scale)
        if icnr:
            icnr_(self.conv.weight, self.scale)
            if self.conv.bias is not None:
                with torch.no_grad():
                    self.conv.bias.copy_(self.conv.bias[::self.scale ** 2].repeat_interleave(self.scale ** 2))

    def forward(self, x: Tensor) -> Tensor:
        _check_batch(x)
        return self.shuffle(self.conv(x))

    def extra_repr(self) -> str:
        return f"scale={self.scale}, icnr={self.icnr}"
