"""Convolution diagrams in the visual language of Dumoulin & Visin's *conv_arithmetic*.

Input cells are blue, output cells cyan, the kernel's footprint is a dark square at 40 %
opacity, and padding is a dashed, unfilled grid. A transposed convolution is drawn the way
the guide explains it: as the equivalent *stride-1* convolution over the input with
``s - 1`` zeros inserted between neighbours (dashed cells too) and padded on every side.

Every size comes from :mod:`segtutor.arithmetic`, so a configuration PyTorch refuses is
refused here with the same ``ValueError``. The functions never leave a pyplot figure open:
without ``ax`` they draw on a fresh :class:`matplotlib.figure.Figure`, which a notebook shows
through the returned object's ``_repr_png_``.

Paper: Dumoulin & Visin, *A guide to convolution arithmetic for deep learning*,
https://arxiv.org/abs/1603.07285 (figures: https://github.com/vdumoulin/conv_arithmetic, MIT).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from segtutor import arithmetic
from segtutor._checks import check_int

__all__ = [
    "INPUT_COLOR",
    "OUTPUT_COLOR",
    "KERNEL_COLOR",
    "KERNEL_ALPHA",
    "PADDING_COLOR",
    "ConvDiagram",
    "MatrixDiagram",
    "draw_conv",
    "draw_transposed_conv",
    "conv_animation",
    "draw_matrix",
]

INPUT_COLOR = "#268BD2"
OUTPUT_COLOR = "#2AA198"
KERNEL_COLOR = "#073642"
KERNEL_ALPHA = 0.4
PADDING_COLOR = "#002B36"

_GAP = 1.5  # empty cells between the input grid and the output grid
_CELL_INCHES = 0.35


@dataclass(frozen=True)
class _AxisLayout:
    """The cells of one axis (rows or columns) of the grid the kernel slides over.

    Attributes:
        kinds: for each drawn cell, ``"input"``, ``"zero"`` (inserted between inputs of a
            transposed convolution) or ``"padding"``.
        starts: for each output position, the index of the kernel's first tap.
        dilation: distance between neighbouring taps.
        kernel_size: number of taps.
    """

    kinds: tuple[str, ...]
    starts: tuple[int, ...]
    dilation: int
    kernel_size: int

    def taps(self, position: int) -> list[int]:
        """Indices of the cells the kernel reads for output ``position``."""
        first = self.starts[position]
        return [first + j * self.dilation for j in range(self.kernel_size)]

    def read(self) -> set[int]:
        """Indices of the cells that some output position reads."""
        return {t for position in range(len(self.starts)) for t in self.taps(position)}


@dataclass
class _FigureHandle:
    """Something drawn on a figure; a notebook displays it as a PNG."""

    figure: Figure
    ax: Axes

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


@dataclass
class ConvDiagram(_FigureHandle):
    """A drawn (transposed) convolution and its geometry.

    Attributes:
        figure, ax: where it is drawn.
        input_size: the side of the input (before padding or zero insertion).
        output_size: the side of the output, from :mod:`segtutor.arithmetic`.
        grid_size: the side of the grid the kernel slides over as drawn (input, inserted
            zeros and padding).
        step: the output position drawn, row-major in ``range(output_size ** 2)``.
        footprint: ``(row, col)`` grid cells the kernel reads at ``step``.
        unread: ``(row, col)`` grid cells that no output position reads, e.g. the last
            row and column of the guide's "odd" case, where the floor in the output-size
            formula drops them (hatched in the drawing).
    """

    input_size: int = 0
    output_size: int = 0
    grid_size: int = 0
    step: int = 0
    footprint: list[tuple[int, int]] = field(default_factory=list)
    unread: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class MatrixDiagram(_FigureHandle):
    """A drawn matrix: ``image`` holds the heat map (zeros masked)."""

    image: AxesImage | None = None


def _direct_layout(i: int, k: int, s: int, p: int, d: int) -> _AxisLayout:
    """Padding, input, padding; the kernel starts every ``s`` cells."""
    out = arithmetic.conv_output_size(i, k, s=s, p=p, d=d)
    kinds = ("padding",) * p + ("input",) * i + ("padding",) * p
    return _AxisLayout(kinds, tuple(o * s for o in range(out)), d, k)


def _transposed_layout(i: int, k: int, s: int, p: int, d: int, output_padding: int) -> _AxisLayout:
    """Inputs with ``s - 1`` zeros between them, padded; the kernel moves one cell at a time.

    When the equivalent padding ``d(k-1) - p`` is negative the equivalent convolution crops
    the zero-inserted input instead; those cells are drawn but never read.
    """
    out = arithmetic.conv_transpose_output_size(i, k, s=s, p=p, d=d, output_padding=output_padding)
    equivalent = arithmetic.transposed_as_conv(k, s, p, d=d, output_padding=output_padding)
    inserted = i + (i - 1) * equivalent.inserted_zeros
    first = -equivalent.padding  # first cell the convolution reads, in zero-inserted coordinates
    last = inserted - 1 + equivalent.padding + equivalent.extra_bottom_right
    lo, hi = min(0, first), max(inserted - 1, last)
    kinds = tuple(_inserted_kind(pos, inserted, s) for pos in range(lo, hi + 1))
    return _AxisLayout(kinds, tuple(first - lo + o for o in range(out)), d, k)


def _inserted_kind(position: int, inserted: int, s: int) -> str:
    if not 0 <= position < inserted:
        return "padding"
    return "input" if position % s == 0 else "zero"


def _check_step(step: int, output_size: int) -> None:
    check_int(step, "step")
    if not 0 <= step < output_size**2:
        raise ValueError(
            f"step={step} is not an output position; valid: 0 <= step < {output_size**2} "
            f"(the output is {output_size}x{output_size}, positions counted row by row)"
        )


def _new_axes(grid_size: int, output_size: int, ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is not None:
        if not isinstance(ax, Axes):
            raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
        return ax.figure, ax
    width = (grid_size + _GAP + output_size + 1) * _CELL_INCHES
    height = (grid_size + 2) * _CELL_INCHES
    figure = Figure(figsize=(max(width, 3.0), max(height, 2.0)), dpi=100)
    return figure, figure.add_subplot()


def _cell(x: float, y: float, kind: str, hatch: str | None = None) -> Rectangle:
    """One square cell of the given kind, its corner at ``(x, y)``."""
    if kind in ("padding", "zero"):
        return Rectangle((x, y), 1, 1, fill=False, edgecolor=PADDING_COLOR,
                         linestyle=(0, (2, 2)), linewidth=0.8, hatch=hatch, gid=kind)
    color = {"input": INPUT_COLOR, "output": OUTPUT_COLOR}[kind]
    return Rectangle((x, y), 1, 1, facecolor=color, edgecolor=PADDING_COLOR,
                     linewidth=0.8, hatch=hatch, gid=kind)


def _shade(x: float, y: float, gid: str) -> Rectangle:
    """The kernel's 40 % dark overlay on one cell."""
    return Rectangle((x, y), 1, 1, facecolor=KERNEL_COLOR, alpha=KERNEL_ALPHA,
                     edgecolor="none", gid=gid)


