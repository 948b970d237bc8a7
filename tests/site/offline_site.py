"""What the browser tests of the built site share: where the site is, the offline page.

``SEGTUTOR_SITE_DIR`` points at another built site. The tests skip when the site or
Chromium is missing, unless ``SEGTUTOR_REQUIRE_SITE=1`` (CI sets it after building the
book): then :func:`unavailable` fails instead. The ``server`` and ``browser`` fixtures are in
this folder's ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("SEGTUTOR_SITE_DIR", ROOT / "_build" / "html"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
REQUIRED = os.environ.get("SEGTUTOR_REQUIRE_SITE") == "1"
#: Request types a page needs to work; aborting any of them fails the test.
NEEDED_TYPES = {"script", "stylesheet", "font", "xhr", "fetch", "document"}
#: matplotlib's ``Animation.to_jshtml()`` styles its buttons' ``<i class="fa">`` icons with a
#: Font Awesome 4.4 stylesheet from a CDN; the build removes that link (the book theme's own
#: ``fontawesome.js`` draws the icons as SVG), so any ``i.fa`` left in a page is an icon not drawn.
UNDRAWN_ICONS = "i.fa"


def unavailable(reason: str) -> None:
    """Skip, or fail when CI requires the site (SEGTUTOR_REQUIRE_SITE=1)."""
    if REQUIRED:
        pytest.fail(f"{reason} (SEGTUTOR_REQUIRE_SITE=1, so this is a failure)")
    pytest.skip(reason)


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator:
    """Debian's headless Chromium under Playwright (:data:`CHROMIUM_ARGS` plus ``extra_args``),
    closed on exit; skips, or fails as :func:`unavailable` says, when it or Playwright is missing.
    The one launcher of the browser fixtures (tests/site, tests/js, tests/lab)."""
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        unavailable(f"no Chromium at {CHROMIUM}; apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is missing; pip install -r requirements.txt")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


class OfflinePage:
    """A page whose requests to anywhere but the local server are aborted and recorded."""

    def __init__(self, browser, server: str) -> None:
        self.page = browser.new_page(viewport={"width": 1200, "height": 1600})
        self.aborted: list[tuple[str, str]] = []
        self.broken: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.page.route("**/*", functools.partial(self._route, server))
        self.page.on("response", self._response)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _route(self, server: str, route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            self.aborted.append((route.request.resource_type, route.request.url))
            route.abort()

    def _response(self, response) -> None:
        if response.status >= 400:
            self.broken.append((response.request.resource_type, f"{response.status} {response.url}"))


def assert_needs_nothing_from_outside(offline: OfflinePage) -> None:
    """No file the page needs came from another host, every icon was drawn, nothing the
    page loads is missing, and no JavaScript error."""
    print(f"\n{offline.page.url}: aborted requests to other hosts: {offline.aborted or 'none'}")
    needed = [(kind, url) for kind, url in offline.aborted if kind in NEEDED_TYPES]
    assert not needed, f"the page needs files from other hosts: {needed}"
    undrawn = offline.page.locator(UNDRAWN_ICONS)
    assert undrawn.count() == 0, f"{undrawn.count()} Font Awesome icons were not drawn"
    broken = [(kind, url) for kind, url in offline.broken if kind in NEEDED_TYPES | {"image"}]
    assert not broken, f"files the page loads are missing from the site: {broken}"
    # none at all: sphinx-thebe's doubled `const THEBE_JS_URL` (an "already been declared"
    # error on every page) is fixed at its cause by book/_ext/segtutor_inline_scripts.py
    assert not offline.errors, f"JavaScript errors in the page: {offline.errors}"


def toc_entries() -> list[str]:
    """Every file entry of ``_toc.yml`` (chapters and parts), in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [entry["file"] for entry in toc.get("chapters") or []]
    return entries + [entry["file"] for part in toc.get("parts") or [] for entry in part["chapters"]]


def chapter_page(number: int, override: str) -> str:
    """Site path of chapter ``number`` (``book/NN_*`` in ``_toc.yml``), or of the page named by
    the environment variable ``override``. Skips while the TOC lists no such chapter;
    :func:`unavailable` when the built site lacks it."""
    page = os.environ.get(override)
    if not page:
        entry = next((entry for entry in toc_entries()
                      if re.fullmatch(rf"book/{number:02d}_\w+", entry)), None)
        if entry is None:
            pytest.skip(f"_toc.yml lists no chapter {number} (book/{number:02d}_*) yet")
        page = f"{entry}.html"
    if not (SITE / page).is_file():
        unavailable(f"the built site lacks {page}, which _toc.yml lists; rebuild the book")
    return page


