"""segtutor.arithmetic.roi against torchvision's RoIPool and RoIAlign.

RoIPool's bins must be what ``torchvision.ops.roi_pool`` takes the maximum of (on random
maps, and cell by cell with one-hot probes, which find the bins without our code);
RoIAlign's sample points, interpolated with a direct NumPy implementation of the kernel's
border rule and averaged, must give ``torchvision.ops.roi_align``; the misalignment must be
what a linear ramp measures through ``roi_align`` and what the probed RoIPool bins cover.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align, roi_pool

from segtutor.arithmetic import Span, misalignment, roi_align_samples, roi_pool_bins

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SCALES = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)


def rois(box) -> torch.Tensor:
    return torch.tensor([[0.0, *box]], dtype=torch.float64)


def random_case(rng: random.Random) -> dict:
    """A box on or near a random map: quarter pixels (RoIPool's rounding ties) or any float."""
    scale = rng.choice(SCALES)
    height, width = rng.randint(1, 12), rng.randint(1, 12)

    def coordinate(cells: int) -> float:
        value = rng.uniform(-1.5, cells + 1.5) / scale
        return round(value * 4) / 4 if rng.random() < 0.6 else value

    x1, x2 = sorted(coordinate(width) for _ in range(2))
    y1, y2 = sorted(coordinate(height) for _ in range(2))
    if rng.random() < 0.1:
        x2 = x1  # zero width: RoIPool and RoIAlign (aligned=False) force one cell
    output = (rng.randint(1, 7), rng.randint(1, 7)) if rng.random() < 0.3 else (rng.randint(1, 7),) * 2
    return {"box": (x1, y1, x2, y2), "scale": scale, "feature": (height, width), "output": output,
            "ratio": rng.choice([-1, 0, 1, 2, 3, 4]), "aligned": rng.random() < 0.5}


CASES = [random_case(random.Random(seed)) for seed in range(400)]


# --------------------------------------------------------------------------- the worked example


def test_the_4x4_arange_example():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    box = torch.tensor([[0.0, 0, 0, 2, 2]])
    assert roi_align(x, box, 1, aligned=False).item() == 5.0
    assert roi_align(x, box, 1, aligned=True).item() == 2.5
    assert roi_pool(x, box, 1).item() == 10.0
    pool = roi_pool_bins((0, 0, 2, 2), 1, feature_size=4)
    assert (pool.start, pool.end, pool.size, pool.bin(0, 0)) == ((0, 0), (2, 2), (3, 3),
                                                                  (Span(0, 3), Span(0, 3)))
    assert roi_align_samples((0, 0, 2, 2), 1).samples(0, 0) == (
        (0.5, 0.5), (0.5, 1.5), (1.5, 0.5), (1.5, 1.5))  # mean of 2.5, 3.5, 6.5, 7.5 = 5
    assert roi_align_samples((0, 0, 2, 2), 1, aligned=True).samples(0, 0) == (
        (0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))  # mean of 0, 1, 4, 5 = 2.5


# --------------------------------------------------------------------------- RoIPool


def pool_reference(feature: np.ndarray, bins) -> np.ndarray:
    """Each bin's maximum over our rectangle (0 where empty), as the kernel defines it."""
    rows, cols = bins.output_size
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            (r0, r1), (c0, c1) = bins.bin(i, j)
            if not bins.is_empty(i, j):
                out[i, j] = feature[r0:r1, c0:c1].max()
    return out


def test_roi_pool_is_the_maximum_over_our_bins_on_random_maps():
    empty = clipped = 0
    for case in CASES:
        feature = torch.randn(1, 1, *case["feature"], dtype=torch.float64)
        expected = roi_pool(feature, rois(case["box"]), case["output"], case["scale"])[0, 0].numpy()
        bins = roi_pool_bins(case["box"], case["output"], case["scale"], feature_size=case["feature"])
        np.testing.assert_array_equal(pool_reference(feature[0, 0].numpy(), bins), expected,
                                      err_msg=str(case))
        unclipped = roi_pool_bins(case["box"], case["output"], case["scale"])
        empty += any(bins.is_empty(i, j) for i in range(len(bins.rows)) for j in range(len(bins.cols)))
        clipped += (unclipped.rows, unclipped.cols) != (bins.rows, bins.cols)
    assert empty > 20 and clipped > 100  # the border cases are exercised


def probed_bins(feature_size, box, output, scale) -> list[list[set[tuple[int, int]]]]:
    """The cells each bin reads, found by torchvision alone: a map that is 1 in one cell
    and -1 elsewhere pools to 1 exactly in the bins that contain the cell."""
    height, width = feature_size
    probes = -torch.ones(height * width, 1, height, width, dtype=torch.float64)
    probes.view(height * width, -1)[range(height * width), range(height * width)] = 1
    boxes = torch.tensor([[n, *box] for n in range(height * width)], dtype=torch.float64)
    hits = roi_pool(probes, boxes, output, scale)[:, 0] == 1  # [cells, rows, cols]
    return [[{divmod(cell, width) for cell in hits[:, i, j].nonzero().flatten().tolist()}
             for j in range(hits.shape[2])] for i in range(hits.shape[1])]


def test_roi_pool_bins_are_the_cells_one_hot_probes_find():
    for case in CASES[:80]:
        bins = roi_pool_bins(case["box"], case["output"], case["scale"], feature_size=case["feature"])
        found = probed_bins(case["feature"], case["box"], case["output"], case["scale"])
        for i, row in enumerate(found):
            for j, cells in enumerate(row):
                (r0, r1), (c0, c1) = bins.bin(i, j)
                assert cells == {(r, c) for r in range(r0, r1) for c in range(c0, c1)}, (case, i, j)


def test_roi_pool_rounds_halves_away_from_zero_as_c():
    bins = roi_pool_bins((2.5, -2.5, 4.5, 3.5), 1)
    assert bins.start == (-3, 3) and bins.end == (4, 5)  # Python's round(2.5) would be 2
    assert round(2.5) == 2 and round(-2.5) == -2
    for x1 in (0.5, 1.5, 2.5):
        feature = torch.arange(6.0, dtype=torch.float64).reshape(1, 1, 1, 6)
        got = roi_pool(feature, rois((x1, 0, x1, 0)), 1).item()
        assert got == roi_pool_bins((x1, 0, x1, 0), 1).start[1] == math.floor(x1 + 0.5)


def test_float32_maps_agree_on_whole_pixel_boxes():
    rng = random.Random(5)
    for _ in range(100):
        scale = rng.choice(SCALES)
        size = (rng.randint(2, 10), rng.randint(2, 10))
        x1, x2 = sorted(rng.randint(0, int(size[1] / scale)) for _ in range(2))
        y1, y2 = sorted(rng.randint(0, int(size[0] / scale)) for _ in range(2))
        feature = torch.randn(1, 1, *size)
        box = torch.tensor([[0.0, x1, y1, x2, y2]])
        bins = roi_pool_bins((x1, y1, x2, y2), 7, scale, feature_size=size)
        np.testing.assert_array_equal(pool_reference(feature[0, 0].numpy(), bins),
                                      roi_pool(feature, box, 7, scale)[0, 0].numpy())


# --------------------------------------------------------------------------- RoIAlign


def bilinear(feature: np.ndarray, y: float, x: float) -> float:
    """The map at (y, x) with roi_align_common.h's border rule, written out directly."""
    height, width = feature.shape
    if not (-1.0 <= y <= height and -1.0 <= x <= width):
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * feature[y0, x0] + (1 - ly) * lx * feature[y0, x1]
            + ly * (1 - lx) * feature[y1, x0] + ly * lx * feature[y1, x1])


