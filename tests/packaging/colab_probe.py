"""Run inside the Colab-like virtual environment by ``test_colab_stack.py``; prints JSON.

It imports only what the environment has (the standard library, and then what the
package under test imports), so an undeclared dependency of the package is an
``ImportError`` here. Usage::

    python colab_probe.py PACKAGE [--expect-widgets A,B,...] [--fake-colab]

The report (one JSON object on stdout) holds: the distributions installed, where the package
was imported from, the public submodules it has and which of them were importable (with the
traceback of each that was not), every third-party name its source imports (lazy imports
too, read with ``ast``) that the environment cannot find, and for each widget the package
defines, what its state looks like after a JSON round trip and in ``ipywidgets.embed``.

``--fake-colab`` puts a stand-in for ``google.colab.output`` into ``sys.modules`` before any
widget is built: anywidget then takes its Colab path (it enables Colab's custom widget
manager and names its URL in the display metadata), which is what a reader on Colab gets.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import pkgutil
import sys
import traceback
import types
import warnings
from pathlib import Path
from typing import Any

#: What the stand-in for Colab's ``google.colab.output._widgets._installed_url`` holds.
FAKE_WIDGET_MANAGER_URL = "https://colab.invalid/custom-widget-manager.js"


def distributions() -> dict[str, str]:
    """Every installed distribution, ``{normalised name: version}``."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[normalise(name)] = dist.version
    return found


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it (``Jinja2`` -> ``jinja2``, ``a_b`` -> ``a-b``)."""
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


def public_modules(package: types.ModuleType) -> list[str]:
    """Every module of ``package`` whose dotted name has no part starting with ``_``."""
    names = [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted(name for name in names
                  if not any(part.startswith("_") for part in name.split(".")))


def import_each(names: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Import each module; returns ``(failures: name -> traceback, deprecations: name -> message)``."""
    failures: dict[str, str] = {}
    deprecations: dict[str, str] = {}
    for name in names:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                importlib.import_module(name)
            except Exception:  # an ImportError above all, but any failure is a finding
                failures[name] = traceback.format_exc()
        moved = [str(w.message) for w in caught
                 if issubclass(w.category, DeprecationWarning) and str(w.message).startswith(name)]
        if moved:
            deprecations[name] = moved[0]
    return failures, deprecations


def imported_names(root: Path, package: str) -> dict[str, list[str]]:
    """Top-level names of every absolute import in the package's files -> the files that import them."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top != package and top != "__future__" and top not in sys.stdlib_module_names:
                    found.setdefault(top, []).append(str(path.relative_to(root.parent)))
    return found


def missing_imports(root: Path, package: str) -> dict[str, list[str]]:
    """The third-party names the package's source imports that this environment cannot find."""
    return {name: files for name, files in imported_names(root, package).items()
            if importlib.util.find_spec(name) is None}


def install_fake_colab() -> dict[str, int]:
    """Put a stand-in for ``google.colab.output`` in ``sys.modules``; returns its call counter.

    It has the two names anywidget reads (``enable_custom_widget_manager`` and
    ``_widgets._installed_url``, as in Colab's ``google.colab.output``).
    """
    calls = {"enable_custom_widget_manager": 0}

    def enable_custom_widget_manager() -> None:
        calls["enable_custom_widget_manager"] += 1

    google = types.ModuleType("google")
    colab = types.ModuleType("google.colab")
    output = types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = enable_custom_widget_manager
    output._widgets = types.SimpleNamespace(_installed_url=FAKE_WIDGET_MANAGER_URL)
    google.colab, colab.output = colab, output
    sys.modules.update({"google": google, "google.colab": colab, "google.colab.output": output})
    return calls


def widget_classes(package: str) -> list[type]:
    """Every ``anywidget.AnyWidget`` subclass defined in an imported module of ``package``."""
    import anywidget

    found: dict[str, type] = {}
    for name, module in sorted(sys.modules.items()):
        if name != package and not name.startswith(package + "."):
            continue
        for _, value in inspect.getmembers(module, inspect.isclass):
            if (issubclass(value, anywidget.AnyWidget) and value.__module__ == name
                    and not value.__name__.startswith("_")):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[key] for key in sorted(found)]


def package_files(root: Path, suffix: str) -> dict[str, str]:
    """``{relative path: text}`` of the installed package's files ending in ``suffix``."""
    return {str(path.relative_to(root)): path.read_text(encoding="utf-8")
            for path in sorted(root.rglob(f"*{suffix}"))}


