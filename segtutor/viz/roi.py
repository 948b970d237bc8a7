"""RoIPool's rounded bins next to RoIAlign's exact bins and sample points, drawn with matplotlib.

The static picture of :mod:`segtutor.arithmetic.roi`, and the fallback of
:class:`segtutor.viz.roi_widget.RoIExplorer` for print and readers without JavaScript. Each
panel shows the feature map (blue cells) with the box scaled onto it (dashed). Left,
RoIPool: the box rounded to whole cells (orange frame) and its bins, which ``floor``/
``ceil`` make overlap (darker) or differ in size. Right, RoIAlign: its equal bins (violet
lines) and the bilinear sample points (magenta), drawn where they read the map: the
kernel's coordinate ``u`` is the centre of cell ``u``, ``u + 1/2`` in the drawing, so with
``aligned=False`` everything sits half a cell down and to the right of the box. The titles
give :func:`~segtutor.arithmetic.misalignment` in input pixels.

The figure is built on a :class:`matplotlib.figure.Figure` (no pyplot state is left open);
a notebook shows the returned object as a PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from segtutor._checks import check_choice, check_int_pair
from segtutor.arithmetic import (
    Misalignment,
    RoIAlignSamples,
    RoIPoolBins,
    misalignment,
    roi_align_samples,
    roi_pool_bins,
)
from segtutor.viz.diagrams import INPUT_COLOR, KERNEL_COLOR, PADDING_COLOR

__all__ = [
    "ALIGN_COLOR",
    "MODES",
    "POOL_COLOR",
    "SAMPLE_COLOR",
    "RoIFigure",
    "plot_roi_quantisation",
]

#: RoIPool's rounded box and bins (Solarized orange).
POOL_COLOR = "#CB4B16"
#: RoIAlign's bins (Solarized violet).
ALIGN_COLOR = "#6C71C4"
#: RoIAlign's sample points (Solarized magenta).
SAMPLE_COLOR = "#D33682"
#: What a figure (and the widget) shows: both operators side by side, or one of them.
MODES = ("both", "pool", "align")

_CELL_ALPHA = 0.25
_BIN_ALPHA = 0.34
_GRID_LINES_UP_TO = 48
_INSET = 0.08  # cells between a RoIPool bin's drawn rectangle and its cells' edges


@dataclass
class RoIFigure:
    """A drawn RoI.

    Attributes:
        figure: the figure.
        axes: its axes, ``{"pool": ax, "align": ax}`` for the panels drawn.
        pool: RoIPool's bins (clipped to the map).
        align: RoIAlign's bins and sample points.
        misalignment: both operators' bin edges against the exact ones, in input pixels.
    """

    figure: Figure
    axes: dict[str, Axes]
    pool: RoIPoolBins
    align: RoIAlignSamples
    misalignment: Misalignment

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def _map(ax: Axes, feature_size: tuple[int, int], box: tuple[float, ...], scale: float) -> None:
    """The feature map's cells, and the box scaled onto it (dashed)."""
    height, width = feature_size
    ax.add_patch(Rectangle((0, 0), width, height, facecolor=INPUT_COLOR, alpha=_CELL_ALPHA,
                           edgecolor="none", gid="roi-map"))
    if max(feature_size) <= _GRID_LINES_UP_TO:
        for r in range(height + 1):
            ax.plot([0, width], [r, r], color=PADDING_COLOR, lw=0.4, alpha=0.6, gid="roi-grid")
        for c in range(width + 1):
            ax.plot([c, c], [0, height], color=PADDING_COLOR, lw=0.4, alpha=0.6, gid="roi-grid")
    x1, y1, x2, y2 = (v * scale for v in box)
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=KERNEL_COLOR,
                           lw=1.6, linestyle=(0, (4, 2)), zorder=5, gid="roi-exact-box"))


