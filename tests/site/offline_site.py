"""What the browser tests of the built site share: where the site is, the offline page.

``SEGTUTOR_SITE_DIR`` points at another built site. The tests skip when the site or
Chromium is missing, unless ``SEGTUTOR_REQUIRE_SITE=1`` (CI sets it after building the
book): then :func:`unavailable` fails instead. The ``server`` and ``browser`` fixtures are in
this folder's ``conftest.py``.
"""

from __future__ import annotations

import functools
import os
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
#: Page errors that come with every Jupyter Book 1.0 page and break nothing here: sphinx-thebe
#: writes its `const THEBE_JS_URL` script twice (thebe itself is not used by this book).
KNOWN_HARMLESS_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)
#: matplotlib's ``Animation.to_jshtml()`` styles its buttons' ``<i class="fa">`` icons with a
#: Font Awesome 4.4 stylesheet from a CDN; the build removes that link (the book theme's own
#: ``fontawesome.js`` draws the icons as SVG), so any ``i.fa`` left in a page is an icon not drawn.
UNDRAWN_ICONS = "i.fa"


def unavailable(reason: str) -> None:
    """Skip, or fail when CI requires the site (SEGTUTOR_REQUIRE_SITE=1)."""
    if REQUIRED:
        pytest.fail(f"{reason} (SEGTUTOR_REQUIRE_SITE=1, so this is a failure)")
    pytest.skip(reason)


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
    page loads is missing, and no JavaScript error but the known harmless ones."""
    print(f"\n{offline.page.url}: aborted requests to other hosts: {offline.aborted or 'none'}")
    needed = [(kind, url) for kind, url in offline.aborted if kind in NEEDED_TYPES]
    assert not needed, f"the page needs files from other hosts: {needed}"
    undrawn = offline.page.locator(UNDRAWN_ICONS)
    assert undrawn.count() == 0, f"{undrawn.count()} Font Awesome icons were not drawn"
    broken = [(kind, url) for kind, url in offline.broken if kind in NEEDED_TYPES | {"image"}]
    assert not broken, f"files the page loads are missing from the site: {broken}"
    errors = [error for error in offline.errors if error not in KNOWN_HARMLESS_ERRORS]
    assert not errors, f"JavaScript errors in the page: {errors}"


def toc_entries() -> list[str]:
    """Every file entry of ``_toc.yml`` (chapters and parts), in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [entry["file"] for entry in toc.get("chapters") or []]
    return entries + [entry["file"] for part in toc.get("parts") or [] for entry in part["chapters"]]
