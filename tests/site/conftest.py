"""Fixtures of the browser tests: the built site on a local server, headless Chromium."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator

import pytest
from offline_site import SITE, chromium, unavailable


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    if not (SITE / "index.html").is_file():
        unavailable(f"no built site at {SITE}; build it with the README's build command")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched
