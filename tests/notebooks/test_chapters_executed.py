"""Every chapter of ``_toc.yml`` runs top to bottom without an error, executed once.

The book build executes each chapter (myst-nb, ``execute_notebooks: force``,
``raise_on_error: true``) and keeps the executed copy in ``_build/jupyter_execute/``;
``book/_ext/segtutor_execution.py`` records beside it, in ``execution.json``, each chapter's
run time, whether it succeeded and the SHA-256 of the source it executed. These tests check
that copy instead of executing every chapter a second time under nbval (which doubled the
time of ``.ci/run``):

- the copy was executed from the chapter as committed now (same SHA-256, same cells);
- every non-empty code cell ran, in order, in one kernel (execution counts 1, 2, 3, ...);
- no cell raised (no ``error`` output) and myst-nb reported success.

Without a build (or with a chapter edited since), the test executes the chapter itself with
nbclient, as nbval did, and checks the result the same way; under
``SEGTUTOR_REQUIRE_SITE=1`` (``.ci/run``, after the build) a missing or stale copy is a
failure instead, so CI proves the build's copy. ``python -m pytest --nbval-lax book/X.ipynb``
still runs a single chapter cell by cell. The terminal summary lists each chapter's seconds
(the project's ``conftest.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("SEGTUTOR_SITE_DIR", ROOT / "_build" / "html"))
EXECUTED = SITE.parent / "jupyter_execute"
REQUIRED = os.environ.get("SEGTUTOR_REQUIRE_SITE") == "1"
#: the build's per-cell limit (``_config.yml``'s ``execute: timeout``), used when executing here
TIMEOUT = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["timeout"]


def toc_chapters() -> list[str]:
    """The docnames of ``_toc.yml`` that are notebooks, e.g. ``book/01_what_is_segmentation``."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [entry["file"] for part in toc.get("parts") or []
                             for entry in part["chapters"]]
    return [name for name in files if (ROOT / f"{name}.ipynb").is_file()]


@functools.cache
def build_records() -> dict[str, dict]:
    record = EXECUTED / "execution.json"
    return json.loads(record.read_text()) if record.is_file() else {}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def execute_here(source: Path) -> tuple[nbformat.NotebookNode, float]:
    """Execute ``source`` as the build does (its folder as working directory); raise on error."""
    from nbclient import NotebookClient

    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(notebook, timeout=TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(source.parent)}})
    start = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - start


@functools.cache
def executed(docname: str) -> tuple[nbformat.NotebookNode, float, str]:
    """The executed chapter, its seconds, and who executed it ("the build" or "this test")."""
    source = ROOT / f"{docname}.ipynb"
    record = build_records().get(docname)
    copy = EXECUTED / f"{docname}.ipynb"
    if record and record["source_sha256"] == sha256(source) and copy.is_file():
        assert record["succeeded"], f"the build's execution of {docname} failed: {record['error']}"
        return nbformat.read(copy, as_version=4), float(record["runtime"]), "the build"
    if record is None:
        why = f"the build left no executed copy of {docname} in {EXECUTED}"
    else:
        why = f"{source.name} changed since the build executed it"
    if REQUIRED:
        pytest.fail(f"{why} (SEGTUTOR_REQUIRE_SITE=1: build the book first, then test)")
    notebook, seconds = execute_here(source)
    return notebook, seconds, "this test"


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("docname", toc_chapters())
def test_chapter_runs_top_to_bottom_without_error(docname, record_property):
    notebook, seconds, by = executed(docname)
    record_property("chapter_seconds", seconds)
    record_property("chapter_executed_by", by)
    committed = nbformat.read(ROOT / f"{docname}.ipynb", as_version=4)
    assert [cell.source for cell in notebook.cells] == [cell.source for cell in committed.cells], (
        f"the executed copy of {docname} does not have the committed cells"
    )
    cells = code_cells(notebook)
    counts = [cell.execution_count for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{docname}: not every code cell ran once, in order, in one kernel: {counts}"
    )
    errors = [(index, output.get("ename"), output.get("evalue"))
              for index, cell in enumerate(notebook.cells)
              for output in cell.get("outputs", []) if output.output_type == "error"]
    assert not errors, f"{docname}: cells raised: {errors}"
