"""One install target: every address of the repository agrees with ``_config.yml``.

``_config.yml``'s ``repository`` section (url and branch) is the one place; the Colab and
repository buttons of the site use it. ``book/tools/install_target.py`` derives the rest
from it: the pip target of each chapter's setup cell (cell 1), each chapter's Colab address
and the published site's address. This module checks every copy: the setup cells,
``pyproject.toml``'s ``[project.urls]``, the README's Colab and site links, the copies of the
address in the package's source, and, where a built site exists (``SEGTUTOR_SITE_DIR``,
default ``_build/html``), the Colab buttons the theme wrote.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "book" / "tools" / "install_target.py"
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
SITE = Path(os.environ.get("SEGTUTOR_SITE_DIR", ROOT / "_build" / "html"))
#: A pip requirement that installs segtutor from a git repository, as a setup cell quotes it.
GIT_REQUIREMENT = re.compile(r"""["'](segtutor\s*@\s*git\+[^"']*)["']""")
#: Any address of a Colab notebook opened from GitHub.
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\]\"'>]+")
#: Any address of a repository named segtutor, or of its GitHub Pages site.
REPOSITORY_LINK = re.compile(r"https://github\.com/[\w.-]+/segtutor(?![\w-])")
PAGES_LINK = re.compile(r"https://[\w-]+\.github\.io/segtutor(?:/[^\s)\]\"'>]*)?")

_spec = importlib.util.spec_from_file_location("install_target", SCRIPT)
install_target = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = install_target  # dataclasses look their module up there
_spec.loader.exec_module(install_target)
REPOSITORY = install_target.repository()


def cell_source(cell: dict) -> str:
    """A notebook cell's source as one string."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def test_there_are_chapters() -> None:
    assert len(CHAPTERS) >= 12, CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_the_setup_cell_installs_from_the_config(chapter: Path) -> None:
    cells = json.loads(chapter.read_text(encoding="utf-8"))["cells"]
    setup = cells[1]
    source = cell_source(setup)
    assert setup["cell_type"] == "code", f"{chapter.name}: cell 1 is not the setup cell"
    assert GIT_REQUIREMENT.findall(source) == [REPOSITORY.pip_target], (
        f"{chapter.name}: the setup cell must install {REPOSITORY.pip_target!r} "
        f"(python book/tools/install_target.py), found {GIT_REQUIREMENT.findall(source)}")
    assert '"google.colab" in sys.modules' in source, (
        f"{chapter.name}: the setup cell must install only on Colab")
    elsewhere = [found for cell in cells[2:] for found in GIT_REQUIREMENT.findall(cell_source(cell))]
    assert elsewhere == [], f"{chapter.name}: other cells install from {elsewhere}"


def test_pyproject_points_at_the_repository_and_its_site() -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Source"] == REPOSITORY.url, (
        f"[project.urls] Source = {urls['Source']!r}, _config.yml: {REPOSITORY.url!r}")
    assert urls["Homepage"] == REPOSITORY.pages_url, (
        f"[project.urls] Homepage = {urls['Homepage']!r}, the repository's GitHub Pages: "
        f"{REPOSITORY.pages_url!r}")
    for label, url in urls.items():
        if "github.com" in url:
            assert url.startswith(REPOSITORY.url), f"[project.urls] {label} = {url!r}"


def readme() -> str:
    """The README's text."""
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readmes_colab_links_open_existing_chapters_from_the_config() -> None:
    links = COLAB_LINK.findall(readme())
    expected = {REPOSITORY.colab_url(f"book/{path.name}"): path.name for path in CHAPTERS}
    wrong = [link for link in links if link not in expected]
    assert wrong == [], (f"README Colab links that open no chapter of "
                         f"{REPOSITORY.url}@{REPOSITORY.branch}: {wrong}")
    if links:  # a table with badges has one for every chapter, once
        missing = sorted(name for url, name in expected.items() if url not in links)
        assert missing == [], f"chapters without a Colab link in the README: {missing}"
        assert len(links) == len(set(links)), "a chapter's Colab link appears twice"


def test_the_readmes_site_links_point_at_the_published_book() -> None:
    pages = {f"{REPOSITORY.pages_url}/book/{path.stem}.html" for path in CHAPTERS}
    for link in PAGES_LINK.findall(readme()):
        assert link.startswith(REPOSITORY.pages_url), (
            f"README links to {link}, not to the site of {REPOSITORY.url}")
        if link.endswith(".html") and "/book/" in link:
            assert link in pages, f"README links to a chapter page that does not exist: {link}"


def test_every_copy_of_the_repository_address_agrees() -> None:
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "pyproject.toml",
             *sorted((ROOT / "segtutor").rglob("*.py"))]
    wrong = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        stale = {url for url in REPOSITORY_LINK.findall(text) if url != REPOSITORY.url}
        stale |= {url for url in PAGES_LINK.findall(text) if not url.startswith(REPOSITORY.pages_url)}
        if stale:
            wrong[str(path.relative_to(ROOT))] = sorted(stale)
    assert wrong == {}, f"addresses that differ from _config.yml's {REPOSITORY.url}: {wrong}"


def test_the_built_sites_colab_buttons_agree_with_the_helper() -> None:
    """The theme builds the launch button from the same config: the helper must match it."""
    pages = {path: SITE / "book" / f"{path.stem}.html" for path in CHAPTERS}
    built = {path: page for path, page in pages.items() if page.is_file()}
    if not built:
        pytest.skip(f"no built chapter pages under {SITE}")
    for chapter, page in built.items():
        links = set(COLAB_LINK.findall(page.read_text(encoding="utf-8")))
        assert links == {REPOSITORY.colab_url(f"book/{chapter.name}")}, (page, links)


@pytest.mark.parametrize("url", ["https://github.com/segtutor/segtutor/",
                                 "https://github.com/segtutor/segtutor.git",
                                 "https://gitlab.com/segtutor/segtutor", "segtutor/segtutor"])
def test_the_helper_refuses_an_address_that_is_not_a_github_repository(
        tmp_path: Path, url: str) -> None:
    config = tmp_path / "_config.yml"
    config.write_text(f"repository:\n  url: {url}\n  branch: main\n"
                      f"launch_buttons:\n  colab_url: https://colab.research.google.com\n")
    with pytest.raises(ValueError, match=re.escape(repr(url))):
        install_target.repository(config)


def test_the_helper_refuses_a_config_without_a_branch(tmp_path: Path) -> None:
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: https://github.com/a/b\n")
    with pytest.raises(ValueError, match="repository.branch"):
        install_target.repository(config)


def test_the_helper_derives_the_targets_from_a_config(tmp_path: Path) -> None:
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: https://github.com/someone/segtutor\n  branch: v2\n"
                      "launch_buttons:\n  colab_url: https://colab.research.google.com/\n")
    found = install_target.repository(config)
    assert found.pip_target == "segtutor @ git+https://github.com/someone/segtutor@v2"
    assert found.pages_url == "https://someone.github.io/segtutor"
    assert found.colab_url("book/01_a.ipynb") == (
        "https://colab.research.google.com/github/someone/segtutor/blob/v2/book/01_a.ipynb")
    with pytest.raises(ValueError, match="'book/01_a.md'"):
        found.colab_url("book/01_a.md")
    with pytest.raises(TypeError, match="notebook must be a str"):
        found.colab_url(Path("book/01_a.ipynb"))
