"""The RoIPool-vs-RoIAlign explorer (segtutor/viz/roi_widget.py and roi_explorer.js).

Its browser-side arithmetic runs under node and must give, on random boxes, maps, scales,
output sizes and sampling ratios, exactly the bins, sample points and misalignment of
segtutor.arithmetic.roi; it is also checked against torchvision directly: the maximum over
the JavaScript's RoIPool bins is ``torchvision.ops.roi_pool``, and its sample points with
its bilinear taps, applied to the same random map, give ``torchvision.ops.roi_align``. Then
the Python side: the traits and their checks, select(), and the matplotlib fallback.
"""

from __future__ import annotations

import functools
import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torchvision.ops import roi_align, roi_pool

from segtutor.arithmetic import misalignment, roi_align_samples, roi_pool_bins
from segtutor.viz import RoIExplorer, plot_roi_quantisation
from segtutor.viz.roi_widget import (
    FEATURE_SIZE_LIMITS,
    OUTPUT_SIZE_LIMITS,
    SAMPLING_RATIOS,
    SPATIAL_SCALES,
    adjust_box,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED_MODULE = ROOT / "segtutor" / "viz" / "widget_controls.js"
MODULE = ROOT / "segtutor" / "viz" / "roi_explorer.js"
RUNNER = ROOT / "tests" / "js" / "roi_explorer.mjs"
NODE = shutil.which("node")

needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)")


