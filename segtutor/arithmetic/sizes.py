"""Output sizes of convolution, transposed convolution and pooling, and two paddings.

Every formula returns exactly the size PyTorch's layer produces along one dimension, and
refuses what PyTorch refuses (the tests compare the two on exhaustive grids). Notation and
relationships from Dumoulin & Visin, "A guide to convolution arithmetic for deep learning"
(https://arxiv.org/abs/1603.07285): input size ``i``, kernel size ``k``, stride ``s``,
padding ``p`` (on each side), dilation ``d``.

    >>> conv_output_size(5, 3, s=2, p=1)
    3
"""

from __future__ import annotations

from .._checks import check_bool, check_non_negative_int, check_positive_int

__all__ = [
    "conv_output_size",
    "conv_transpose_output_size",
    "effective_kernel_size",
    "full_padding",
    "pool_output_size",
    "same_padding",
]


def _check_conv_args(k: object, s: object, p: object, d: object) -> tuple[int, int, int, int]:
    """Kernel size, stride and dilation positive, padding non-negative, all ``int``."""
    return (
        check_positive_int(k, "kernel size k"),
        check_positive_int(s, "stride s"),
        check_non_negative_int(p, "padding p"),
        check_positive_int(d, "dilation d"),
    )


def _check_transpose_args(
    k: object, s: object, p: object, d: object, output_padding: object
) -> tuple[int, int, int, int, int]:
    """:func:`_check_conv_args`, and PyTorch's rule ``output_padding < max(s, d)``."""
    k, s, p, d = _check_conv_args(k, s, p, d)
    output_padding = check_non_negative_int(output_padding, "output_padding")
    if output_padding >= max(s, d):
        raise ValueError(
            f"output_padding={output_padding} must be smaller than the stride s={s} or the "
            f"dilation d={d} (PyTorch's rule: output_padding < max(s, d) = {max(s, d)})"
        )
    return k, s, p, d, output_padding


def effective_kernel_size(k: int, d: int = 1) -> int:
    """Size of a kernel of ``k`` taps spread ``d`` apart: ``k + (k - 1)(d - 1)``.

    A dilated (atrous) 3x3 kernel with ``d = 2`` covers 5x5 pixels with the same nine
    multiplications, which is how DeepLab widens the field of view without pooling.

    Raises:
        TypeError: ``k`` or ``d`` is not an ``int``.
        ValueError: ``k`` or ``d`` is not positive.
    """
    k = check_positive_int(k, "kernel size k")
    d = check_positive_int(d, "dilation d")
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
    i = check_positive_int(i, "input size i")
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
    i = check_positive_int(i, "input size i")
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
    k = check_positive_int(k, "kernel size k")
    s = k if s is None else s
    i = check_positive_int(i, "input size i")
    k, s, p, d = _check_conv_args(k, s, p, d)
    check_bool(ceil_mode, "ceil_mode")
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
