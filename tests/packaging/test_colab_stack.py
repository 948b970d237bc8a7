"""segtutor on Colab's widget stack: the wheel in a fresh environment with ipywidgets 7.

Colab ships ipywidgets 7 (7.7.1) and its own widget manager, and a chapter's first cell
installs segtutor there with pip. This test does what that cell does, on this machine:

1. builds the wheel (``pip wheel --no-deps``, from a copy of the working tree, so the
   checkout gets no ``build/`` folder);
2. installs it with ``pip install <wheel> ipywidgets==7.7.1`` in a fresh virtual environment
   (``python -m venv``, no system site packages): the wheel's declared dependencies and
   nothing else, found the way a user's pip finds them (this machine's pip configuration,
   indexes and constraints; the test passes no index option). A dependency that needs
   ipywidgets 8 makes this install fail. The environment must then hold what pip's
   ``--report`` says it installed and nothing more, and ``pip check`` must pass;
3. runs ``colab_probe.py`` there: every public submodule of segtutor imports (an
   undeclared dependency is an ``ImportError``), every third-party name the source imports,
   lazily or not, is installed, the public names agree with the files, and each widget the
   package defines builds, its state survives strict JSON, ``ipywidgets.embed.embed_data``
   embeds it with its ``_esm``/``_css`` (the package's own .js/.css files), and it displays
   through anywidget's Colab path (a stand-in for ``google.colab.output``).

The install is the slow part (PyTorch with its CUDA libraries: about 6 GB unpacked, some
5 minutes here). The environment is kept between runs in
``~/.cache/segtutor/colab-stack/<key>`` (outside the repository, so a fresh clone in CI finds
it too; ``SEGTUTOR_VENV_CACHE=DIR`` moves it, ``SEGTUTOR_VENV_CACHE=off`` installs into a
temporary folder every run), the key being the hash of the wheel's requirements, the Python
version and the ipywidgets pin. A kept environment is reused only when a fresh resolution
(``pip install --dry-run --report`` in a new venv, about a minute) gives exactly the
distributions it was installed with, so it is what a fresh install would give today; the
freshly built segtutor wheel is reinstalled into it every run. Only the newest is kept.

Skips (fails under ``SEGTUTOR_REQUIRE_SITE=1``) when the package index cannot be reached
or offers no ipywidgets 7.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("colab_probe.py")
REQUIRED = os.environ.get("SEGTUTOR_REQUIRE_SITE") == "1"
#: The ipywidgets that Colab ships; the newest 7.x stands in if the index lacks it.
COLAB_IPYWIDGETS = "7.7.1"
#: The widgets the book shows (the probe finds every one the package defines; these must be
#: among them).
EXPECTED_WIDGETS = {
    "segtutor.viz.widgets.ConvExplorer",
    "segtutor.viz.receptive_widget.ReceptiveFieldViewer",
    "segtutor.viz.roi_widget.RoIExplorer",
}
#: What ``python -m venv`` puts into every new environment (pip may upgrade them).
BOOTSTRAP = {"pip", "setuptools"}
#: Where the environment is kept between runs (see the module docstring).
CACHE_VARIABLE = "SEGTUTOR_VENV_CACHE"
#: pip options for the one question asked to find out whether the index answers at all.
REACHABILITY_OPTIONS = ["--timeout", "20", "--retries", "1"]
#: Seconds each step may take before the test gives up on it.
TIMEOUTS = {"wheel": 600, "venv": 180, "resolve": 900, "install": 1800, "probe": 600}


def skip_or_fail(reason: str) -> None:
    """Skip, or fail when the environment is required (``SEGTUTOR_REQUIRE_SITE=1``)."""
    if REQUIRED:
        pytest.fail(f"{reason} (SEGTUTOR_REQUIRE_SITE=1, so this is a failure)")
    pytest.skip(reason)


def clean_environment() -> dict[str, str]:
    """This process's environment without what would leak the test's own Python into the venv.

    pip's own settings (``PIP_*``) stay: the install must find packages as a user's would.
    """
    env = {key: value for key, value in os.environ.items()
           if key not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV",
                          "PIP_TARGET", "PIP_PREFIX", "PIP_USER", "PIP_REQUIRE_VIRTUALENV"}}
    own_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep)
                                  if part != own_bin)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run(command: list[str], step: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``command``; fail with its output's tail when it exits non-zero."""
    done = subprocess.run(command, capture_output=True, text=True, env=clean_environment(),
                          timeout=TIMEOUTS[step], **kwargs)
    if done.returncode != 0:
        pytest.fail(f"{step}: {' '.join(map(str, command))} exited {done.returncode}\n"
                    f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n"
                    f"{pip_errors(done.stderr)[-6000:]}")
    return done


