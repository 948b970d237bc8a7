"""The input region one output unit sees, drawn with matplotlib.

This is the static picture of :func:`segtutor.arithmetic.receptive_field`: on the left the
input (blue, or a photograph), with the receptive field of the chosen unit as the dark
40 % overlay of the kernel footprint and any part of it that falls outside the input
marked by a dashed frame (that part is padding); on the right the layer's output grid
(cyan) with the chosen unit. Colours follow :mod:`segtutor.viz.diagrams`.

The figure is built on a :class:`matplotlib.figure.Figure` (no pyplot state is left open);
a notebook shows the returned object as a PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from segtutor.arithmetic import Interval, LayerField, MeasuredField, receptive_field
from segtutor.viz.diagrams import (
    INPUT_COLOR,
    KERNEL_ALPHA,
    KERNEL_COLOR,
    OUTPUT_COLOR,
    PADDING_COLOR,
)

__all__ = ["ReceptiveFieldFigure", "plot_receptive_field"]

_GRID_LINES_UP_TO = 40  # draw cell borders only on grids this small


@dataclass
class ReceptiveFieldFigure:
    """A drawn receptive field.

    Attributes:
        figure, axes: the figure and its two axes (input, output).
        field: the layer's receptive-field entry.
        unit: the output unit drawn, ``(row, col)``.
        region: ``((first_row, last_row), (first_col, last_col))`` of the input it reads;
            values outside ``0 .. size - 1`` lie in the padding.
    """

    figure: Figure
    axes: tuple[Axes, Axes]
    field: LayerField
    unit: tuple[int, int]
    region: tuple[Interval, Interval]

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def _as_picture(image: object, size: tuple[int, int]) -> np.ndarray:
    """An ``[H, W]`` or ``[H, W, 3]`` array from a tensor ``[C, H, W]`` or an array."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = image.permute(1, 2, 0).numpy() if image.dim() == 3 else image.numpy()
    picture = np.asarray(image)
    if picture.ndim == 3 and picture.shape[-1] == 1:
        picture = picture[..., 0]
    if picture.shape[:2] != size or picture.ndim not in (2, 3):
        raise ValueError(f"image must be [H, W], [H, W, 3] or a tensor [C, H, W] of size {size}, "
                         f"got shape {picture.shape}")
    return picture


def _grid(ax: Axes, size: tuple[int, int], color: str, picture: np.ndarray | None) -> None:
    """A blue/cyan block of ``size`` cells (or the picture), row 0 at the top."""
    height, width = size
    if picture is not None:
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None,
                  extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    else:
        ax.add_patch(Rectangle((-0.5, -0.5), width, height, facecolor=color, edgecolor="none"))
    if max(size) <= _GRID_LINES_UP_TO:
        for r in range(height + 1):
            ax.plot([-0.5, width - 0.5], [r - 0.5, r - 0.5], color=PADDING_COLOR, lw=0.4)
        for c in range(width + 1):
            ax.plot([c - 0.5, c - 0.5], [-0.5, height - 0.5], color=PADDING_COLOR, lw=0.4)
    ax.add_patch(Rectangle((-0.5, -0.5), width, height, fill=False, edgecolor=PADDING_COLOR, lw=1))


def _footprint(ax: Axes, rows: Interval, cols: Interval, size: tuple[int, int]) -> None:
    """The region as the kernel's dark overlay; a dashed frame where it leaves the input."""
    (r0, r1), (c0, c1) = rows, cols
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, facecolor=KERNEL_COLOR,
                           alpha=KERNEL_ALPHA, edgecolor=KERNEL_COLOR, lw=1.5))
    height, width = size
    if r0 < 0 or c0 < 0 or r1 >= height or c1 >= width:
        top, left = min(r0, 0), min(c0, 0)
        bottom, right = max(r1, height - 1), max(c1, width - 1)
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1,
                               fill=False, edgecolor=PADDING_COLOR, linestyle=(0, (3, 3)), lw=1))
        ax.text(left - 0.5, top - 0.5, " padding", va="bottom", fontsize=8, color=PADDING_COLOR)


