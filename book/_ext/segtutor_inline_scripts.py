"""Sphinx extension: write each inline script of the page head once.

Sphinx 7.4 (the version Jupyter Book 1 runs on) writes an inline ``<script>`` (one added with
``app.add_js_file(None, body=...)``) twice when an extension adds it after
``Builder.init()``: ``Sphinx.add_js_file`` hands it to the HTML builder at once, under the
file name ``None``, and ``StandaloneHTMLBuilder.prepare_writing`` adds every registered
script again, under the file name ``''`` -- so the two entries do not compare equal and both
are written. On every page of this book that made sphinx-thebe's
``const THEBE_JS_URL = ...`` run twice (a page error: *Identifier 'THEBE_JS_URL' has already
been declared*) and sphinx-togglebutton's ``var togglebuttonSelector`` appear twice.

The fix, at that cause: once the documents are read (``env-updated``, before
``prepare_writing``), the builder's inline scripts are renamed from ``None`` to ``''``, the
name ``prepare_writing`` uses, so that it finds them and adds nothing twice.
``tests/project/test_inline_scripts.py`` builds a one-page project with both extensions,
without and with this one.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _rename_inline_scripts(app: Sphinx, env: Any) -> None:
    scripts = getattr(app.builder, "_js_files", None)
    if not scripts:
        return
    from sphinx.builders.html._assets import _JavaScript

    app.builder._js_files = [
        _JavaScript("", priority=script.priority, **script.attributes)
        if script.filename is None else script
        for script in scripts
    ]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the event handler (Sphinx calls this)."""
    app.connect("env-updated", _rename_inline_scripts)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
