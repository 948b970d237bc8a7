"""book/_ext/segtutor_inline_scripts.py: Sphinx 7.4 writes an extension's inline scripts twice
(sphinx-thebe's ``const THEBE_JS_URL``, sphinx-togglebutton's ``var togglebuttonSelector``);
with the extension each is written once. A one-page project is built without and with it."""

from __future__ import annotations

from pathlib import Path

import pytest

sphinx_application = pytest.importorskip("sphinx.application")
pytest.importorskip("sphinx_thebe")
pytest.importorskip("sphinx_togglebutton")



def build(tmp_path: Path, extensions: list[str]) -> str:
    source = tmp_path / "source"
    source.mkdir(parents=True)
    (source / "conf.py").write_text(f"extensions = {extensions!r}\nthebe_config = {{}}\n")
    (source / "index.rst").write_text("Title\n=====\n\nText.\n")
    app = sphinx_application.Sphinx(str(source), str(source), str(tmp_path / "html"),
                                    str(tmp_path / "doctrees"), "html", status=None,
                                    warning=None, freshenv=True)
    app.build()
    return (tmp_path / "html" / "index.html").read_text()


def test_inline_scripts_are_written_once(tmp_path, on_path):
    plain = build(tmp_path / "plain", ["sphinx_thebe", "sphinx_togglebutton"])
    fixed = build(tmp_path / "fixed", ["sphinx_thebe", "sphinx_togglebutton",
                                       "segtutor_inline_scripts"])
    # the bug, on this Sphinx (if a release fixes it, the extension is no longer needed)
    assert plain.count("const THEBE_JS_URL") == 2
    assert plain.count("var togglebuttonSelector") == 2
    for script in ("const THEBE_JS_URL", "var togglebuttonSelector", "let toggleHintShow",
                   "sphinx-thebe.js", "togglebutton.js"):
        assert fixed.count(script) == 1, script
