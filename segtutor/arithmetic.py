"""Convolution arithmetic: output sizes, transposed convolution, convolution as a matrix,
and receptive fields.

Every size formula here returns exactly what PyTorch's layers produce, and refuses what
PyTorch refuses (the tests compare the two on exhaustive grids). The notation follows
Dumoulin & Visin, "A guide to convolution arithmetic for deep learning"
(https://arxiv.org/abs/1603.07285): input size ``i``, kernel size ``k``, stride ``s``,
padding ``p`` (on each side), dilation ``d``. Receptive fields follow Araujo, Norris & Sim,
"Computing Receptive Fields of Convolutional Neural Networks", Distill 2019
(https://distill.pub/2019/computing-receptive-fields/).

    >>> conv_output_size(5, 3, s=2, p=1)
    3
    >>> conv_transpose_output_size(3, 3, s=2, p=1)
    5
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: A receptive-field quantity: an ``int``, or a ``Fraction`` after upsampling layers.
Number = int | Fraction

#: ``conv_matrix`` returns a dense matrix up to this many entries and a sparse one above.
DENSE_LIMIT = 2**20


# --------------------------------------------------------------------------- checks


def _as_int(name: str, value: object) -> int:
    """Return ``value`` as an ``int``; ``bool`` and non-integers raise ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    return int(value)


def _at_least(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an ``int`` after checking that it is at least ``minimum``."""
    value = _as_int(name, value)
    if value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value}")
    return value


def _pair(name: str, value: object) -> tuple[int, int]:
    """Accept an ``int`` or a pair of ``int`` (height, width), as ``nn.Conv2d`` does."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (height, width), got {value!r}")
        return _as_int(f"{name}[0]", value[0]), _as_int(f"{name}[1]", value[1])
    value = _as_int(name, value)
    return value, value


def _check_conv_args(k: object, s: object, p: object, d: object) -> tuple[int, int, int, int]:
    return (
        _at_least("kernel size k", k, 1),
        _at_least("stride s", s, 1),
        _at_least("padding p", p, 0),
        _at_least("dilation d", d, 1),
    )


def _check_transpose_args(
    k: object, s: object, p: object, d: object, output_padding: object
) -> tuple[int, int, int, int, int]:
    k, s, p, d = _check_conv_args(k, s, p, d)
    output_padding = _at_least("output_padding", output_padding, 0)
    if output_padding >= max(s, d):
        raise ValueError(
            f"output_padding={output_padding} must be smaller than the stride s={s} or the "
            f"dilation d={d} (PyTorch's rule: output_padding < max(s, d) = {max(s, d)})"
        )
    return k, s, p, d, output_padding


# --------------------------------------------------------------------------- output sizes


def effective_kernel_size(k: int, d: int = 1) -> int:
    """Size of a kernel of ``k`` taps spread ``d`` apart: ``k + (k - 1)(d - 1)``.

    A dilated (atrous) 3x3 kernel with ``d = 2`` covers 5x5 pixels with the same nine
    multiplications, which is how DeepLab widens the field of view without pooling.

    Raises:
        TypeError: ``k`` or ``d`` is not an ``int``.
        ValueError: ``k`` or ``d`` is not positive.
    """
    k = _at_least("kernel size k", k, 1)
    d = _at_least("dilation d", d, 1)
    return k + (k - 1) * (d - 1)


def conv_output_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """Output size of a convolution, ``floor((i + 2p - d(k - 1) - 1) / s) + 1``.

    This is the shape ``nn.Conv2d`` produces along one dimension (Dumoulin & Visin,
    relationship 6, https://arxiv.org/abs/1603.07285).

    Args:
        i: input size (positive).
        k: kernel size (positive).
        s: stride (positive).
        p: zero padding added to each side (non-negative).
        d: dilation (positive).

    Raises:
        TypeError: an argument is not an ``int`` (``bool`` and ``float`` included).
        ValueError: a size is out of range, or the dilated kernel is larger than the
            padded input (PyTorch refuses that too).
    """
    i = _at_least("input size i", i, 1)
    k, s, p, d = _check_conv_args(k, s, p, d)
    k_eff = effective_kernel_size(k, d)
    padded = i + 2 * p
    if k_eff > padded:
        raise ValueError(
            f"the kernel (k={k}, d={d}, effective size {k_eff}) is larger than the padded "
            f"input (i + 2p = {i} + 2*{p} = {padded}); need i + 2p >= {k_eff}"
        )
    return (padded - k_eff) // s + 1