def _draw(layout: _AxisLayout, input_size: int, step: int, ax: Axes | None,
          title: str) -> ConvDiagram:
    """Draw the grid, the footprint at ``step`` and the output; return the geometry."""
    grid, out = len(layout.kinds), len(layout.starts)
    _check_step(step, out)
    figure, ax = _new_axes(grid, out, ax)
    read = layout.read()
    unread = []
    for r, row_kind in enumerate(layout.kinds):
        for c, col_kind in enumerate(layout.kinds):
            never_read = r not in read or c not in read
            if never_read:
                unread.append((r, c))
            kind = _combine(row_kind, col_kind)
            ax.add_patch(_cell(c, r, kind, hatch="////" if never_read else None))
    row, col = divmod(step, out)
    footprint = [(r, c) for r in layout.taps(row) for c in layout.taps(col)]
    for r, c in footprint:
        ax.add_patch(_shade(c, r, "kernel"))
    x0, y0 = grid + _GAP, (grid - out) / 2
    for r in range(out):
        for c in range(out):
            ax.add_patch(_cell(x0 + c, y0 + r, "output"))
    ax.add_patch(_shade(x0 + col, y0 + row, "output-current"))
    _finish_axes(ax, grid, out, title)
    return ConvDiagram(figure=figure, ax=ax, input_size=input_size, output_size=out,
                       grid_size=grid, step=step, footprint=footprint, unread=unread)


