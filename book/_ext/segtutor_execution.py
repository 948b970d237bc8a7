"""Sphinx extension: record how the build executed each chapter, for the tests.

The build executes every chapter once (myst-nb, ``execute_notebooks: force``) and writes the
executed copy to ``_build/jupyter_execute/<docname>.ipynb``. Executing each chapter a second
time under nbval doubled the time of ``.ci/run``; instead the tests check the build's executed
copies (``tests/notebooks/test_chapters_executed.py``). For that they need to know that a copy
was executed from the chapter as it is now, how long it took and whether it succeeded.

At ``build-finished`` this writes ``_build/jupyter_execute/execution.json``: for every
document that myst-nb executed, its ``ExecutionResult`` (``runtime`` in seconds,
``succeeded``, ``error``, ``method``, ``mtime``) and the SHA-256 of the source file that was
executed, so a test can tell a current copy from a stale one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

#: The file written next to myst-nb's executed notebooks.
RECORD_NAME = "execution.json"


def execution_records(app: Sphinx) -> dict[str, dict[str, Any]]:
    """Each executed document's myst-nb execution result plus its source's SHA-256."""
    from myst_nb.sphinx_ import NbMetadataCollector

    records: dict[str, dict[str, Any]] = {}
    for docname in sorted(app.env.found_docs):
        result = NbMetadataCollector.get_exec_data(app.env, docname)
        if not result:
            continue
        source = Path(app.env.doc2path(docname))
        records[docname] = {
            "source": source.relative_to(app.srcdir).as_posix(),
            "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
            "executed_copy": f"{docname}.ipynb",
            **{key: result.get(key) for key in ("method", "runtime", "succeeded", "error", "mtime")},
        }
    return records


def _write_records(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    folder = Path(app.outdir).parent / "jupyter_execute"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD_NAME).write_text(json.dumps(execution_records(app), indent=1) + "\n")


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the event handler (Sphinx calls this)."""
    app.connect("build-finished", _write_records)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