def conv_transpose_output_size(
    i: int, k: int, s: int = 1, p: int = 0, d: int = 1, output_padding: int = 0
) -> int:
    """Output size of a transposed convolution, ``(i - 1)s - 2p + d(k - 1) + output_padding + 1``.

    This is the shape ``nn.ConvTranspose2d`` produces along one dimension. A convolution
    with stride ``s > 1`` maps several input sizes to the same output size;
    ``output_padding`` picks which of them the transposed convolution returns. PyTorch
    requires ``output_padding < max(s, d)`` ("output padding must be smaller than either
    stride or dilation"), checked here by experiment against ``nn.ConvTranspose2d``.

    Args:
        i: input size (positive).
        k: kernel size (positive).
        s: stride (positive).
        p: padding of the convolution this transposes (non-negative).
        d: dilation (positive).
        output_padding: extra rows/columns on the bottom/right, ``0 <= output_padding < max(s, d)``.

    Raises:
        TypeError: an argument is not an ``int``.
        ValueError: a size is out of range, ``output_padding >= max(s, d)``, or the
            result would be zero or negative (the padding eats the whole output). For a
            result of exactly 0 PyTorch is inconsistent: most configurations raise "Output
            size is too small", but some backends (seen with even kernels on the CPU) return
            an empty tensor; this function always refuses it.
    """
    i = _at_least("input size i", i, 1)
    k, s, p, d, output_padding = _check_transpose_args(k, s, p, d, output_padding)
    size = (i - 1) * s - 2 * p + d * (k - 1) + output_padding + 1
    if size <= 0:
        raise ValueError(
            f"transposed convolution output size (i-1)s - 2p + d(k-1) + output_padding + 1 = "
            f"({i}-1)*{s} - 2*{p} + {d}*({k}-1) + {output_padding} + 1 = {size} is not "
            f"positive; reduce the padding p={p} or enlarge the input or kernel"
        )
    return size


def pool_output_size(
    i: int, k: int, s: int | None = None, p: int = 0, d: int = 1, ceil_mode: bool = False
) -> int:
    """Output size of ``nn.MaxPool2d`` along one dimension.

    ``floor`` (or with ``ceil_mode`` ``ceil``) of ``(i + 2p - d(k - 1) - 1) / s``, plus one.
    In ``ceil_mode`` PyTorch drops the last window when it would start in the right
    padding, i.e. when ``(o - 1)s >= i + p``, so that every window starts inside the input
    or the left padding.

    Args:
        i: input size (positive).
        k: window size (positive).
        s: stride; ``None`` means ``k``, PyTorch's default.
        p: implicit padding on each side; PyTorch requires ``p <= k // 2``.
        d: dilation (positive).
        ceil_mode: round up instead of down.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: a size is out of range, ``p > k // 2``, or the output would be empty.
    """
    k = _at_least("kernel size k", k, 1)
    s = k if s is None else s
    i = _at_least("input size i", i, 1)
    k, s, p, d = _check_conv_args(k, s, p, d)
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
    if p > k // 2:
        raise ValueError(
            f"pooling padding p={p} is more than half the window k={k}; PyTorch requires "
            f"p <= k // 2 = {k // 2}"
        )
    span = i + 2 * p - d * (k - 1) - 1
    size = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (size - 1) * s >= i + p:
        size -= 1
    if size < 1:
        raise ValueError(
            f"pooling window (k={k}, d={d}) does not fit the padded input (i={i}, p={p}): "
            f"output size would be {size}"
        )
    return size


def same_padding(k: int, d: int = 1) -> int:
    """Padding that keeps the size of a stride-1 convolution: ``(d(k - 1)) / 2`` per side.

    Only exists for an odd effective kernel size. An even one needs one more pixel on
    one side than the other (PyTorch's ``padding="same"`` puts the extra one on the
    bottom/right), which a single per-side number cannot express.

    Raises:
        ValueError: the effective kernel size ``k + (k - 1)(d - 1)`` is even.
    """
    k_eff = effective_kernel_size(k, d)
    if k_eff % 2 == 0:
        raise ValueError(
            f"kernel k={k} with dilation d={d} has even effective size {k_eff}; 'same' "
            f"output needs asymmetric padding ({(k_eff - 1) // 2} before, {k_eff // 2} "
            f"after), e.g. nn.Conv2d(padding='same'); choose an odd kernel"
        )
    return (k_eff - 1) // 2


def full_padding(k: int, d: int = 1) -> int:
    """Padding ``d(k - 1)`` per side: every partial overlap counts, output ``i + d(k - 1)``."""
    return effective_kernel_size(k, d) - 1


