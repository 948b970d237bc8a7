"""The built chapter 11, opened offline in headless Chromium: the RoIPool-vs-RoIAlign explorer works.

Serves ``_build/html`` on 127.0.0.1, opens the chapter 11 page of ``_toc.yml`` (which embeds
:class:`segtutor.viz.RoIExplorer`) and aborts every request that is not to that server. What
the page draws -- RoIPool's rounded box and bins, RoIAlign's bins and sample points, the
misalignment it prints -- is read from the drawing's data attributes and must equal
:mod:`segtutor.arithmetic.roi` for the settings the page shows, at the start and after every
control is moved (box sliders, map size, spatial scale, output size, sampling ratio, aligned,
what to show). The redraw time per change is printed.

The server and the browser come from this folder's ``conftest.py``, the offline page from
``offline_site.py``, and so do the rules: skips when the site or Chromium is missing, unless
``SEGTUTOR_REQUIRE_SITE=1`` (then that is a failure); ``SEGTUTOR_SITE_DIR`` points at another
built site and ``SEGTUTOR_ROI_PAGE`` at another page in it.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal

import pytest
from offline_site import (
    SITE,
    OfflinePage,
    assert_controls_suppress_jupyterlab_shortcuts,
    assert_needs_nothing_from_outside,
    assert_text_follows_jupyterlab_theme,
    chapter_page,
    open_widget_page,
)

from segtutor.arithmetic import misalignment, roi_align_samples, roi_pool_bins
from segtutor.viz.roi_widget import SAMPLING_RATIOS, SPATIAL_SCALES, adjust_box

pytestmark = pytest.mark.browser

EXPLORER = '[data-testid="roi-explorer"]'


def checked_page() -> str:
    return chapter_page(11, "SEGTUTOR_ROI_PAGE")


def test_chapter_11_embeds_the_explorer(server):
    page = checked_page()
    assert "roi-explorer" in (SITE / page).read_text(), f"no RoIExplorer in {page}"


@pytest.fixture(scope="module")
def chapter(browser, server) -> Iterator[OfflinePage]:
    yield from open_widget_page(browser, server, checked_page(), EXPLORER)


@pytest.fixture(scope="module")
def explorer(chapter):
    return chapter.page.locator(EXPLORER).first


# ----------------------------------------------------------------------- reading the page


def data(locator, name: str):
    return json.loads(locator.get_attribute(f"data-{name}"))


def as_lists(value):
    if isinstance(value, (tuple, list)):
        return [as_lists(v) for v in value]
    return value


def shown_settings(explorer) -> dict:
    """The settings the page shows, from its root's data attributes and its controls."""
    settings = {
        "box": data(explorer, "box"), "feature_size": data(explorer, "feature-size"),
        "spatial_scale": data(explorer, "spatial-scale"), "output_size": data(explorer, "output-size"),
        "sampling_ratio": data(explorer, "sampling-ratio"), "aligned": data(explorer, "aligned"),
        "mode": explorer.get_attribute("data-mode"),
    }
    controls = {
        "box": [float(explorer.get_by_test_id(f"roi-{n}").input_value()) for n in ("x1", "y1", "x2", "y2")],
        "feature_size": [int(explorer.get_by_test_id(f"roi-feature-{n}").input_value()) for n in ("height", "width")],
        "spatial_scale": float(explorer.get_by_test_id("roi-scale").input_value()),
        "output_size": int(explorer.get_by_test_id("roi-output").input_value()),
        "sampling_ratio": int(explorer.get_by_test_id("roi-sampling").input_value()),
        "aligned": explorer.get_by_test_id("roi-aligned").is_checked(),
        "mode": explorer.get_by_test_id("roi-mode").input_value(),
    }
    # A slider shows its value rounded to its quarter-pixel step; the data attribute is exact.
    assert controls["box"] == pytest.approx(settings["box"], abs=0.125)
    assert {k: v for k, v in controls.items() if k != "box"} == {
        k: v for k, v in settings.items() if k != "box"}
    return settings


