"""book/_ext/segtutor_offline.py: fetching, checking and serving the site's own JavaScript.

Offline: packages are packed from local folders with npm itself (its integrity string is the
reference for ours), and a small Sphinx build runs the extension on a prepared cache.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from sphinx.errors import ExtensionError

ROOT = Path(__file__).resolve().parents[2]
EXT_DIR = ROOT / "book" / "_ext"
sys.path.insert(0, str(EXT_DIR))
import segtutor_offline as offline  # noqa: E402

needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def fake_package(folder: Path, name: str = "fake-widgets") -> Path:
    """A small npm package folder: two files to keep and one to leave out."""
    (folder / "dist").mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"name": name, "version": "1.2.3"}))
    (folder / "dist" / "embed.js").write_text("define('x', [], () => 1);\n")
    (folder / "dist" / "icons.woff2").write_bytes(b"\x00\x01font")
    (folder / "dist" / "embed.js.map").write_text("{}")
    return folder


def npm_pack_reference(folder: Path, destination: Path) -> tuple[Path, str]:
    """Pack ``folder`` with npm directly; returns the tarball and npm's own integrity."""
    destination.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["npm", "pack", str(folder), "--json", "--pack-destination",
                          str(destination)], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)[0]
    return destination / info["filename"], info["integrity"]


FAKE = offline.NpmPackage("fake-widgets", "1.2.3", integrity="(set per test)",
                          folder="fake", strip="dist/", patterns=("embed.js", "*.woff2"))


@needs_npm
def test_integrity_matches_what_npm_reports(tmp_path):
    tarball, integrity = npm_pack_reference(fake_package(tmp_path / "pkg"), tmp_path)
    assert offline.integrity_of(tarball) == integrity


@needs_npm
def test_npm_pack_fetches_and_checks_the_tarball(tmp_path):
    source = fake_package(tmp_path / "pkg")
    _, integrity = npm_pack_reference(source, tmp_path / "reference")
    tarball = offline.npm_pack(str(source), tmp_path / "cache", integrity)
    assert tarball.parent == tmp_path / "cache" and offline.integrity_of(tarball) == integrity


@needs_npm
def test_npm_pack_refuses_and_removes_a_tarball_with_the_wrong_integrity(tmp_path):
    source = fake_package(tmp_path / "pkg")
    wrong = "sha512-" + "A" * 86 + "=="
    with pytest.raises(ExtensionError, match=r"has integrity sha512-.*, expected sha512-AAAA"):
        offline.npm_pack(str(source), tmp_path / "cache", wrong)
    assert list((tmp_path / "cache").glob("*.tgz")) == []


@needs_npm
def test_npm_pack_failure_names_the_command(tmp_path):
    with pytest.raises(ExtensionError, match=r"`.*npm pack .*no-such-package-dir.*` failed"):
        offline.npm_pack(str(tmp_path / "no-such-package-dir"), tmp_path / "cache", "sha512-x")


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(offline.shutil, "which", lambda name: None)
    with pytest.raises(ExtensionError, match=r"npm is needed to fetch mathjax@3\.2\.2 .* not on PATH"):
        offline.npm_pack("mathjax@3.2.2", tmp_path, offline.MATHJAX.integrity)