def test_roi_align_is_the_mean_of_bilinear_samples_at_our_points():
    outside = empty = 0
    for case in CASES:
        feature = torch.randn(1, 1, *case["feature"], dtype=torch.float64)
        expected = roi_align(feature, rois(case["box"]), case["output"], case["scale"],
                             case["ratio"], case["aligned"])[0, 0].numpy()
        geometry = roi_align_samples(case["box"], case["output"], case["scale"], case["ratio"],
                                     case["aligned"])
        rows, cols = geometry.output_size
        values = feature[0, 0].numpy()
        ours = np.array([[sum(bilinear(values, y, x) for y, x in geometry.samples(i, j)) / geometry.count
                          for j in range(cols)] for i in range(rows)])
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12, err_msg=str(case))
        height, width = case["feature"]
        outside += any(not (-1 <= y <= height) for ys in geometry.ys for y in ys)
        empty += geometry.num_samples == 0
    assert outside > 30 and empty > 3


def test_roi_align_grid_and_edges():
    geometry = roi_align_samples((8, 16, 72, 48), (2, 4), 0.125, sampling_ratio=-1)
    assert geometry.start == (2.0, 1.0) and geometry.size == (4.0, 8.0)
    assert geometry.bin_size == (2.0, 2.0) and geometry.grid == (2, 2) and geometry.count == 4
    assert geometry.row_edges == (2.0, 4.0, 6.0) and geometry.col_edges == (1.0, 3.0, 5.0, 7.0, 9.0)
    assert geometry.ys == ((2.5, 3.5), (4.5, 5.5)) and geometry.num_samples == 4 * 8
    assert roi_align_samples((8, 16, 72, 48), (2, 4), 0.125, 3).grid == (3, 3)
    tiny = roi_align_samples((3, 3, 3, 3), 2, aligned=False)
    assert tiny.size == (1.0, 1.0) and tiny.grid == (1, 1)  # forced to one cell
    zero = roi_align_samples((3, 3, 3, 3), 2, aligned=True)
    assert zero.size == (0.0, 0.0) and zero.grid == (0, 0) and zero.num_samples == 0
    assert roi_align(torch.ones(1, 1, 8, 8), torch.tensor([[0.0, 3, 3, 3, 3]]), 2,
                     aligned=True).abs().sum() == 0  # no samples: zeros