def drawn(explorer) -> dict:
    """What the page drew: RoIPool's box and bins, RoIAlign's bins and samples, the numbers."""
    pool_box, pool_bins = explorer.get_by_test_id("roi-pool-box"), explorer.get_by_test_id("roi-pool-bins")
    align = explorer.get_by_test_id("roi-align-bins")
    m = explorer.get_by_test_id("roi-misalignment")
    return {
        "pool": [data(pool_box, "start"), data(pool_box, "end"), data(pool_box, "size"),
                 data(pool_bins, "bin-size"), data(pool_bins, "rows"), data(pool_bins, "cols")],
        "pool_rects": pool_bins.locator(".roi-pool-bin").count(),
        "align": [data(align, k) for k in ("start", "size", "bin-size", "grid", "count", "ys", "xs",
                                           "row-edges", "col-edges")],
        "samples": int(explorer.get_by_test_id("roi-align-samples").get_attribute("data-count")),
        "misalignment": [float(m.get_attribute(f"data-{k}")) for k in ("pool-max", "pool-mean",
                                                                       "align-max", "align-mean")]
        + [data(m, "pool-box"), data(m, "align-box")],
        "readout": explorer.get_by_test_id("roi-readout").inner_text() + m.inner_text(),
    }


def assert_draws_python_geometry(explorer) -> dict:
    """The drawing equals segtutor.arithmetic.roi for the settings shown; returns it."""
    s = shown_settings(explorer)
    box, size, scale, out = s["box"], s["feature_size"], s["spatial_scale"], s["output_size"]
    got = drawn(explorer)
    pool = roi_pool_bins(box, out, scale, feature_size=size)
    assert got["pool"] == as_lists([pool.start, pool.end, pool.size, pool.bin_size, pool.rows, pool.cols]), s
    assert got["pool_rects"] == sum(not pool.is_empty(i, j) for i in range(out) for j in range(out))
    align = roi_align_samples(box, out, scale, s["sampling_ratio"], s["aligned"])
    assert got["align"] == as_lists([align.start, align.size, align.bin_size, align.grid, align.count,
                                     align.ys, align.xs, align.row_edges, align.col_edges]), s
    assert got["samples"] == align.num_samples
    off = misalignment(box, out, scale, aligned=s["aligned"])
    assert got["misalignment"][0] == off.pool.max_offset and got["misalignment"][2] == off.align.max_offset
    assert got["misalignment"][1] == pytest.approx(off.pool.mean_offset, rel=1e-14)
    assert got["misalignment"][3] == pytest.approx(off.align.mean_offset, rel=1e-14)
    assert got["misalignment"][4:] == as_lists([off.pool.box, off.align.box])
    readout = got["readout"]
    assert f"aligned={s['aligned']}" in readout
    assert f"RoIPool up to {number_text(off.pool.max_offset)} px" in readout, readout
    return got


def number_text(value: float) -> str:
    """The page's rounding of a number (JavaScript's ``toFixed(2)``: the exact binary value,
    halves away from zero), without trailing zeros or a "-0"."""
    rounded = Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    text = f"{rounded:f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def redraw_ms(explorer) -> float:
    return float(explorer.get_attribute("data-redraw-ms"))


def fill(explorer, name: str, value) -> None:
    explorer.get_by_test_id(f"roi-{name}").fill(str(value))


