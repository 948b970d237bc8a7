"""Tests for the layout of the segtutor.train package: its public names and its imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import segtutor.train as package
import segtutor.utils
from segtutor.train import checkpoints, evaluation, history, loop, schedules

PUBLIC = {
    "History": history,
    "evaluate": evaluation,
    "fit": loop,
    "load_checkpoint": checkpoints,
    "one_cycle_in_time": schedules,
    "predict": evaluation,
    "eval_mode": segtutor.utils,
}
ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("segtutor.models", "segtutor.data", "segtutor.viz")


def test_every_public_name_is_importable_from_segtutor_train():
    assert sorted(package.__all__) == sorted(PUBLIC)
    namespace: dict[str, object] = {}
    exec("from segtutor.train import *", namespace)
    for name, home in PUBLIC.items():
        assert getattr(package, name) is getattr(home, name), name
        assert namespace[name] is getattr(home, name), name


def test_every_module_says_what_it_holds():
    for module in (package, checkpoints, evaluation, history, loop, schedules):
        assert module.__doc__ and len(module.__doc__.strip()) > 80, module.__name__
        assert all(hasattr(module, name) for name in getattr(module, "__all__", ())), module


def test_importing_segtutor_train_leaves_models_data_and_viz_unimported():
    code = ("import sys, segtutor.train\n"
            "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('segtutor'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=120)
    loaded = result.stdout.split()
    assert "segtutor.train.loop" in loaded
    assert not [m for m in loaded if m.startswith(FORBIDDEN)], loaded


def imported_names(node: ast.AST) -> list[str]:
    """The absolute names an import statement of segtutor/train/*.py brings in."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    package_parts = ["segtutor", "train"]
    base = package_parts[:len(package_parts) + 1 - node.level] if node.level else []
    module = ".".join(base + ([node.module] if node.module else []))
    return [module] + [f"{module}.{alias.name}" for alias in node.names]


def test_no_module_of_the_package_imports_models_data_or_viz_even_lazily():
    # __main__.py is the command line, which composes them (tests/project/test_layers.py)
    for path in sorted((ROOT / "segtutor" / "train").glob("*.py")):
        if path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for name in imported_names(node):
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
