"""segtutor.arithmetic against PyTorch itself: output sizes on exhaustive grids (same shape
where PyTorch accepts, an error where PyTorch refuses), property tests, the transposed
convolution as a direct convolution, and convolution as a matrix."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from segtutor.arithmetic import (
    DENSE_LIMIT,
    conv_matrix,
    conv_output_size,
    conv_transpose_output_size,
    conv_transpose_via_conv,
    effective_kernel_size,
    full_padding,
    insert_zeros,
    pool_output_size,
    same_padding,
    transposed_as_conv,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def torch_conv_size(i, k, s, p, d):
    """The output size nn.Conv2d gives (None where PyTorch refuses the configuration)."""
    try:
        return nn.functional.conv2d(torch.zeros(1, 1, i, i), torch.zeros(1, 1, k, k),
                                    stride=s, padding=p, dilation=d).shape[-1]
    except RuntimeError:
        return None


def torch_conv_transpose_size(i, k, s, p, d, op):
    """The output size nn.ConvTranspose2d gives (None where PyTorch refuses).

    A computed size of 0 counts as refused: PyTorch raises "Output size is too small"
    for it on most kernel sizes, but some backends (here: even kernels) return an empty
    tensor instead. segtutor refuses it always.
    """
    try:
        size = F.conv_transpose2d(torch.zeros(1, 1, i, i), torch.zeros(1, 1, k, k), stride=s,
                                  padding=p, dilation=d, output_padding=op).shape[-1]
    except RuntimeError:
        return None
    return size or None


def torch_pool_size(i, k, s, p, d, ceil_mode, with_indices):
    try:
        pool = nn.MaxPool2d(k, s, p, d, ceil_mode=ceil_mode, return_indices=with_indices)
        out = pool(torch.zeros(1, 1, i, i))
        return (out[0] if with_indices else out).shape[-1]
    except RuntimeError:
        return None


def ours(function, *args, **kwargs):
    """Our size, or None where we raise ValueError."""
    try:
        return function(*args, **kwargs)
    except ValueError:
        return None


def disagreements(function, reference, grid):
    return [(args, ours(function, *args), reference(*args))
            for args in grid if ours(function, *args) != reference(*args)]


# --------------------------------------------------------------------------- output sizes


def test_conv_output_size_matches_conv2d_on_exhaustive_grid():
    grid = itertools.product(range(1, 8), range(1, 5), range(1, 4), range(0, 4), range(1, 4))
    assert disagreements(conv_output_size, torch_conv_size, grid) == []


@pytest.mark.parametrize("bad", [dict(i=0), dict(k=0), dict(s=0), dict(p=-1), dict(d=0)])
def test_conv_output_size_refuses_what_pytorch_refuses(bad):
    for base in (dict(i=5, k=3, s=1, p=0, d=1), dict(i=2, k=1, s=2, p=1, d=2)):
        args = base | bad
        assert torch_conv_size(*args.values()) is None
        with pytest.raises(ValueError, match=f"{next(iter(bad))} .*got {next(iter(bad.values()))}"):
            conv_output_size(*args.values())


def test_conv_transpose_output_size_matches_conv_transpose2d_on_exhaustive_grid():
    grid = itertools.product(range(1, 6), range(1, 5), range(1, 4), range(0, 4), range(1, 4),
                             range(0, 3))
    assert disagreements(conv_transpose_output_size, torch_conv_transpose_size, grid) == []


@pytest.mark.parametrize("bad", [
    dict(i=0), dict(k=0), dict(s=0), dict(p=-1), dict(d=0), dict(op=-1),
    dict(op=2),  # output_padding == max(s, d) = 2
    dict(p=4),   # (3-1)*2 - 8 + 2 + 1 = -1: the padding eats the output
])
def test_conv_transpose_output_size_refuses_what_pytorch_refuses(bad):
    args = dict(i=3, k=3, s=2, p=1, d=1, op=0) | bad
    assert torch_conv_transpose_size(*args.values()) is None
    with pytest.raises(ValueError):
        conv_transpose_output_size(*args.values())


def test_output_padding_rule_is_smaller_than_stride_or_dilation():
    # PyTorch's rule, found by experiment: output_padding < max(stride, dilation).
    assert torch_conv_transpose_size(3, 3, 1, 0, 3, 2) == conv_transpose_output_size(3, 3, 1, 0, 3, 2)
    assert torch_conv_transpose_size(3, 3, 3, 0, 1, 2) == conv_transpose_output_size(3, 3, 3, 0, 1, 2)
    assert torch_conv_transpose_size(3, 3, 2, 0, 2, 2) is None
    with pytest.raises(ValueError, match=r"output_padding=2 must be smaller.*max\(s, d\) = 2"):
        conv_transpose_output_size(3, 3, s=2, p=0, d=2, output_padding=2)


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("with_indices", [False, True])
def test_pool_output_size_matches_maxpool2d_on_exhaustive_grid(ceil_mode, with_indices):
    grid = itertools.product(range(1, 9), range(1, 5), [None, 1, 2, 3], range(0, 3), range(1, 4))

    def reference(i, k, s, p, d):
        return torch_pool_size(i, k, s, p, d, ceil_mode, with_indices)

    def function(i, k, s, p, d):
        return pool_output_size(i, k, s, p, d, ceil_mode=ceil_mode)

    assert disagreements(function, reference, grid) == []


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_matches_avgpool2d(ceil_mode):
    for i, k, s, p in itertools.product(range(1, 9), range(1, 5), range(1, 4), range(0, 3)):
        try:
            expected = nn.AvgPool2d(k, s, p, ceil_mode=ceil_mode)(torch.zeros(1, 1, i, i)).shape[-1]
        except RuntimeError:
            expected = None
        assert ours(pool_output_size, i, k, s, p, ceil_mode=ceil_mode) == expected, (i, k, s, p)


def test_ceil_mode_drops_a_window_that_would_start_in_the_right_padding():
    # i=5, k=2, s=2, p=1: ceil((5 + 2 - 2) / 2) + 1 = 4, but window 4 would start at
    # 3 * 2 = 6 >= i + p = 6, inside the right padding, so PyTorch returns 3.
    assert torch_pool_size(5, 2, 2, 1, 1, True, False) == 3
    assert pool_output_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert pool_output_size(5, 2, 2, 1, ceil_mode=False) == 3
    assert pool_output_size(6, 2, 2, 1, ceil_mode=True) == torch_pool_size(6, 2, 2, 1, 1, True, False)


@settings(max_examples=150, deadline=None)
@given(i=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 5), p=st.integers(0, 6),
       d=st.integers(1, 4))
def test_conv_output_size_property_against_conv2d(i, k, s, p, d):
    assert ours(conv_output_size, i, k, s, p, d) == torch_conv_size(i, k, s, p, d)


@settings(max_examples=150, deadline=None)
@given(i=st.integers(1, 30), k=st.integers(1, 7), s=st.integers(1, 5), p=st.integers(0, 6),
       d=st.integers(1, 4), op=st.integers(0, 4))
def test_conv_transpose_output_size_property_against_conv_transpose2d(i, k, s, p, d, op):
    assert ours(conv_transpose_output_size, i, k, s, p, d, op) == torch_conv_transpose_size(
        i, k, s, p, d, op)


@settings(max_examples=200, deadline=None)
@given(i=st.integers(1, 60), k=st.integers(1, 7), s=st.integers(1, 5), p=st.integers(0, 6),
       d=st.integers(1, 4))
def test_transposed_convolution_restores_the_input_size(i, k, s, p, d):
    """For every valid convolution, the transposed convolution with output_padding equal to
    the rows the convolution's floor dropped maps the output size back to i."""
    o = ours(conv_output_size, i, k, s, p, d)
    if o is None:
        return
    dropped = (i + 2 * p - effective_kernel_size(k, d)) % s
    assert conv_transpose_output_size(o, k, s, p, d, output_padding=dropped) == i


