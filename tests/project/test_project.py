"""The book and the project files agree with each other: every notebook is in the TOC,
each chapter starts with the standard setup cell, notebooks are committed without
outputs, requirements use lower bounds, and the README still holds the two commands
that .ci/run executes."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for entry in toc.get("chapters") or []:
        files.append(entry["file"])
    for part in toc.get("parts") or []:
        files.extend(entry["file"] for entry in part["chapters"])
    return files


def chapter_notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "book").glob("*.ipynb") if not p.name.startswith("_"))


def test_every_notebook_is_in_the_toc_and_every_toc_entry_exists():
    listed = toc_files()
    for entry in listed:
        matches = list(ROOT.glob(entry + ".*")) + [ROOT / entry] * (ROOT / entry).is_file()
        assert matches, f"_toc.yml lists {entry!r} but no such file exists"
    for notebook in chapter_notebooks():
        stem = str(notebook.relative_to(ROOT).with_suffix(""))
        assert stem in listed, f"{notebook.name} is not in _toc.yml, so the book and its tests skip it"


@pytest.mark.parametrize("notebook", chapter_notebooks(), ids=lambda p: p.name)
def test_chapter_starts_with_setup_cell_and_has_no_outputs(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    first = "".join(code[0]["source"])
    assert "google.colab" in first and "start_chapter(" in first, "first code cell must be the setup cell"
    install_lines = [line for line in first.splitlines() if "pip" in line and "install" in line]
    assert install_lines, "the setup cell must install segtutor on Colab"
    for line in install_lines:
        assert "ipywidgets" not in line and "--upgrade" not in line and "-U" not in line.split(), (
            "the Colab install must leave Colab's own ipywidgets alone"
        )
    for cell in code:
        assert not cell.get("outputs"), f"{notebook.name}: commit notebooks without outputs"
    markdown = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "{footbibliography}" in markdown, "end the chapter with its references ({footbibliography})"
    assert "{cite}" not in markdown and "{bibliography}" not in markdown, (
        "use {footcite}: a key {cite}d in two chapters makes a duplicate-citation warning"
    )


def test_requirements_use_lower_bounds_only():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            assert "==" not in line, f"requirements.txt pins {line!r}; use a lower bound"
    assert re.search(r"jupyter-book>=1\.0\.4,<2", (ROOT / "requirements.txt").read_text())


def test_ci_runs_the_readme_commands():
    script = (
        'source <(sed -n "/^readme_command()/,/^}/p" .ci/run); '
        "readme_command build-command; echo ---; readme_command test-command"
    )
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    build, tests = (part.strip() for part in out.stdout.split("---"))
    assert build.startswith("python -m pip install -r requirements.txt") and "jupyter-book build" in build
    assert "--warningiserror" in build
    assert tests.startswith("python -m pip install -r requirements.txt") and "pytest" in tests


WORKFLOW_CHECK = ["check-jsonschema", "--builtin-schema", "vendor.github-workflows"]


def test_the_workflows_are_valid_and_the_check_catches_a_broken_one(tmp_path):
    """.ci/run validates .github/workflows/ against the schema GitHub publishes (offline)."""
    import shutil

    if shutil.which(WORKFLOW_CHECK[0]) is None:
        pytest.skip("check-jsonschema is not installed (requirements.txt installs it)")
    assert " ".join(WORKFLOW_CHECK) in (ROOT / ".ci" / "run").read_text()
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    good = subprocess.run(WORKFLOW_CHECK + [str(p) for p in workflows], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    # the same workflow with a misspelt key ("step" for "steps") must be refused
    broken = tmp_path / "broken.yml"
    broken.write_text(workflows[0].read_text().replace("    steps:", "    step:", 1))
    bad = subprocess.run(WORKFLOW_CHECK + [str(broken)], capture_output=True, text=True)
    assert bad.returncode != 0 and "step" in bad.stdout + bad.stderr


def test_no_test_module_imports_another():
    """Shared helpers live in conftest.py fixtures or plain helper modules, never in test_*.py."""
    import ast

    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.split(".")[-1].startswith("test_"), (
                    f"{path.relative_to(ROOT)} imports the test module {name}; move what it "
                    f"needs into a conftest.py fixture or a helper module")
