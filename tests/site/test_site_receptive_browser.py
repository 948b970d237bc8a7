"""The built chapter 4, opened offline in headless Chromium: the receptive-field viewer works.

Serves ``_build/html`` on 127.0.0.1, opens the chapter 4 page of ``_toc.yml`` (which embeds
:class:`segtutor.viz.receptive_widget.ReceptiveFieldViewer`) and aborts every request that is
not to that server. Hovering over, clicking or choosing an output cell must highlight exactly
the input region that :func:`segtutor.arithmetic.receptive_field` computes for that unit (the
full region and its part on the input), and print the layer's r, S and P, for the chapter's
own stack and for every preset, layer and input size. The redraw time per hover is printed
(target: under 16 ms).

The server and the browser come from this folder's ``conftest.py``, the offline page from
``offline_site.py``, and so do the rules: skips when the site or Chromium is missing, unless ``SEGTUTOR_REQUIRE_SITE=1``
(then that is a failure); ``SEGTUTOR_SITE_DIR`` points at another built site and
``SEGTUTOR_RECEPTIVE_PAGE`` at another page in it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator

import pytest
from offline_site import (
    SITE,
    OfflinePage,
    assert_controls_suppress_jupyterlab_shortcuts,
    assert_needs_nothing_from_outside,
    assert_text_follows_jupyterlab_theme,
    chapter_page,
    open_widget_page,
    ring_extent,
)

from segtutor import arithmetic
from segtutor.viz.receptive_widget import PRESETS, layer_dicts, layers_from_dicts

pytestmark = pytest.mark.browser

VIEWER = '[data-testid="receptive-field-viewer"]'


def checked_page() -> str:
    return chapter_page(4, "SEGTUTOR_RECEPTIVE_PAGE")


def test_chapter_4_embeds_the_viewer(server):
    page = checked_page()
    assert "receptive-field-viewer" in (SITE / page).read_text(), f"no ReceptiveFieldViewer in {page}"


@pytest.fixture(scope="module")
def chapter(browser, server) -> Iterator[OfflinePage]:
    yield from open_widget_page(browser, server, checked_page(), VIEWER)


@pytest.fixture(scope="module")
def viewer(chapter):
    return chapter.page.locator(VIEWER).first


# ----------------------------------------------------------------------- reading the page


def shown_field(viewer) -> arithmetic.LayerField:
    """Python's receptive field of the layer the page shows, for the stack the page shows."""
    layers = layers_from_dicts(json.loads(viewer.get_attribute("data-stack")))
    size = int(viewer.get_by_test_id("rf-input").input_value())
    layer = int(viewer.get_by_test_id("rf-layer").input_value())
    return arithmetic.receptive_field(layers, size).layers[layer]


def drawn_unit(viewer) -> tuple[int, int]:
    unit = viewer.get_by_test_id("rf-unit")
    return int(unit.get_attribute("data-row")), int(unit.get_attribute("data-col"))


def drawn_regions(viewer):
    """The highlighted region as drawn: the whole of it, and the filled part on the input
    (``None`` when hidden), both ``((first_row, last_row), (first_col, last_col))``."""
    full = viewer.get_by_test_id("rf-region-full")
    whole = tuple((int(full.get_attribute(f"data-first-{axis}")), int(full.get_attribute(f"data-last-{axis}")))
                  for axis in ("row", "col"))
    shown = viewer.get_by_test_id("rf-region")
    if not shown.is_visible():
        return whole, None
    x, y, width, height = (int(float(shown.get_attribute(a))) for a in ("x", "y", "width", "height"))
    return whole, ((y, y + height - 1), (x, x + width - 1))


def on_the_input(region, size: int):
    clipped = tuple((max(first, 0), min(last, size - 1)) for first, last in region)
    return clipped if all(first <= last for first, last in clipped) else None


def pair_text(pair: tuple) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}×{pair[1]}"


def assert_shows_python_region(viewer, unit: tuple[int, int]) -> None:
    """The page highlights unit's region, as Python computes it, and prints r, S, P."""
    field = shown_field(viewer)
    size = int(viewer.get_by_test_id("rf-input").input_value())
    assert drawn_unit(viewer) == unit
    region = field.region(*unit)
    assert drawn_regions(viewer) == (region, on_the_input(region, size)), (field, unit)
    for name, value in (("r", field.size), ("S", field.stride), ("P", field.padding)):
        assert viewer.get_by_test_id(f"rf-{name}").inner_text() == pair_text(value), (name, field)
    readout = viewer.get_by_test_id("rf-readout").inner_text()
    assert f"unit ({unit[0]}, {unit[1]})" in readout, readout


def output_grid(viewer) -> tuple[int, int]:
    grid = viewer.get_by_test_id("rf-output-grid")
    return int(grid.get_attribute("data-rows")), int(grid.get_attribute("data-cols"))


def point_at(viewer, unit: tuple[int, int]) -> dict:
    """The position of an output cell's centre within the output grid, in CSS pixels."""
    box = viewer.get_by_test_id("rf-output-grid").bounding_box()
    rows, cols = output_grid(viewer)
    return {"x": (unit[1] + 0.5) * box["width"] / cols, "y": (unit[0] + 0.5) * box["height"] / rows}


def hover(viewer, unit: tuple[int, int]) -> float:
    """Move the mouse over an output cell; returns the page's redraw time in ms."""
    viewer.get_by_test_id("rf-output-grid").hover(position=point_at(viewer, unit))
    return float(viewer.get_attribute("data-redraw-ms"))


