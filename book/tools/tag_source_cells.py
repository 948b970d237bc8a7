"""Tag the cells that only call ``show_source(...)`` with ``remove-input``.

Such a cell exists to show the package's source: the book should show that source (the
cell's output, captioned with the file and lines) and not the call itself. myst-nb hides a
cell's input when its metadata has ``"tags": ["remove-input"]``.

    python book/tools/tag_source_cells.py book/*.ipynb

Idempotent: a notebook whose cells are tagged already is left as it is (not even
rewritten); otherwise it is written back as it was read (``json.dump(nb, f, indent=1,
ensure_ascii=False)`` plus a newline, the key order kept), with the tag added.
``tests/project/test_source_cells.py`` fails while a chapter has such a cell untagged.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

TAG = "remove-input"


def is_source_cell(cell: dict[str, Any]) -> bool:
    """A code cell whose statements are all ``show_source(...)`` calls (comments aside)."""
    if cell.get("cell_type") != "code":
        return False
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    try:
        statements = ast.parse(source).body
    except SyntaxError:  # IPython magics, shell escapes
        return False
    return bool(statements) and all(
        isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
        and _called_name(statement.value.func) == "show_source" for statement in statements)


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):  # viz.show_source(...)
        return func.attr
    return None


def untagged_source_cells(notebook: dict[str, Any]) -> list[int]:
    """Indices of the cells that :func:`is_source_cell` finds and that lack the tag."""
    return [index for index, cell in enumerate(notebook.get("cells", []))
            if is_source_cell(cell) and TAG not in cell.get("metadata", {}).get("tags", [])]


def tag_notebook(notebook: dict[str, Any]) -> int:
    """Add the tag to every untagged source cell, in place; return how many were tagged."""
    indices = untagged_source_cells(notebook)
    for index in indices:
        cell = notebook["cells"][index]
        metadata = cell.setdefault("metadata", {})
        was_sorted = list(metadata) == sorted(metadata)
        metadata["tags"] = [*metadata.get("tags", []), TAG]
        if was_sorted:  # as nbformat writes it
            cell["metadata"] = dict(sorted(metadata.items()))
    return len(indices)


def tag_file(path: Path) -> int:
    """Tag one notebook file; rewrite it only when something changed."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    tagged = tag_notebook(notebook)
    if tagged:
        with path.open("w", encoding="utf-8") as file:
            json.dump(notebook, file, indent=1, ensure_ascii=False)
            file.write("\n")
    return tagged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="the .ipynb files to tag")
    for path in parser.parse_args(argv).notebooks:
        tagged = tag_file(path)
        print(f"{path}: tagged {tagged} cell{'s' * (tagged != 1)} {TAG!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