def _finish(ax: Axes, rows: Interval, cols: Interval, size: tuple[int, int], title: str) -> None:
    height, width = size
    ax.set_xlim(min(cols[0], 0) - 1, max(cols[1], width - 1) + 1)
    ax.set_ylim(max(rows[1], height - 1) + 1, min(rows[0], 0) - 1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def plot_receptive_field(
    layers: object,
    input_size: int | tuple[int, int],
    unit: tuple[int, int] | None = None,
    *,
    layer: int = -1,
    image: object = None,
    measured: MeasuredField | None = None,
    figsize: tuple[float, float] = (9.0, 4.2),
) -> ReceptiveFieldFigure:
    """Draw the input region that one output unit of ``layer`` reads.

    Args:
        layers: what :func:`segtutor.arithmetic.receptive_field` accepts.
        input_size: ``H`` or ``(H, W)`` of the input.
        unit: output position ``(row, col)``; ``None`` takes the centre.
        layer: which layer's output (index into the table; ``-1`` is the last).
        image: optional picture to draw under the region (``[H, W]``, ``[H, W, 3]`` or a
            tensor ``[C, H, W]``).
        measured: optional :class:`~segtutor.arithmetic.MeasuredField` (the pixels with a
            non-zero gradient), outlined in white to compare with the computed region.
        figsize: figure size in inches.

    Raises:
        ValueError: ``layer`` or ``unit`` out of range, or an image of the wrong size
            (and whatever ``receptive_field`` refuses).
    """
    table = receptive_field(layers, input_size)
    if not isinstance(layer, int) or not -len(table.layers) <= layer < len(table.layers):
        raise ValueError(f"layer={layer!r} is not an index into the {len(table.layers)} layers")
    field = table.layers[layer]
    in_size = _input_size(input_size)
    out_h, out_w = field.output_size
    unit = (out_h // 2, out_w // 2) if unit is None else tuple(unit)
    if len(unit) != 2 or not (0 <= unit[0] < out_h and 0 <= unit[1] < out_w):
        raise ValueError(f"unit={unit!r} is outside the {out_h}x{out_w} output of layer {field.index}")
    rows, cols = field.region(*unit)
    picture = None if image is None else _as_picture(image, in_size)

    figure = Figure(figsize=figsize, dpi=100)
    ax_in, ax_out = figure.subplots(1, 2, gridspec_kw={"width_ratios": [in_size[1] + 2, out_w + 2]})
    _grid(ax_in, in_size, INPUT_COLOR, picture)
    _footprint(ax_in, rows, cols, in_size)
    if measured is not None:
        ax_in.contour(measured.mask.cpu().numpy().astype(float), levels=[0.5], colors="white",
                      linewidths=1.2, linestyles="--")
    r, s, p = (value[0] if value[0] == value[1] else value for value in
               (field.size, field.stride, field.padding))
    _finish(ax_in, rows, cols, in_size,
            f"input {in_size[0]}x{in_size[1]}: unit {unit} reads rows {rows[0]}..{rows[1]}, "
            f"cols {cols[0]}..{cols[1]}\n(r = {r}, S = {s}, P = {p})")

    _grid(ax_out, (out_h, out_w), OUTPUT_COLOR, None)
    ax_out.add_patch(Rectangle((unit[1] - 0.5, unit[0] - 0.5), 1, 1, facecolor=KERNEL_COLOR,
                               alpha=KERNEL_ALPHA, edgecolor=KERNEL_COLOR, lw=1.5))
    if max(out_h, out_w) > _GRID_LINES_UP_TO:  # one cell is too small to see: ring it
        ax_out.plot(unit[1], unit[0], marker="o", markersize=14, markerfacecolor="none",
                    markeredgecolor=KERNEL_COLOR, markeredgewidth=2)
    _finish(ax_out, (0, out_h - 1), (0, out_w - 1), (out_h, out_w),
            f"output of layer {field.index} ({field.layer}): {out_h}x{out_w}")
    return ReceptiveFieldFigure(figure, (ax_in, ax_out), field, unit, (rows, cols))


def _input_size(input_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(input_size, int):
        return input_size, input_size
    return tuple(input_size)
