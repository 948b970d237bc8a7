"""Every chapter's figures are numbered, captioned and described, in the notebooks' metadata.

A figure is a code cell whose ``metadata.mystnb.figure.caption`` myst-nb renders under its
image output, with ``metadata.mystnb.image.alt`` as the image's alt text (without it the
site's alt text is the image's file path). Within chapter ``N`` the captions read
``Figure N.1: ...``, ``Figure N.2: ...`` in the order of the cells, and every caption has alt
text that describes the picture (a sentence, not a file name). The built site's images are
checked in ``tests/site/test_site_figures.py``: there, an image output without a caption or
alt text fails too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
CAPTION = re.compile(r"Figure (\d+)\.(\d+): \S")
#: Alt text shorter than this is a label, not a description.
MIN_ALT = 40


def figures(notebook: Path) -> list[tuple[int, dict]]:
    """``(cell index, mystnb metadata)`` of the cells with a figure caption or alt text."""
    cells = json.loads(notebook.read_text())["cells"]
    return [(index, cell["metadata"]["mystnb"]) for index, cell in enumerate(cells)
            if cell["cell_type"] == "code" and "mystnb" in cell.get("metadata", {})]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda path: path.stem)
def test_figures_are_numbered_captioned_and_described(notebook):
    chapter = int(notebook.name[:2])
    numbers = []
    for index, meta in figures(notebook):
        where = f"{notebook.name} cell {index}"
        caption = meta.get("figure", {}).get("caption", "")
        match = CAPTION.match(caption)
        assert match, f"{where}: the caption must start 'Figure {chapter}.k: ', got {caption[:40]!r}"
        assert int(match[1]) == chapter, f"{where}: {caption[:12]!r} is not numbered in chapter {chapter}"
        numbers.append(int(match[2]))
        alt = meta.get("image", {}).get("alt", "")
        assert len(alt) >= MIN_ALT and not re.search(r"\.(png|svg|jpe?g)\b", alt), (
            f"{where}: the image needs alt text that describes it (a sentence of at least "
            f"{MIN_ALT} characters, not a file name), got {alt!r}")
    assert numbers == list(range(1, len(numbers) + 1)), (
        f"{notebook.name}: figures must be numbered {chapter}.1, {chapter}.2, ... in order, "
        f"got {numbers}")


def test_the_check_reads_every_chapter():
    assert len(CHAPTERS) >= 11 and all(figures(path) for path in CHAPTERS[-3:])