# --------------------------------------------------------------------------- misalignment


def test_pool_misalignment_is_what_the_probed_bins_cover():
    rng = random.Random(7)
    for _ in range(40):
        scale = rng.choice(SCALES[1:])
        box = tuple(sorted(rng.uniform(0, 6 / scale) for _ in range(2)))
        box = (box[0], box[0] * 0.5, box[1], box[1] * 0.7)  # x1, y1, x2, y2 with x1 <= x2
        output = rng.randint(1, 5)
        found = probed_bins((10, 10), box, output, scale)
        offsets = misalignment(box, output, scale).pool
        x1, y1, x2, y2 = box
        for i in range(output):
            rows = [r for r, _ in found[i][0]]
            top, bottom = min(rows) / scale, (max(rows) + 1) / scale
            exact = (y1 + i * (y2 - y1) / output, y1 + (i + 1) * (y2 - y1) / output)
            assert offsets.rows[i] == pytest.approx((top - exact[0], bottom - exact[1]))
            cols = [c for _, c in found[0][i]]
            left, right = min(cols) / scale, (max(cols) + 1) / scale
            exact = (x1 + i * (x2 - x1) / output, x1 + (i + 1) * (x2 - x1) / output)
            assert offsets.cols[i] == pytest.approx((left - exact[0], right - exact[1]))


def bin_centres_by_a_ramp(box, output, scale, aligned) -> np.ndarray:
    """RoIAlign's bin centres along y in input pixels, measured: on the ramp f(y, x) = y
    the bilinear samples are exact, so each output is the mean sample row; cell i's value
    sits at input (i + 1/2) / s."""
    ramp = torch.arange(40.0, dtype=torch.float64)[:, None].expand(40, 40)[None, None]
    out = roi_align(ramp, rois(box), output, scale, sampling_ratio=2, aligned=aligned)[0, 0, :, 0]
    return (out.numpy() + 0.5) / scale