# --------------------------------------------------------------------------- transposed conv


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
        i = _at_least("input size i", i, 1)
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
    sh, sw = (_at_least(f"stride[{n}]", v, 1) for n, v in enumerate(_pair("stride", stride)))
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
        ValueError: wrong shapes, channel mismatch, or invalid sizes (see
            :func:`conv_transpose_output_size`).
    """
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(
            f"expected x [N, C_in, H, W] and weight [C_in, C_out, kh, kw], got shapes "
            f"{tuple(x.shape)} and {tuple(weight.shape)}"
        )
    if x.shape[1] != weight.shape[0]:
        raise ValueError(
            f"x has {x.shape[1]} channels but weight expects {weight.shape[0]} "
            f"(weight is [C_in, C_out, kh, kw] for a transposed convolution)"
        )
    params = [_pair(n, v) for n, v in (("stride", stride), ("padding", padding),
                                       ("dilation", dilation), ("output_padding", output_padding))]
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


# --------------------------------------------------------------------------- conv as a matrix


def conv_matrix(
    weight: Tensor,
    input_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    sparse: bool | None = None,
) -> Tensor:
    """The matrix ``C`` of a convolution: ``C @ x.flatten() == conv2d(x).flatten()``.

    Row ``(o, y, x)`` of ``C`` holds the kernel weights at the input pixels that output
    ``o`` at ``(y, x)`` sees; everything else is zero. Its transpose computes the transposed
    convolution, ``C.T @ y.flatten() == conv_transpose2d(y).flatten()`` (with the
    ``output_padding`` that restores ``input_size``), which is also the backward pass of the
    convolution with respect to its input. The book's example, a 3x3 kernel on a 4x4
    input, gives a 4x16 ``C``.

    Args:
        weight: ``[kh, kw]`` (one channel) or ``[C_out, C_in, kh, kw]``.
        input_size: ``H`` or ``(H, W)`` of the input ``x`` (``[C_in, H, W]``).
        stride, padding, dilation: as for ``F.conv2d``.
        sparse: ``True`` for a sparse COO tensor, ``False`` for dense, ``None`` to choose
            dense up to :data:`DENSE_LIMIT` entries and sparse above.

    Returns:
        ``C`` of shape ``[C_out * H_out * W_out, C_in * H * W]`` in ``weight``'s dtype.
    """
    if sparse is not None and not isinstance(sparse, bool):
        raise TypeError(f"sparse must be True, False or None, got {sparse!r}")
    if weight.dim() == 2:
        weight = weight[None, None]
    if weight.dim() != 4:
        raise ValueError(f"weight must be [kh, kw] or [C_out, C_in, kh, kw], got shape {tuple(weight.shape)}")
    c_out, c_in, kh, kw = weight.shape
    (h, w), (sh, sw), (ph, pw), (dh, dw) = (
        _pair(n, v) for n, v in (("input_size", input_size), ("stride", stride),
                                 ("padding", padding), ("dilation", dilation)))
    out_h, out_w = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)

    ar = torch.arange
    o, c, y, x, ky, kx = torch.meshgrid(
        ar(c_out), ar(c_in), ar(out_h), ar(out_w), ar(kh), ar(kw), indexing="ij")
    iy, ix = y * sh - ph + ky * dh, x * sw - pw + kx * dw
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rows = ((o * out_h + y) * out_w + x)[inside]
    cols = ((c * h + iy) * w + ix)[inside]
    values = weight[o[inside], c[inside], ky[inside], kx[inside]]
    shape = (c_out * out_h * out_w, c_in * h * w)

    if sparse is None:
        sparse = shape[0] * shape[1] > DENSE_LIMIT
    if sparse:
        indices = torch.stack([rows, cols])
        return torch.sparse_coo_tensor(indices, values, shape, check_invariants=False).coalesce()
    return weight.new_zeros(shape).index_put((rows, cols), values)


# --------------------------------------------------------------------------- receptive fields


@dataclass(frozen=True)
class Conv:
    """A convolution for :func:`receptive_field`: kernel ``k``, stride ``s``, padding ``p``,
    dilation ``d`` (each an ``int`` or a pair ``(height, width)``)."""

    k: int | tuple[int, int]
    s: int | tuple[int, int] = 1
    p: int | tuple[int, int] = 0
    d: int | tuple[int, int] = 1


@dataclass(frozen=True)
class Pool:
    """A max or average pooling window for :func:`receptive_field`; ``s=None`` means ``k``."""

    k: int | tuple[int, int]
    s: int | tuple[int, int] | None = None
    p: int | tuple[int, int] = 0
    d: int | tuple[int, int] = 1
    ceil_mode: bool = False


@dataclass(frozen=True)
class ConvTranspose:
    """A transposed convolution for :func:`receptive_field` (stride ``s`` means ``1/s``)."""

    k: int | tuple[int, int]
    s: int | tuple[int, int] = 1
    p: int | tuple[int, int] = 0
    d: int | tuple[int, int] = 1
    output_padding: int | tuple[int, int] = 0


@dataclass(frozen=True)
class Upsample:
    """Interpolation by an integer ``factor``, ``mode`` ``"nearest"`` or ``"bilinear"``
    (``align_corners=False``)."""

    factor: int | tuple[int, int]
    mode: str = "nearest"


Interval = tuple[int, int]


@dataclass(frozen=True)
class _Step:
    """One layer along one axis.

    For Distill's recurrences: ``span`` is the distance between the first and last input a
    unit reads (``d(k - 1)`` for a convolution); ``stride`` and ``padding`` map output
    index ``u`` to the first input index ``u * stride - padding``. They are fractions for
    upsampling layers. ``back`` maps an interval of output indices to the exact interval
    of input indices it reads; ``output_size`` maps an input size to the output size.
    """

    span: Fraction
    stride: Fraction
    padding: Fraction
    back: Callable[[int, int], Interval]
    output_size: Callable[[int], int]


def _window_back(k: int, s: int, p: int, d: int) -> Callable[[int, int], Interval]:
    """Convolution or pooling: outputs ``a..b`` read inputs ``a*s - p .. b*s - p + d(k-1)``."""
    return lambda a, b: (a * s - p, b * s - p + d * (k - 1))


def _transpose_back(k: int, s: int, p: int, d: int) -> Callable[[int, int], Interval]:
    """Transposed convolution: input ``u`` writes to outputs ``u*s - p + t*d``, t < k.

    Returns the first and last input that writes into outputs ``a..b`` (with dilation
    some inputs in between may write nothing there).
    """
    def writes_into(u: int, a: int, b: int) -> bool:
        first_tap = max(0, -((u * s - p - a) // d))  # smallest t with u*s - p + t*d >= a
        return first_tap < k and u * s - p + first_tap * d <= b

    def back(a: int, b: int) -> Interval:
        lo, hi = -((d * (k - 1) - p - a) // s), (b + p) // s
        while lo <= hi and not writes_into(lo, a, b):
            lo += 1
        while hi >= lo and not writes_into(hi, a, b):
            hi -= 1
        return lo, hi

    return back


def _nearest_back(f: Fraction) -> Callable[[int, int], Interval]:
    """Nearest upsampling: output ``j`` copies input ``floor(j / f)``."""
    return lambda a, b: (math.floor(a / f), math.floor(b / f))


def _bilinear_back(f: Fraction) -> Callable[[int, int], Interval]:
    """Bilinear upsampling (align_corners=False): output ``j`` sits at ``c = (j + 1/2)/f - 1/2``
    and mixes inputs ``floor(c)`` and ``floor(c) + 1``; the second has weight 0 when ``c``
    is a whole number (away from the borders, where PyTorch clamps)."""
    def centre(j: int) -> Fraction:
        return (j + Fraction(1, 2)) / f - Fraction(1, 2)

    return lambda a, b: (math.floor(centre(a)), math.ceil(centre(b)))


def _conv_steps(k, s, p, d) -> list[_Step]:
    return [_Step(Fraction(d_ * (k_ - 1)), Fraction(s_), Fraction(p_), _window_back(k_, s_, p_, d_),
                  partial(conv_output_size, k=k_, s=s_, p=p_, d=d_))
            for k_, s_, p_, d_ in zip(k, s, p, d, strict=True)]


def _pool_steps(k, s, p, d, ceil_mode: bool) -> list[_Step]:
    return [_Step(Fraction(d_ * (k_ - 1)), Fraction(s_), Fraction(p_), _window_back(k_, s_, p_, d_),
                  partial(pool_output_size, k=k_, s=s_, p=p_, d=d_, ceil_mode=ceil_mode))
            for k_, s_, p_, d_ in zip(k, s, p, d, strict=True)]


def _conv_transpose_steps(k, s, p, d, op) -> list[_Step]:
    # Zero insertion (stride 1/s), then a stride-1 convolution over the stretched input
    # with padding d(k-1) - p: measured in input pixels, span and padding divide by s.
    return [_Step(Fraction(d_ * (k_ - 1), s_), Fraction(1, s_), Fraction(d_ * (k_ - 1) - p_, s_),
                  _transpose_back(k_, s_, p_, d_),
                  partial(conv_transpose_output_size, k=k_, s=s_, p=p_, d=d_, output_padding=o_))
            for k_, s_, p_, d_, o_ in zip(k, s, p, d, op, strict=True)]


def _upsample_steps(factors: Sequence[Fraction], mode: str) -> list[_Step]:
    # Nearest reads one input (span 0) starting at j/f; bilinear reads two (span 1)
    # starting at floor(j/f - (f - 1)/(2f)).
    steps = []
    for f in factors:
        if mode == "nearest":
            span, padding, back = Fraction(0), Fraction(0), _nearest_back(f)
        else:
            span, padding, back = Fraction(1), (f - 1) / (2 * f), _bilinear_back(f)
        steps.append(_Step(span, 1 / f, padding, back, lambda i, f=f: math.floor(i * f)))
    return steps


def _identity_back(a: int, b: int) -> Interval:
    return a, b


_IDENTITY_MODULES: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU,
    nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d,
    nn.Dropout, nn.Dropout2d,
)


def _describe(layer: object) -> str:
    text = repr(layer)
    return text if len(text) <= 80 else text[:77] + "..."


def _short(layer: object) -> str:
    """A compact label such as ``Conv2d k3 s1 p1`` or ``Upsample x2 bilinear``."""
    def part(letter: str, value: object, default: object) -> str:
        if isinstance(value, (tuple, list)):
            value = value[0] if len(set(value)) == 1 else "x".join(map(str, value))
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return "" if value == default else f" {letter}{value}"

    kind = type(layer).__name__
    if isinstance(layer, (Upsample, nn.Upsample)):
        factor = layer.factor if isinstance(layer, Upsample) else layer.scale_factor
        return f"{kind}{part('x', factor, None)} {layer.mode}"
    attributes = (("k", "kernel_size", "k", None), ("s", "stride", "s", None),
                  ("p", "padding", "p", 0), ("d", "dilation", "d", 1))
    label = kind
    for letter, module_attr, spec_attr, default in attributes:
        value = getattr(layer, module_attr, getattr(layer, spec_attr, None))
        if value is not None:
            label += part(letter, value, default)
    return label


def _spec_steps(spec: object, name: str) -> list[_Step]:
    """Steps for one of the small spec dataclasses (:class:`Conv`, :class:`Pool`, ...)."""
    def pairs(*names: str) -> list[tuple[int, int]]:
        return [_pair(f"{name}: {n}", getattr(spec, n)) for n in names]

    if isinstance(spec, Conv):
        k, s, p, d = pairs("k", "s", "p", "d")
        _check_kernel(name, k, s, d, p)
        return _conv_steps(k, s, p, d)
    if isinstance(spec, Pool):
        k, p, d = pairs("k", "p", "d")
        s = k if spec.s is None else _pair(f"{name}: s", spec.s)
        _check_kernel(name, k, s, d, p)
        return _pool_steps(k, s, p, d, spec.ceil_mode)
    if isinstance(spec, ConvTranspose):
        k, s, p, d, op = pairs("k", "s", "p", "d", "output_padding")
        _check_kernel(name, k, s, d, p)
        return _conv_transpose_steps(k, s, p, d, op)
    if isinstance(spec, Upsample):
        factors = pairs("factor")[0]
        _check_upsample(name, factors, spec.mode)
        return _upsample_steps([Fraction(f) for f in factors], spec.mode)
    raise ValueError(f"{name}: unknown layer {_describe(spec)}")


def _check_kernel(name: str, k, s, d, p) -> None:
    for label, values, minimum in (("kernel size", k, 1), ("stride", s, 1),
                                   ("dilation", d, 1), ("padding", p, 0)):
        if min(values) < minimum:
            raise ValueError(f"{name}: {label} must be >= {minimum}, got {tuple(values)}")


def _check_upsample(name: str, factors: Sequence[Number], mode: str) -> None:
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"{name}: upsampling mode {mode!r} not supported; use 'nearest' "
                         f"or 'bilinear' (align_corners=False)")
    if min(factors) <= 0:
        raise ValueError(f"{name}: upsampling factor must be positive, got {tuple(factors)}")


def _module_steps(module: nn.Module, name: str) -> list[_Step]:
    """Steps for a single (non-container) ``nn.Module``."""
    if isinstance(module, _IDENTITY_MODULES):
        return [_Step(Fraction(0), Fraction(1), Fraction(0), _identity_back, lambda i: i)] * 2
    if isinstance(module, nn.ConvTranspose2d):
        return _spec_steps(ConvTranspose(module.kernel_size, module.stride, module.padding,
                                         module.dilation, module.output_padding), name)
    if isinstance(module, nn.Conv2d):
        return _spec_steps(Conv(module.kernel_size, module.stride,
                                _conv_padding(module), module.dilation), name)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        dilation = getattr(module, "dilation", 1)
        return _spec_steps(Pool(module.kernel_size, module.stride, module.padding, dilation,
                                module.ceil_mode), name)
    if isinstance(module, nn.Upsample):
        return _upsample_module_steps(module, name)
    raise ValueError(
        f"{name}: cannot compute the receptive field of {_describe(module)}; supported: "
        f"Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, Upsample, element-wise layers "
        f"(ReLU, BatchNorm2d, Dropout, ...), nn.Sequential and torchvision ResNet blocks"
    )


def _conv_padding(module: nn.Conv2d) -> tuple[int, int]:
    if module.padding == "valid":
        return (0, 0)
    if module.padding == "same":  # PyTorch pads d(k-1)//2 before, the rest after
        return tuple(d * (k - 1) // 2 for k, d in zip(module.kernel_size, module.dilation, strict=True))
    return module.padding


def _upsample_module_steps(module: nn.Upsample, name: str) -> list[_Step]:
    if module.scale_factor is None:
        raise ValueError(f"{name}: {_describe(module)} gives a fixed output size, not a "
                         f"scale factor, so its stride depends on the input; use scale_factor")
    if module.mode == "bilinear" and module.align_corners:
        raise ValueError(f"{name}: bilinear upsampling with align_corners=True has no "
                         f"constant stride; use align_corners=False")
    factors = module.scale_factor
    factors = factors if isinstance(factors, tuple) else (factors, factors)
    _check_upsample(name, factors, module.mode)
    return _upsample_steps([Fraction(f) for f in factors], module.mode)


def _residual_main_path(module: nn.Module) -> list[nn.Module] | None:
    """The convolutions of a torchvision ResNet block (its shortcut sees less), else None."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    if isinstance(module, Bottleneck):
        return [module.conv1, module.conv2, module.conv3]
    if isinstance(module, BasicBlock):
        return [module.conv1, module.conv2]
    return None