def _combine(row_kind: str, col_kind: str) -> str:
    """A cell is padding if its row or column is, else a zero if either is, else input."""
    for kind in ("padding", "zero"):
        if kind in (row_kind, col_kind):
            return kind
    return "input"


def _finish_axes(ax: Axes, grid: int, out: int, title: str) -> None:
    ax.set_xlim(-0.5, grid + _GAP + out + 0.5)
    ax.set_ylim(grid + 0.5, -0.5)  # row 0 at the top, like an image
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def draw_conv(i: int, k: int, s: int = 1, p: int = 0, d: int = 1, step: int = 0,
              ax: Axes | None = None) -> ConvDiagram:
    """Draw a square convolution: the padded input, the kernel at one position, the output.

    Cells that no output position reads (the guide's "odd" case, where the floor in the
    output-size formula drops them) are hatched.

    Args:
        i: input size (height = width).
        k: kernel size.
        s: stride.
        p: zero padding on each side.
        d: dilation (``d - 1`` cells skipped between kernel taps).
        step: the output position to show, row-major, ``0 <= step < o * o``.
        ax: axes to draw on; ``None`` draws on a new figure (not registered with pyplot).

    Returns:
        the figure, axes and geometry (a notebook displays it).

    Raises:
        ValueError: the configuration is impossible (from :mod:`segtutor.arithmetic`), or
            ``step`` is not an output position.
        TypeError: ``step`` is not an int, or ``ax`` not an Axes.
    """
    layout = _direct_layout(i, k, s, p, d)
    title = f"convolution\ni={i}, k={k}, s={s}, p={p}, d={d}  →  o={len(layout.starts)}"
    return _draw(layout, i, step, ax, title)


def draw_transposed_conv(i: int, k: int, s: int = 1, p: int = 0, d: int = 1,
                         output_padding: int = 0, step: int = 0,
                         ax: Axes | None = None) -> ConvDiagram:
    """Draw a transposed convolution as the equivalent stride-1 direct convolution.

    ``s - 1`` zeros go between neighbouring inputs and ``d(k-1) - p`` cells of padding on
    each side (plus ``output_padding`` at the bottom and right); the kernel (flipped, which a
    footprint does not show) then moves one cell at a time.

    Args:
        i: input size of the transposed convolution (height = width).
        k: kernel size.
        s: stride of the transposed convolution (the zero insertion).
        p: its padding (which *removes* ``p`` cells from each side of the full output).
        d: dilation.
        output_padding: extra output rows/columns at the bottom and right.
        step: the output position to show, row-major.
        ax: axes to draw on; ``None`` draws on a new figure.

    Returns:
        the figure, axes and geometry (a notebook displays it).

    Raises:
        ValueError: the configuration is impossible (from :mod:`segtutor.arithmetic`), or
            ``step`` is not an output position.
        TypeError: ``step`` is not an int, or ``ax`` not an Axes.
    """
    layout = _transposed_layout(i, k, s, p, d, output_padding)
    title = (f"transposed convolution\ni={i}, k={k}, s={s}, p={p}, d={d}, "
             f"output_padding={output_padding}  →  o={len(layout.starts)}")
    return _draw(layout, i, step, ax, title)


def conv_animation(i: int, k: int, s: int = 1, p: int = 0, d: int = 1, *,
                   transposed: bool = False, output_padding: int = 0,
                   interval: int = 600, max_frames: int = 36, dpi: int = 72) -> FuncAnimation:
    """Animate the kernel over every output position, one frame per position.

    Show it in a notebook with ``HTML(anim.to_jshtml())``, which also plays in a static page.

    Args:
        i, k, s, p, d: as in :func:`draw_conv` (or :func:`draw_transposed_conv`).
        transposed: draw the transposed convolution instead.
        output_padding: only for ``transposed=True``.
        interval: milliseconds between frames.
        max_frames: the most frames allowed (each is a PNG in the page); a larger output
            raises rather than being silently subsampled.
        dpi: resolution of the frames (lower keeps the page small).

    Returns:
        the animation; its figure is ``anim._fig`` (not registered with pyplot).

    Raises:
        ValueError: an impossible configuration, ``output_padding`` without ``transposed``,
            or more than ``max_frames`` output positions.
    """
    if not transposed and output_padding != 0:
        raise ValueError(f"output_padding={output_padding} only applies to a transposed "
                         "convolution; pass transposed=True or output_padding=0")

    def draw(step: int, ax: Axes | None = None) -> ConvDiagram:
        if transposed:
            return draw_transposed_conv(i, k, s, p, d, output_padding, step=step, ax=ax)
        return draw_conv(i, k, s, p, d, step=step, ax=ax)

    first = draw(0)
    first.figure.set_dpi(dpi)
    frames = first.output_size**2
    if frames > max_frames:
        raise ValueError(f"the output has {frames} positions, more than max_frames="
                         f"{max_frames}; pick a smaller configuration or raise max_frames")

    def update(step: int) -> list:
        first.ax.clear()
        draw(step, ax=first.ax)
        return []

    return FuncAnimation(first.figure, update, frames=frames, interval=interval, repeat=True)