def _finish(ax: Axes, feature_size: tuple[int, int], title: str) -> None:
    height, width = feature_size
    ax.set_xlim(-1, width + 1)
    ax.set_ylim(height + 1, -1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def _draw_pool(ax: Axes, pool: RoIPoolBins) -> None:
    for i, rows in enumerate(pool.rows):
        for j, cols in enumerate(pool.cols):
            if pool.is_empty(i, j):
                continue
            # Inset a little, so that overlapping bins show as separate rectangles.
            ax.add_patch(Rectangle((cols.start + _INSET, rows.start + _INSET),
                                   cols.end - cols.start - 2 * _INSET,
                                   rows.end - rows.start - 2 * _INSET, facecolor=POOL_COLOR,
                                   alpha=_BIN_ALPHA * (1.0 if (i + j) % 2 == 0 else 0.5),
                                   edgecolor=POOL_COLOR, lw=0.8, gid="roi-pool-bin"))
    (top, left), (height, width) = pool.start, pool.size
    ax.add_patch(Rectangle((left, top), width, height, fill=False, edgecolor=POOL_COLOR, lw=2.2,
                           zorder=4, gid="roi-pool-box"))


def _draw_align(ax: Axes, align: RoIAlignSamples) -> None:
    # The kernel's coordinate u is the centre of cell u: drawn at u + 1/2.
    top, bottom = align.row_edges[0] + 0.5, align.row_edges[-1] + 0.5
    left, right = align.col_edges[0] + 0.5, align.col_edges[-1] + 0.5
    for e in align.row_edges:
        ax.plot([left, right], [e + 0.5, e + 0.5], color=ALIGN_COLOR, lw=1.2, gid="roi-align-bin")
    for e in align.col_edges:
        ax.plot([e + 0.5, e + 0.5], [top, bottom], color=ALIGN_COLOR, lw=1.2, gid="roi-align-bin")
    points = [(x + 0.5, y + 0.5) for row in align.ys for y in row for col in align.xs for x in col]
    if points:
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=10, color=SAMPLE_COLOR,
                   zorder=6, gid="roi-align-samples")


def plot_roi_quantisation(
    box: object,
    feature_size: int | tuple[int, int],
    output_size: int | tuple[int, int] = 7,
    spatial_scale: float = 1 / 16,
    sampling_ratio: int = -1,
    aligned: bool = False,
    *,
    mode: str = "both",
    figsize: tuple[float, float] | None = None,
) -> RoIFigure:
    """Draw one RoI as RoIPool and RoIAlign see it on the feature map.

    Args:
        box: ``(x1, y1, x2, y2)`` in input pixels.
        feature_size: ``(height, width)`` of the feature map (an int for a square one).
        output_size: bins per side, an int or ``(rows, cols)``.
        spatial_scale: feature-map size over input size (``1/16`` for stride 16).
        sampling_ratio: RoIAlign's samples per bin and axis (``<= 0``: adaptive).
        aligned: RoIAlign's half-cell correction.
        mode: ``"both"`` panels side by side, or only ``"pool"`` or ``"align"``.
        figsize: figure size in inches; ``None`` fits the panels.

    Returns:
        a :class:`RoIFigure` (a notebook displays it).

    Raises:
        TypeError, ValueError: as :func:`~segtutor.arithmetic.roi_pool_bins` and
            :func:`~segtutor.arithmetic.roi_align_samples`, or an unknown ``mode``.
    """
    check_choice(mode, "mode", MODES)
    size = check_int_pair(feature_size, "feature_size", minimum=1)
    pool = roi_pool_bins(box, output_size, spatial_scale, feature_size=size)
    align = roi_align_samples(box, output_size, spatial_scale, sampling_ratio, aligned)
    offsets = misalignment(box, output_size, spatial_scale, aligned=aligned)
    kinds = ("pool", "align") if mode == "both" else (mode,)
    if figsize is None:
        panel = 4.2 if mode == "both" else 6.0
        figsize = (panel * len(kinds), panel * (size[0] + 2) / (size[1] + 2) + 1.1)
    figure = Figure(figsize=figsize, dpi=100)
    axes = dict(zip(kinds, figure.subplots(1, len(kinds), squeeze=False)[0], strict=True))
    scale = pool.spatial_scale
    x1, y1, x2, y2 = pool.box
    figure.suptitle(f"box x {x1:g}..{x2:g}, y {y1:g}..{y2:g} px on a {size[0]}x{size[1]} map "
                    f"(1 cell = {1 / scale:g} px), {pool.output_size[0]}x{pool.output_size[1]} bins",
                    fontsize=10)
    for kind, ax in axes.items():
        _map(ax, size, pool.box, scale)
        if kind == "pool":
            _draw_pool(ax, pool)
            (r0, c0), (r1, c1) = pool.start, pool.end
            title = (f"RoIPool: rounded to cells {r0}..{r1} x {c0}..{c1}\n"
                     f"bin edges off by up to {offsets.pool.max_offset:.2f} px "
                     f"(mean {offsets.pool.mean_offset:.2f})")
        else:
            _draw_align(ax, align)
            title = (f"RoIAlign (aligned={aligned}): {align.grid[0]}x{align.grid[1]} samples per bin\n"
                     f"bin edges off by up to {offsets.align.max_offset:.2f} px "
                     f"(mean {offsets.align.mean_offset:.2f})")
        _finish(ax, size, title)
    return RoIFigure(figure, axes, pool, align, offsets)
