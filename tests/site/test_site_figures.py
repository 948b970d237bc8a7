"""The built chapters' figures: every image a code cell outputs has a numbered caption and
alt text that describes it.

Reads the HTML of each chapter page of ``_toc.yml`` in the built site (no browser needed).
An image output of a notebook cell without ``mystnb`` metadata gets its file path as alt
text and no caption; this test fails on it, naming the page and the image. The notebooks'
metadata (numbering, alt text length) is checked in ``tests/project/test_figures.py``.
Skips when the site is not built, unless ``SEGTUTOR_REQUIRE_SITE=1``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from offline_site import SITE, toc_entries, unavailable

CHAPTER_ENTRY = re.compile(r"book/(\d\d)_\w+")


class _Images(HTMLParser):
    """The ``img`` tags inside cell outputs, each with its alt text and the caption of the
    ``figure`` around it (``None`` outside a figure)."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self._output_depth = 0  # > 0 inside a div.cell_output
        self._depth = 0
        self._figure: dict[str, str | None] | None = None
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "div":
            self._depth += 1
            if "cell_output" in classes and not self._output_depth:
                self._output_depth = self._depth
        elif tag == "figure":
            self._figure = {"caption": ""}
        elif tag == "figcaption":
            self._in_caption = True
        elif tag == "img" and self._output_depth and attributes.get("src"):
            # (an img without src is a matplotlib JS animation's frame holder, filled by its script)
            self.images.append({"src": attributes.get("src"), "alt": attributes.get("alt") or "",
                                "figure": self._figure})

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            if self._depth == self._output_depth:
                self._output_depth = 0
            self._depth -= 1
        elif tag == "figure":
            self._figure = None
        elif tag == "figcaption":
            self._in_caption = False

    def handle_data(self, data: str) -> None:
        if self._in_caption and self._figure is not None:
            self._figure["caption"] = (self._figure["caption"] or "") + data


def chapter_pages() -> list[tuple[int, str]]:
    return [(int(match[1]), f"{entry}.html") for entry in toc_entries()
            if (match := CHAPTER_ENTRY.fullmatch(entry))]


@pytest.mark.parametrize(("chapter", "page"), chapter_pages(), ids=lambda value: str(value))
def test_every_image_output_is_a_captioned_described_figure(chapter, page):
    if not (SITE / page).is_file():
        unavailable(f"the built site lacks {page}; build the book first")
    parser = _Images()
    parser.feed((SITE / page).read_text())
    assert parser.images, f"{page} has no image outputs at all: was the site built with outputs?"
    problems = []
    for image in parser.images:
        alt, figure = str(image["alt"]), image["figure"]
        caption = " ".join(str(figure["caption"]).split()) if figure else ""
        caption = re.sub(r"^Fig\. [\d.]+ ", "", caption)  # Sphinx's own number, if numfig is on
        if not re.match(rf"Figure {chapter}\.\d+: ", caption):
            problems.append(f"{image['src']}: no 'Figure {chapter}.k: ' caption "
                            f"({caption[:40]!r})")
        if len(alt) < 40 or alt == image["src"] or re.search(r"\.(png|svg|jpe?g)$", alt):
            problems.append(f"{image['src']}: alt text {alt[:60]!r} does not describe it")
    assert not problems, f"{page}:\n" + "\n".join(problems)