def _flatten(layers: object, prefix: str) -> Iterable[tuple[str, object]]:
    """Yield ``(name, layer)`` in forward order, opening containers and residual blocks."""
    if isinstance(layers, nn.Sequential):
        for child_name, child in layers.named_children():
            yield from _flatten(child, f"{prefix}.{child_name}" if prefix else child_name)
        return
    if isinstance(layers, nn.Module):
        main_path = _residual_main_path(layers)
        if main_path is not None:
            for index, conv in enumerate(main_path, 1):
                yield f"{prefix}.conv{index}", conv
            return
        yield prefix, layers
        return
    if isinstance(layers, (list, tuple)):
        for index, layer in enumerate(layers):
            yield from _flatten(layer, f"{prefix}.{index}" if prefix else str(index))
        return
    yield prefix, layers


def _as_number(value: Fraction) -> Number:
    return int(value) if value.denominator == 1 else value


@dataclass(frozen=True)
class LayerField:
    """The receptive field of one unit of a layer's output, on the network's input.

    Each quantity is a pair (height, width): ``size`` r, ``stride`` S (the input distance
    between neighbouring output units) and ``padding`` P (how far the first unit's field
    starts before the input), from Distill's recurrences. Without upsampling they are
    integers and exact. Upsampling layers enter with stride ``1/f`` and the quantities
    become ``Fraction``s: S = 1/2 means two output units per input pixel, while r is then
    only an estimate, because the exact extent changes with the unit's position (a zero
    inserted by a transposed convolution or an exactly aligned bilinear sample reads
    nothing). :meth:`region` maps each unit back layer by layer instead (see its caveats).
    """

    index: int
    name: str
    layer: str
    size: tuple[Number, Number]
    stride: tuple[Number, Number]
    padding: tuple[Number, Number]
    output_size: tuple[int, int] | None = None
    back: tuple[tuple[Callable[[int, int], Interval], ...], ...] = field(
        default=((), ()), repr=False, compare=False)

    def region(self, row: int, col: int) -> tuple[Interval, Interval]:
        """Input rows and columns ``(first, last)`` that output unit ``(row, col)`` reads.

        Found by mapping the unit back through every layer. Without upsampling this is
        Distill's ``first = u * S - P``, ``last = first + r - 1``. Values below 0 or beyond
        the input lie in the padding (a unit near the border sees less real input).

        The result is the *hull* (first to last) of the pixels the unit can read, and it is
        exact -- every pixel in it reaches the unit -- for stacks whose windows are at
        least as large as their strides and that have no dilated transposed convolution
        or pooling (the book's stacks, checked against gradients in the tests). Otherwise
        the hull can contain holes: dilation and inserted zeros skip pixels, a stride
        larger than the window skips rows, a later layer's padding can map back onto real
        input, and a unit that reads only inserted zeros still gets a (non-empty) interval.
        """
        out = []
        for u, chain in zip((row, col), self.back, strict=True):
            first = last = _as_int("output index", u)
            for back in reversed(chain):
                first, last = back(first, last)
            out.append((first, last))
        return out[0], out[1]


