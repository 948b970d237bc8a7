"""The three widgets' current JavaScript and CSS, rendered in headless Chromium (no built site).

What JupyterLab needs from them, checked in a real browser with the package's own files
(``tests/js/widget_page.py`` renders a widget from its state as anywidget does):

* every ``<input>`` and ``<select>`` carries ``data-lm-suppress-shortcuts``, so that
  JupyterLab's command-mode shortcuts leave the arrow keys to the sliders (the live check is
  ``tests/lab/test_jupyterlab.py``);
* the ring around a corner unit of the receptive-field viewer lies inside its drawing;
* the colours follow JupyterLab's ``--jp-*`` theme variables (read from the installed
  JupyterLab's dark theme) and fall back to the static page's colours without them; every
  text meets WCAG AA's 4.5:1 contrast in both, and the legend's swatches and the drawing's
  lines stay visible (3:1, WCAG 1.4.11) in the dark theme.

Skips when Chromium or Playwright is missing, unless SEGTUTOR_REQUIRE_SITE=1 (then it fails).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from widget_page import (
    MUTED_TEXT,
    TEXT_CONTRAST,
    apply_theme,
    assert_controls_suppress_jupyterlab_shortcuts,
    backdrop,
    chromium,
    contrast,
    jupyterlab_theme_variables,
    over,
    parse_color,
    render_widget,
    ring_extent,
    text_contrasts,
)

from segtutor.arithmetic import Conv, Pool
from segtutor.viz.receptive_widget import ReceptiveFieldViewer
from segtutor.viz.roi_widget import RoIExplorer
from segtutor.viz.widgets import ConvExplorer

pytestmark = pytest.mark.browser

#: WCAG 2.1 AA's least contrast of a graphical object that carries meaning (1.4.11).
GRAPHICS_CONTRAST = 3.0
#: The static page's colours (segtutor.viz.diagrams' palette, the grey of DESIGN.md's text):
#: without JupyterLab's variables the widgets must look as they did before they followed them.
PADDING_LINE = "rgb(0, 43, 54)"  # #002b36
KERNEL_FILL = "rgb(7, 54, 66)"  # #073642
WHITE = "rgb(255, 255, 255)"

WIDGETS = {
    "conv": (lambda: ConvExplorer(i=5, k=3, s=2, p=1), '[data-testid="conv-explorer"]'),
    "receptive": (lambda: ReceptiveFieldViewer([Conv(3, p=1), Pool(2)] * 2, 16, name="test stack"),
                  '[data-testid="receptive-field-viewer"]'),
    "roi": (RoIExplorer, '[data-testid="roi-explorer"]'),
}
#: Per widget: (what, selector, CSS property) of the marks that must stay visible.
MARKS = {
    "conv": [("padding swatch", ".ce-legend .ce-swatch-padding", "stroke"),
             ("kernel swatch", ".ce-legend .ce-swatch-kernel", "fill"),
             ("kernel footprint", ".ce-footprint rect", "fill"),
             ("grid lines", ".ce-grid", "stroke")],
    "receptive": [("padding swatch", ".rf-legend .rf-swatch-padding", "stroke"),
                  ("receptive-field swatch", ".rf-legend .rf-swatch-field", "fill"),
                  ("region outline", ".rf-region-full", "stroke"),
                  ("grid lines", ".rf-input-side .rf-grid", "stroke")],
    "roi": [("exact-box swatch", ".roi-legend .roi-exact-box", "stroke"),
            ("grid lines", ".roi-grid", "stroke")],
}


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def dark_theme() -> dict[str, str]:
    return jupyterlab_theme_variables("theme-dark-extension")


@pytest.fixture(params=list(WIDGETS))
def shown(request, browser):
    """(name, page, root locator) of one widget on its own page."""
    make, selector = WIDGETS[request.param]
    page = render_widget(browser, make())
    yield request.param, page, page.locator(selector)
    assert not page.errors, page.errors
    page.close()


def computed(locator, prop: str) -> str:
    return locator.evaluate("(e, prop) => getComputedStyle(e)[prop]", prop)


def theme_color(page, variable: str) -> str:
    """What the browser makes of a theme variable as a colour (a probe element's colour)."""
    return page.evaluate(
        """(variable) => {
            const probe = document.createElement("span");
            probe.style.color = `var(${variable})`;
            document.body.appendChild(probe);
            const color = getComputedStyle(probe).color;
            probe.remove();
            return color;
        }""",
        variable,
    )


def mark_contrast(locator, prop: str) -> float:
    """Contrast of an SVG mark's fill or stroke (with its opacity) against what lies behind it."""
    item = locator.evaluate(
        """(e, prop) => {
            const style = getComputedStyle(e);
            const opacity = Number(prop === "fill" ? style.fillOpacity : style.strokeOpacity);
            const backgrounds = [];
            for (let n = e; n; n = n.parentElement) backgrounds.push(getComputedStyle(n).backgroundColor);
            return { color: style[prop], opacity, backgrounds };
        }""",
        prop,
    )
    r, g, b, alpha = parse_color(item["color"])
    below = backdrop(item["backgrounds"])
    return contrast(over((r, g, b, alpha * item["opacity"]), below), below)


def assert_text_contrast(root, where: str) -> None:
    found = text_contrasts(root)
    assert len(found) >= 5, f"{where}: only {found} texts found"
    low = [(text, round(ratio, 2)) for text, ratio in found if ratio < TEXT_CONTRAST]
    assert not low, f"{where}: text below WCAG AA's {TEXT_CONTRAST}:1: {low}"


def show_impossible_setting(name: str, page) -> None:
    """The explorer's error message on screen (its contrast is checked too)."""
    if name == "conv":
        page.evaluate("() => { for (const [k, v] of [['p', 0], ['i', 1], ['k', 3]]) window.widgetModel.set(k, v); }")
        assert page.get_by_test_id("ce-error").inner_text().startswith("Impossible: ")


# ----------------------------------------------------------------------- keyboard


def test_every_control_suppresses_jupyterlab_shortcuts(shown):
    name, _, root = shown
    # sliders, menus, checkboxes: conv 6 + 0 + 1, receptive 3 + 2 + 0, roi 7 + 3 + 1
    assert_controls_suppress_jupyterlab_shortcuts(root, {"conv": 7, "receptive": 5, "roi": 11}[name])


# ----------------------------------------------------------------------- the ring


def test_ring_of_every_corner_unit_lies_inside_the_drawing(browser):
    # 160x160 outputs (chapter 4 shows a 160x160 input): cells of 1.5 px, so the unit is ringed
    page = render_widget(browser, ReceptiveFieldViewer([Conv(3, p=1)] * 2, 160, layer=0, name="test stack"))
    svg = page.get_by_test_id("rf-drawing")
    ring = page.locator(".rf-unit-ring")
    rows, cols = (int(page.get_by_test_id("rf-output-grid").get_attribute(f"data-{a}")) for a in ("rows", "cols"))
    assert (rows, cols) == (160, 160)
    assert float(ring.get_attribute("r")) > 0, "no ring drawn around a unit of a 160x160 output"
    frame = svg.bounding_box()
    for unit in [(0, 0), (0, cols - 1), (rows - 1, 0), (rows - 1, cols - 1)]:
        page.evaluate("(unit) => window.widgetModel.set('unit', unit)", list(unit))
        assert (int(float(ring.get_attribute("cy"))), int(float(ring.get_attribute("cx")))) == unit
        left, top, right, bottom = ring_extent(ring)
        where = (unit, (left, top, right, bottom), frame)
        assert frame["x"] <= left and right <= frame["x"] + frame["width"], where
        assert frame["y"] <= top and bottom <= frame["y"] + frame["height"], where
    assert not page.errors, page.errors
    page.close()


# ----------------------------------------------------------------------- the theme


def test_without_jupyterlab_the_static_page_colours_stay(shown):
    name, page, root = shown
    muted = {"conv": ".ce-legend", "receptive": ".rf-legend", "roi": ".roi-legend"}[name]
    assert computed(root.locator(muted), "color") == MUTED_TEXT
    drawing = root.locator("svg[data-testid$='drawing']").first
    assert computed(drawing, "backgroundColor") == WHITE
    if name != "roi":  # the RoI explorer drew its marks in other colours (segtutor.viz.roi) already
        prefix = {"conv": "ce", "receptive": "rf"}[name]
        assert computed(root.locator(f".{prefix}-swatch-padding"), "stroke") == PADDING_LINE
        kernel = ".ce-swatch-kernel" if name == "conv" else ".rf-swatch-field"
        assert computed(root.locator(kernel), "fill") == KERNEL_FILL
    assert_text_contrast(root, f"{name}, no theme")
    show_impossible_setting(name, page)
    assert_text_contrast(root, f"{name}, no theme, an impossible setting")


def test_in_jupyterlab_dark_theme_colours_follow_the_theme_and_keep_contrast(shown, dark_theme):
    name, page, root = shown
    light = {what: (computed(root.locator(selector).first, prop), mark_contrast(root.locator(selector).first, prop))
             for what, selector, prop in MARKS[name]}
    apply_theme(page, dark_theme)
    muted = {"conv": ".ce-legend", "receptive": ".rf-legend", "roi": ".roi-legend"}[name]
    assert computed(root.locator(muted), "color") == theme_color(page, "--jp-ui-font-color2")
    drawing = root.locator("svg[data-testid$='drawing']").first
    assert computed(drawing, "backgroundColor") == theme_color(page, "--jp-layout-color0")
    foreground = theme_color(page, "--jp-ui-font-color1")
    for what, selector, prop in MARKS[name]:
        mark = root.locator(selector).first
        colour, light_ratio = light[what]
        assert computed(mark, prop) == foreground != colour, f"{name}: the {what} ignores the theme"
        # no fainter than on the static page, where that is below WCAG's 3:1 by design (the
        # RoI explorer's grid at 35 % opacity), else at least 3:1
        ratio, needed = mark_contrast(mark, prop), min(GRAPHICS_CONTRAST, light_ratio)
        assert ratio >= needed, f"{name}: the {what} has contrast {ratio:.2f} in the dark theme, {light_ratio:.2f} without"
    assert_text_contrast(root, f"{name}, JupyterLab dark theme")
    show_impossible_setting(name, page)
    assert_text_contrast(root, f"{name}, JupyterLab dark theme, an impossible setting")
