"""A convolution as a matrix ``C``, whose transpose is the transposed convolution.

Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", section 4.1
(https://arxiv.org/abs/1603.07285): unrolling the input and the output into vectors, a
convolution is a sparse matrix ``C`` holding the kernel's weights, and ``C.T`` maps the
output's shape back to the input's, which is both the backward pass of the convolution and
the transposed convolution.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_int_pair, check_optional_bool, check_tensor
from .sizes import conv_output_size

__all__ = ["DENSE_LIMIT", "conv_matrix"]

#: ``conv_matrix`` returns a dense matrix up to this many entries and a sparse one above.
DENSE_LIMIT = 2**20


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

    Raises:
        TypeError: ``weight`` is not a tensor, a size is not an ``int``, or ``sparse`` is
            not ``True``, ``False`` or ``None``.
        ValueError: ``weight`` has another number of dimensions, or the kernel does not fit
            the padded input (see :func:`~segtutor.arithmetic.conv_output_size`).
    """
    check_optional_bool(sparse, "sparse")
    check_tensor(weight, "weight", dims=(2, 4), layout="[kh, kw] or [C_out, C_in, kh, kw]")
    if weight.dim() == 2:
        weight = weight[None, None]
    c_out, c_in, kh, kw = weight.shape
    (h, w), (sh, sw), (ph, pw), (dh, dw) = (
        check_int_pair(v, n) for n, v in (("input_size", input_size), ("stride", stride),
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
