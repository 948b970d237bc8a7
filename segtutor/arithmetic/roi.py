"""The geometry of one region of interest (RoI) as RoIPool and RoIAlign see it.

Fast/Faster R-CNN's RoIPool (Girshick, "Fast R-CNN", ICCV 2015, https://arxiv.org/abs/1504.08083)
and Mask R-CNN's RoIAlign (He, Gkioxari, Dollar & Girshick, "Mask R-CNN", ICCV 2017,
https://arxiv.org/abs/1703.06870) both turn a box given in input pixels into a fixed
``output_size`` grid of bins on a feature map that is ``spatial_scale`` times the input
(``1/16`` for a stride-16 backbone). They differ in where the bins land:

* :func:`roi_pool_bins`: RoIPool rounds the scaled box to whole feature cells, cuts it into
  bins with ``floor``/``ceil`` edges (so bins overlap or differ in size) and takes each
  bin's maximum;
* :func:`roi_align_samples`: RoIAlign keeps the scaled box exact, cuts it into equal bins
  and averages a few bilinearly interpolated sample points per bin;
* :func:`misalignment`: how far, in input pixels, each operator's bin edges land from the
  box's exact bin edges.

Every number is what torchvision's CPU kernels compute (``torchvision/csrc/ops/cpu/
roi_pool_kernel.cpp`` and ``roi_align_kernel.cpp``), step by step and in the same order of
floating-point operations, in double precision: equal to ``torchvision.ops.roi_pool`` and
``roi_align`` on ``float64`` maps (the tests check it). On ``float32`` maps torchvision
rounds in single precision and can differ where a coordinate lies within that rounding of
a ``.5`` (RoIPool) or an integer (the bin edges).

    >>> roi_pool_bins((0, 0, 2, 2), 1).rows   # cells 0, 1, 2: x2 is the last pixel, inclusive
    (Span(start=0, end=3),)
    >>> roi_align_samples((0, 0, 2, 2), 1).samples(0, 0)
    ((0.5, 0.5), (0.5, 1.5), (1.5, 0.5), (1.5, 1.5))

The coordinate frame of :func:`misalignment` is the one torchvision's boxes live in: input
pixel ``p`` covers ``[p, p + 1)``, feature cell ``i`` covers input ``[i / s, (i + 1) / s)``
and its value stands for the cell's centre. RoIPool reads the box's cells
``round(x1 s) .. round(x2 s)`` inclusive (Fast R-CNN treats ``x2`` as the last pixel, so its
box is up to one cell larger than the exact one); RoIAlign with ``aligned=False`` samples
feature coordinate ``x s``, which is the cell-centre frame's ``x s + 1/2``: every edge half a
cell (``0.5 / s`` input pixels) off. ``aligned=True`` subtracts that half (Detectron2's fix)
and lands on the exact edges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .._checks import check_bool, check_int, check_int_pair, check_number, describe

__all__ = [
    "Box",
    "EdgeOffsets",
    "Misalignment",
    "RoIAlignSamples",
    "RoIPoolBins",
    "Span",
    "misalignment",
    "roi_align_samples",
    "roi_pool_bins",
]

#: A box ``(x1, y1, x2, y2)`` in input pixels, as torchvision's ``boxes``.
Box = tuple[float, float, float, float]

_BOX = "(x1, y1, x2, y2) of finite numbers with x1 <= x2 and y1 <= y2"


class Span(NamedTuple):
    """Feature rows (or columns) ``start <= i < end`` that one RoIPool bin reads."""

    start: int
    end: int

    @property
    def empty(self) -> bool:
        """The bin reads nothing along this axis (RoIPool outputs 0 for it)."""
        return self.end <= self.start


@dataclass(frozen=True)
class RoIPoolBins:
    """One RoI as torchvision's RoIPool reads it.

    Attributes:
        box: the box ``(x1, y1, x2, y2)`` in input pixels.
        output_size: ``(rows, cols)`` of bins.
        spatial_scale: feature-map size over input size.
        feature_size: ``(height, width)`` of the feature map the bins are clipped to;
            ``None`` for bins before clipping.
        start: ``(row, col)`` of the rounded box's first cell, ``round(y1 s), round(x1 s)``
            (``round`` half away from zero, as C's).
        end: ``(row, col)`` of its last cell, inclusive: ``round(y2 s), round(x2 s)``.
        size: ``(height, width)`` of the rounded box in cells, ``max(end - start + 1, 1)``.
        bin_size: ``size / output_size`` per axis (a float).
        rows: for each bin row, the feature rows it reads: ``start[0] + floor(i * bin_size[0])``
            up to ``start[0] + ceil((i + 1) * bin_size[0])``, clipped to ``[0, height]``.
        cols: the same for each bin column.
    """

    box: Box
    output_size: tuple[int, int]
    spatial_scale: float
    feature_size: tuple[int, int] | None
    start: tuple[int, int]
    end: tuple[int, int]
    size: tuple[int, int]
    bin_size: tuple[float, float]
    rows: tuple[Span, ...]
    cols: tuple[Span, ...]

    def bin(self, row: int, col: int) -> tuple[Span, Span]:
        """The feature rows and columns that output ``(row, col)`` takes the maximum of."""
        return self.rows[row], self.cols[col]

    def is_empty(self, row: int, col: int) -> bool:
        """Whether bin ``(row, col)`` reads no cell (clipped away); RoIPool gives 0 there."""
        return self.rows[row].empty or self.cols[col].empty


@dataclass(frozen=True)
class RoIAlignSamples:
    """One RoI as torchvision's RoIAlign samples it.

    Coordinates are feature-map coordinates in which cell ``i``'s value sits at ``i``
    (``aligned=True`` makes that ``i + 1/2`` of the input's frame, see the module docstring).

    Attributes:
        box: the box ``(x1, y1, x2, y2)`` in input pixels.
        output_size: ``(rows, cols)`` of bins.
        spatial_scale: feature-map size over input size.
        sampling_ratio: samples per bin and axis as given; ``<= 0`` is adaptive.
        aligned: whether half a cell is subtracted from the scaled box.
        start: ``(y, x)``, the scaled box's top-left corner, ``y1 s - offset, x1 s - offset``
            with ``offset = 0.5`` when ``aligned``.
        size: ``(height, width)`` of the scaled box; without ``aligned`` at least 1.
        bin_size: ``size / output_size``.
        grid: ``(rows, cols)`` of sample points per bin: ``sampling_ratio``, or
            ``ceil(size / output_size)`` when adaptive.
        count: what each bin's sum is divided by, ``max(grid rows * grid cols, 1)``.
        ys: for each bin row, the ``grid[0]`` sample rows
            ``start + i * bin + (k + 1/2) * bin / grid``.
        xs: the same for each bin column.
        row_edges: the ``output_size[0] + 1`` bin edges ``start + i * bin``.
        col_edges: the same along the columns.
    """

    box: Box
    output_size: tuple[int, int]
    spatial_scale: float
    sampling_ratio: int
    aligned: bool
    start: tuple[float, float]
    size: tuple[float, float]
    bin_size: tuple[float, float]
    grid: tuple[int, int]
    count: int
    ys: tuple[tuple[float, ...], ...]
    xs: tuple[tuple[float, ...], ...]
    row_edges: tuple[float, ...]
    col_edges: tuple[float, ...]

    def samples(self, row: int, col: int) -> tuple[tuple[float, float], ...]:
        """The sample points ``(y, x)`` of bin ``(row, col)``, in the kernel's order (row-major)."""
        return tuple((y, x) for y in self.ys[row] for x in self.xs[col])

    @property
    def num_samples(self) -> int:
        """Sample points of all bins together."""
        return sum(len(y) for y in self.ys) * sum(len(x) for x in self.xs)


class EdgeOffsets(NamedTuple):
    """Where one operator's bin edges land, minus the exact ones, in input pixels.

    Attributes:
        box: the offsets of the region's outer edges ``(top, left, bottom, right)``; positive
            is down or to the right.
        rows: for each bin row, the offsets of its ``(top, bottom)`` edges.
        cols: for each bin column, those of its ``(left, right)`` edges.
        max_offset: the largest absolute offset over every bin's edges.
        mean_offset: the mean absolute offset over the ``2 * (rows + cols)`` bin edges.
    """

    box: tuple[float, float, float, float]
    rows: tuple[tuple[float, float], ...]
    cols: tuple[tuple[float, float], ...]
    max_offset: float
    mean_offset: float


class Misalignment(NamedTuple):
    """RoIPool's and RoIAlign's bin edges against the box's exact ones (input pixels).

    Attributes:
        pool: RoIPool's quantised bins (before clipping to the map).
        align: RoIAlign's bins (with the ``aligned`` given).
        aligned: the RoIAlign variant measured.
    """

    pool: EdgeOffsets
    align: EdgeOffsets
    aligned: bool


# --------------------------------------------------------------------------- checks


def _check_box(box: object) -> Box:
    if isinstance(box, torch.Tensor):
        if box.shape != (4,):
            raise ValueError(f"box must be {_BOX}, got {describe(box)}")
        box = box.tolist()
    if not isinstance(box, Sequence) or isinstance(box, str):
        raise TypeError(f"box must be {_BOX}, got {describe(box)} ({type(box).__name__})")
    if len(box) != 4:
        raise ValueError(f"box must be {_BOX}, got {describe(box)} ({len(box)} entries)")
    names = ("x1", "y1", "x2", "y2")
    x1, y1, x2, y2 = (check_number(v, f"box[{i}] ({names[i]})") for i, v in enumerate(box))
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box must be {_BOX}, got {describe(tuple(box))}")
    return x1, y1, x2, y2


def _check_scale(spatial_scale: object) -> float:
    return check_number(spatial_scale, "spatial_scale", minimum=0, strict_minimum=True)


def _round_half_away(value: float) -> int:
    """C's ``round``: halves away from zero (Python's ``round`` goes to the even neighbour)."""
    if value < 0:
        return -_round_half_away(-value)
    whole = math.floor(value)
    return whole + (1 if value - whole >= 0.5 else 0)


# --------------------------------------------------------------------------- RoIPool


def roi_pool_bins(
    box: object,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    *,
    feature_size: int | tuple[int, int] | None = None,
) -> RoIPoolBins:
    """The cells each bin of ``torchvision.ops.roi_pool`` takes the maximum of.

    Args:
        box: ``(x1, y1, x2, y2)`` in input pixels (a sequence or a tensor of 4), with
            ``x1 <= x2`` and ``y1 <= y2``.
        output_size: bins per side, an int or ``(rows, cols)``.
        spatial_scale: feature-map size over input size (``1/16`` for stride 16).
        feature_size: ``(height, width)`` of the feature map (or an int for a square one):
            the bins are clipped to it as the kernel does; ``None`` keeps them unclipped.

    Returns:
        a :class:`RoIPoolBins`; ``roi_pool``'s output at ``(i, j)`` is the maximum of the
        map over ``rows[i] x cols[j]``, or 0 where that is empty.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a box with ``x2 < x1`` or ``y2 < y1`` or a non-finite coordinate, a size
            below 1 or a scale that is not positive.
    """
    x1, y1, x2, y2 = _check_box(box)
    pooled = check_int_pair(output_size, "output_size", minimum=1)
    scale = _check_scale(spatial_scale)
    limits = None if feature_size is None else check_int_pair(feature_size, "feature_size", minimum=1)
    start = (_round_half_away(y1 * scale), _round_half_away(x1 * scale))
    end = (_round_half_away(y2 * scale), _round_half_away(x2 * scale))
    size = tuple(max(e - s + 1, 1) for s, e in zip(start, end, strict=True))
    bin_size = tuple(n / p for n, p in zip(size, pooled, strict=True))

    def spans(axis: int) -> tuple[Span, ...]:
        out = []
        for i in range(pooled[axis]):
            first = math.floor(i * bin_size[axis]) + start[axis]
            last = math.ceil((i + 1) * bin_size[axis]) + start[axis]
            if limits is not None:
                first, last = (min(max(v, 0), limits[axis]) for v in (first, last))
            out.append(Span(first, last))
        return tuple(out)

    return RoIPoolBins((x1, y1, x2, y2), pooled, scale, limits, start, end, size, bin_size,
                       spans(0), spans(1))


# --------------------------------------------------------------------------- RoIAlign


def roi_align_samples(
    box: object,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> RoIAlignSamples:
    """The bins and sample points of ``torchvision.ops.roi_align``.

    Each output is the mean over its bin's sample points of the map interpolated
    bilinearly there (a point more than one cell outside the map counts as 0; one inside
    that margin takes the border's value), divided by :attr:`RoIAlignSamples.count`.

    Args:
        box: ``(x1, y1, x2, y2)`` in input pixels, ``x1 <= x2`` and ``y1 <= y2``.
        output_size: bins per side, an int or ``(rows, cols)``.
        spatial_scale: feature-map size over input size.
        sampling_ratio: sample points per bin and axis; ``<= 0`` (torchvision's default
            ``-1``) takes ``ceil(box size / output size)`` per axis.
        aligned: subtract half a cell from the scaled box (Detectron2's correction).

    Returns:
        a :class:`RoIAlignSamples`.

    Raises:
        TypeError: an argument of the wrong type (``bool`` for an int included).
        ValueError: as :func:`roi_pool_bins`.
    """
    x1, y1, x2, y2 = _check_box(box)
    pooled = check_int_pair(output_size, "output_size", minimum=1)
    scale = _check_scale(spatial_scale)
    ratio = check_int(sampling_ratio, "sampling_ratio")
    check_bool(aligned, "aligned")
    offset = 0.5 if aligned else 0.0
    start = (y1 * scale - offset, x1 * scale - offset)
    end = (y2 * scale - offset, x2 * scale - offset)
    size = tuple(e - s for s, e in zip(start, end, strict=True))
    if not aligned:  # "force malformed RoIs to be 1x1"
        size = tuple(max(n, 1.0) for n in size)
    bin_size = tuple(n / p for n, p in zip(size, pooled, strict=True))
    grid = tuple(max(ratio if ratio > 0 else math.ceil(n / p), 0)
                 for n, p in zip(size, pooled, strict=True))

    def points(axis: int) -> tuple[tuple[float, ...], ...]:
        b, g = bin_size[axis], grid[axis]
        return tuple(tuple(start[axis] + i * b + (k + 0.5) * b / g for k in range(g))
                     for i in range(pooled[axis]))

    def edges(axis: int) -> tuple[float, ...]:
        return tuple(start[axis] + i * bin_size[axis] for i in range(pooled[axis] + 1))

    return RoIAlignSamples((x1, y1, x2, y2), pooled, scale, ratio, aligned, start, size,
                           bin_size, grid, max(grid[0] * grid[1], 1), points(0), points(1),
                           edges(0), edges(1))


# --------------------------------------------------------------------------- misalignment


def _offsets(drawn: list[list[tuple[float, float]]], exact: list[list[float]]) -> EdgeOffsets:
    """Offsets of per-axis bin edges ``drawn[axis][i] = (first, last)`` from ``exact[axis]``."""
    per_axis = [tuple((first - exact[axis][i], last - exact[axis][i + 1])
                      for i, (first, last) in enumerate(drawn[axis])) for axis in (0, 1)]
    flat = [abs(v) for axis in per_axis for pair in axis for v in pair]
    rows, cols = per_axis
    box = (rows[0][0], cols[0][0], rows[-1][1], cols[-1][1])
    return EdgeOffsets(box, rows, cols, max(flat), sum(flat) / len(flat))


def misalignment(
    box: object,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    *,
    aligned: bool = False,
) -> Misalignment:
    """How far RoIPool's and RoIAlign's bin edges land from the box's exact ones.

    The exact edges of bin ``i`` along ``y`` are ``y1 + i (y2 - y1) / n`` (the box cut into
    ``n`` equal bins). RoIPool's bin reads cells ``[first, last)`` (:func:`roi_pool_bins`,
    unclipped), which cover input pixels ``[first / s, last / s)``. RoIAlign's bin edge
    ``e`` (:attr:`RoIAlignSamples.row_edges`) is input ``(e + 1/2) / s``, because cell ``i``'s
    value sits at the centre of input ``[i / s, (i + 1) / s)``. The offsets are those
    positions minus the exact ones, in input pixels; see the module docstring for the frame.

    Args:
        box, output_size, spatial_scale: as :func:`roi_pool_bins`.
        aligned: the RoIAlign variant to measure (``False``, torchvision's default, is half
            a cell off; ``True`` is exact up to floating-point rounding).

    Returns:
        a :class:`Misalignment` with one :class:`EdgeOffsets` per operator.

    Raises:
        TypeError, ValueError: as :func:`roi_pool_bins`.
    """
    pool = roi_pool_bins(box, output_size, spatial_scale)
    align = roi_align_samples(box, output_size, spatial_scale, aligned=aligned)
    scale, pooled = pool.spatial_scale, pool.output_size
    x1, y1, x2, y2 = pool.box
    exact = [[low + i * (high - low) / pooled[axis] for i in range(pooled[axis] + 1)]
             for axis, (low, high) in enumerate(((y1, y2), (x1, x2)))]
    pool_edges = [[(span.start / scale, span.end / scale) for span in spans]
                  for spans in (pool.rows, pool.cols)]
    align_edges = [[((e[i] + 0.5) / scale, (e[i + 1] + 0.5) / scale) for i in range(len(e) - 1)]
                   for e in (align.row_edges, align.col_edges)]
    return Misalignment(_offsets(pool_edges, exact), _offsets(align_edges, exact), align.aligned)
