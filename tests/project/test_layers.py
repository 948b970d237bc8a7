"""The package's layer rules, and that it declares every library it imports.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import
cannot slip past. The rules are those of ``CONTRIBUTING.md``:

* ``arithmetic``, ``ops``, ``losses`` and ``bench`` import only torch; ``metrics`` also
  numpy, pycocotools (COCO's evaluator), scikit-image and scipy (ISBI 2012's Rand and VI
  scores);
* ``models`` may import ``ops``, ``arithmetic``, ``utils`` and torchvision, never ``train``,
  ``viz`` or ``data``;
* ``data`` imports no model, no training loop and no pictures;
* ``train`` knows models only as ``nn.Module``: it never imports ``models``, ``data`` or
  ``viz`` (``python -m segtutor.train``, its ``__main__``, is the one place besides
  ``recipes`` that composes models, data and the loop, and it also plots the history);
* ``viz`` may import ``arithmetic``, never ``models``, ``data`` or ``train``;
* the package never imports the book.

Every module may import the private helpers ``_checks`` and ``_deprecated``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "segtutor"

#: layer -> (segtutor layers it may import, third-party libraries it may import).
RULES: dict[str, tuple[set[str], set[str]]] = {
    "_checks": (set(), {"torch"}),
    "_deprecated": (set(), set()),
    "arithmetic": (set(), {"torch"}),
    "ops": (set(), {"torch"}),
    "metrics": (set(), {"torch", "numpy", "pycocotools", "skimage", "scipy"}),
    "losses": (set(), {"torch"}),
    "bench": (set(), {"torch"}),
    "utils": (set(), {"torch", "numpy"}),
    "models": ({"ops", "arithmetic", "utils"}, {"torch", "torchvision"}),
    "data": ({"utils"}, {"torch", "torchvision", "numpy", "PIL", "tqdm", "scipy"}),
    "train": ({"losses", "metrics", "utils"}, {"torch", "numpy", "tqdm"}),
    "viz": ({"arithmetic"}, {"torch", "numpy", "matplotlib", "anywidget", "traitlets",
                             "IPython"}),
    "recipes": ({"arithmetic", "bench", "data", "losses", "metrics", "models", "ops", "train",
                 "utils"},
                {"torch", "torchvision"}),
}
#: Old import paths kept for one release (each re-exports its new home and warns).
SHIMS = {"tiling": "ops", "boundary": "metrics", "weightmap": "data"}
#: The entry point that composes models, data and the training loop: the recipes' rules,
#: and it draws the history's plot (``viz``, matplotlib).
COMPOSERS = {"segtutor/train/__main__.py": "recipes"}
COMPOSER_EXTRAS = ({"viz"}, {"matplotlib"})
ALWAYS = {"_checks", "_deprecated", ""}  # "" is segtutor/__init__.py


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # "from . import simple" imports a submodule: count it as such
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return "" if parts == ("__init__",) else parts[0]


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def segtutor_layers(names: set[str]) -> set[str]:
    layers = set()
    for name in names:
        if name == "segtutor":
            layers.add("")
        elif name.startswith("segtutor."):
            layers.add(name.split(".")[1])
    return layers


def third_party(names: set[str]) -> set[str]:
    tops = {name.split(".")[0] for name in names if name}
    return {top for top in tops if top != "segtutor" and top not in sys.stdlib_module_names
            and top != "__future__"}


def test_every_package_file_belongs_to_a_layer():
    for path in package_files():
        layer = layer_of(path)
        assert layer in RULES or layer in SHIMS or layer in ALWAYS, (
            f"{path.relative_to(ROOT)} is in no layer; add it to CONTRIBUTING.md's layout and "
            f"to RULES here")


@pytest.mark.parametrize("path", package_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layer_rules(path):
    layer = layer_of(path)
    names = {n for n in imports_of(path) if n != "segtutor." + layer}
    inside = segtutor_layers(names) - {layer} - ALWAYS
    relative = str(path.relative_to(ROOT))
    if relative in COMPOSERS:
        allowed_layers, allowed_libraries = RULES[COMPOSERS[relative]]
        allowed_layers = allowed_layers | COMPOSER_EXTRAS[0]
        allowed_libraries = allowed_libraries | COMPOSER_EXTRAS[1]
    elif layer in SHIMS:
        allowed_layers, allowed_libraries = {SHIMS[layer]}, set()
    elif layer == "":
        allowed_layers, allowed_libraries = set(), set()
    else:
        allowed_layers, allowed_libraries = RULES[layer]
    assert inside <= allowed_layers, (
        f"{relative} ({layer or 'segtutor'}) imports segtutor.{sorted(inside - allowed_layers)}; "
        f"the layer rules allow {sorted(allowed_layers) or 'no other layer'}")
    libraries = third_party(names)
    assert libraries <= allowed_libraries, (
        f"{relative} imports {sorted(libraries - allowed_libraries)}; {layer} may import "
        f"{sorted(allowed_libraries) or 'only the standard library'}")
    assert not any(re.match(r"(book|tests|benchmarks)\b", n) for n in names), (
        f"{relative} imports the book, the tests or the benchmarks")


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        names.add(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_every_third_party_import_is_declared_in_pyproject():
    distributions = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    missing = {}
    for path in package_files():
        for library in third_party(imports_of(path)):
            owners = {d.lower().replace("_", "-") for d in distributions.get(library, [library])}
            if not owners & declared:
                missing.setdefault(library, []).append(str(path.relative_to(ROOT)))
    assert not missing, (f"imported but not declared in pyproject.toml's dependencies: {missing} "
                         f"(declared: {sorted(declared)})")


def test_the_rules_would_catch_a_violation(tmp_path):
    """The checker itself: a models file importing train and a CRF importing numpy fail."""
    bad = tmp_path / "segtutor" / "models" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..train import fit\nimport numpy\n")
    global ROOT, PACKAGE
    saved = ROOT, PACKAGE
    ROOT, PACKAGE = tmp_path, tmp_path / "segtutor"
    try:
        assert segtutor_layers(imports_of(bad)) == {"train"}
        assert third_party(imports_of(bad)) == {"numpy"}
        with pytest.raises(AssertionError, match=r"imports segtutor\.\['train'\]"):
            test_layer_rules(bad)
    finally:
        ROOT, PACKAGE = saved