@pytest.mark.parametrize("function", [conv_output_size, conv_transpose_output_size,
                                      pool_output_size])
@pytest.mark.parametrize("bad", [5.0, True, "5", None])
def test_sizes_refuse_non_integers(function, bad):
    with pytest.raises(TypeError, match="input size i must be a positive int"):
        function(bad, 3)


def test_error_messages_name_the_value_and_the_rule():
    with pytest.raises(ValueError, match=r"stride s must be a positive int, got 0"):
        conv_output_size(5, 3, s=0)
    with pytest.raises(ValueError, match=r"padding p must be a non-negative int, got -1"):
        conv_output_size(5, 3, p=-1)
    with pytest.raises(ValueError, match=r"effective size 5\) is larger than the padded input"):
        conv_output_size(4, 3, d=2)
    with pytest.raises(ValueError, match=r"output size .* = -1 is not positive"):
        conv_transpose_output_size(1, 3, s=1, p=2)
    with pytest.raises(ValueError, match=r"p=2 is more than half the window k=3"):
        pool_output_size(8, 3, p=2)
    with pytest.raises(TypeError, match="ceil_mode must be True or False"):
        pool_output_size(8, 2, ceil_mode=1)
    with pytest.raises(TypeError, match=r"kernel size k must be a positive int, got 3.0"):
        conv_output_size(5, 3.0)


