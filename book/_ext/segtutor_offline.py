"""Sphinx extension: the book's HTML serves its own widget manager and MathJax (no CDN).

By default a Jupyter Book page loads RequireJS and the Jupyter widget manager from cdnjs and
jsDelivr, anywidget's front end from jsDelivr, and MathJax from jsDelivr, so widgets and math
break offline (and CI's browser test runs offline). This extension puts copies of them in the
site's ``_static/offline/`` folder and points the page at them:

* ``anywidget/index.js``: the AMD bundle that the installed Python ``anywidget`` package ships
  (``nbextension/index.js``, the same file as the npm package's ``dist/index.js``), so it
  always matches the widgets the build executes; from npm only if that file is missing.
* ``requirejs/require.js`` (npm ``requirejs`` 2.3.8), ``html-manager/embed-amd.js`` and its
  icon fonts (npm ``@jupyter-widgets/html-manager`` 1.0.15), and ``mathjax/`` (npm
  ``mathjax`` 3.2.2: ``es5/tex-chtml.js``, its fonts in ``es5/output/`` and the components it
  loads on demand). These come as tarballs from ``npm pack NAME@VERSION`` (no ``node_modules``),
  checked against the sha512 integrity pinned below, into the git-ignored cache
  ``book/_static/vendor/``; a second build reuses the cache and needs no network.
* ``anywidget-require-config.js`` (next to this file) tells RequireJS where ``anywidget`` is
  and the widget manager where its fonts are, from its own URL, so it works at any page depth.

* matplotlib's ``Animation.to_jshtml()`` output (Chapters 2 and 3) links Font Awesome 4.4
  from a CDN for its buttons' ``<i class="fa ...">`` icons. The book theme already ships Font
  Awesome (``fontawesome.js`` draws those icons as SVG), so after the build that ``<link>`` is
  removed from the pages (:func:`drop_covered_stylesheets`): no request leaves the site.

It sets ``nb_ipywidgets_js`` (myst-nb: the scripts a page with widgets loads, in order) and
``mathjax_path``; those two are owned here, so ``_config.yml`` should not set them.
Enable it in ``_config.yml``::

    sphinx:
      local_extensions:
        segtutor_offline: book/_ext
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
#: The git-ignored cache: ``npm/`` holds the tarballs, ``site/`` what the site serves.
CACHE_DIR = HERE.parent / "_static" / "vendor"
#: Where the files go in the built site, under ``_static/`` (not ``vendor/``: the theme uses that).
SITE_FOLDER = "offline"
REQUIRE_CONFIG = "anywidget-require-config.js"


@dataclass(frozen=True)
class NpmPackage:
    """Files taken from one npm tarball.

    Attributes:
        name: npm package name.
        version: exact version.
        integrity: the registry's ``dist.integrity`` (``sha512-`` and base64), pinned here.
        folder: where the files go, relative to the site's vendor folder.
        strip: prefix removed from the paths inside the tarball's ``package/`` folder.
        patterns: ``fnmatch`` patterns (after ``strip``) of the files to keep.
    """

    name: str
    version: str
    integrity: str
    folder: str
    strip: str
    patterns: tuple[str, ...]

    @property
    def spec(self) -> str:
        """What ``npm pack`` takes: ``NAME@VERSION``."""
        return f"{self.name}@{self.version}"

    @property
    def stamp(self) -> str:
        """What the cache's stamp file holds once these files are in place."""
        return f"{self.spec} {self.integrity} {' '.join(self.patterns)}"


REQUIREJS = NpmPackage(
    "requirejs", "2.3.8",
    "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
    folder="requirejs", strip="", patterns=("require.js",),
)
HTML_MANAGER = NpmPackage(
    "@jupyter-widgets/html-manager", "1.0.15",
    "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
    folder="html-manager", strip="dist/",
    # Icon fonts: browsers take the first format they support from the CSS; IE's .eot and the
    # old .svg fonts (2 MB) are never requested by a current browser.
    patterns=("embed-amd.js", "*.woff2", "*.woff", "*.ttf"),
)
MATHJAX = NpmPackage(
    "mathjax", "3.2.2",
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
    folder="mathjax", strip="es5/",
    patterns=("tex-chtml.js", "output/chtml/*", "input/tex/extensions/*", "ui/*", "a11y/*"),
)
PACKAGES = (REQUIREJS, HTML_MANAGER, MATHJAX)


def integrity_of(path: Path) -> str:
    """The npm ``dist.integrity`` string of a file: ``sha512-`` and its base64 digest."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def npm_pack(spec: str, destination: Path, integrity: str) -> Path:
    """Download the tarball of ``spec`` with ``npm pack`` and check its integrity.

    Args:
        spec: what ``npm pack`` takes, e.g. ``"mathjax@3.2.2"`` (or a local folder or tarball).
        destination: folder for the tarball (created if needed).
        integrity: the expected ``sha512-...`` string.

    Returns:
        the tarball's path.

    Raises:
        ExtensionError: npm is missing, ``npm pack`` fails, or the tarball's integrity differs.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise ExtensionError(
            f"segtutor_offline: npm is needed to fetch {spec} for the offline site, but it is "
            "not on PATH; install Node.js (it ships npm, e.g. apt-get install nodejs npm), or "
            f"copy a finished {CACHE_DIR} from another machine"
        )
    destination.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}
    command = [npm, "pack", spec, "--json", "--pack-destination", str(destination)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise ExtensionError(
            f"segtutor_offline: `{' '.join(command)}` failed ({result.returncode}): "
            f"{result.stderr.strip()[-2000:]}"
        )
    tarball = destination / json.loads(result.stdout)[0]["filename"]
    actual = integrity_of(tarball)
    if actual != integrity:
        tarball.unlink()
        raise ExtensionError(
            f"segtutor_offline: {spec} from npm has integrity {actual}, expected {integrity}; "
            "the download is corrupt or the registry serves a different file (removed it)"
        )
    return tarball


def extract(tarball: Path, package: NpmPackage, site_dir: Path) -> list[Path]:
    """Copy the files ``package`` keeps out of an npm tarball into ``site_dir/package.folder``.

    Returns:
        the files written.

    Raises:
        ExtensionError: the tarball holds none of the expected files, or an unsafe path.
    """
    target = site_dir / package.folder
    written = []
    prefix = "package/" + package.strip
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            relative = PurePosixPath(member.name[len(prefix):])
            if ".." in relative.parts or relative.is_absolute():
                raise ExtensionError(f"segtutor_offline: unsafe path {member.name!r} in {tarball}")
            if not any(fnmatch.fnmatchcase(str(relative), pattern) for pattern in package.patterns):
                continue
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.extractfile(member).read())
            written.append(path)
    missing = [p for p in package.patterns if "*" not in p and not (target / p).is_file()]
    if not written or missing:
        raise ExtensionError(
            f"segtutor_offline: {tarball.name} lacks {missing or package.patterns} under "
            f"{prefix!r}; is {package.spec} the right package?"
        )
    return written


