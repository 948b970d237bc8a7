"""The API reference (``book/api/``) documents every public name of ``segtutor``, once.

The pages are MyST files whose ``{eval-rst}`` blocks hold autodoc directives. This test
reads those directives (no Sphinx build), imports the modules they name and compares:

* every public subpackage (``segtutor._SUBMODULES``) has a page in ``_toc.yml`` that
  documents it with ``automodule``, and the index lists them all;
* every public name of a subpackage -- its ``__all__``, or without one the names its own
  source defines (``public_names`` of ``book/api/_ext/segtutor_api.py``, the rule the
  site's autodoc applies too) -- is documented under that subpackage;
* a submodule that declares ``__all__`` with names its subpackage does not re-export
  (``segtutor.data.weightmap``, ``segtutor.viz.diagrams``) has those names documented under
  the submodule;
* nothing else: no deprecated shim (``segtutor.tiling``, ``segtutor.utils.show_source``:
  importing them warns), no private module, no name a module does not define itself.

A bare ``:members:`` stands for all public names of the module (minus
``:exclude-members:``); ``:members: a, b`` for those names. ``autoclass``, ``autofunction``
and ``autodata`` document one name each, relative to the last ``currentmodule``.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import segtutor

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "book" / "api"
EXTENSION = API / "_ext" / "segtutor_api.py"
SUBPACKAGES = [f"segtutor.{name}" for name in segtutor._SUBMODULES]

_spec = importlib.util.spec_from_file_location("segtutor_api", EXTENSION)
segtutor_api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(segtutor_api)
public_names = segtutor_api.public_names

_BLOCK = re.compile(r"^```\{eval-rst\}[^\n]*\n(.*?)^```", re.S | re.M)
_DIRECTIVE = re.compile(r"^\.\. ([\w:-]+)::[ \t]*(.*)$")
_OPTION = re.compile(r"^\s+:([\w-]+):\s*(.*)$")
_ONE_NAME = {"autoclass", "autofunction", "autodata", "autoexception", "autodecorator"}


@dataclass
class Directive:
    page: str
    kind: str
    argument: str
    options: dict[str, str] = field(default_factory=dict)
    content: list[str] = field(default_factory=list)
    module: str | None = None  # the current module where the directive stands


def directives(path: Path) -> list[Directive]:
    """The directives of every ``{eval-rst}`` block of a page, in order."""
    found: list[Directive] = []
    current: str | None = None
    for block in _BLOCK.findall(path.read_text()):
        for line in block.splitlines():
            match = _DIRECTIVE.match(line)
            if match:
                kind, argument = match.group(1), match.group(2).strip()
                if kind in ("currentmodule", "py:currentmodule", "automodule", "py:module"):
                    current = argument
                found.append(Directive(path.name, kind, argument, module=current))
            elif found and (option := _OPTION.match(line)) and not found[-1].content:
                found[-1].options[option.group(1)] = option.group(2).strip()
            elif found and line.strip():
                found[-1].content.append(line.strip())
    return found


def all_directives() -> list[Directive]:
    return [d for page in sorted(API.glob("*.md")) for d in directives(page)]


def _names(option: str) -> list[str]:
    return [name.strip() for name in option.split(",") if name.strip()]


def import_quietly(name: str) -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        return importlib.import_module(name)


def documented() -> dict[str, set[str]]:
    """Module -> the names the pages document under it."""
    found: dict[str, set[str]] = {}
    for d in all_directives():
        if d.kind == "automodule":
            names = found.setdefault(d.argument, set())
            if "members" in d.options:
                members = _names(d.options["members"])
                if not members:
                    excluded = set(_names(d.options.get("exclude-members", "")))
                    members = [n for n in public_names(import_quietly(d.argument))
                               if n not in excluded]
                names.update(members)
        elif d.kind in _ONE_NAME:
            module, _, name = d.argument.rpartition(".")
            module = module if module.startswith("segtutor") else d.module
            assert module, f"{d.page}: {d.kind}:: {d.argument} outside any currentmodule"
            found.setdefault(module, set()).add(name)
    return found


def submodules(package: ModuleType) -> list[ModuleType]:
    """Every module below ``package`` whose dotted path has no private part."""
    found = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(import_quietly(info.name))
    return found


def reexported(module: ModuleType, name: str) -> bool:
    """``module.name`` is public in one of the packages above ``module`` too."""
    obj = vars(module)[name]
    parts = module.__name__.split(".")
    for depth in range(2, len(parts)):
        package = import_quietly(".".join(parts[:depth]))
        if name in public_names(package) and vars(package).get(name) is obj:
            return True
    return False


def test_every_subpackage_has_a_page_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = {part.get("caption"): [entry["file"] for entry in part["chapters"]]
             for part in toc.get("parts") or []}
    assert "API reference" in parts, "_toc.yml needs a part with caption 'API reference'"
    listed = parts["API reference"]
    pages = sorted(str(p.relative_to(ROOT).with_suffix("")) for p in API.glob("*.md"))
    assert sorted(listed) == pages, "the API reference part of _toc.yml and book/api/*.md differ"
    assert listed[0] == "book/api/index"
    modules = documented()
    for name in SUBPACKAGES:
        page = API / f"{name.split('.')[1]}.md"
        assert page.is_file(), f"{name} has no page {page.relative_to(ROOT)}"
        first = next((d for d in directives(page) if d.kind == "automodule"), None)
        assert first is not None and first.argument == name, (
            f"{page.name} must start with '.. automodule:: {name}'")
        assert name in modules


def test_the_index_lists_every_subpackage():
    tables = [d for d in directives(API / "index.md") if d.kind == "autosummary"]
    assert len(tables) == 1, "index.md holds one autosummary table of the subpackages"
    assert tables[0].content == SUBPACKAGES


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_public_name_of_a_subpackage_is_documented(name):
    module = import_quietly(name)
    names = public_names(module)
    assert names, f"{name} offers no public name"
    missing = sorted(set(names) - documented().get(name, set()))
    assert not missing, (f"book/api/{name.split('.')[1]}.md does not document {missing} of "
                         f"{name}; keep a bare ':members:' on its automodule")


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_submodule_names_that_are_not_reexported_are_documented(name):
    package = import_quietly(name)
    if not hasattr(package, "__path__"):
        pytest.skip(f"{name} is a module")
    pages = documented()
    problems = []
    for module in submodules(package):
        declared = getattr(module, "__all__", None)
        if declared is None:
            continue  # an implementation module: its API is what the package re-exports
        own = [n for n in declared if not reexported(module, n)]
        missing = sorted(set(own) - pages.get(module.__name__, set()))
        if missing:
            problems.append(f"{module.__name__} offers {missing}, which {name} does not "
                            f"re-export: add '.. automodule:: {module.__name__}' with "
                            f"':members: {', '.join(missing)}'")
    assert not problems, (f"document these in book/api/{name.split('.')[1]}.md under "
                          "Submodules:\n" + "\n".join(problems))


def test_nothing_deprecated_private_or_foreign_is_documented():
    for module_name, names in documented().items():
        parts = module_name.split(".")
        assert len(parts) >= 2 and ".".join(parts[:2]) in SUBPACKAGES, (
            f"the API pages document {module_name}, which is not a public subpackage or one "
            f"of its modules (deprecated shims such as segtutor.tiling stay out)")
        assert not any(part.startswith("_") for part in parts), f"{module_name} is private"
        module = import_quietly(module_name)
        offered = set(public_names(module))
        for name in names:
            assert name in vars(module), (
                f"{module_name}.{name} is not defined in {module_name} (a deprecated alias "
                f"served by __getattr__, or a typo)")
            assert name in offered, f"{module_name}.{name} is not public there"


def test_each_name_is_documented_once_per_module():
    seen: dict[tuple[str, str], str] = {}
    for d in all_directives():
        if d.kind == "automodule" and "members" in d.options:
            module = d.argument
            names = (_names(d.options["members"])
                     or public_names(import_quietly(module)))
        elif d.kind in _ONE_NAME:
            module, _, name = d.argument.rpartition(".")
            module = module if module.startswith("segtutor") else d.module
            names = [name]
        else:
            continue
        for name in names:
            key = (module, name)
            assert key not in seen, (
                f"{module}.{name} is documented on {seen[key]} and {d.page} (a duplicate "
                f"object description, an error in the build)")
            seen[key] = d.page


def test_the_config_builds_the_reference():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    extensions = config.get("extra_extensions") or []
    for extension in ("sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon"):
        assert extension in extensions, f"_config.yml must enable {extension}"
    assert config["local_extensions"].get("segtutor_api") == "book/api/_ext", (
        "without book/api/_ext/segtutor_api.py a bare :members: leaves undocumented "
        "constants out, and the pages no longer show every public name")
    assert config["config"].get("napoleon_google_docstring", True)
    assert not config["config"].get("nitpicky", False)