@dataclass(frozen=True)
class ReceptiveFieldTable:
    """Per-layer receptive fields of a stack; ``overall`` is the last layer's."""

    layers: tuple[LayerField, ...]

    @property
    def overall(self) -> LayerField:
        """The field of a unit of the stack's final output."""
        return self.layers[-1]

    def __str__(self) -> str:
        def fmt(pair: tuple) -> str:
            return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"

        show_size = self.layers[0].output_size is not None
        header = f"{'#':>3}  {'layer':<36} {'r':>9} {'S':>7} {'P':>9}" + (
            f" {'output':>11}" if show_size else "")
        lines = [header, "-" * len(header)]
        for f in self.layers:
            label = f.layer if f.name == str(f.index) else f"{f.name}: {f.layer}"
            line = (f"{f.index:>3}  {label[:36]:<36} {fmt(f.size):>9} {fmt(f.stride):>7} "
                    f"{fmt(f.padding):>9}")
            if show_size:
                line += f" {f.output_size[0]:>5}x{f.output_size[1]:<5}"
            lines.append(line)
        return "\n".join(lines)


def receptive_field(
    layers: object, input_size: int | tuple[int, int] | None = None
) -> ReceptiveFieldTable:
    """Receptive field size r, effective stride S and effective padding P after every layer.

    Uses the recurrences of Araujo, Norris & Sim (Distill 2019,
    https://distill.pub/2019/computing-receptive-fields/) in forward order: after a layer
    with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d``,
    ``r += d(k - 1) * S``, ``P += p * S`` and ``S *= s``, starting from ``r = S = 1, P = 0``;
    summed out, ``r = 1 + sum_l d_l(k_l - 1) prod_{i<l} s_i`` and ``S = prod_l s_l``.

    Upsampling layers have stride ``1/f`` and make ``S``, ``P`` and ``r`` ``Fraction``s:
    nearest upsampling reads one input (span 0), bilinear two (span 1), a transposed
    convolution is ``s - 1`` inserted zeros (stride ``1/s``) followed by a stride-1
    convolution (span ``d(k - 1)/s`` in input pixels). ``S`` stays exact, but ``r`` is then
    an estimate: the exact extent depends on the unit's position, and
    :meth:`LayerField.region` gives it. A residual block's field is that of its main path,
    because its shortcut (identity, or a strided 1x1 convolution) reads a subset of the
    same pixels.

    Args:
        layers: a list of :class:`Conv`, :class:`Pool`, :class:`ConvTranspose`,
            :class:`Upsample` specs and/or ``nn.Module``s (``Conv2d``, ``ConvTranspose2d``,
            ``MaxPool2d``, ``AvgPool2d``, ``Upsample``, element-wise layers such as ``ReLU``,
            ``BatchNorm2d`` and ``Dropout``, ``nn.Sequential`` opened up, torchvision
            ``BasicBlock``/``Bottleneck`` by their main path), or one ``nn.Sequential``.
        input_size: ``H`` or ``(H, W)``; when given, each layer's output size is computed
            too (and a stack that does not fit the input raises ``ValueError``).

    Raises:
        ValueError: an unknown layer type, a non-positive kernel, stride or dilation (the
            message names the layer), an empty stack, or a stack that does not fit
            ``input_size``.
    """
    named = list(_flatten(layers, ""))
    if not named:
        raise ValueError(f"receptive_field needs at least one layer, got {layers!r}")
    sizes = None if input_size is None else list(_pair("input_size", input_size))
    if sizes is not None and min(sizes) < 1:
        raise ValueError(f"input_size must be positive, got {tuple(sizes)}")
    r, stride, padding = [Fraction(1)] * 2, [Fraction(1)] * 2, [Fraction(0)] * 2
    chains: tuple[list, list] = ([], [])
    table = []
    for index, (name, layer) in enumerate(named):
        label = f"layer {index} ({name})" if name != str(index) else f"layer {index}"
        steps = (_module_steps(layer, label) if isinstance(layer, nn.Module)
                 else _spec_steps(layer, label))
        for axis, step in enumerate(steps):
            r[axis] += step.span * stride[axis]
            padding[axis] += step.padding * stride[axis]
            stride[axis] *= step.stride
            chains[axis].append(step.back)
            if sizes is not None:
                try:
                    sizes[axis] = step.output_size(sizes[axis])
                except ValueError as error:
                    raise ValueError(f"{label} does not fit its input: {error}") from None
        table.append(LayerField(
            index=index, name=name, layer=_short(layer),
            size=(_as_number(r[0]), _as_number(r[1])),
            stride=(_as_number(stride[0]), _as_number(stride[1])),
            padding=(_as_number(padding[0]), _as_number(padding[1])),
            output_size=None if sizes is None else (sizes[0], sizes[1]),
            back=(tuple(chains[0]), tuple(chains[1])),
        ))
    return ReceptiveFieldTable(tuple(table))