def open_widget_page(browser, server: str, page: str, selector: str) -> Iterator[OfflinePage]:
    """For a module fixture: ``page`` opened offline, once ``selector`` (the widget) is drawn;
    closed afterwards. The theme's smooth scrolling is turned off, so that an element found
    before a scroll does not move while the mouse does."""
    offline = OfflinePage(browser, server)
    offline.page.goto(server + page, wait_until="load")
    offline.page.wait_for_selector(selector, timeout=30_000)
    offline.page.add_style_tag(content="html { scroll-behavior: auto !important; }")
    offline.path = page
    yield offline
    offline.page.close()


#: Sphinx's own folders in the built site: the copied sources and the theme's static files.
SPHINX_INTERNALS = ("_sources", "_static")
#: viewcode's highlighted module sources: crawled for links, not opened in the browser.
VIEWCODE_FOLDER = "_modules"
#: What a page with a Sphinx redirect (``index.html`` -> the root page) carries instead of content.
REDIRECT = re.compile(r'<meta\s+http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', re.IGNORECASE)


def site_pages(*, viewcode: bool) -> list[str]:
    """Site paths of every HTML page of the built site, Sphinx's internals left out.

    Args:
        viewcode: whether viewcode's source pages (``_modules/``) are included.

    Returns:
        the sorted paths relative to :data:`SITE`; empty while there is no built site.
    """
    if not isinstance(viewcode, bool):
        raise TypeError(f"viewcode must be a bool, got {type(viewcode).__name__}")
    if not SITE.is_dir():
        return []
    skipped = SPHINX_INTERNALS + (() if viewcode else (VIEWCODE_FOLDER,))
    return sorted(path.relative_to(SITE).as_posix() for path in SITE.rglob("*.html")
                  if path.relative_to(SITE).parts[0] not in skipped)


def redirect_target(page: str) -> str | None:
    """Where a redirect page sends the reader (relative to it), or None for a content page."""
    match = REDIRECT.search((SITE / page).read_text())
    return match.group(1) if match else None


def content_pages() -> list[str]:
    """The pages a reader reads in the browser: every page but viewcode's and redirects."""
    return [page for page in site_pages(viewcode=False) if redirect_target(page) is None]


def assert_controls_suppress_jupyterlab_shortcuts(widget, expected: int) -> None:
    """Each of the widget's ``expected`` inputs and menus carries ``data-lm-suppress-shortcuts``
    (else JupyterLab's command-mode shortcuts take the arrow keys; tests/lab presses them)."""
    controls = widget.locator("input, select, textarea")
    assert controls.count() == expected, f"{controls.count()} controls, expected {expected}"
    missing = [controls.nth(n).get_attribute("data-testid") for n in range(controls.count())
               if controls.nth(n).get_attribute("data-lm-suppress-shortcuts") != "true"]
    assert not missing, f"controls without data-lm-suppress-shortcuts: {missing}"


#: The widgets' grey text on the static page (#586e75), where JupyterLab's variables are absent.
MUTED_TEXT = "rgb(88, 110, 117)"


def assert_text_follows_jupyterlab_theme(page, element) -> None:
    """``element``'s muted text has the static page's colour (:data:`MUTED_TEXT`) and takes
    JupyterLab's ``--jp-ui-font-color2`` once the page defines it."""
    color = "(e) => getComputedStyle(e).color"
    assert element.evaluate(color) == MUTED_TEXT
    page.evaluate("() => document.documentElement.style.setProperty('--jp-ui-font-color2', 'rgb(1, 2, 3)')")
    try:
        assert element.evaluate(color) == "rgb(1, 2, 3)", "the text ignores --jp-ui-font-color2"
    finally:
        page.evaluate("() => document.documentElement.style.removeProperty('--jp-ui-font-color2')")


def ring_extent(ring) -> tuple[float, float, float, float]:
    """Left, top, right, bottom on screen (CSS pixels) of an SVG ``<circle>`` with its stroke:
    centre and radius mapped by the element's screen transform, plus half the stroke width
    (the widgets' strokes do not scale: vector-effect non-scaling-stroke)."""
    return tuple(ring.evaluate(
        """(ring) => {
            const m = ring.getScreenCTM();
            const c = new DOMPoint(ring.cx.baseVal.value, ring.cy.baseVal.value).matrixTransform(m);
            const reach = ring.r.baseVal.value * Math.hypot(m.a, m.b) + parseFloat(getComputedStyle(ring).strokeWidth) / 2;
            return [c.x - reach, c.y - reach, c.x + reach, c.y + reach];
        }"""))
