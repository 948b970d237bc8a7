"""show_source in the book: the bare calls are hidden, and the links point at the repository.

A chapter cell that only calls ``show_source(...)`` must carry the myst-nb tag
``remove-input``, so the page shows the captioned source and not the call. The tags are
added by ``python book/tools/tag_source_cells.py book/*.ipynb``. The repository address
that the captions link to lives in the package (``segtutor.viz.source.SOURCE_URL`` and
``SOURCE_BRANCH``; the package never reads the book's config) and must agree with
``_config.yml``'s ``repository`` section.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from segtutor.viz.source import SOURCE_BRANCH, SOURCE_URL

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "book" / "tools" / "tag_source_cells.py"

_spec = importlib.util.spec_from_file_location("tag_source_cells", SCRIPT)
tag_source_cells = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tag_source_cells)


def chapter_notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "book").glob("*.ipynb") if not p.name.startswith("_"))


def code_cell(source: str, **metadata) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": metadata,
            "outputs": [], "source": source.splitlines(keepends=True)}


def test_the_source_links_agree_with_the_book_config():
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert SOURCE_URL == repository["url"].rstrip("/"), (
        "segtutor.viz.source.SOURCE_URL and _config.yml's repository.url differ")
    assert SOURCE_BRANCH == repository.get("branch", "main"), (
        "segtutor.viz.source.SOURCE_BRANCH and _config.yml's repository.branch differ")


@pytest.mark.parametrize("notebook", chapter_notebooks(), ids=lambda p: p.name)
def test_bare_show_source_cells_hide_their_input(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    untagged = tag_source_cells.untagged_source_cells({"cells": cells})
    calls = ["".join(cells[index]["source"]).strip() for index in untagged]
    assert not untagged, (
        f"{notebook.name}: cells {untagged} ({calls}) only call show_source but lack the "
        f"tag 'remove-input'; run: python book/tools/tag_source_cells.py book/*.ipynb")


@pytest.mark.parametrize("source, expected", [
    ("show_source(UNet.forward)", True),
    ("show_source(UNet)\nshow_source(Up, lines=(1, 5))\n", True),
    ("# the decoder block\nshow_source(Up)", True),
    ("viz.show_source(unet)", True),
    ("print(VGG16_CONFIG)\nshow_source(vgg.make_features)", False),
    ("from segtutor.viz import show_source\n\nshow_source(simple.TinyFCN)", False),
    ("code = show_source(UNet)", False),
    ("show_source", False),
    ("%timeit show_source(UNet)", False),
    ("", False),
])
def test_which_cells_count_as_bare_calls(source, expected):
    assert tag_source_cells.is_source_cell(code_cell(source)) is expected
    markdown = {"cell_type": "markdown", "metadata": {}, "source": source}
    assert tag_source_cells.is_source_cell(markdown) is False


def test_tagging_is_idempotent_and_keeps_the_format(tmp_path):
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Über\n"]},
            code_cell("show_source(UNet)"),
            code_cell("show_source(Up)", editable=True, tags=["hide-output"]),
            code_cell("show_source(Down)", tags=["remove-input"]),
            code_cell("x = 1"),
        ],
        "metadata": {"kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "chapter.ipynb"
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert tag_source_cells.tag_file(path) == 2
    text = path.read_text(encoding="utf-8")
    tagged = json.loads(text)
    assert text == json.dumps(tagged, indent=1, ensure_ascii=False) + "\n"
    assert "Über" in text  # not escaped
    tags = [cell["metadata"].get("tags") for cell in tagged["cells"]]
    assert tags == [None, ["remove-input"], ["hide-output", "remove-input"], ["remove-input"],
                    None]
    assert list(tagged["cells"][2]["metadata"]) == ["editable", "tags"]  # still sorted
    assert list(tagged["cells"][1]) == list(notebook["cells"][1])  # key order kept
    before = path.stat().st_mtime_ns
    assert tag_source_cells.tag_file(path) == 0
    assert path.read_text(encoding="utf-8") == text and path.stat().st_mtime_ns == before


def test_the_script_runs_on_the_command_line(tmp_path):
    path = tmp_path / "a.ipynb"
    path.write_text(json.dumps({"cells": [code_cell("show_source(f)")], "metadata": {},
                                "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n")
    run = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True,
                         text=True, check=True)
    assert "tagged 1 cell 'remove-input'" in run.stdout
    assert json.loads(path.read_text())["cells"][0]["metadata"]["tags"] == ["remove-input"]