# --------------------------------------------------------------------------- padding helpers


@pytest.mark.parametrize("k, d", [(1, 1), (3, 1), (5, 1), (3, 2), (3, 3), (2, 2), (4, 2)])
def test_same_padding_equals_pytorch_padding_same(k, d):
    x, w = torch.randn(1, 2, 11, 9), torch.randn(3, 2, k, k)
    same = F.conv2d(x, w, padding=same_padding(k, d), dilation=d)
    torch.testing.assert_close(same, F.conv2d(x, w, padding="same", dilation=d))
    assert same.shape[-2:] == x.shape[-2:]


@pytest.mark.parametrize("k, d", [(2, 1), (4, 1), (2, 3)])
def test_same_padding_refuses_even_effective_kernels(k, d):
    with pytest.raises(ValueError, match="asymmetric padding"):
        same_padding(k, d)


@pytest.mark.parametrize("k, d", [(1, 1), (3, 1), (4, 1), (3, 2)])
def test_full_padding_is_a_stride_1_transposed_convolution_with_the_flipped_kernel(k, d):
    x, w = torch.randn(1, 2, 6, 7), torch.randn(3, 2, k, k)
    full = F.conv2d(x, w, padding=full_padding(k, d), dilation=d)
    assert full.shape[-2:] == (6 + d * (k - 1), 7 + d * (k - 1))
    transposed = F.conv_transpose2d(x, w.flip(-2, -1).transpose(0, 1), dilation=d)
    torch.testing.assert_close(full, transposed)


@pytest.mark.parametrize("k, d", [(1, 1), (3, 1), (3, 2), (5, 3), (2, 4)])
def test_effective_kernel_size_is_the_smallest_input_pytorch_accepts(k, d):
    k_eff = effective_kernel_size(k, d)
    assert torch_conv_size(k_eff, k, 1, 0, d) == 1
    if k_eff > 1:
        assert torch_conv_size(k_eff - 1, k, 1, 0, d) is None


# --------------------------------------------------------------------------- transposed conv


def test_transposed_as_conv_describes_the_zero_inserted_padded_convolution():
    eq = transposed_as_conv(k=3, s=2, p=0)
    assert (eq.inserted_zeros, eq.padding, eq.extra_bottom_right) == (1, 2, 0)
    assert (eq.stride, eq.dilation, eq.flip_kernel) == (1, 1, True)
    # The primer's example: a 2x2 input becomes 2 + (2-1)(2-1) = 3 wide (not 2 + (2-2)(2-1)),
    # padded by F - P - 1 = 2 to 7, and a 3x3 convolution gives 5.
    assert eq.padded_input_size(2) == 7
    assert eq.output_size(2) == 5 == torch_conv_transpose_size(2, 3, 2, 0, 1, 0)


def test_insert_zeros_stretches_w_to_w_plus_w_minus_1_times_s_minus_1():
    x = torch.arange(1.0, 7.0).reshape(1, 1, 2, 3)
    out = insert_zeros(x, 3)
    assert out.shape[-2:] == (2 + 1 * 2, 3 + 2 * 2)
    # the same stretch, by a stride-3 transposed convolution with a 1x1 kernel
    torch.testing.assert_close(out, F.conv_transpose2d(x, torch.ones(1, 1, 1, 1), stride=3))