# --------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class MeasuredField:
    """The input pixels that receive a non-zero gradient from one output unit."""

    mask: Tensor
    rows: tuple[int, int]
    cols: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        """Extent ``(height, width)`` of the region: ``last - first + 1`` per axis."""
        return self.rows[1] - self.rows[0] + 1, self.cols[1] - self.cols[0] + 1


def _positive_probe(network: nn.Module) -> nn.Module:
    """A float64 copy with positive weights and max pooling replaced by average pooling.

    With positive weights, zero biases and a positive input every ReLU passes and no two
    gradient paths cancel, so every pixel in the receptive field gets a positive gradient.
    Max pooling routes the gradient to one pixel per window, so it becomes an average
    pool with the same window, stride, padding and ceil mode (same geometry).
    """
    probe = nn.Sequential(copy.deepcopy(network)).double().eval().requires_grad_(False)
    for parent in probe.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                if child.dilation not in (1, (1, 1)):
                    raise ValueError(f"cannot measure a dilated max pool ({child!r}): "
                                     f"average pooling has no dilation")
                setattr(parent, child_name, nn.AvgPool2d(
                    child.kernel_size, child.stride, child.padding, child.ceil_mode))
    with torch.no_grad():
        for module in probe.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()  # identity in eval mode: no sign flips
    return probe


