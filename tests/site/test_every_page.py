"""Every page of the built site in headless Chromium, offline: clean console, math, axe-core.

Each page a reader reads (the intro, every chapter, the API reference, the index, search and
any page added later: :func:`offline_site.content_pages` walks the built HTML folder; viewcode's
source pages and redirects are left to ``test_site_links.py``) is opened once, with every
request to another host aborted, after MathJax has typeset and every embedded widget has drawn:

* no page error, and no console error or warning from a script of the site itself (a message
  whose source is the local server), except :data:`KNOWN_CONSOLE_MESSAGES`;
* no request left the site and nothing the page loads is missing;
* math is rendered: each ``.math`` element holds MathJax's ``mjx-container`` and no raw
  ``$...$``, ``\\(`` or ``\\[`` is left in the text outside code;
* axe-core (the npm package, fetched with ``npm pack`` into the git-ignored
  ``_build/test-vendor/`` and checked against its pinned integrity, injected inline so the
  page still fetches nothing) finds no violation of impact "serious" or "critical", except
  :data:`KNOWN_VIOLATIONS`. Every violation found, of any impact, is printed.

Skips when the site, Chromium or npm (the first time) is missing, unless
``SEGTUTOR_REQUIRE_SITE=1``: then that is a failure.
"""

from __future__ import annotations

import fnmatch
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from offline_site import ROOT, SITE, OfflinePage, content_pages, unavailable

pytestmark = pytest.mark.browser

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import segtutor_offline  # noqa: E402  (its npm_pack and integrity check, for axe-core too)

#: axe-core from npm, pinned by the registry's integrity string (``npm view axe-core@4.14.1
#: dist.integrity``); only ``axe.min.js`` is kept.
AXE = segtutor_offline.NpmPackage(
    "axe-core", "4.14.1",
    "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==",
    folder="axe-core", strip="", patterns=("axe.min.js",),
)
#: The git-ignored cache for files the tests need but the site does not serve.
TEST_VENDOR = ROOT / "_build" / "test-vendor"
#: axe's impacts that fail a page.
FAILING_IMPACTS = {"serious", "critical"}
#: (rule id, page pattern, element selector fragment, why): axe violations not fixed here.
#: An entry belongs to a cause outside this repository's control or awaiting a fix where it
#: arises (say which); remove it once fixed.
KNOWN_VIOLATIONS: tuple[tuple[str, str, str, str], ...] = ()
# (ConvExplorer's greyed output_padding label, 3.0:1, was one until 413f91b disabled that
# control while it has no effect: WCAG 1.4.3 exempts inactive controls, and axe skips them.)
#: (script path on the site, message start, why): console messages of the site's scripts not
#: counted as the site's own errors.
KNOWN_CONSOLE_MESSAGES = (
    ("_static/offline/html-manager/embed-amd.js", "strict mode: use allowUnionTypes",
     "@jupyter-widgets/html-manager 1.0.15 bundles ajv, whose strict mode warns about a union "
     "type in the widget-state schema the manager itself ships, while validating the state; "
     "the state is valid and the widgets render"),
)
#: Raw TeX left in visible text: ``$...$`` (no space inside the dollars), ``\\(`` or ``\\[``.
RAW_MATH = re.compile(r"\$[^$\s](?:[^$\n]*?[^$\s])?\$|\\\(|\\\[")
#: Where a page's widgets are: the view scripts of the embedded widget state.
WIDGET_VIEWS = 'script[type="application/vnd.jupyter.widget-view+json"]'

WAIT_FOR_MATHJAX = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
}"""
WIDGETS_DRAWN = f"""() => [...document.querySelectorAll('{WIDGET_VIEWS}')]
  .every(view => view.parentElement.querySelector('.widget-subarea > *'))"""
MATH_STATE = """() => {
  const math = [...document.querySelectorAll('.math')];
  const text = document.body.cloneNode(true);
  text.querySelectorAll('pre, code, .highlight, script, style, noscript, template, textarea, '
                        + 'mjx-container').forEach(element => element.remove());
  return {
    math: math.length,
    untypeset: math.filter(element => !element.querySelector('mjx-container'))
                   .map(element => element.textContent.trim().slice(0, 80)),
    text: text.textContent,
  };
}"""
RUN_AXE = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
  .map(v => ({id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map(node => node.target.join(' '))}))"""

PAGES = content_pages()


