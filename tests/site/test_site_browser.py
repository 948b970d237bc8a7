"""The built book, opened offline in headless Chromium: the explorer widget and the math work.

Serves ``_build/html`` on 127.0.0.1, opens the chapter page (chapter 2 or 3 of ``_toc.yml``)
that embeds :class:`segtutor.viz.widgets.ConvExplorer`, and aborts every request that is not
to that server. The page must still render math (MathJax) and the widget, the widget must
redraw to the size ``segtutor.arithmetic`` gives when a control changes, and the redraw time
per change is printed (target: under 16 ms).

Skips when the site or Chromium is missing, unless ``SEGTUTOR_REQUIRE_SITE=1`` (CI sets it
after building the book): then that is a failure. ``SEGTUTOR_SITE_DIR`` points at another
built site and ``SEGTUTOR_EXPLORER_PAGE`` at another page in it (for developing the widget).
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Iterator

import pytest
from offline_site import (
    SITE,
    OfflinePage,
    assert_controls_suppress_jupyterlab_shortcuts,
    assert_needs_nothing_from_outside,
    assert_text_follows_jupyterlab_theme,
    toc_entries,
    unavailable,
)

from segtutor.viz.widgets import explorer_output_size

pytestmark = pytest.mark.browser

EXPLORER = '[data-testid="conv-explorer"]'
SETTINGS = ("i", "k", "s", "p", "d", "output_padding")


def chapter_pages() -> list[str]:
    """Site paths of the chapters 2 and 3 listed in _toc.yml (where the explorer lives)."""
    if os.environ.get("SEGTUTOR_EXPLORER_PAGE"):
        return [os.environ["SEGTUTOR_EXPLORER_PAGE"]]
    return [f"{entry}.html" for entry in toc_entries() if re.fullmatch(r"book/0[23]_\w+", entry)]


def embeds_explorer(path: str) -> bool:
    """Whether a built page carries a ConvExplorer's widget state (its JavaScript included)."""
    return "conv-explorer" in (SITE / path).read_text()


def checked_pages() -> list[str]:
    """The chapter pages to test; skips or fails (see module docstring) when there are none."""
    pages = chapter_pages()
    if not pages:
        pytest.skip("_toc.yml lists no chapter 2 or 3 (book/02_*, book/03_*) yet")
    missing = [page for page in pages if not (SITE / page).is_file()]
    if missing:
        unavailable(f"the built site lacks {missing}, which _toc.yml lists; rebuild the book")
    return pages


def test_a_chapter_embeds_the_explorer(server):
    pages = checked_pages()
    assert any(embeds_explorer(page) for page in pages), f"no ConvExplorer in {pages}"


@pytest.fixture(scope="module", params=chapter_pages() or ["(none)"])
def chapter(request, browser, server) -> Iterator[OfflinePage]:
    if request.param not in checked_pages():
        pytest.skip(f"{request.param} is not a chapter page")
    if not embeds_explorer(request.param):
        pytest.skip(f"{request.param} embeds no ConvExplorer")
    offline = OfflinePage(browser, server)
    offline.page.goto(server + request.param, wait_until="load")
    offline.page.wait_for_selector(EXPLORER, timeout=30_000)
    offline.path = request.param
    yield offline
    offline.page.close()


@pytest.fixture(scope="module")
def explorer(chapter):
    return chapter.page.locator(EXPLORER).first


def read_settings(explorer) -> dict:
    """The explorer's current settings, read back from its controls."""
    settings = {name: int(explorer.get_by_test_id(f"ce-input-{name}").input_value())
                for name in SETTINGS}
    settings["transposed"] = explorer.get_by_test_id("ce-input-transposed").is_checked()
    return settings


def drawn_output_size(explorer) -> int:
    """Side of the drawn output grid, checked to be a full square of cells."""
    cells = explorer.locator(".ce-output-cell")
    grid = explorer.get_by_test_id("ce-output-grid")
    rows, cols = int(grid.get_attribute("data-rows")), int(grid.get_attribute("data-cols"))
    assert rows == cols and cells.count() == rows * cols
    return rows


def change_control(explorer, name: str, value: int) -> float:
    """Set a slider as a reader would; returns the milliseconds the page took to redraw."""
    return explorer.get_by_test_id(f"ce-input-{name}").evaluate(
        """(input, value) => {
            const started = performance.now();
            input.value = String(value);
            input.dispatchEvent(new Event("input", { bubbles: true }));
            return performance.now() - started;
        }""",
        value,
    )