def choose(viewer, name: str, value: int | str) -> None:
    """Set a control as a reader would: pick from a menu, or drag a slider."""
    control = viewer.get_by_test_id(f"rf-{name}")
    if name in ("preset", "layer"):
        control.select_option(str(value))
    else:
        control.fill(str(value))


def corner_and_centre_units(viewer) -> list[tuple[int, int]]:
    rows, cols = output_grid(viewer)
    return sorted({(0, 0), (rows - 1, cols - 1), (0, cols - 1), (rows // 2, cols // 2)})


# ----------------------------------------------------------------------- the tests


def test_page_needs_nothing_from_outside_the_site(chapter):
    assert_needs_nothing_from_outside(chapter)


def test_every_control_suppresses_jupyterlab_shortcuts(viewer):
    assert_controls_suppress_jupyterlab_shortcuts(viewer, 5)  # 2 menus, 3 sliders


def test_grey_text_follows_jupyterlab_theme(viewer, chapter):
    assert_text_follows_jupyterlab_theme(chapter.page, viewer.locator(".rf-legend"))


def test_ring_of_every_corner_unit_lies_inside_the_drawing(viewer):
    # the chapter's own stack (the menu's first entry) at its last layer: a 160x160 output,
    # whose cells are too small to see, so the chosen one is ringed
    choose(viewer, "preset", viewer.get_by_test_id("rf-preset").locator("option").first.get_attribute("value"))
    layers = len(json.loads(viewer.get_attribute("data-stack")))
    choose(viewer, "layer", layers - 1)
    assert float(viewer.locator(".rf-unit-ring").get_attribute("r")) > 0, "no ring at this size"
    rows, cols = output_grid(viewer)
    for unit in [(0, 0), (0, cols - 1), (rows - 1, 0), (rows - 1, cols - 1)]:
        choose(viewer, "row", unit[0])
        choose(viewer, "col", unit[1])
        assert_shows_python_region(viewer, unit)
        frame = viewer.get_by_test_id("rf-drawing").bounding_box()  # after any scrolling
        left, top, right, bottom = ring_extent(viewer.locator(".rf-unit-ring"))
        assert frame["x"] <= left and right <= frame["x"] + frame["width"], (unit, left, right, frame)
        assert frame["y"] <= top and bottom <= frame["y"] + frame["height"], (unit, top, bottom, frame)


def test_viewer_draws_its_starting_unit(viewer):
    assert output_grid(viewer) == shown_field(viewer).output_size
    assert_shows_python_region(viewer, drawn_unit(viewer))


def test_hovering_an_output_cell_highlights_the_region_python_computes(viewer):
    timings = []
    layers = len(json.loads(viewer.get_attribute("data-stack")))
    for layer in sorted({0, layers // 2, layers - 1}):
        choose(viewer, "layer", layer)
        for unit in corner_and_centre_units(viewer):
            timings.append(hover(viewer, unit))
            assert_shows_python_region(viewer, unit)
    median, worst = statistics.median(timings), max(timings)
    print(f"\nreceptive-field viewer redraw per hover: median {median:.2f} ms, max {worst:.2f} ms "
          f"over {len(timings)} hovers (target < 16 ms)")
    assert median < 200, f"redraw takes {median:.0f} ms per hover; something is badly wrong"


def test_clicking_a_cell_keeps_it_chosen(viewer, chapter):
    rows, cols = output_grid(viewer)
    unit = (rows - 1, cols // 3)
    viewer.get_by_test_id("rf-output-grid").click(position=point_at(viewer, unit))
    chapter.page.mouse.move(0, 0)  # leave the grid: the chosen cell stays
    assert (int(viewer.get_by_test_id("rf-row").input_value()),
            int(viewer.get_by_test_id("rf-col").input_value())) == unit
    assert_shows_python_region(viewer, unit)


def test_every_preset_and_layer_shows_the_region_python_computes(viewer):
    timings = []
    for name, preset in PRESETS.items():
        choose(viewer, "preset", name)
        timings.append(float(viewer.get_attribute("data-redraw-ms")))
        assert json.loads(viewer.get_attribute("data-stack")) == layer_dicts(preset.layers), name
        assert int(viewer.get_by_test_id("rf-input").input_value()) == preset.input_size
        for layer in range(len(preset.layers)):
            choose(viewer, "layer", layer)
            timings.append(float(viewer.get_attribute("data-redraw-ms")))
            assert output_grid(viewer) == shown_field(viewer).output_size, (name, layer)
            for unit in corner_and_centre_units(viewer):
                choose(viewer, "row", unit[0])
                choose(viewer, "col", unit[1])
                assert_shows_python_region(viewer, unit)
    print(f"\nreceptive-field viewer redraw per preset or layer change: median "
          f"{statistics.median(timings):.2f} ms, max {max(timings):.2f} ms over {len(timings)} changes")


def test_input_size_slider_starts_at_the_smallest_input_python_accepts(viewer):
    choose(viewer, "preset", "VGG16 conv1-pool3")
    layers = layers_from_dicts(json.loads(viewer.get_attribute("data-stack")))
    smallest = int(viewer.get_by_test_id("rf-input").get_attribute("min"))
    with pytest.raises(ValueError, match="does not fit its input"):
        arithmetic.receptive_field(layers, smallest - 1)
    for size in (smallest, smallest + 5):
        choose(viewer, "input", size)
        field = shown_field(viewer)
        assert output_grid(viewer) == field.output_size == arithmetic.receptive_field(layers, size).overall.output_size
        assert_shows_python_region(viewer, tuple(s // 2 for s in field.output_size))