STAMP = ".segtutor-offline-stamp"


def provide_package(package: NpmPackage, cache_dir: Path) -> Path:
    """Make sure ``cache_dir/site/<folder>`` holds ``package``'s files; fetch them if not.

    A stamp file records which tarball (by integrity) the folder came from, so a version
    change refetches and an unchanged cache costs nothing (and needs no network).

    Returns:
        the package's folder in the cache.
    """
    site_dir = cache_dir / "site"
    folder = site_dir / package.folder
    stamp = folder / STAMP
    if stamp.is_file() and stamp.read_text() == package.stamp:
        return folder
    tarballs = cache_dir / "npm"
    cached = [t for t in tarballs.glob("*.tgz") if integrity_of(t) == package.integrity]
    tarball = cached[0] if cached else npm_pack(package.spec, tarballs, package.integrity)
    if folder.exists():
        shutil.rmtree(folder)
    written = extract(tarball, package, site_dir)
    stamp.write_text(package.stamp)
    logger.info("segtutor_offline: %s -> %s (%d files)", package.spec, folder, len(written))
    return folder


def anywidget_bundle() -> Path:
    """The AMD bundle of anywidget's front end that the installed Python package ships.

    Raises:
        ExtensionError: ``anywidget`` is not installed, or it ships no ``nbextension/index.js``.
    """
    spec = importlib.util.find_spec("anywidget")
    if spec is None or spec.origin is None:
        raise ExtensionError("segtutor_offline: the Python package anywidget is not installed; "
                             "pip install -r requirements.txt")
    bundle = Path(spec.origin).parent / "nbextension" / "index.js"
    if not bundle.is_file():
        raise ExtensionError(
            f"segtutor_offline: {bundle} is missing, so this anywidget has no browser bundle "
            "to serve; install an anywidget release that ships nbextension/index.js (0.9-0.11 do)"
        )
    return bundle


def provide_all(cache_dir: Path) -> Path:
    """Fill ``cache_dir/site`` with everything the offline pages load; returns that folder."""
    site_dir = cache_dir / "site"
    for package in PACKAGES:
        provide_package(package, cache_dir)
    (site_dir / "anywidget").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(anywidget_bundle(), site_dir / "anywidget" / "index.js")
    shutil.copyfile(HERE / REQUIRE_CONFIG, site_dir / REQUIRE_CONFIG)
    return site_dir


def site_paths() -> dict[str, Any]:
    """The two settings this extension owns, with paths relative to ``_static``."""
    return {
        "nb_ipywidgets_js": {
            f"{SITE_FOLDER}/{REQUIREJS.folder}/require.js": {},
            f"{SITE_FOLDER}/{REQUIRE_CONFIG}": {},
            f"{SITE_FOLDER}/{HTML_MANAGER.folder}/embed-amd.js": {},
        },
        "mathjax_path": f"{SITE_FOLDER}/{MATHJAX.folder}/tex-chtml.js",
    }


def _set_paths(app: Sphinx, config: Config) -> None:
    for name, value in site_paths().items():
        setattr(config, name, value)


def _fetch(app: Sphinx) -> None:
    if app.builder.format == "html":
        provide_all(CACHE_DIR)  # fail early, before the notebooks execute


def _copy_into_site(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / SITE_FOLDER
    shutil.copytree(provide_all(CACHE_DIR), target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(STAMP))
    drop_covered_stylesheets(Path(app.outdir))


#: Stylesheet links that cell outputs bring along and that the theme's own files cover.
COVERED_STYLESHEET = re.compile(
    r'<link\s+rel="stylesheet"\s+href="https://maxcdn\.bootstrapcdn\.com/font-awesome/'
    r'4\.4\.0/css/font-awesome\.min\.css"\s*/?>\n?')


def drop_covered_stylesheets(site_dir: Path) -> list[Path]:
    """Remove :data:`COVERED_STYLESHEET` links from the site's pages; return the pages changed."""
    changed = []
    for page in sorted(site_dir.rglob("*.html")):
        if "_static" in page.relative_to(site_dir).parts:
            continue
        html = page.read_text(encoding="utf-8")
        cleaned = COVERED_STYLESHEET.sub("", html)
        if cleaned != html:
            page.write_text(cleaned, encoding="utf-8")
            changed.append(page)
    return changed


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the event handlers (Sphinx calls this)."""
    app.connect("config-inited", _set_paths)
    app.connect("builder-inited", _fetch)
    app.connect("build-finished", _copy_into_site)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