@settings(max_examples=120, deadline=None)
@given(i=st.integers(1, 12), k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 8),
       d=st.integers(1, 3), op=st.integers(0, 3))
def test_transposed_as_conv_output_size_matches_pytorch(i, k, s, p, d, op):
    expected = torch_conv_transpose_size(i, k, s, p, d, op)
    if expected is None:
        return
    assert transposed_as_conv(k, s, p, d, op).output_size(i) == expected


CONFIGS = [
    # stride, padding, dilation, output_padding (int or per-axis pairs)
    (1, 0, 1, 0),
    (2, 0, 1, 0),
    (2, 1, 1, 1),
    (3, 1, 1, 2),
    (2, 0, 2, 1),
    (1, 1, 3, 2),  # output_padding < dilation is allowed at stride 1
    ((2, 3), (1, 0), (1, 2), (1, 0)),
    (2, 4, 1, 0),  # p > d(k-1): the equivalent direct convolution crops instead of padding
    (3, 5, 2, 1),
]


@pytest.mark.parametrize("stride, padding, dilation, output_padding", CONFIGS)
@pytest.mark.parametrize("kernel", [(3, 3), (4, 2), (1, 1)])
def test_conv_transpose_via_conv_equals_conv_transpose2d(stride, padding, dilation,
                                                         output_padding, kernel):
    x, weight = torch.randn(2, 3, 5, 6), torch.randn(3, 4, *kernel)
    try:
        expected = F.conv_transpose2d(x, weight, stride=stride, padding=padding,
                                      output_padding=output_padding, dilation=dilation)
    except RuntimeError:
        with pytest.raises(ValueError):
            conv_transpose_via_conv(x, weight, stride, padding, dilation, output_padding)
        return
    got = conv_transpose_via_conv(x, weight, stride, padding, dilation, output_padding)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_transposed_as_conv_reports_a_crop_when_padding_exceeds_the_kernel():
    eq = transposed_as_conv(k=3, s=2, p=4)
    assert eq.padding == -2


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), kh=st.integers(1, 4), kw=st.integers(1, 4),
       s=st.integers(1, 3), p=st.integers(0, 4), d=st.integers(1, 3), op=st.integers(0, 2))
def test_conv_transpose_via_conv_property(h, w, kh, kw, s, p, d, op):
    x, weight = torch.randn(1, 2, h, w), torch.randn(2, 3, kh, kw)
    try:
        expected = F.conv_transpose2d(x, weight, stride=s, padding=p, output_padding=op, dilation=d)
    except RuntimeError:
        return
    if expected.numel() == 0:  # PyTorch's empty result for a size of 0 (see the docstring)
        with pytest.raises(ValueError, match="is not positive"):
            conv_transpose_via_conv(x, weight, s, p, d, op)
        return
    torch.testing.assert_close(conv_transpose_via_conv(x, weight, s, p, d, op), expected,
                               rtol=1e-5, atol=1e-5)


def test_conv_transpose_via_conv_refuses_bad_input():
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="x has 3 channels but weight expects 2"):
        conv_transpose_via_conv(x, torch.randn(2, 1, 3, 3))
    with pytest.raises(ValueError, match=r"x must be 4-D \[N, C_in, H, W\]"):
        conv_transpose_via_conv(x[0], torch.randn(3, 1, 3, 3))
    with pytest.raises(ValueError, match="output_padding=2 must be smaller"):
        conv_transpose_via_conv(x, torch.randn(3, 1, 3, 3), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"pair \(height, width\)"):
        conv_transpose_via_conv(x, torch.randn(3, 1, 3, 3), stride=(1, 2, 3))


# --------------------------------------------------------------------------- conv as a matrix


def test_book_example_4x4_input_3x3_kernel_gives_4x16_matrix():
    weight = torch.arange(1.0, 10.0).reshape(3, 3)
    c = conv_matrix(weight, 4)
    assert c.shape == (4, 16) and not c.is_sparse
    # each row holds the nine kernel weights, the rest are zeros
    assert (c != 0).sum(dim=1).tolist() == [9, 9, 9, 9]
    x = torch.randn(4, 4)
    torch.testing.assert_close(c @ x.flatten(), F.conv2d(x[None, None], weight[None, None]).flatten())
    y = torch.randn(2, 2)
    torch.testing.assert_close(c.T @ y.flatten(),
                               F.conv_transpose2d(y[None, None], weight[None, None]).flatten())


