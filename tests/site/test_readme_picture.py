"""The README's picture of the convolution explorer, taken from the built site.

Opens chapter 2's page (``book/02_*`` in ``_toc.yml``; ``SEGTUTOR_EXPLORER_PAGE`` names
another) offline in headless Chromium and takes a screenshot of its ConvExplorer widget,
written every run to ``_build/readme/conv_explorer.png``. With
``SEGTUTOR_UPDATE_README_PICTURE=1`` it is also written to the committed
``book/images/readme/conv_explorer.png``, which the README shows. Regenerate it with::

    SEGTUTOR_UPDATE_README_PICTURE=1 SEGTUTOR_REQUIRE_SITE=1 python -m pytest tests/site/test_readme_picture.py

The committed picture is checked on every run (no site needed): a PNG that Pillow reads, of
a width that fits the README, not blank.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from offline_site import ROOT, OfflinePage, assert_needs_nothing_from_outside, chapter_page
from PIL import Image

EXPLORER = '[data-testid="conv-explorer"]'
#: Written by every run of the browser test.
BUILT_PICTURE = ROOT / "_build" / "readme" / "conv_explorer.png"
#: The README's copy, written only when :data:`UPDATE` is set.
COMMITTED_PICTURE = ROOT / "book" / "images" / "readme" / "conv_explorer.png"
UPDATE = os.environ.get("SEGTUTOR_UPDATE_README_PICTURE") == "1"
#: Widths (pixels) a README picture may have: readable, and not wider than GitHub's column.
WIDTHS = range(500, 1601)
#: A picture whose pixels vary less than this (standard deviation of 0-255 grey) is blank.
MIN_GREY_STD = 10.0
#: ... or that has fewer distinct colours than this.
MIN_COLOURS = 8


def picture_problems(path: Path) -> list[str]:
    """Why the PNG at ``path`` is no fit picture for the README (empty list: it is)."""
    if not path.is_file():
        return [f"{path} does not exist"]
    with Image.open(path) as image:
        if image.format != "PNG":
            return [f"{path} is a {image.format}, not a PNG"]
        image.load()
        pixels = np.asarray(image.convert("RGB"))
    problems = []
    if pixels.shape[1] not in WIDTHS:
        problems.append(f"width {pixels.shape[1]} px is outside {WIDTHS.start}-{WIDTHS.stop - 1}")
    grey = pixels.mean(axis=2)
    if grey.std() < MIN_GREY_STD:
        problems.append(f"blank: grey levels vary by {grey.std():.1f} (< {MIN_GREY_STD})")
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    if colours < MIN_COLOURS:
        problems.append(f"blank: {colours} distinct colours (< {MIN_COLOURS})")
    return problems


@pytest.mark.browser
def test_screenshot_of_the_explorer_from_the_built_site(browser, server):
    page = chapter_page(2, "SEGTUTOR_EXPLORER_PAGE")
    offline = OfflinePage(browser, server)
    try:
        offline.page.goto(server + page, wait_until="load")
        explorer = offline.page.locator(EXPLORER).first
        explorer.wait_for(timeout=30_000)
        offline.page.evaluate("async () => { if (window.MathJax && MathJax.startup) "
                              "await MathJax.startup.promise; }")
        explorer.scroll_into_view_if_needed()
        BUILT_PICTURE.parent.mkdir(parents=True, exist_ok=True)
        explorer.screenshot(path=str(BUILT_PICTURE), animations="disabled")
        assert_needs_nothing_from_outside(offline)
    finally:
        offline.page.close()
    assert not picture_problems(BUILT_PICTURE), picture_problems(BUILT_PICTURE)
    print(f"\nwrote {BUILT_PICTURE} ({Image.open(BUILT_PICTURE).size[0]} px wide)")
    if UPDATE:
        COMMITTED_PICTURE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BUILT_PICTURE, COMMITTED_PICTURE)
        print(f"updated {COMMITTED_PICTURE}")


def test_the_committed_picture_is_a_png_of_the_explorer_that_fits_the_readme():
    problems = picture_problems(COMMITTED_PICTURE)
    assert not problems, (f"{problems}; regenerate it with SEGTUTOR_UPDATE_README_PICTURE=1 "
                          "python -m pytest tests/site/test_readme_picture.py")


def test_a_blank_or_too_wide_picture_is_refused(tmp_path):
    blank, wide = tmp_path / "blank.png", tmp_path / "wide.png"
    Image.new("RGB", (800, 400), "white").save(blank)
    noise = np.random.default_rng(0).integers(0, 256, (100, 2000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(wide)
    Image.fromarray(noise[:, :800]).save(tmp_path / "fine.png")
    assert any(problem.startswith("blank") for problem in picture_problems(blank))
    assert picture_problems(wide) == ["width 2000 px is outside 500-1600"]
    assert picture_problems(tmp_path / "fine.png") == []
    assert picture_problems(tmp_path / "missing.png") == [f"{tmp_path / 'missing.png'} does not exist"]