def pip_errors(stderr: str) -> str:
    """pip's stderr without its warnings about index folders that lack a project."""
    return "\n".join(line for line in stderr.splitlines()
                     if not re.search(r"WARNING: Location '.*' is ignored", line))


def base_python() -> str:
    """The Python 3.11 the environments are made with (``python3.11``, else this one)."""
    return shutil.which("python3.11") or sys.executable


def venv_python(venv: Path) -> Path:
    """The interpreter of the virtual environment ``venv``."""
    return venv / "bin" / "python"


def make_venv(venv: Path) -> None:
    """A fresh virtual environment at ``venv`` (with pip; no system site packages)."""
    run([base_python(), "-m", "venv", str(venv)], "venv")


def source_files(root: Path) -> list[Path]:
    """The working tree's files that git would hand to a clone (tracked or new, not ignored)."""
    if shutil.which("git") and (root / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], cwd=root, capture_output=True,
                                check=True).stdout.decode().split("\0")
        return [root / name for name in listed if name and (root / name).is_file()]
    skip = {".git", "_build", "build", "node_modules", "__pycache__", ".hypothesis"}
    return [path for path in root.rglob("*") if path.is_file()
            and not skip.intersection(path.relative_to(root).parts)
            and not any(part.endswith(".egg-info") for part in path.relative_to(root).parts)]


def package_sources(root: Path) -> set[str]:
    """The files under ``segtutor/`` that the wheel must ship (the package's own files)."""
    return {str(path.relative_to(root)) for path in source_files(root)
            if path.relative_to(root).parts[0] == "segtutor"}


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (two test runs must not build the same venv)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_root() -> Path | None:
    """Where environments are kept between runs, or ``None`` (``SEGTUTOR_VENV_CACHE=off``)."""
    value = os.environ.get(CACHE_VARIABLE)
    if value is not None and value.strip().lower() in {"", "0", "off", "no", "false"}:
        return None
    if value:
        return Path(value).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "segtutor" / "colab-stack"


def ipywidgets_7() -> str:
    """Colab's ipywidgets if the index has it, else its newest 7.x; skips if it cannot tell."""
    done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "ipywidgets",
                           *REACHABILITY_OPTIONS], capture_output=True, text=True,
                          env=clean_environment(), timeout=TIMEOUTS["venv"])
    found = re.search(r"Available versions: (.*)", done.stdout)
    if done.returncode != 0 or not found:
        skip_or_fail(f"the package index did not answer for ipywidgets (pip index versions "
                     f"exited {done.returncode}: {pip_errors(done.stderr)[-500:]})")
    versions = [v.strip() for v in found.group(1).split(",")]
    if COLAB_IPYWIDGETS in versions:
        return COLAB_IPYWIDGETS
    sevens = [v for v in versions if re.fullmatch(r"7\.\d+\.\d+", v)]
    if not sevens:
        skip_or_fail(f"the package index offers no ipywidgets 7.x (only {versions[:5]}...): "
                     f"is PyPI reachable?")
    return max(sevens, key=lambda v: tuple(int(part) for part in v.split(".")))


