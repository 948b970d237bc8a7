"""Every page of the built site, read as HTML (no browser): links, anchors, outside hosts, alt text.

Walks the built HTML folder (``SEGTUTOR_SITE_DIR``, default ``_build/html``): every page but
Sphinx's copied sources and static files, viewcode's ``_modules/`` pages included. Each internal
``href``/``src`` (and a redirect page's target) must name a file of the site, each ``#anchor``
an ``id`` (or ``<a name>``) in the page it points to; links to other hosts are only ``<a>``
links, to the hosts in :data:`EXPECTED_HOSTS`; every ``<img>`` has alt text.

Skips when there is no built site, unless ``SEGTUTOR_REQUIRE_SITE=1``: then that fails.
"""

from __future__ import annotations

import functools
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from offline_site import SITE, redirect_target, site_pages, unavailable

#: The hosts pages may link to (``<a href>`` only), and why.
EXPECTED_HOSTS = {
    "github.com": "the repository and issue buttons; code a chapter cites (conv_arithmetic, ...)",
    "colab.research.google.com": "each chapter's launch button",
    "arxiv.org": "references (the papers the chapters follow)",
    "doi.org": "references",
    "distill.pub": "references (deconvolution and checkerboard artifacts)",
    "papers.nips.cc": "references",
    "www.robots.ox.ac.uk": "the Oxford-IIIT Pet data set's home page",
    "host.robots.ox.ac.uk": "the Pascal VOC data set's home page",
    "anywidget.dev": "the widget library the explorers are built on",
}
#: URL schemes that are not files of the site and are not fetched by the browser.
NOT_FETCHED = {"mailto", "javascript", "data", "tel"}
#: Attributes whose value is a URL.
URL_ATTRIBUTES = ("href", "src")

PAGES = site_pages(viewcode=True)


class PageLinks(HTMLParser):
    """The ids, URLs and images of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.urls: list[tuple[str, str]] = []
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag == "a" and attributes.get("name"):
            self.ids.add(attributes["name"])
        self.urls.extend((tag, attributes[name]) for name in URL_ATTRIBUTES
                         if attributes.get(name) is not None)
        if tag == "img":
            self.images.append(attributes)


@functools.cache
def parsed(path: Path) -> PageLinks:
    """The links of the page at ``path`` (a file of the site), parsed once."""
    links = PageLinks()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def is_external(url: str) -> bool:
    """Whether ``url`` points at another host (``http(s)://`` or protocol-relative)."""
    return urlsplit(url).scheme in ("http", "https") or url.startswith("//")


def urls_of(page: str) -> list[tuple[str, str]]:
    """Every ``(tag, url)`` of a page, its redirect target (as a ``meta`` URL) included."""
    target = redirect_target(page)
    return parsed(SITE / page).urls + ([("meta", target)] if target else [])


def broken_internal_link(page: str, url: str) -> str | None:
    """Why an internal ``url`` of ``page`` does not resolve, or None when it does."""
    parts = urlsplit(url)
    if parts.scheme in NOT_FETCHED or is_external(url):
        return None
    if parts.scheme:
        return f"unknown URL scheme {parts.scheme!r}"
    source = SITE / page
    target = source if not parts.path else (source.parent / unquote(parts.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"no file {target}"
    if not target.resolve().is_relative_to(SITE.resolve()):
        return f"{target} is outside the site"
    fragment = unquote(parts.fragment)
    if fragment and target.suffix == ".html" and fragment not in parsed(target).ids:
        return f"no id {fragment!r} in {target.relative_to(SITE.resolve())}"
    return None


def require_pages() -> list[str]:
    if not PAGES:
        unavailable(f"no built site at {SITE}; build it with the README's build command")
    return PAGES


def test_the_crawl_sees_the_chapters_and_the_api_reference():
    pages = require_pages()
    assert "index.html" in pages and "search.html" in pages and "genindex.html" in pages
    assert any(page.startswith("book/api/") for page in pages), "no API reference page"
    assert any(page.startswith("_modules/") for page in pages), "no viewcode source page"


@pytest.mark.parametrize("page", PAGES or ["(no built site)"])
def test_every_internal_link_and_anchor_resolves(page):
    require_pages()
    broken = [(url, why) for _, url in urls_of(page)
              if (why := broken_internal_link(page, url)) is not None]
    assert not broken, f"{len(broken)} broken links in {page}: {broken[:20]}"


def test_links_to_other_hosts_are_only_anchors_to_the_expected_hosts():
    hosts: Counter[str] = Counter()
    fetched, unexpected = [], []
    for page in require_pages():
        for tag, url in urls_of(page):
            if not is_external(url):
                continue
            host = urlsplit(url).hostname or ""
            hosts[host] += 1
            if tag != "a":  # a script, stylesheet, image or frame the browser would fetch
                fetched.append((page, tag, url))
            elif host not in EXPECTED_HOSTS:
                unexpected.append((page, url))
    print(f"\nlinks to other hosts: {dict(hosts.most_common())}")
    assert not fetched, f"pages load files from other hosts (a CDN?): {fetched[:20]}"
    assert not unexpected, f"links to unexpected hosts: {unexpected[:20]}"


@pytest.mark.parametrize("page", PAGES or ["(no built site)"])
def test_every_image_has_alt_text(page):
    require_pages()
    missing = [image.get("src") or image.get("id") for image in parsed(SITE / page).images
               if not (image.get("alt") or "").strip()]
    assert not missing, f"images without alt text in {page}: {[str(m)[:80] for m in missing]}"