def write_tarball(path: Path, members: dict[str, bytes]) -> Path:
    """An npm-style tarball (everything under ``package/``) written with tarfile."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_extract_keeps_only_the_files_asked_for(tmp_path):
    tarball = write_tarball(tmp_path / "fake.tgz", {
        "package/package.json": b"{}",
        "package/dist/embed.js": b"js",
        "package/dist/icons.woff2": b"font",
        "package/dist/embed.js.map": b"{}",
    })
    written = offline.extract(tarball, FAKE, tmp_path / "site")
    assert sorted(p.relative_to(tmp_path / "site").as_posix() for p in written) == [
        "fake/embed.js", "fake/icons.woff2"]
    assert (tmp_path / "site" / "fake" / "embed.js").read_bytes() == b"js"


def test_extract_refuses_a_tarball_without_the_expected_files(tmp_path):
    tarball = write_tarball(tmp_path / "fake.tgz", {"package/dist/other.js": b"js"})
    with pytest.raises(ExtensionError, match=r"fake\.tgz lacks \['embed\.js'\] under 'package/dist/'"):
        offline.extract(tarball, FAKE, tmp_path / "site")


def test_extract_refuses_paths_that_leave_the_folder(tmp_path):
    tarball = write_tarball(tmp_path / "evil.tgz", {"package/dist/../../../evil.js": b"x"})
    with pytest.raises(ExtensionError, match=r"unsafe path 'package/dist/\.\./\.\./\.\./evil\.js'"):
        offline.extract(tarball, FAKE, tmp_path / "site")


def test_provide_package_reuses_a_cached_tarball_and_then_the_stamp(tmp_path, monkeypatch):
    tarball = write_tarball(tmp_path / "fake.tgz", {"package/dist/embed.js": b"js"})
    package = offline.NpmPackage("fake-widgets", "1.2.3", offline.integrity_of(tarball),
                                 folder="fake", strip="dist/", patterns=("embed.js",))
    cache = tmp_path / "cache"
    (cache / "npm").mkdir(parents=True)
    shutil.move(tarball, cache / "npm" / "fake-widgets-1.2.3.tgz")

    def no_network(*args):
        raise AssertionError("npm_pack called although the cache holds the tarball")

    monkeypatch.setattr(offline, "npm_pack", no_network)
    folder = offline.provide_package(package, cache)
    assert (folder / "embed.js").read_bytes() == b"js"
    assert (folder / offline.STAMP).read_text() == package.stamp
    (cache / "npm" / "fake-widgets-1.2.3.tgz").unlink()  # the stamp alone must suffice now
    assert offline.provide_package(package, cache) == folder


def test_anywidget_bundle_is_the_installed_packages_amd_module():
    bundle = offline.anywidget_bundle()
    import anywidget

    assert bundle.is_relative_to(Path(anywidget.__file__).parent)
    assert 'define(["@jupyter-widgets/base"]' in bundle.read_text()


def test_anywidget_without_a_bundle_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "anywidget").mkdir()
    (tmp_path / "anywidget" / "__init__.py").write_text("")
    fake = importlib.util.spec_from_file_location("anywidget", tmp_path / "anywidget" / "__init__.py")
    monkeypatch.setattr(offline.importlib.util, "find_spec", lambda name: fake)
    with pytest.raises(ExtensionError, match=r"nbextension/index\.js is missing"):
        offline.anywidget_bundle()


def test_site_paths_load_requirejs_then_its_config_then_the_widget_manager():
    paths = offline.site_paths()
    assert list(paths["nb_ipywidgets_js"]) == [
        "offline/requirejs/require.js",
        "offline/anywidget-require-config.js",
        "offline/html-manager/embed-amd.js",
    ]
    assert paths["mathjax_path"] == "offline/mathjax/tex-chtml.js"


def prepared_cache(cache: Path) -> None:
    """A cache as a finished fetch leaves it (stamps in place), with stand-in files."""
    for package in offline.PACKAGES:
        folder = cache / "site" / package.folder
        folder.mkdir(parents=True)
        (folder / offline.STAMP).write_text(package.stamp)
        for pattern in package.patterns:
            if "*" not in pattern:
                (folder / pattern).write_text(f"// stand-in for {package.spec}/{pattern}\n")


def test_sphinx_build_serves_the_files_and_points_pages_at_them(tmp_path, monkeypatch):
    from sphinx.application import Sphinx

    cache = tmp_path / "cache"
    prepared_cache(cache)
    monkeypatch.setattr(offline, "CACHE_DIR", cache)
    source = tmp_path / "src"
    source.mkdir()
    (source / "conf.py").write_text("extensions = ['sphinx.ext.mathjax', 'segtutor_offline']\n")
    (source / "index.rst").write_text("Title\n=====\n\nSome math :math:`o = (i - k)/s + 1`.\n")
    out = tmp_path / "html"
    app = Sphinx(str(source), str(source), str(out), str(tmp_path / "doctrees"), "html",
                 status=None, warning=io.StringIO(), freshenv=True)
    app.build()
    assert app.config.mathjax_path == "offline/mathjax/tex-chtml.js"
    assert app.config.nb_ipywidgets_js == offline.site_paths()["nb_ipywidgets_js"]
    html = (out / "index.html").read_text()
    assert 'src="_static/offline/mathjax/tex-chtml.js"' in html
    vendor = out / "_static" / "offline"
    for path in ("requirejs/require.js", "html-manager/embed-amd.js", "mathjax/tex-chtml.js",
                 "anywidget/index.js", "anywidget-require-config.js"):
        assert (vendor / path).is_file(), path
    assert not list(vendor.rglob(offline.STAMP))
    assert (vendor / "anywidget" / "index.js").read_bytes() == offline.anywidget_bundle().read_bytes()


def jshtml_of_a_tiny_animation() -> str:
    """What ``HTML(anim.to_jshtml())`` puts into a chapter page (matplotlib's own output)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    line, = ax.plot([0, 1], [0, 1])
    anim = FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=2)
    html = anim.to_jshtml()
    plt.close(fig)
    return html


def test_drop_covered_stylesheets_removes_matplotlibs_font_awesome_link(tmp_path):
    animation = jshtml_of_a_tiny_animation()
    assert "maxcdn.bootstrapcdn.com/font-awesome" in animation  # what matplotlib writes
    page_text = f"<html><head><link rel=\"stylesheet\" href=\"_static/theme.css\"></head>" \
                f"<body>{animation}</body></html>"
    page = tmp_path / "book" / "02_chapter.html"
    page.parent.mkdir()
    page.write_text(page_text)
    untouched = tmp_path / "_static" / "copy.html"
    untouched.parent.mkdir()
    untouched.write_text(page_text)
    other = tmp_path / "index.html"
    other.write_text("<html>no animation</html>")

    assert offline.drop_covered_stylesheets(tmp_path) == [page]
    cleaned = page.read_text()
    assert "font-awesome" not in cleaned
    assert 'href="_static/theme.css"' in cleaned
    # everything else of the animation is kept: only the link is gone
    assert cleaned == page_text.replace(offline.COVERED_STYLESHEET.search(page_text).group(0), "")
    assert 'class="fa fa-play"' in cleaned
    assert untouched.read_text() == page_text
    assert other.read_text() == "<html>no animation</html>"
    assert offline.drop_covered_stylesheets(tmp_path) == []  # nothing left to do