def measure_receptive_field(
    network: nn.Module,
    input_size: int | tuple[int, int],
    unit: tuple[int, int] | None = None,
    in_channels: int | None = None,
) -> MeasuredField:
    """Measure the receptive field of one output unit by backpropagation.

    A float64 copy of ``network`` gets positive constant weights (max pooling becomes
    average pooling of the same geometry); the gradient of output ``unit`` (summed over
    channels) with respect to a constant positive input is non-zero exactly on the
    pixels that unit depends on. Pick a unit far enough from the border that padding
    does not cut its field.

    Args:
        network: the layers, as an ``nn.Module``.
        input_size: ``H`` or ``(H, W)``.
        unit: output position ``(row, col)``; ``None`` takes the centre.
        in_channels: input channels; ``None`` reads them from the first convolution.
    """
    height, width = (_at_least("input_size", v, 1) for v in _pair("input_size", input_size))
    if in_channels is None:
        first = next((m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))), None)
        in_channels = first.in_channels if first is not None else 1
    probe = _positive_probe(network)
    x = torch.ones(1, in_channels, height, width, dtype=torch.float64, requires_grad=True)
    y = probe(x)
    row, col = unit if unit is not None else (y.shape[-2] // 2, y.shape[-1] // 2)
    if not (0 <= row < y.shape[-2] and 0 <= col < y.shape[-1]):
        raise ValueError(f"unit {unit} is outside the output of size {tuple(y.shape[-2:])}")
    y[0, :, row, col].sum().backward()
    mask = (x.grad[0] != 0).any(dim=0)
    rows = mask.any(dim=1).nonzero().flatten()
    cols = mask.any(dim=0).nonzero().flatten()
    return MeasuredField(mask, (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1])))
