"""Fixtures of the project tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

#: the book's own Sphinx extensions (book/_ext), which some tests build small projects with
EXTENSIONS = Path(__file__).resolve().parents[2] / "book" / "_ext"


@pytest.fixture
def on_path(monkeypatch) -> Iterator[Path]:
    """``book/_ext`` importable for one test; its modules are forgotten afterwards, so the
    next Sphinx application sets each extension up afresh."""
    monkeypatch.syspath_prepend(str(EXTENSIONS))
    yield EXTENSIONS
    for name, module in list(sys.modules.items()):
        if Path(getattr(module, "__file__", None) or "").parent == EXTENSIONS:
            del sys.modules[name]