@dataclass
class Visit:
    """What one page showed in the browser."""

    path: str
    offline: OfflinePage
    console: list[tuple[str, str, str]] = field(default_factory=list)
    math: dict[str, Any] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's ``axe.min.js``, from the checked cache (fetched with npm the first time)."""
    from sphinx.errors import ExtensionError

    try:
        folder = segtutor_offline.provide_package(AXE, TEST_VENDOR)
    except ExtensionError as error:
        unavailable(f"axe-core could not be provided: {error}")
    return (folder / "axe.min.js").read_text(encoding="utf-8")


def _on_console(server: str, console: list[tuple[str, str, str]], message) -> None:
    url = message.location.get("url") or ""
    if message.type in ("error", "warning") and url.startswith(server):
        console.append((message.type, url[len(server):].split("?")[0], message.text))


@pytest.fixture(scope="module", params=PAGES or ["(no built site)"])
def visit(request, browser, server, axe_source) -> Iterator[Visit]:
    """The page opened offline once, typeset and drawn, its math read and axe run on it."""
    if request.param not in PAGES:
        unavailable(f"no built site at {SITE}; build it with the README's build command")
    start = time.perf_counter()
    offline = OfflinePage(browser, server)
    seen = Visit(request.param, offline)
    offline.page.on("console", lambda message: _on_console(server, seen.console, message))
    offline.page.goto(server + request.param, wait_until="load")
    offline.page.evaluate(WAIT_FOR_MATHJAX)
    offline.page.wait_for_function(WIDGETS_DRAWN, timeout=30_000)
    seen.math = offline.page.evaluate(MATH_STATE)
    offline.page.add_script_tag(content=axe_source)
    seen.violations = offline.page.evaluate(RUN_AXE)
    seen.seconds = time.perf_counter() - start
    print(f"\n{request.param}: {seen.seconds:.1f} s, {seen.math['math']} math elements, "
          f"axe: {[(v['impact'], v['id'], len(v['nodes'])) for v in seen.violations] or 'none'}")
    yield seen
    offline.page.close()


def known_console_message(path: str, text: str) -> bool:
    """Whether a console message is one of :data:`KNOWN_CONSOLE_MESSAGES`."""
    return any(path == script and text.startswith(start)
               for script, start, _ in KNOWN_CONSOLE_MESSAGES)


def known_violation(page: str, rule: str, node: str) -> bool:
    """Whether an axe violation at ``node`` of ``page`` is one of :data:`KNOWN_VIOLATIONS`."""
    return any(rule == known_rule and fnmatch.fnmatch(page, pattern) and fragment in node
               for known_rule, pattern, fragment, _ in KNOWN_VIOLATIONS)


def test_the_walk_finds_the_chapters_and_the_api_reference():
    if not PAGES:
        unavailable(f"no built site at {SITE}; build it with the README's build command")
    assert any(re.fullmatch(r"book/\d\d_\w+\.html", page) for page in PAGES), PAGES
    assert any(page.startswith("book/api/") for page in PAGES), PAGES
    assert {"genindex.html", "search.html"} <= set(PAGES), PAGES


def test_no_page_error_and_no_console_error_or_warning(visit):
    assert not visit.offline.errors, f"page errors in {visit.path}: {visit.offline.errors}"
    own = [m for m in visit.console if not known_console_message(m[1], m[2])]
    assert not own, f"console errors/warnings from the site's scripts in {visit.path}: {own}"


def test_no_request_leaves_the_site(visit):
    assert not visit.offline.aborted, f"{visit.path} requested other hosts: {visit.offline.aborted}"
    assert not visit.offline.broken, f"{visit.path} loads files the site lacks: {visit.offline.broken}"


def test_math_is_typeset(visit):
    assert not visit.math["untypeset"], (
        f"math elements MathJax did not typeset in {visit.path}: {visit.math['untypeset'][:10]}")
    raw = sorted({match.group() for match in RAW_MATH.finditer(visit.math["text"])})
    assert not raw, f"raw TeX left in the text of {visit.path}: {raw[:10]}"


def test_no_serious_or_critical_accessibility_violation(visit):
    failing = [(v["impact"], v["id"], v["help"], node) for v in visit.violations
               if v["impact"] in FAILING_IMPACTS for node in v["nodes"]
               if not known_violation(visit.path, v["id"], node)]
    assert not failing, f"axe-core violations in {visit.path}: {failing}"

