"""Sphinx extension: what an accessibility check and a link crawl found in the built pages,
fixed where the pages are made.

``tests/site/test_site_links.py`` (every internal link and anchor, every image's alt text)
and ``tests/site/test_every_page.py`` (axe-core in Chromium, the console) found these in a
full build; each is fixed at the step of the build that produces it:

* **The theme's colour mode.** pydata-sphinx-theme writes ``data-mode=""`` unless
  ``html_context["default_mode"]`` is set, and its script then logs *Got invalid theme mode: .
  Resetting to auto.* as a console error on every page. It is set to ``"auto"`` (the value the
  theme falls back to) when the configuration leaves it unset.
* **Buttons whose accessible name hides their text** (axe ``label-content-name-mismatch``,
  serious). The theme's search button reads "Search Ctrl+K" but is labelled "Search"; its
  colour-mode button is labelled "Color mode" while its icons carry the titles "Light",
  "Dark", "System Settings" (Font Awesome turns them into SVG titles, so text). The
  templates in ``templates/`` replace the theme's two components: the search button is named
  by its text, and the colour-mode icons are decorative (``aria-hidden``, no title); the
  button keeps its label and tooltip.
* **Hidden code cells' toggles** (myst-nb's ``hide-input``): the ``<summary>`` that reads
  "Show code cell source" is labelled "Toggle hidden content" (axe
  ``label-content-name-mismatch``, serious); the label is dropped, so the summary is named by
  the text it shows.
* **matplotlib's animations** (``Animation.to_jshtml()`` in the notebooks' outputs) draw
  their frames in an ``<img>`` without ``alt`` (axe ``image-alt``, critical) and scrub them
  with an ``<input type="range">`` without a label (axe ``label``, critical); both get a
  text here, in each page's body.
* **viewcode's "[docs]" links** (Sphinx 7.4): the source page of a module links every
  object back to ``<first module name it was documented under>.<name>``, so an object of
  ``segtutor.models.unet`` documented as ``segtutor.models.unet.DoubleConv`` is linked to
  ``#segtutor.models.DoubleConv`` when ``segtutor.models.UNet`` came first -- an anchor
  that does not exist. The anchor of each documented object is recorded while the documents
  are read, and each source page's links are pointed at it. viewcode's module index also
  lists modules it found no source for (``builtins``), linked to pages it never writes;
  those are left out.

Enable it in ``_config.yml``::

    sphinx:
      local_extensions:
        segtutor_page_fixes: book/_ext
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.environment import BuildEnvironment

HERE = Path(__file__).resolve().parent
#: Theme components replaced by this extension (``search-button-field.html``, ``theme-switcher.html``).
TEMPLATES = HERE / "templates"
#: The colour mode the theme falls back to; set so that its script has a valid one.
DEFAULT_MODE = "auto"
#: viewcode's output folder (``sphinx.ext.viewcode.OUTPUT_DIRNAME``).
VIEWCODE_FOLDER = "_modules"
#: The environment's record: (source page, object name, document) -> the object's anchor.
ENV_KEY = "segtutor_viewcode_anchors"

ANIMATION_FRAME = re.compile(r'<img id="(_anim_img[0-9a-f]+)"(?![^>]*\salt=)')
ANIMATION_SLIDER = re.compile(r'<input id="(_anim_slider[0-9a-f]+)"(?![^>]*\saria-label=)')
#: Alt text of an animation's frame and the label of its frame slider.
FRAME_ALT = "Animation frame: play or step through it with the buttons below"
SLIDER_LABEL = "Animation frame"
#: myst-nb's toggle of a hidden code cell (``sphinx_.visit_HideCellInput``).
HIDDEN_CELL_SUMMARY = '<summary aria-label="Toggle hidden content">'
VIEWCODE_BACKLINK = re.compile(
    r'(<div class="viewcode-block" id="(?P<name>[^"]+)">\n<a class="viewcode-back" href=")'
    r'(?P<page>[^"#]*)#(?P<anchor>[^"]*)(")')
VIEWCODE_INDEX_ENTRY = re.compile(r'<li><a href="(?P<href>[^"]+)">(?P<module>[^<]+)</a></li>\n')


def _configure(app: Sphinx, config: Config) -> None:
    """The colour mode unless the configuration sets one; this extension's templates first.

    New objects, not changed in place: unset, both settings are Sphinx's shared defaults.
    """
    config.html_context = {"default_mode": DEFAULT_MODE, **config.html_context}
    config.templates_path = [str(TEMPLATES), *config.templates_path]


def name_hidden_cells(body: str) -> str:
    """``body`` with myst-nb's hidden-cell toggles named by their own text, not a label."""
    return body.replace(HIDDEN_CELL_SUMMARY, "<summary>")