def build_wheel(out: Path) -> Path:
    """The wheel of the working tree, built from a copy of it into ``out``."""
    copy = out / "source"
    for path in source_files(ROOT):
        target = copy / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", str(copy), "-w", str(out)], "wheel")
    (wheel,) = out.glob("segtutor-*.whl")
    return wheel


def requirements_of(wheel: Path) -> list[str]:
    """The wheel's ``Requires-Dist`` lines (its declared dependencies)."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    return sorted(line.split(":", 1)[1].strip() for line in metadata.splitlines()
                  if line.startswith("Requires-Dist:"))


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it (the probe's ``normalise``)."""
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


def resolution(report: Path) -> dict[str, str]:
    """``{name: version}`` of what a pip ``--report`` file says was (or would be) installed."""
    return {normalise(item["metadata"]["name"]): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]}


def resolve(wheel: Path, pin: str, work: Path) -> dict[str, str]:
    """What ``pip install <wheel> ipywidgets==pin`` would add to a fresh venv today."""
    venv = work / "resolver"
    make_venv(venv)
    report = work / "resolution.json"
    run([str(venv_python(venv)), "-m", "pip", "install", "--dry-run", "--quiet", "--report",
         str(report), str(wheel), f"ipywidgets=={pin}"], "resolve", cwd=work)
    shutil.rmtree(venv)
    return resolution(report)