def run_js(cases: list[dict]) -> list[dict]:
    """The explorer's own JavaScript on each case (see roi_explorer.mjs)."""
    out = subprocess.run([NODE, str(RUNNER), str(MODULE)], input=json.dumps(cases),
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def widget_case(rng: random.Random, with_map: bool = True) -> dict:
    """What the explorer can show (quarter-pixel boxes on the input, its scales, output
    sizes and sampling ratios), and now and then a box partly off the map or any float."""
    scale = rng.choice(SPATIAL_SCALES)
    feature = [rng.randint(1, 12), rng.randint(1, 12)]
    limits = (feature[1] / scale, feature[0] / scale)

    def corner(axis: int) -> float:
        if rng.random() < 0.15:
            return rng.uniform(-1.5, limits[axis] + 1.5 / scale)  # off the input, any float
        return round(rng.uniform(0, limits[axis]) * 4) / 4

    x1, x2 = sorted(corner(0) for _ in range(2))
    y1, y2 = sorted(corner(1) for _ in range(2))
    output = rng.randint(*OUTPUT_SIZE_LIMITS) if rng.random() < 0.6 else rng.randint(1, 4)
    case = {"box": [x1, y1, x2, y2], "output": [output, output], "scale": scale,
            "feature": feature, "ratio": rng.choice(SAMPLING_RATIOS + (0, 3)),
            "aligned": rng.random() < 0.5}
    if with_map:
        case["map"] = torch.randn(*feature, dtype=torch.float64, generator=torch.Generator().manual_seed(
            rng.randint(0, 2**31))).tolist()
    return case


CASES = [widget_case(random.Random(seed)) for seed in range(300)]


@functools.cache
def js_cases() -> tuple[tuple[dict, dict], ...]:
    """CASES with the JavaScript's answers (node runs once for the tests that share them)."""
    return tuple(zip(CASES, run_js(CASES), strict=True))


def as_lists(value):
    """Tuples (and NamedTuples) as lists, the way JSON brings the JavaScript's arrays."""
    if isinstance(value, (tuple, list)):
        return [as_lists(v) for v in value]
    return value


# ----------------------------------------------------------------------- JS equals Python


@needs_node
def test_js_geometry_equals_segtutor_arithmetic_roi_exactly():
    clipped = 0
    for case, js in js_cases():
        box, output, scale = case["box"], case["output"], case["scale"]
        pool = roi_pool_bins(box, output, scale, feature_size=case["feature"])
        unclipped = roi_pool_bins(box, output, scale)
        for name, ours in (("pool", pool), ("unclipped", unclipped)):
            theirs = js[name]
            assert [theirs[k] for k in ("start", "end", "size", "binSize", "rows", "cols")] == as_lists(
                [ours.start, ours.end, ours.size, ours.bin_size, ours.rows, ours.cols]), (case, name)
        clipped += pool.rows != unclipped.rows or pool.cols != unclipped.cols
        assert js["empty"] == [[pool.is_empty(i, j) for j in range(output[1])] for i in range(output[0])]
        align = roi_align_samples(box, output, scale, case["ratio"], case["aligned"])
        theirs = js["align"]
        assert [theirs[k] for k in ("start", "size", "binSize", "grid", "count", "ys", "xs",
                                    "rowEdges", "colEdges")] == as_lists(
            [align.start, align.size, align.bin_size, align.grid, align.count, align.ys, align.xs,
             align.row_edges, align.col_edges]), case
    assert clipped > 40


@needs_node
def test_js_misalignment_equals_segtutor_arithmetic_roi():
    for case, js in js_cases():
        ours = misalignment(case["box"], case["output"], case["scale"], aligned=case["aligned"])
        for name in ("pool", "align"):
            offsets, theirs = getattr(ours, name), js["misalignment"][name]
            assert [theirs["box"], theirs["rows"], theirs["cols"], theirs["maxOffset"]] == as_lists(
                [offsets.box, offsets.rows, offsets.cols, offsets.max_offset]), (case, name)
            # the same sum in the same order; rel= only in case Python's sum() compensates
            assert theirs["meanOffset"] == pytest.approx(offsets.mean_offset, rel=1e-14), (case, name)


# ----------------------------------------------------------------------- JS against torchvision


@needs_node
def test_js_pool_bins_give_torchvision_roi_pool():
    for case, js in js_cases():
        feature = torch.tensor(case["map"], dtype=torch.float64)[None, None]
        rois = torch.tensor([[0.0, *case["box"]]], dtype=torch.float64)
        expected = roi_pool(feature, rois, case["output"], case["scale"])[0, 0].numpy()
        np.testing.assert_array_equal(np.array(js["poolValues"]), expected, err_msg=str(case))


@needs_node
def test_js_samples_and_bilinear_taps_give_torchvision_roi_align():
    off_map = 0
    for case, js in js_cases():
        feature = torch.tensor(case["map"], dtype=torch.float64)[None, None]
        rois = torch.tensor([[0.0, *case["box"]]], dtype=torch.float64)
        expected = roi_align(feature, rois, case["output"], case["scale"], case["ratio"],
                             case["aligned"])[0, 0].numpy()
        np.testing.assert_allclose(np.array(js["alignValues"]), expected, rtol=1e-12, atol=1e-12,
                                   err_msg=str(case))
        for row in js["taps"]:
            for samples in row:
                for taps in samples:
                    if taps:
                        assert sum(w for _, _, w in taps) == pytest.approx(1.0)
                        assert all(0 <= r < case["feature"][0] and 0 <= c < case["feature"][1]
                                   for r, c, _ in taps)
                    off_map += not taps
    assert off_map > 20  # the border rule's "nothing beyond one cell" is exercised


# ----------------------------------------------------------------------- the controls' rules


@needs_node
def test_js_moves_the_box_as_select_does():
    rng = random.Random(11)
    cases = []
    for _ in range(300):
        case = widget_case(rng, with_map=False)
        case["box"] = [min(max(v, 0), 64 / case["scale"]) for v in case["box"]]
        case["adjust"] = {"oldScale": case["scale"], "newScale": rng.choice(SPATIAL_SCALES),
                          "featureSize": [rng.randint(*FEATURE_SIZE_LIMITS) for _ in range(2)]}
        cases.append(case)
    for case, js in zip(cases, run_js(cases), strict=True):
        a = case["adjust"]
        expected = adjust_box(tuple(case["box"]), a["oldScale"], a["newScale"], tuple(a["featureSize"]))
        assert js["adjusted"] == list(expected), case
        x1, y1, x2, y2 = expected
        assert 0 <= x1 <= x2 <= a["featureSize"][1] / a["newScale"]
        assert 0 <= y1 <= y2 <= a["featureSize"][0] / a["newScale"]


@needs_node
def test_js_module_exports_render_and_rounds_as_c():
    script = (
        "const src = require('fs').readFileSync(process.argv[1], 'utf8');"
        "import('data:text/javascript;base64,' + Buffer.from(src).toString('base64'))"
        ".then(m => console.log(JSON.stringify([typeof m.default.render, "
        "[2.5, -2.5, 0.49999999999999994, 1.5, -0.5].map(m.roundHalfAway), "
        "[1.3125, -0.001, 16, 0.125].map(m.numberText), m.quarterPixel(2.125)])))"
    )
    out = subprocess.run([NODE, "-e", script, str(MODULE)], capture_output=True, text=True,
                         check=True, timeout=60)
    assert json.loads(out.stdout) == ["function", [3, -3, 0, 2, -1], ["1.31", "0", "16", "0.13"], 2.25]
    assert roi_pool_bins((2.5, 0, 2.5, 0), 1).start[1] == 3  # Python's arithmetic rounds as C too


# ----------------------------------------------------------------------- the widget


def test_widget_loads_the_javascript_and_css_files():
    explorer = RoIExplorer()
    # the widget's own file, then the helpers every widget shares (segtutor.viz._frontend)
    assert explorer._esm == f"{MODULE.read_text()}\n{SHARED_MODULE.read_text()}"
    assert "function suppressNotebookShortcuts(root)" in explorer._esm
    assert ".roi-explorer" in explorer._css and "--jp-layout-color0" in explorer._css  # JupyterLab themes


def test_default_view_and_its_geometry():
    explorer = RoIExplorer()
    assert explorer.box == (21.0, 13.0, 150.0, 107.0) and explorer.input_size == (160.0, 224.0)
    state = explorer.get_state()
    assert (state["feature_size"], state["spatial_scale"], state["output_size"],
            state["sampling_ratio"], state["aligned"], state["mode"]) == ([10, 14], 0.0625, 7, -1, False, "both")
    assert explorer.pool == roi_pool_bins(explorer.box, 7, 1 / 16, feature_size=(10, 14))
    assert explorer.align == roi_align_samples(explorer.box, 7, 1 / 16, -1, False)
    assert explorer.misalignment == misalignment(explorer.box, 7, 1 / 16)
    assert explorer.pool.start == (1, 1) and explorer.pool.end == (7, 9)  # round(13/16), round(150/16)


def test_select_moves_the_box_with_the_scale_and_the_map():
    explorer = RoIExplorer((21, 13, 150, 107), feature_size=(10, 14), spatial_scale=1 / 16)
    explorer.select(spatial_scale=1 / 32)
    assert explorer.box == (42.0, 26.0, 300.0, 214.0)  # the same cells
    explorer.select(spatial_scale=1.0)
    assert explorer.box == (1.25, 0.75, 9.5, 6.75)  # to a quarter pixel: 42/32 = 1.3125 -> 1.25
    explorer.select(feature_size=(4, 6))
    assert explorer.box == (1.25, 0.75, 6.0, 4.0)  # clipped to the 6x4 input
    explorer.select(box=(0, 0, 6, 4), output_size=2, sampling_ratio=2, aligned=True, mode="align")
    assert (explorer.output_size, explorer.sampling_ratio, explorer.aligned, explorer.mode) == (2, 2, True, "align")


def test_single_changes_that_move_the_box_off_the_input_are_refused():
    explorer = RoIExplorer((10, 10, 100, 100), feature_size=(8, 8), spatial_scale=1 / 16)  # 128 px
    with pytest.raises(ValueError, match=r"0 <= x1 <= x2 <= 128 .* got \(10.0, 10.0, 200.0, 100.0\); "
                                         r"change several settings at once with select\(\)"):
        explorer.x2 = 200
    with pytest.raises(ValueError, match=r"got \(110.0, 10.0, 100.0, 100.0\)"):
        explorer.x1 = 110
    with pytest.raises(ValueError, match=r"the 64x64 px input of a 8x8 map at spatial_scale 0.125"):
        explorer.spatial_scale = 1 / 8
    with pytest.raises(ValueError, match=r"x2 <= 48"):
        explorer.feature_size = [3, 3]
    assert explorer.box == (10.0, 10.0, 100.0, 100.0) and explorer.spatial_scale == 1 / 16


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(spatial_scale=0.3), ValueError, r"spatial_scale must be one of 1, 1/2, 1/4, 1/8, 1/16, 1/32, got 0.3"),
        (dict(spatial_scale="1/16"), TypeError, r"spatial_scale must be a finite number"),
        (dict(feature_size=(0, 4)), ValueError, r"feature_size\[0\] \(map rows\) must be an int in \[1, 32\], got 0"),
        (dict(feature_size=(4, 33)), ValueError, r"feature_size\[1\] \(map cols\) must be an int in \[1, 32\]"),
        (dict(feature_size=8), TypeError, r"feature_size must be a pair \(rows, cols\), got 8"),
        (dict(feature_size=(8, 8.0)), TypeError, r"feature_size\[1\] \(map cols\) must be an int"),
        (dict(output_size=15), ValueError, r"output_size \(bins per side\) must be an int in \[1, 14\], got 15"),
        (dict(output_size=True), TypeError, r"output_size \(bins per side\) must be an int"),
        (dict(sampling_ratio=3), ValueError, r"sampling_ratio must be one of \(-1, 1, 2, 4\), got 3"),
        (dict(aligned=1), TypeError, r"aligned must be True or False, got 1"),
        (dict(mode="overlay"), ValueError, r"mode must be one of \('both', 'pool', 'align'\), got 'overlay'"),
        (dict(box=(0, 0, 10)), TypeError, r"box must be \(x1, y1, x2, y2\), got \(0, 0, 10\)"),
        (dict(box=(0, 0, "10", 10)), TypeError, r"x2 \(right edge of the box, input pixels\) must be a finite number"),
        (dict(box=(0, 0, float("inf"), 10)), ValueError, r"x2 \(right edge .*\) must be a finite number"),
        (dict(box=(20, 0, 10, 10)), ValueError, r"0 <= x1 <= x2 <= 224 .* got \(20.0, 0.0, 10.0, 10.0\)"),
        (dict(box=(0, -1, 10, 10)), ValueError, r"0 <= y1 <= y2 <= 160"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        RoIExplorer(**kwargs)


def test_select_refuses_and_changes_nothing():
    explorer = RoIExplorer()
    before = explorer.get_state()
    with pytest.raises(ValueError, match=r"mode must be one of"):
        explorer.select(box=(0, 0, 5, 5), mode="neither")
    with pytest.raises(ValueError, match=r"x2 <= 224"):
        explorer.select(box=(0, 0, 300, 5), output_size=3)
    assert explorer.get_state() == before


def test_state_from_the_browser_is_applied_at_once():
    """The page changes the scale and rescales the box in one message (JSON numbers)."""
    explorer = RoIExplorer()
    explorer.set_state({"spatial_scale": 1, "x1": 1, "y1": 1, "x2": 9, "y2": 6})
    assert explorer.spatial_scale == 1.0 and explorer.box == (1.0, 1.0, 9.0, 6.0)
    assert isinstance(explorer.x1, float)


# ----------------------------------------------------------------------- the static figure


def gids(ax, gid: str) -> list:
    return [artist for artist in ax.get_children() if artist.get_gid() == gid]


def test_static_figure_draws_the_bins_samples_and_boxes():
    explorer = RoIExplorer((20, 12, 150, 100), feature_size=(8, 12), spatial_scale=1 / 16,
                           output_size=3, sampling_ratio=2)
    drawn = explorer.static_figure()
    assert isinstance(drawn.figure, Figure) and set(drawn.axes) == {"pool", "align"}
    assert drawn.pool == explorer.pool and drawn.align == explorer.align
    pool_ax, align_ax = drawn.axes["pool"], drawn.axes["align"]
    bins = gids(pool_ax, "roi-pool-bin")
    assert len(bins) == 9 and all(isinstance(b, Rectangle) for b in bins)
    (frame,) = gids(pool_ax, "roi-pool-box")
    assert (frame.get_x(), frame.get_y(), frame.get_width(), frame.get_height()) == (1, 1, 9, 6)
    for ax in (pool_ax, align_ax):
        (exact,) = gids(ax, "roi-exact-box")
        assert (exact.get_x(), exact.get_y(), exact.get_width(), exact.get_height()) == (
            20 / 16, 12 / 16, 130 / 16, 88 / 16)
    (samples,) = gids(align_ax, "roi-align-samples")
    assert isinstance(samples, PathCollection)
    offsets = samples.get_offsets()
    assert len(offsets) == explorer.align.num_samples == 9 * 4
    expected = [(x + 0.5, y + 0.5) for ys in explorer.align.ys for y in ys
                for xs in explorer.align.xs for x in xs]
    np.testing.assert_allclose(np.asarray(offsets), expected)
    assert len(gids(align_ax, "roi-align-bin")) == 2 * (3 + 1)
    assert f"{explorer.misalignment.pool.max_offset:.2f} px" in pool_ax.get_title()
    assert drawn._repr_png_().startswith(b"\x89PNG")


def test_static_figure_of_one_operator_and_clipped_bins():
    drawn = plot_roi_quantisation((0, 0, 64, 64), (4, 4), output_size=7, spatial_scale=1 / 16,
                                  mode="pool")
    assert list(drawn.axes) == ["pool"]
    empty = sum(drawn.pool.is_empty(i, j) for i in range(7) for j in range(7))
    assert empty > 0  # the rounded box ends at cell 4, outside the 4x4 map
    assert len(gids(drawn.axes["pool"], "roi-pool-bin")) == 49 - empty
    with pytest.raises(ValueError, match=r"mode must be one of"):
        plot_roi_quantisation((0, 0, 8, 8), 4, mode="side by side")
