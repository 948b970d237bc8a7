"""The book and the benchmarks use the package's current import paths only.

Old paths keep working for one release (``segtutor/_deprecated.py``), with a
``DeprecationWarning`` a reader would see in a chapter's output; this test finds them in
the source before anyone runs it. The list is read from the shims themselves, so a new shim
is covered as soon as it exists.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def moved_modules() -> list[str]:
    """``segtutor.X`` for every top-level module that calls ``warn_module_moved``."""
    return sorted(f"segtutor.{path.stem}" for path in (ROOT / "segtutor").glob("*.py")
                  if "warn_module_moved(" in path.read_text() and path.stem != "_deprecated")


def moved_names() -> dict[str, set[str]]:
    """Module -> names served by a ``moved_names(__name__, {...})`` ``__getattr__``."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "segtutor").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "moved_names"
                    and len(node.args) == 2 and isinstance(node.args[1], ast.Dict)):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found[module] = {key.value for key in node.args[1].keys}
    return found


def renamed_keywords() -> list[str]:
    return re.findall(r'@renamed_keyword\("(\w+)"',
                      "\n".join(p.read_text() for p in (ROOT / "segtutor").rglob("*.py")))


def sources() -> list[tuple[str, str]]:
    """``(where, code)`` for every notebook code cell and every benchmark script."""
    found = []
    for notebook in sorted((ROOT / "book").glob("*.ipynb")):
        for index, cell in enumerate(json.loads(notebook.read_text())["cells"]):
            if cell["cell_type"] == "code":
                found.append((f"{notebook.name} cell {index}", "".join(cell["source"])))
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        found.append((script.name, script.read_text()))
    return found


def test_the_shims_are_found():
    assert "segtutor.tiling" in moved_modules()
    assert "show_source" in moved_names()["segtutor.utils"]
    assert "backbone_weights" in renamed_keywords()


@pytest.mark.parametrize("where, code", sources(), ids=[w for w, _ in sources()])
def test_uses_current_paths(where, code):
    for module in moved_modules():
        assert not re.search(rf"\b{re.escape(module)}\b", code), f"{where} uses {module}"
    for module, names in moved_names().items():
        for name in names:
            pattern = rf"from {re.escape(module)} import [^\n]*\b{name}\b|{re.escape(module)}\.{name}\b"
            assert not re.search(pattern, code), f"{where} uses {module}.{name}"
    for keyword in renamed_keywords():
        assert not re.search(rf"\b{keyword}\s*=", code), f"{where} passes {keyword}="