@pytest.mark.parametrize("aligned", [False, True])
def test_align_misalignment_is_what_a_ramp_measures(aligned):
    for scale in SCALES[1:]:
        box = (3 / scale, 5.25 / scale, 19.5 / scale, 17 / scale)
        found = bin_centres_by_a_ramp(box, 7, scale, aligned)
        exact = box[1] + (np.arange(7) + 0.5) * (box[3] - box[1]) / 7
        offsets = misalignment(box, 7, scale, aligned=aligned).align
        centres = np.array([(top + bottom) / 2 for top, bottom in offsets.rows])
        np.testing.assert_allclose(found - exact, centres, atol=1e-9)
        half = 0.0 if aligned else 0.5 / scale
        assert offsets.max_offset == pytest.approx(half, abs=1e-9)
        assert offsets.mean_offset == pytest.approx(half, abs=1e-9)


def test_misalignment_of_a_box_on_the_cell_grid():
    """Box (0, 0, 32, 32) at stride 16, 2 bins: RoIPool reads cells 0..2 (x2 inclusive),
    bins [0, 2) and [1, 3), i.e. input [0, 32) and [16, 48) against [0, 16) and [16, 32)."""
    result = misalignment((0, 0, 32, 32), 2, 1 / 16)
    assert result.pool.rows == ((0.0, 16.0), (0.0, 16.0)) == result.pool.cols
    assert result.pool.box == (0.0, 0.0, 16.0, 16.0)
    assert (result.pool.max_offset, result.pool.mean_offset) == (16.0, 8.0)
    assert result.align.box == (8.0,) * 4 and not result.aligned
    assert misalignment((0, 0, 32, 32), 2, 1 / 16, aligned=True).align.max_offset == 0.0


# --------------------------------------------------------------------------- arguments


def test_a_tensor_box_is_accepted():
    assert roi_pool_bins(torch.tensor([0.0, 0, 2, 2]), 1) == roi_pool_bins((0, 0, 2, 2), 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(box=(0, 0, 2)), ValueError, r"box must be \(x1, y1, x2, y2\) .*, got \(0, 0, 2\) \(3 entries\)"),
        (dict(box="0022"), TypeError, r"box must be \(x1, y1, x2, y2\)"),
        (dict(box=(3, 0, 2, 2)), ValueError, r"with x1 <= x2 and y1 <= y2, got \(3, 0, 2, 2\)"),
        (dict(box=(0, 0, float("nan"), 2)), ValueError, r"box\[2\] \(x2\) must be a finite number"),
        (dict(box=(0, True, 2, 2)), TypeError, r"box\[1\] \(y1\) must be a finite number, got True"),
        (dict(box=torch.zeros(2, 2)), ValueError, r"box must be .* got a tensor of dtype torch.float32 and shape \(2, 2\)"),
        (dict(output_size=0), ValueError, r"output_size must be a positive int or a pair"),
        (dict(output_size=7.0), TypeError, r"output_size must be a positive int or a pair"),
        (dict(spatial_scale=0), ValueError, r"spatial_scale must be a finite number > 0, got 0"),
        (dict(spatial_scale="1/16"), TypeError, r"spatial_scale must be a finite number > 0"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, message):
    arguments = {"box": (0, 0, 2, 2), "output_size": 2, "spatial_scale": 1.0, **kwargs}
    for function in (roi_pool_bins, roi_align_samples, misalignment):
        with pytest.raises(error, match=message):
            function(**arguments)


def test_bad_options_are_refused():
    with pytest.raises(TypeError, match=r"sampling_ratio must be an int, got True"):
        roi_align_samples((0, 0, 2, 2), 2, sampling_ratio=True)
    with pytest.raises(TypeError, match=r"aligned must be True or False, got 1"):
        roi_align_samples((0, 0, 2, 2), 2, aligned=1)
    with pytest.raises(TypeError, match=r"aligned must be True or False, got None"):
        misalignment((0, 0, 2, 2), 2, aligned=None)
    with pytest.raises(ValueError, match=r"feature_size must be a positive int or a pair"):
        roi_pool_bins((0, 0, 2, 2), 2, feature_size=(0, 4))
