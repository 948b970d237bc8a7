"""The built site's navigation: the chapters numbered 1, 2, ... in the sidebar and in their
page titles (``numbered: true`` in ``_toc.yml``, no number typed into a notebook's title), and
the book's title once in the sidebar (``home_page_in_navbar: false``). Reads the HTML files;
no browser needed."""

from __future__ import annotations

import html
import re

import pytest
import yaml
from offline_site import ROOT, SITE, unavailable

CHAPTERS = next(part["chapters"] for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
                if part["caption"] == "Chapters")
TITLE = yaml.safe_load((ROOT / "_config.yml").read_text())["title"]


def page(entry: str) -> str:
    path = SITE / f"{entry}.html"
    if not path.is_file():
        unavailable(f"no built page at {path}; build the book with the README's build command")
    return path.read_text()


def text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def test_the_chapters_part_is_numbered_and_no_title_types_a_number():
    part = next(part for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
                if part["caption"] == "Chapters")
    assert part.get("numbered") is True
    import json

    for entry in CHAPTERS:
        notebook = json.loads((ROOT / f"{entry['file']}.ipynb").read_text())
        title = notebook["cells"][0]["source"][0]
        assert not re.match(r"# \d", title), f"{entry['file']}: {title!r} types its own number"


@pytest.mark.parametrize("number", range(1, len(CHAPTERS) + 1))
def test_navigation_and_title_carry_the_chapter_number(number):
    entry = CHAPTERS[number - 1]["file"]
    content = page(entry)
    # the document's own heading (the one with a permalink; the theme repeats the bare title)
    headings = [h for h in re.findall(r"<h1[^>]*>(.*?)</h1>", content, re.S) if "headerlink" in h]
    assert len(headings) == 1, headings
    heading = text(headings[0].split('<a class="headerlink"')[0])
    assert heading.startswith(f"{number}. "), heading
    links = [(href, text(label)) for href, label in re.findall(
        r'<a class="[^"]*reference internal[^"]*" href="([^"]+)">(.*?)</a>', content, re.S)]
    # every other chapter, with its own number, in this page's sidebar
    for other, chapter in enumerate(CHAPTERS, start=1):
        if other != number:
            name = chapter["file"].rsplit("/", 1)[-1] + ".html"
            labels = [label for href, label in links if href.split("#")[0].endswith(name)]
            assert labels and all(label.startswith(f"{other}. ") for label in labels), (entry, labels)
    assert not any(label == TITLE for _, label in links)  # the home page is not listed again
    brand = re.findall(r'class="title logo__title">(.*?)<', content)
    assert [text(b) for b in brand] == [TITLE]  # one title, as the sidebar's header
