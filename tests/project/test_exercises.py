"""Every chapter ends with exercises and their worked solutions: a numbered list under
"## Exercises", then "### Solutions" with one collapsed dropdown per exercise
(``:::{dropdown} Solution N``, sphinx-design, closed unless ``:open:``), in order. A solution's
code is an ordinary code cell (tagged ``hide-input``: folded on the page, executed with the
rest of the chapter, so it cannot rot); none may be removed from the page or skipped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted(p for p in (ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
DROPDOWN = re.compile(r"^:::\{dropdown\} Solution (\d+)\s*$", re.M)


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def text(cell: dict) -> str:
    return "".join(cell["source"])


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_exercise_has_a_collapsed_worked_solution(chapter):
    markdown = "\n".join(text(c) for c in cells(chapter) if c["cell_type"] == "markdown")
    assert markdown.count("## Exercises") == 1 and markdown.count("### Solutions") == 1
    exercises_part, solutions_part = markdown.split("## Exercises", 1)[1].split("### Solutions", 1)
    solutions_part = solutions_part.split("## References", 1)[0]
    exercises = [int(n) for n in re.findall(r"^(\d+)\. ", exercises_part, re.M)]
    assert exercises == list(range(1, len(exercises) + 1)) and len(exercises) >= 3, exercises
    solutions = [int(n) for n in DROPDOWN.findall(solutions_part)]
    assert solutions == exercises, f"exercises {exercises}, solutions {solutions}"
    for block in DROPDOWN.split(solutions_part)[2::2]:
        body = block.strip()
        assert ":open:" not in body.split("\n", 1)[0], "solutions start collapsed"
        assert body.endswith(":::"), "each dropdown is closed with ::: before the next begins"
        assert len(body.split()) >= 25, f"a solution of a few words is not worked: {body[:80]!r}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_solution_code_is_folded_and_executed(chapter):
    all_cells = cells(chapter)
    start = next(i for i, c in enumerate(all_cells) if "### Solutions" in text(c)
                 or "## Exercises" in text(c))
    for cell in all_cells[start:]:
        if cell["cell_type"] != "code" or "chapter executed in" in text(cell):
            continue
        tags = cell["metadata"].get("tags", [])
        assert "hide-input" in tags, f"solution code must be folded (hide-input): {text(cell)[:60]!r}"
        assert not {"remove-cell", "remove-input", "skip-execution", "raises-exception"} & set(tags)
