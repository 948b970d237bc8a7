"""The conv_arithmetic diagrams draw what PyTorch computes.

Cell counts are checked against the shapes ``F.conv2d`` / ``F.conv_transpose2d`` produce,
and the kernel footprint against the input cells autograd says an output depends on.
"""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from segtutor.viz.diagrams import (  # noqa: E402
    ConvDiagram,
    conv_animation,
    draw_conv,
    draw_matrix,
    draw_transposed_conv,
)

# i, k, s, p, d: the eight cases of Dumoulin & Visin's guide, and a few more.
CONV_CASES = [
    (4, 3, 1, 0, 1),  # no padding, no strides
    (5, 4, 1, 2, 1),  # arbitrary padding
    (5, 3, 1, 1, 1),  # half (same) padding
    (5, 3, 1, 2, 1),  # full padding
    (5, 3, 2, 0, 1),  # strides
    (5, 3, 2, 1, 1),  # padding and strides
    (6, 3, 2, 1, 1),  # the odd case: the last padding row/column is never read
    (6, 3, 2, 0, 1),  # the floor drops the last input row/column
    (7, 3, 1, 0, 2),  # dilation
    (7, 2, 3, 1, 2),  # everything at once
]
# i, k, s, p, d, output_padding
TRANSPOSED_CASES = [
    (2, 3, 1, 0, 1, 0),
    (2, 3, 2, 0, 1, 0),  # the primer's 2x2 -> 5x5 example
    (3, 3, 2, 1, 1, 1),
    (3, 4, 2, 1, 1, 0),
    (3, 3, 2, 3, 1, 0),  # padding larger than k - 1: the equivalent convolution crops
    (2, 3, 1, 0, 2, 0),  # dilation
    (3, 2, 3, 0, 2, 1),
]


@pytest.fixture(autouse=True)
def _no_figure_left_open():
    """Every drawing in this file must leave pyplot's figure registry as it found it."""
    before = set(plt.get_fignums())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
    assert set(plt.get_fignums()) == before


def cells(diagram: ConvDiagram, gid: str) -> list:
    return [patch for patch in diagram.ax.patches if patch.get_gid() == gid]


def torch_conv_shape(i: int, k: int, s: int, p: int, d: int) -> tuple[int, int]:
    out = F.conv2d(torch.zeros(1, 1, i, i), torch.zeros(1, 1, k, k), stride=s, padding=p,
                   dilation=d)
    return out.shape[-2], out.shape[-1]


def torch_transposed_shape(i: int, k: int, s: int, p: int, d: int, op: int) -> tuple[int, int]:
    out = F.conv_transpose2d(torch.zeros(1, 1, i, i), torch.zeros(1, 1, k, k), stride=s,
                             padding=p, dilation=d, output_padding=op)
    return out.shape[-2], out.shape[-1]


def corner(patch) -> tuple[int, int]:
    """(row, col) of a grid cell patch."""
    x, y = patch.get_xy()
    return round(y), round(x)


@pytest.mark.parametrize("i, k, s, p, d", CONV_CASES)
def test_conv_cell_counts_match_pytorch(i, k, s, p, d):
    diagram = draw_conv(i, k, s, p, d)
    height, width = torch_conv_shape(i, k, s, p, d)
    assert diagram.output_size == height == width
    assert len(cells(diagram, "output")) == height * width
    assert len(cells(diagram, "output-current")) == 1
    assert len(cells(diagram, "input")) == i * i
    assert len(cells(diagram, "padding")) == (i + 2 * p) ** 2 - i * i
    assert len(cells(diagram, "kernel")) == k * k