def describe_animations(body: str) -> str:
    """``body`` with each matplotlib animation's frame given alt text and its slider a label."""
    body = ANIMATION_FRAME.sub(rf'<img id="\1" alt="{FRAME_ALT}"', body)
    return ANIMATION_SLIDER.sub(rf'<input id="\1" aria-label="{SLIDER_LABEL}"', body)


def _record_viewcode_anchors(app: Sphinx, doctree: nodes.document) -> None:
    """After viewcode has added its anchors: which id each documented object has here."""
    from sphinx.ext.viewcode import viewcode_anchor

    record = _anchors(app.env)
    for anchor in doctree.findall(viewcode_anchor):
        signature = anchor.parent
        if signature.get("ids"):
            record[anchor["reftarget"], anchor["refid"], app.env.docname] = signature["ids"][0]


def _anchors(env: BuildEnvironment) -> dict[tuple[str, str, str], str]:
    if not hasattr(env, ENV_KEY):
        setattr(env, ENV_KEY, {})
    return getattr(env, ENV_KEY)


def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    record = _anchors(env)
    for key in [key for key in record if key[2] == docname]:
        del record[key]


def _merge(app: Sphinx, env: BuildEnvironment, docnames: Any, other: BuildEnvironment) -> None:
    _anchors(env).update(_anchors(other))


def relink_viewcode(body: str, pagename: str, anchors: dict[tuple[str, str, str], str],
                    relative_uri: Any) -> str:
    """A viewcode source page's body with each "[docs]" link pointed at its object's anchor.

    Args:
        body: the page's HTML body.
        pagename: the page (``_modules/segtutor/models/unet``).
        anchors: (source page, object name, document) -> anchor id, recorded while reading.
        relative_uri: ``builder.get_relative_uri(from_page, to_document)``.
    """
    by_link = {(name, relative_uri(pagename, docname)): anchor
               for (page, name, docname), anchor in anchors.items() if page == pagename}

    def fix(match: re.Match[str]) -> str:
        anchor = by_link.get((match["name"], match["page"]), match["anchor"])
        return f"{match[1]}{match['page']}#{anchor}{match[5]}"

    return VIEWCODE_BACKLINK.sub(fix, body)


def drop_unwritten_modules(body: str, written: set[str]) -> str:
    """viewcode's module index without the entries of modules it wrote no page for."""
    return VIEWCODE_INDEX_ENTRY.sub(
        lambda match: match[0] if match["module"] in written else "", body)


def _fix_page(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
              doctree: Any) -> None:
    body = context.get("body")
    if not isinstance(body, str):
        return
    if pagename == f"{VIEWCODE_FOLDER}/index":
        modules = getattr(app.env, "_viewcode_modules", {})
        body = drop_unwritten_modules(body, {name for name, entry in modules.items() if entry})
    elif pagename.startswith(VIEWCODE_FOLDER + "/"):
        body = relink_viewcode(body, pagename, _anchors(app.env), app.builder.get_relative_uri)
    else:
        body = name_hidden_cells(describe_animations(body))
    context["body"] = body


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the event handlers (Sphinx calls this)."""
    app.connect("config-inited", _configure)
    # after viewcode's own doctree-read handler (default priority 500) has added its anchors
    app.connect("doctree-read", _record_viewcode_anchors, priority=600)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("html-page-context", _fix_page)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True,
            "env_version": 1}
