"""book/_ext/segtutor_execution.py: the build records, for each notebook myst-nb executed, its
run time, success and the SHA-256 of its source (the tests check the build's executed copy
with it instead of executing each chapter again). A two-page myst-nb project is built."""

from __future__ import annotations

import hashlib
import json
import time

import nbformat
import pytest

sphinx_application = pytest.importorskip("sphinx.application")
pytest.importorskip("myst_nb")



def test_the_build_records_each_executed_notebook(tmp_path, on_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "conf.py").write_text(
        'extensions = ["myst_nb", "segtutor_execution"]\n'
        'nb_execution_mode = "force"\nnb_execution_raise_on_error = True\n')
    (source / "index.md").write_text("# Index\n\n```{toctree}\nrun\n```\n")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Run"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(0.5)\nprint(6 * 7)"),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, source / "run.ipynb")
    start = time.perf_counter()
    app = sphinx_application.Sphinx(str(source), str(source), str(tmp_path / "_build" / "html"),
                                    str(tmp_path / "doctrees"), "html", status=None,
                                    warning=None, freshenv=True)
    app.build()
    elapsed = time.perf_counter() - start

    records = json.loads((tmp_path / "_build" / "jupyter_execute" / "execution.json").read_text())
    assert set(records) == {"run"}  # the Markdown page is not executed
    record = records["run"]
    assert record["succeeded"] is True and record["error"] is None
    assert record["source"] == "run.ipynb"
    assert record["source_sha256"] == hashlib.sha256((source / "run.ipynb").read_bytes()).hexdigest()
    assert 0.5 <= record["runtime"] <= elapsed  # it slept half a second, inside the build
    copy = nbformat.read(tmp_path / "_build" / "jupyter_execute" / record["executed_copy"],
                         as_version=4)
    assert copy.cells[1].outputs[0].text == "42\n"