MATRIX_CASES = [
    # c_out, c_in, kernel, input size, stride, padding, dilation
    (1, 1, (3, 3), (4, 4), 1, 0, 1),
    (2, 3, (3, 3), (5, 6), 2, 1, 1),
    (3, 2, (2, 3), (7, 5), (2, 1), (0, 1), 1),
    (2, 2, (3, 3), (8, 8), 1, 2, 2),
    (1, 2, (4, 4), (9, 7), 3, 1, 1),
]


@pytest.mark.parametrize("c_out, c_in, kernel, size, stride, padding, dilation", MATRIX_CASES)
@pytest.mark.parametrize("sparse", [False, True])
def test_conv_matrix_is_conv2d_and_its_transpose_is_conv_transpose2d(
        c_out, c_in, kernel, size, stride, padding, dilation, sparse):
    weight = torch.randn(c_out, c_in, *kernel, dtype=torch.float64)
    c = conv_matrix(weight, size, stride, padding, dilation, sparse=sparse)
    assert c.is_sparse == sparse
    x = torch.randn(c_in, *size, dtype=torch.float64)
    y = F.conv2d(x[None], weight, stride=stride, padding=padding, dilation=dilation)[0]
    torch.testing.assert_close(c @ x.flatten(), y.flatten())

    # C.T is the transposed convolution, with the output_padding that restores the size
    g = torch.randn_like(y)
    pairs = [v if isinstance(v, tuple) else (v, v) for v in (stride, padding, dilation)]
    restore = tuple((n + 2 * p - (d * (k - 1) + 1)) % s
                    for n, k, (s, p, d) in zip(size, kernel, zip(*pairs, strict=True), strict=True))
    transposed = F.conv_transpose2d(g[None], weight, stride=stride, padding=padding,
                                    dilation=dilation, output_padding=restore)[0]
    torch.testing.assert_close(c.T @ g.flatten(), transposed.flatten())


@pytest.mark.parametrize("c_out, c_in, kernel, size, stride, padding, dilation", MATRIX_CASES)
def test_backward_of_conv2d_with_respect_to_the_input_is_c_transpose(
        c_out, c_in, kernel, size, stride, padding, dilation):
    weight = torch.randn(c_out, c_in, *kernel, dtype=torch.float64)
    x = torch.randn(c_in, *size, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(x[None], weight, stride=stride, padding=padding, dilation=dilation)[0]
    grad = torch.randn_like(y)
    y.backward(grad)
    c = conv_matrix(weight, size, stride, padding, dilation)
    torch.testing.assert_close(x.grad.flatten(), c.T @ grad.flatten())


def test_conv_matrix_is_sparse_above_the_dense_limit():
    weight = torch.randn(4, 4, 3, 3)
    size = 40  # 4*38*38 rows x 4*40*40 columns > DENSE_LIMIT
    c = conv_matrix(weight, size)
    assert c.shape[0] * c.shape[1] > DENSE_LIMIT and c.is_sparse
    assert c._nnz() == 4 * 4 * 9 * 38 * 38  # every output reads 4 channels x 9 taps
    x = torch.randn(4, size, size)
    torch.testing.assert_close(c @ x.flatten(), F.conv2d(x[None], weight).flatten(),
                               rtol=1e-4, atol=1e-4)
    assert not conv_matrix(weight, size, sparse=False).is_sparse


def test_conv_matrix_refuses_bad_input():
    with pytest.raises(ValueError, match=r"weight must be 2-D or 4-D \[kh, kw\] or \[C_out, C_in, kh, kw\]"):
        conv_matrix(torch.ones(2, 3, 3), 5)
    with pytest.raises(TypeError, match="sparse must be True, False or None"):
        conv_matrix(torch.ones(3, 3), 5, sparse="yes")
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv_matrix(torch.ones(3, 3), 2)
    with pytest.raises(TypeError, match="input_size must be an int"):
        conv_matrix(torch.ones(3, 3), 4.0)