def draw_matrix(C: torch.Tensor | np.ndarray, *, input_width: int | None = None,
                annotate: bool | None = None, title: str | None = None,
                ax: Axes | None = None) -> MatrixDiagram:
    """Heat map of a matrix, e.g. the convolution matrix ``C`` with ``y = C @ x.flatten()``.

    Zeros stay white, so the sparsity pattern shows; positive entries are red, negative
    blue. With ``input_width``, thin lines separate the columns belonging to each input row.

    Args:
        C: a 2-D tensor (dense or sparse) or array.
        input_width: the input's width, to mark its rows among the columns; must divide
            the number of columns.
        annotate: write each non-zero value in its cell; default only for small matrices
            (at most 400 entries).
        title: axes title; default states the shape and the number of non-zeros.
        ax: axes to draw on; ``None`` draws on a new figure.

    Raises:
        TypeError: ``C`` is neither a tensor nor an array.
        ValueError: ``C`` is not 2-D, or ``input_width`` does not divide its columns.
    """
    values = _as_2d_array(C)
    rows, cols = values.shape
    if input_width is not None and (input_width <= 0 or cols % input_width != 0):
        raise ValueError(f"input_width={input_width} does not divide the {cols} columns of C; "
                         f"pass a positive divisor of {cols} or None")
    if ax is None:
        figure = Figure(figsize=(min(0.45 * cols + 1.5, 14), min(0.45 * rows + 1.0, 10)), dpi=100)
        ax = figure.add_subplot()
    figure = ax.figure
    image = _heat_map(ax, values)
    if annotate is None:
        annotate = values.size <= 400
    if annotate:
        for r, c in zip(*np.nonzero(values), strict=True):
            ax.text(c, r, f"{values[r, c]:.2g}", ha="center", va="center", fontsize=7)
    if input_width is not None:
        for x in range(input_width, cols, input_width):
            ax.axvline(x - 0.5, color=PADDING_COLOR, linewidth=0.6, linestyle=(0, (2, 2)))
    nonzero = int(np.count_nonzero(values))
    ax.set_title(title or f"{rows}×{cols} matrix, {nonzero} non-zeros "
                          f"({nonzero / values.size:.0%})", fontsize=9)
    ax.set_xlabel("column (input element)")
    ax.set_ylabel("row (output element)")
    return MatrixDiagram(figure=figure, ax=ax, image=image)


def _as_2d_array(C: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(C, torch.Tensor):
        C = (C.to_dense() if C.layout != torch.strided else C).detach().cpu().double().numpy()
    elif not isinstance(C, np.ndarray):
        raise TypeError(f"C must be a torch.Tensor or numpy.ndarray, got {type(C).__name__}")
    if C.ndim != 2:
        raise ValueError(f"C must be a 2-D matrix, got shape {tuple(C.shape)}")
    return np.asarray(C, dtype=float)


def _heat_map(ax: Axes, values: np.ndarray) -> AxesImage:
    """Red for positive, blue for negative, white (masked) for exact zeros."""
    limit = float(np.abs(values).max()) or 1.0
    masked = np.ma.masked_equal(values, 0.0)
    image = ax.imshow(masked, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit),
                      interpolation="nearest")
    if max(values.shape) <= 40:  # one tick per row and column while they stay legible
        ax.set_xticks(range(values.shape[1]))
        ax.set_yticks(range(values.shape[0]))
    ax.tick_params(labelsize=6)
    return image