def environment_key(wheel: Path, pin: str) -> str:
    """The hash that names a kept environment: the wheel's requirements, the Python, the pin."""
    python = subprocess.run([base_python(), "-c", "import sys; print(sys.version)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    text = json.dumps({"requires": requirements_of(wheel), "python": python,
                       "ipywidgets": pin}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def install(venv: Path, wheel: Path, pin: str) -> dict[str, str]:
    """A fresh venv at ``venv`` with ``pip install <wheel> ipywidgets==pin``; what it installed."""
    if venv.exists():
        shutil.rmtree(venv)
    make_venv(venv)
    report = venv / "segtutor-install-report.json"
    run([str(venv_python(venv)), "-m", "pip", "install", "--quiet", "--report", str(report),
         str(wheel), f"ipywidgets=={pin}"], "install", cwd=venv)
    return resolution(report)


def timed(timings: dict[str, float], step: str, start: float) -> None:
    """Record the seconds since ``start`` as ``step``'s."""
    timings[step] = time.perf_counter() - start


def prepared_venv(wheel: Path, pin: str, work: Path,
                  timings: dict[str, float]) -> tuple[Path, dict[str, str]]:
    """An environment with this wheel as a fresh install today gives it, and that install.

    A kept environment is reused only when a fresh resolution (``pip --dry-run`` in a new
    venv) gives exactly the distributions it holds; otherwise it is made anew.
    """
    root = cache_root()
    start = time.perf_counter()
    if root is None:
        resolved = install(work / "venv", wheel, pin)
        timed(timings, "fresh install", start)
        return work / "venv", resolved
    with locked(root):
        venv = root / environment_key(wheel, pin)
        marker = venv / "segtutor-resolution.json"
        kept = json.loads(marker.read_text()) if marker.is_file() else None
        resolved = None
        if kept is not None:
            resolved = resolve(wheel, pin, work)
            timed(timings, "fresh resolution (pip --dry-run in a new venv)", start)
        start = time.perf_counter()
        if kept is not None and kept == resolved:
            run([str(venv_python(venv)), "-m", "pip", "install", "--quiet", "--no-deps",
                 "--force-reinstall", str(wheel)], "install", cwd=venv)
            timed(timings, "segtutor reinstalled into the kept environment", start)
        else:
            resolved = install(venv, wheel, pin)
            marker.write_text(json.dumps(resolved, sort_keys=True))
            timed(timings, "fresh install", start)
        for other in root.iterdir():  # keep only the newest environment (each is ~6 GB)
            if other.is_dir() and other != venv:
                shutil.rmtree(other, ignore_errors=True)
    return venv, resolved


def probe(venv: Path, package: str, work: Path, extra_path: Path | None = None) -> dict[str, Any]:
    """Run ``colab_probe.py`` for ``package`` in ``venv`` (isolated mode) and read its report."""
    command = [str(venv_python(venv)), "-I"]
    if extra_path is None:
        command += [str(PROBE), package, "--fake-colab"]
    else:  # -I drops PYTHONPATH: put the folder on sys.path by hand
        command += ["-c", f"import runpy, sys; sys.path.insert(0, {str(extra_path)!r}); "
                          f"sys.argv = [{str(PROBE)!r}, {package!r}]; "
                          f"runpy.run_path({str(PROBE)!r}, run_name='__main__')"]
    done = run(command, "probe", cwd=work)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def pin() -> str:
    """The ipywidgets 7 to install (asked first: building the wheel needs the index too)."""
    return ipywidgets_7()


@pytest.fixture(scope="module")
def wheel(pin: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The freshly built wheel of the working tree."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def stack(wheel: Path, pin: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The wheel installed with Colab's ipywidgets in a fresh venv, and what the probe found."""
    work = tmp_path_factory.mktemp("colab")
    timings: dict[str, float] = {}
    venv, resolved = prepared_venv(wheel, pin, work, timings)
    start = time.perf_counter()
    check = subprocess.run([str(venv_python(venv)), "-m", "pip", "check"], capture_output=True,
                           text=True, env=clean_environment(), timeout=TIMEOUTS["probe"])
    report = probe(venv, "segtutor", work)
    timed(timings, "pip check and probe (imports, widgets)", start)
    print("\ncolab stack timings: " + ", ".join(f"{step} {seconds:.1f} s"
                                                  for step, seconds in timings.items()))
    return {"pin": pin, "resolved": resolved, "venv": venv, "report": report, "work": work,
            "pip_check": check, "requirements": requirements_of(wheel)}


def test_the_wheel_ships_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("segtutor/")}
    expected = {name for name in package_sources(ROOT) if "__pycache__" not in name}
    assert expected - shipped == set(), (
        f"files of the package that the wheel leaves out (pyproject.toml's packages or "
        f"package-data): {sorted(expected - shipped)}")


def test_the_install_keeps_colabs_ipywidgets_7(stack: dict[str, Any]) -> None:
    pin, report = stack["pin"], stack["report"]
    assert stack["resolved"].get("ipywidgets") == pin, (
        f"pip resolved ipywidgets {stack['resolved'].get('ipywidgets')} instead of {pin}")
    assert report["ipywidgets_version"] == pin
    assert report["distributions"]["ipywidgets"].startswith("7."), report["distributions"]
    assert any(req.startswith("ipywidgets") for req in stack["requirements"])


def test_the_environment_is_a_fresh_install_of_the_declared_dependencies(
        stack: dict[str, Any]) -> None:
    report, resolved, venv = stack["report"], stack["resolved"], stack["venv"]
    config = (venv / "pyvenv.cfg").read_text()
    assert re.search(r"^include-system-site-packages\s*=\s*false$", config, re.M), config
    assert report["prefix"] != report["base_prefix"]
    site = str(venv.resolve() / "lib")
    assert report["package_file"].startswith(site), (
        f"segtutor was imported from {report['package_file']}, not from the venv")
    assert not [p for p in report["sys_path"] if p.startswith(str(ROOT))], report["sys_path"]
    installed = report["distributions"]
    differing = {name: (version, installed.get(name)) for name, version in resolved.items()
                 if installed.get(name) != version}
    assert differing == {}, f"(resolved, installed) versions that differ: {differing}"
    extra = set(installed) - set(resolved) - BOOTSTRAP
    assert extra == set(), f"installed but not resolved from the wheel's metadata: {extra}"
    assert stack["pip_check"].returncode == 0, stack["pip_check"].stdout


def test_every_public_module_imports_with_only_the_declared_dependencies(
        stack: dict[str, Any]) -> None:
    report = stack["report"]
    assert "import_error" not in report, report.get("import_error")
    assert len(report["public_modules"]) > 20, report["public_modules"]
    assert report["import_failures"] == {}, "\n".join(report["import_failures"].values())
    assert report["missing_imports"] == {}, (
        f"names the source imports that a fresh install lacks (declare them in "
        f"pyproject.toml): {report['missing_imports']}")


def test_the_public_names_match_the_files(stack: dict[str, Any]) -> None:
    report = stack["report"]
    lazy = report["lazy_submodules"]
    assert sorted(set(report["package_all"]) - {"__version__"}) == sorted(lazy)
    public = {name for name in report["top_level"] if not name.startswith("_")}
    shims = {name.removeprefix("segtutor.") for name in report["deprecated_modules"]
             if name.count(".") == 1}
    assert public - set(lazy) == shims, (
        f"top-level modules neither in segtutor._SUBMODULES nor a deprecated shim: "
        f"{sorted(public - set(lazy) - shims)}")
    assert set(lazy) <= public, f"listed but missing: {sorted(set(lazy) - public)}"


def test_each_widget_builds_serialises_and_embeds_on_ipywidgets_7(
        stack: dict[str, Any]) -> None:
    report = stack["report"]
    widgets = {widget["class"]: widget for widget in report["widgets"]}
    assert EXPECTED_WIDGETS <= set(widgets), f"widgets found: {sorted(widgets)}"
    problems = []
    for name, widget in widgets.items():
        if "error" in widget:
            problems.append(f"{name} failed:\n{widget['error']}")
            continue
        checks = {
            "state survives strict JSON": widget["round_trip_equal"],
            "embed_data holds the same state": widget["embed_state_equal"],
            "ipywidgets 7's state format 2.0": widget["embed_version"] == [2, 0],
            "an anywidget model": widget["embed_model"]["model_module"] == "anywidget"
            and widget["embed_model"]["model_name"] == "AnyModel",
            "the view of this model": widget["embed_view_ids"] == [widget["model_id"]],
            "_esm is the package's .js file": widget["esm_type"] == "str"
            and bool(widget["esm_contains_files"]) and widget["esm_exports_render"],
            "_css is the package's .css file": widget["css_type"] == "str"
            and bool(widget["css_equals_files"]),
            "a widget view for Colab's manager": (widget["view_mime"] or {}).get(
                "model_id") == widget["model_id"]
            and (widget["view_mime"] or {}).get("version_major") == 2,
            "the Colab widget manager named": (widget["view_metadata"] or {}).get(
                "colab", {}).get("custom_widget_manager", {}).get("url", "").startswith(
                "https://colab.invalid/"),
        }
        problems += [f"{name}: not {what}" for what, ok in checks.items() if not ok]
    assert problems == [], "\n".join(problems)
    assert report["colab_calls"]["enable_custom_widget_manager"] >= 1


def test_the_probe_reports_an_undeclared_dependency(stack: dict[str, Any]) -> None:
    installed = stack["report"]["distributions"]
    eager, lazy = "hypothesis", "pytest"  # this test's own environment has both
    assert eager not in installed and lazy not in installed, "pick names the venv lacks"
    package = stack["work"] / "planted" / "undeclared_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A package with undeclared dependencies."""\n')
    (package / "eager.py").write_text(f"import {eager}\n")
    (package / "lazy.py").write_text(f"def later():\n    import {lazy}\n    return {lazy}\n")
    report = probe(stack["venv"], "undeclared_pkg", stack["work"], package.parent)
    assert set(report["import_failures"]) == {"undeclared_pkg.eager"}
    assert f"No module named '{eager}'" in report["import_failures"]["undeclared_pkg.eager"]
    assert set(report["missing_imports"]) == {eager, lazy}