@pytest.mark.parametrize("i, k, s, p, d", CONV_CASES)
def test_conv_footprint_is_what_the_output_depends_on(i, k, s, p, d):
    """Autograd through F.conv2d over the padded input gives the cells each output reads."""
    padded = torch.zeros(1, 1, i + 2 * p, i + 2 * p, requires_grad=True)
    out = F.conv2d(padded, torch.ones(1, 1, k, k), stride=s, dilation=d)
    last = out.shape[-1] ** 2 - 1
    for step in (0, last // 2, last):
        (grad,) = torch.autograd.grad(out.flatten()[step], padded, retain_graph=True)
        depends_on = {tuple(rc) for rc in grad[0, 0].nonzero().tolist()}
        assert set(draw_conv(i, k, s, p, d, step=step).footprint) == depends_on
    (grad,) = torch.autograd.grad(out.sum(), padded)
    never_read = {tuple(rc) for rc in (grad[0, 0] == 0).nonzero().tolist()}
    assert set(draw_conv(i, k, s, p, d).unread) == never_read


def test_odd_case_hatches_the_dropped_row_and_column():
    diagram = draw_conv(6, 3, 2, 0)  # (6 - 3) / 2 + 1 = 2.5, floored to 2
    hatched = {corner(patch) for patch in cells(diagram, "input") if patch.get_hatch()}
    assert hatched == {(r, c) for r in range(6) for c in range(6) if r == 5 or c == 5}


@pytest.mark.parametrize("i, k, s, p, d, op", TRANSPOSED_CASES)
def test_transposed_cell_counts_match_pytorch(i, k, s, p, d, op):
    diagram = draw_transposed_conv(i, k, s, p, d, output_padding=op)
    height, width = torch_transposed_shape(i, k, s, p, d, op)
    assert diagram.output_size == height == width
    assert len(cells(diagram, "output")) == height * width
    assert len(cells(diagram, "input")) == i * i
    inserted = i + (i - 1) * (s - 1)
    assert len(cells(diagram, "zero")) == inserted**2 - i * i
    padding = cells(diagram, "padding")
    assert len(padding) == diagram.grid_size**2 - inserted**2
    # stride 1 over the drawn grid: output = grid - dilated kernel + 1 (no cropping here)
    if d * (k - 1) >= p:
        assert diagram.grid_size == height + d * (k - 1)


@pytest.mark.parametrize("i, k, s, p, d, op", TRANSPOSED_CASES)
def test_transposed_footprint_covers_the_inputs_the_output_depends_on(i, k, s, p, d, op):
    """The blue cells under the footprint are the inputs autograd says the output reads."""
    x = torch.zeros(1, 1, i, i, requires_grad=True)
    out = F.conv_transpose2d(x, torch.ones(1, 1, k, k), stride=s, padding=p, dilation=d,
                             output_padding=op)
    positions = out.shape[-1] ** 2
    for step in sorted({*range(0, positions, max(1, positions // 5)), positions - 1}):
        (grad,) = torch.autograd.grad(out.flatten()[step], x, retain_graph=True)
        depends_on = {tuple(rc) for rc in grad[0, 0].nonzero().tolist()}
        diagram = draw_transposed_conv(i, k, s, p, d, output_padding=op, step=step)
        inputs = [corner(patch) for patch in cells(diagram, "input")]
        rows = sorted({r for r, _ in inputs})  # grid row of input row 0, 1, ...
        under = {(rows.index(r), rows.index(c)) for r, c in diagram.footprint if (r, c) in inputs}
        assert under == depends_on, f"step {step}"


def test_footprint_of_dilated_kernel_skips_cells():
    diagram = draw_conv(7, 3, 1, 0, 2, step=0)
    assert sorted(diagram.footprint) == [(r, c) for r in (0, 2, 4) for c in (0, 2, 4)]


def test_current_output_cell_follows_step():
    diagram = draw_conv(5, 3, 1, 1, step=7)  # 5x5 output: row 1, column 2
    (current,) = cells(diagram, "output-current")
    (same_place,) = [cell for cell in cells(diagram, "output") if cell.get_xy() == current.get_xy()]
    first = min(cells(diagram, "output"), key=lambda cell: cell.get_xy())
    x0, y0 = first.get_xy()
    x, y = same_place.get_xy()
    assert (round(y - y0), round(x - x0)) == (1, 2)


def test_draws_on_given_axes():
    figure, axes = plt.subplots(1, 2)
    try:
        diagram = draw_conv(4, 3, ax=axes[1])
        assert diagram.ax is axes[1] and diagram.figure is figure
        assert not axes[0].patches and axes[1].patches
    finally:
        plt.close(figure)


def test_png_repr_is_a_png():
    assert draw_conv(3, 2)._repr_png_().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: draw_conv(3, 5), r"larger than the padded input"),
        (lambda: draw_conv(3, 3, d=2), r"effective size 5\) is larger"),
        (lambda: draw_conv(4, 3, p=-1), r"padding p must be a non-negative int, got -1"),
        (lambda: draw_conv(4, 3, s=0), r"stride s must be a positive int, got 0"),
        (lambda: draw_transposed_conv(3, 3, s=2, output_padding=2),
         r"output_padding=2 must be smaller than the stride"),
        (lambda: draw_transposed_conv(1, 1, p=1), r"is not positive"),
    ],
)
def test_impossible_configurations_raise_the_arithmetics_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_step_and_axes():
    with pytest.raises(ValueError, match=r"step=4 .*0 <= step < 4"):
        draw_conv(4, 3, step=4)
    with pytest.raises(ValueError, match=r"step=-1"):
        draw_transposed_conv(2, 3, step=-1)
    with pytest.raises(TypeError, match=r"step must be an int, got .* \(float\)"):
        draw_conv(4, 3, step=1.0)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        draw_conv(4, 3, ax="left")


@pytest.mark.parametrize(
    "conv, transposed, torch_shape",
    [
        ((4, 3, 1, 0), {}, torch_conv_shape(4, 3, 1, 0, 1)),
        ((2, 3, 2, 2), {"transposed": True, "output_padding": 1},
         torch_transposed_shape(2, 3, 2, 2, 1, 1)),
    ],
)
def test_animation_has_one_frame_per_output_position(conv, transposed, torch_shape):
    anim = conv_animation(*conv, **transposed)
    height, width = torch_shape
    assert len(list(anim.new_frame_seq())) == height * width
    html = anim.to_jshtml()  # renders every frame (an unrendered animation warns when deleted)
    assert html.count("frames[") >= height * width
    plt.close(anim._fig)


def test_animation_refuses_too_many_frames_and_stray_output_padding():
    with pytest.raises(ValueError, match=r"49 positions, more than max_frames=36"):
        conv_animation(7, 1)
    with pytest.raises(ValueError, match=r"output_padding=1 only applies to a transposed"):
        conv_animation(4, 3, s=2, output_padding=1)


def test_matrix_heat_map_masks_exact_zeros_only():
    C = torch.tensor([[1.0, 0.0, -2.0], [0.0, 1e-9, 3.0]])
    diagram = draw_matrix(C)
    shown = diagram.image.get_array()
    np.testing.assert_array_equal(shown.mask, (C == 0).numpy())
    np.testing.assert_array_equal(shown.filled(0), C.numpy().astype(float))
    assert len(diagram.ax.texts) == int((C != 0).sum())


def test_matrix_of_a_sparse_tensor_equals_the_dense_one():
    dense = torch.tensor([[0.0, 2.0, 0.0, 0.0], [1.0, 0.0, 0.0, 4.0]])
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    for sparse in (dense.to_sparse(), dense.to_sparse_csr()):
        shown = draw_matrix(sparse, input_width=2).image.get_array()
        np.testing.assert_array_equal(shown.filled(0), dense.numpy())


def test_matrix_marks_input_rows():
    diagram = draw_matrix(np.eye(4, 16), input_width=4, annotate=False)
    assert len(diagram.ax.lines) == 3 and not diagram.ax.texts


def test_matrix_rejects_bad_input():
    with pytest.raises(TypeError, match="got list"):
        draw_matrix([[1, 2]])
    with pytest.raises(ValueError, match=r"2-D matrix, got shape \(2, 2, 2\)"):
        draw_matrix(torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match=r"input_width=3 does not divide the 16 columns"):
        draw_matrix(torch.ones(4, 16), input_width=3)