def test_page_needs_nothing_from_outside_the_site(chapter):
    assert_needs_nothing_from_outside(chapter)


def test_mathjax_rendered_the_math(chapter):
    chapter.page.wait_for_function("document.querySelectorAll('mjx-container').length > 0",
                                   timeout=30_000)
    assert chapter.page.locator("mjx-container").count() > 0
    assert chapter.page.locator("mjx-merror").count() == 0, "MathJax reported a TeX error"


def make_direct(explorer, i: int = 6, k: int = 3, p: int = 1, d: int = 1) -> dict:
    """Set the explorer to a valid direct (not transposed) convolution; returns its settings.

    The chapter may start it anywhere (a transposed setting, say, that is impossible as a
    direct convolution), so the tests that change controls start from a known setting.
    """
    change_control(explorer, "output_padding", 0)
    if read_settings(explorer)["transposed"]:
        explorer.get_by_test_id("ce-input-transposed").uncheck()
    for name, value in (("p", p), ("i", i), ("k", k), ("d", d)):
        change_control(explorer, name, value)
    settings = read_settings(explorer)
    assert explorer.get_by_test_id("ce-error").inner_text() == "", settings
    return settings


def test_every_control_suppresses_jupyterlab_shortcuts(explorer):
    assert_controls_suppress_jupyterlab_shortcuts(explorer, 7)  # 6 sliders, 1 checkbox


def test_grey_text_follows_jupyterlab_theme(explorer, chapter):
    assert_text_follows_jupyterlab_theme(chapter.page, explorer.locator(".ce-legend"))


def test_explorer_draws_its_setting_and_formula(explorer):
    settings = read_settings(explorer)
    size = explorer_output_size(**settings)
    assert drawn_output_size(explorer) == size
    lines = explorer.get_by_test_id("ce-formula").inner_text().splitlines()
    assert any(line.startswith("o = ") and line.endswith(f"= {size}") for line in lines), lines


def test_changing_a_control_redraws_to_the_formula_size(explorer):
    settings = make_direct(explorer)
    timings = []
    for stride in [1, 2, 3, 1, 2, 3, 2, 1] * 3:
        timings.append(change_control(explorer, "s", stride))
        settings["s"] = stride
        assert explorer.get_by_test_id("ce-value-s").inner_text() == str(stride)
        assert drawn_output_size(explorer) == explorer_output_size(**settings), settings
    median, worst = statistics.median(timings), max(timings)
    print(f"\nexplorer redraw per change: median {median:.2f} ms, max {worst:.2f} ms over "
          f"{len(timings)} changes (target < 16 ms)")
    assert median < 200, f"redraw takes {median:.0f} ms per change; something is badly wrong"


def test_transposed_switch_draws_the_transposed_size(explorer):
    make_direct(explorer)
    explorer.get_by_test_id("ce-input-transposed").check()
    settings = read_settings(explorer)
    assert settings["transposed"]
    assert drawn_output_size(explorer) == explorer_output_size(**settings)
    make_direct(explorer)


def test_impossible_setting_shows_the_reason(explorer):
    before = make_direct(explorer)
    for name, value in (("p", 0), ("i", 1), ("k", 3)):
        change_control(explorer, name, value)
    settings = read_settings(explorer)
    with pytest.raises(ValueError) as refused:
        explorer_output_size(**settings)
    assert explorer.get_by_test_id("ce-error").inner_text() == f"Impossible: {refused.value}"
    assert explorer.locator(".ce-output-cell").count() == 0
    for name in ("k", "i", "p"):
        change_control(explorer, name, before[name])
    assert explorer.get_by_test_id("ce-error").inner_text() == ""
    assert drawn_output_size(explorer) == explorer_output_size(**before)


def current_position(explorer, size: int) -> int:
    cell = explorer.locator(".ce-current-cell")
    return int(cell.get_attribute("data-row")) * size + int(cell.get_attribute("data-col"))


def test_step_moves_the_kernel_to_the_next_output_position(explorer):
    settings = read_settings(explorer)
    size = explorer_output_size(**settings)
    before = current_position(explorer, size)
    explorer.get_by_test_id("ce-step").click()
    assert current_position(explorer, size) == (before + 1) % (size * size)
    assert explorer.locator(".ce-footprint rect").count() == settings["k"] ** 2