def as_json_types(value: Any) -> Any:
    """``value`` with every tuple as a list (JSON has arrays only; ``_dom_classes`` is a tuple)."""
    if isinstance(value, (list, tuple)):
        return [as_json_types(item) for item in value]
    if isinstance(value, dict):
        return {key: as_json_types(item) for key, item in value.items()}
    return value


def widget_report(cls: type, root: Path) -> dict[str, Any]:
    """Build ``cls()`` and describe its state, its embedding and its display bundle."""
    import ipywidgets.embed

    report: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            widget = cls()
            state = widget.get_state()
            text = json.dumps(state, allow_nan=False)  # strict JSON, as JSON.parse reads it
            # drop_defaults=False: by default embed_data leaves out every trait still at its
            # default, and anywidget's _esm/_css are defaults (the page would get no code)
            embedded = ipywidgets.embed.embed_data(views=[widget], drop_defaults=False)
            lean = ipywidgets.embed.embed_data(views=[widget])["manager_state"]["state"]
            embedded_text = json.dumps(embedded, allow_nan=False)
            bundle = widget._repr_mimebundle_()
        report["warnings"] = sorted({f"{w.category.__name__}: {w.message} ({w.filename})"
                                     for w in caught})
    except Exception:
        report["error"] = traceback.format_exc()
        return report
    esm, css = state.get("_esm"), state.get("_css")
    js_files, css_files = package_files(root, ".js"), package_files(root, ".css")
    manager_state = embedded["manager_state"]
    data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
    report.update({
        "round_trip_equal": json.loads(text) == as_json_types(state),
        "state_keys": sorted(state),
        "esm_type": type(esm).__name__,
        "esm_length": len(esm) if isinstance(esm, str) else None,
        "esm_contains_files": sorted(name for name, body in js_files.items()
                                     if isinstance(esm, str) and body.strip() and body in esm),
        "esm_exports_render": isinstance(esm, str) and "export default" in esm
                              and "render" in esm,
        "css_type": type(css).__name__,
        "css_equals_files": sorted(name for name, body in css_files.items() if body == css),
        "embed_version": [manager_state["version_major"], manager_state["version_minor"]],
        "embed_model": {key: manager_state["state"][widget.model_id][key]
                        for key in ("model_name", "model_module", "model_module_version")},
        "embed_state_equal": (as_json_types(manager_state["state"][widget.model_id]["state"])
                              == json.loads(text)),
        "embed_default_drops": sorted(set(state) - set(lean[widget.model_id]["state"])),
        "embed_view_ids": [spec["model_id"] for spec in embedded["view_specs"]],
        "model_id": widget.model_id,
        "embed_json_length": len(embedded_text),
        "view_mime": data.get("application/vnd.jupyter.widget-view+json"),
        "view_metadata": metadata.get("application/vnd.jupyter.widget-view+json"),
    })
    return report


def main(argv: list[str]) -> int:
    """Write the report for ``argv``'s package to stdout as JSON; exit 0 even on findings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("--fake-colab", action="store_true")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"python": sys.version, "prefix": sys.prefix,
                              "base_prefix": sys.base_prefix, "sys_path": sys.path,
                              "distributions": distributions()}
    try:
        package = importlib.import_module(args.package)
    except Exception:
        report["import_error"] = traceback.format_exc()
        print(json.dumps(report))
        return 0
    root = Path(package.__file__).resolve().parent
    report["package_file"] = str(root / "__init__.py")
    report["package_all"] = list(getattr(package, "__all__", []))
    report["lazy_submodules"] = list(getattr(package, "_SUBMODULES", []))
    report["top_level"] = sorted(info.name for info in pkgutil.iter_modules(package.__path__))
    report["public_modules"] = public_modules(package)
    report["import_failures"], report["deprecated_modules"] = import_each(report["public_modules"])
    report["missing_imports"] = missing_imports(root, args.package)
    calls = install_fake_colab() if args.fake_colab else None  # after every import
    try:
        import ipywidgets
        report["ipywidgets_version"] = ipywidgets.__version__
        report["widgets"] = [widget_report(cls, root) for cls in widget_classes(args.package)]
    except ImportError:
        report["ipywidgets_version"] = None
        report["widgets"] = []
    report["colab_calls"] = calls
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