def choose(explorer, name: str, value) -> None:
    """Pick a menu entry; a number by the page's text for it (JavaScript's ``String(1.0)`` is "1")."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    explorer.get_by_test_id(f"roi-{name}").select_option(text)


# ----------------------------------------------------------------------- the tests


def test_page_needs_nothing_from_outside_the_site(chapter):
    assert_needs_nothing_from_outside(chapter)


def test_explorer_draws_its_starting_view(explorer):
    assert_draws_python_geometry(explorer)
    assert explorer.get_by_test_id("roi-pool-panel").is_visible()
    assert explorer.get_by_test_id("roi-align-panel").is_visible()


def test_every_control_suppresses_jupyterlab_shortcuts(explorer):
    assert_controls_suppress_jupyterlab_shortcuts(explorer, 11)  # 7 sliders, 3 menus, 1 checkbox


def test_grey_text_follows_jupyterlab_theme(explorer, chapter):
    assert_text_follows_jupyterlab_theme(chapter.page, explorer.locator(".roi-legend"))


def test_every_control_changes_the_drawing_to_the_python_geometry(explorer):
    timings = []
    before = assert_draws_python_geometry(explorer)
    steps = [("fill", "feature-height", 12), ("fill", "feature-width", 16), ("choose", "scale", 0.125),
             ("fill", "x1", 13.25), ("fill", "y1", 21.5), ("fill", "x2", 97.75), ("fill", "y2", 71),
             ("fill", "output", 5), ("choose", "sampling", 2), ("check", "aligned", True),
             ("choose", "scale", 0.03125), ("fill", "output", 14), ("choose", "sampling", -1),
             ("check", "aligned", False), ("choose", "scale", 1.0), ("fill", "output", 2)]
    for kind, name, value in steps:
        if kind == "fill":
            fill(explorer, name, value)
        elif kind == "choose":
            choose(explorer, name, value)
        else:
            explorer.get_by_test_id(f"roi-{name}").set_checked(value)
        timings.append(redraw_ms(explorer))
        after = assert_draws_python_geometry(explorer)
        assert after != before, f"{name} = {value} changed nothing drawn"
        assert after["readout"] != before["readout"], f"{name} = {value} left the readout as it was"
        before = after
    print(f"\nRoI explorer redraw per change: median {statistics.median(timings):.2f} ms, "
          f"max {max(timings):.2f} ms over {len(timings)} changes")
    assert statistics.median(timings) < 200


def test_every_scale_and_sampling_ratio(explorer):
    for scale in SPATIAL_SCALES:
        choose(explorer, "scale", scale)
        for ratio in SAMPLING_RATIOS:
            choose(explorer, "sampling", ratio)
            assert_draws_python_geometry(explorer)


def test_a_new_scale_keeps_the_box_over_the_same_cells(explorer):
    choose(explorer, "scale", 0.0625)
    fill(explorer, "feature-height", 10)
    fill(explorer, "feature-width", 14)
    box = shown_settings(explorer)["box"]
    choose(explorer, "scale", 0.25)
    expected = adjust_box(tuple(box), 0.0625, 0.25, (10, 14))
    assert shown_settings(explorer)["box"] == list(expected)
    assert_draws_python_geometry(explorer)


def test_a_corner_dragged_past_the_other_pushes_it_along(explorer):
    choose(explorer, "scale", 0.0625)
    fill(explorer, "x2", 40)
    fill(explorer, "x1", 100)
    x1, _, x2, _ = shown_settings(explorer)["box"]
    assert x1 == x2 == 100
    fill(explorer, "y1", 50)
    fill(explorer, "y2", 10)
    _, y1, _, y2 = shown_settings(explorer)["box"]
    assert y1 == y2 == 10
    assert_draws_python_geometry(explorer)  # a zero-size box: RoIPool and RoIAlign force one cell


def test_the_mode_shows_one_operator_or_both(explorer):
    for mode, pool, align in (("pool", True, False), ("align", False, True), ("both", True, True)):
        choose(explorer, "mode", mode)
        assert explorer.get_by_test_id("roi-pool-panel").is_visible() == pool
        assert explorer.get_by_test_id("roi-align-panel").is_visible() == align
        assert_draws_python_geometry(explorer)


def test_pointing_at_a_sample_shows_its_bilinear_taps(explorer):
    choose(explorer, "scale", 0.0625)
    fill(explorer, "x1", 20)
    fill(explorer, "y1", 20)
    fill(explorer, "x2", 150)
    fill(explorer, "y2", 100)
    fill(explorer, "output", 2)
    choose(explorer, "sampling", 1)
    align = drawn(explorer)["align"]
    y, x = align[5][1][0], align[6][0][0]  # bin (1, 0)'s one sample
    svg = explorer.get_by_test_id("roi-align-drawing")
    box = svg.bounding_box()
    cell = box["width"] / (data(explorer, "feature-size")[1] + 2)  # one margin cell each side
    svg.hover(position={"x": (x + 0.5 + 1) * cell, "y": (y + 0.5 + 1) * cell})
    taps = data(explorer.get_by_test_id("roi-taps"), "taps")
    assert sum(w for _, _, w in taps) == pytest.approx(1.0)
    assert [(r, c) for r, c, _ in taps] == [(math.floor(y), math.floor(x)), (math.floor(y), math.floor(x) + 1),
                                           (math.floor(y) + 1, math.floor(x)), (math.floor(y) + 1, math.floor(x) + 1)]
    ly, lx = y - math.floor(y), x - math.floor(x)
    assert [w for _, _, w in taps] == pytest.approx([(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx])
    assert "of bin (1, 0)" in explorer.get_by_test_id("roi-sample").inner_text()
