"""A widget's own JavaScript and CSS (as the package ships them), rendered in headless Chromium.

:func:`render_widget` puts one anywidget on an empty page the way anywidget does: the
widget's ``_css`` in a ``<style>``, its ``_esm`` imported from a blob URL, and ``render({model,
el})`` called with a small stand-in for the widget model (``get``/``set``/``on``/``off``/
``save_changes``; ``set`` fires ``change:<name>`` as Backbone does). The model is
``window.widgetModel``, so a test can change a trait as Python would. This checks the package's
current files, not the built site's copy of them.

The colour helpers read computed colours from the page and apply WCAG 2.1's definitions
(relative luminance, contrast ratio, https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio).
:func:`jupyterlab_theme_variables` reads a JupyterLab theme's ``--jp-*`` variables from the
installed JupyterLab's own CSS, so that a test can put the page in JupyterLab's dark theme.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

# Chromium's launcher (path, flags, the skip-or-fail rule) is the site tests' (one place).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "site"))
from offline_site import (  # noqa: E402
    MUTED_TEXT,
    assert_controls_suppress_jupyterlab_shortcuts,
    chromium,
    ring_extent,
    unavailable,
)

__all__ = ["MUTED_TEXT", "chromium", "assert_controls_suppress_jupyterlab_shortcuts",
           "ring_extent", "unavailable"]  # and what is defined below

#: WCAG 2.1 AA: the least contrast of normal text against its background (1.4.3).
TEXT_CONTRAST = 4.5

_RENDER = """async ({ state, css }) => {
    const style = document.createElement("style");
    style.textContent = css;
    document.head.appendChild(style);
    const listeners = new Map();
    const model = {
        get: (name) => state[name],
        set(name, value) {
            const changed = JSON.stringify(state[name]) !== JSON.stringify(value);
            state[name] = value;
            if (changed) for (const callback of listeners.get(`change:${name}`) ?? []) callback();
        },
        on(event, callback) { listeners.set(event, [...(listeners.get(event) ?? []), callback]); },
        off(event, callback) { listeners.set(event, (listeners.get(event) ?? []).filter((c) => c !== callback)); },
        save_changes() { window.savedChanges = (window.savedChanges ?? 0) + 1; },
    };
    const url = URL.createObjectURL(new Blob([state._esm], { type: "text/javascript" }));
    const module = await import(url);
    const el = document.createElement("div");
    el.className = "widget-output";
    document.body.appendChild(el);
    window.widgetModel = model;
    module.default.render({ model, el });
}"""


def render_widget(browser: Any, widget: Any, width: int = 1200) -> Any:
    """A new page showing ``widget`` (an anywidget) from its state; errors fail the caller."""
    page = browser.new_page(viewport={"width": width, "height": 1400})
    page.set_default_timeout(5_000)  # the widget draws at once: a missing element is missing
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.set_content("<!doctype html><html><head><meta charset='utf-8'></head><body></body></html>")
    state = json.loads(json.dumps(widget.get_state(), default=list))
    page.evaluate(_RENDER, {"state": state, "css": state["_css"]})
    assert not page.errors, page.errors
    return page


# ----------------------------------------------------------------------- colours (WCAG 2.1)


def parse_color(text: str) -> tuple[float, float, float, float]:
    """``rgb(r, g, b)`` / ``rgba(r, g, b, a)`` (a computed colour) as (r, g, b, alpha)."""
    match = re.fullmatch(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)", text.strip())
    if match is None:
        raise ValueError(f"not a computed rgb()/rgba() colour: {text!r}")
    r, g, b, a = match.groups()
    return float(r), float(g), float(b), 1.0 if a is None else float(a)


def over(top: tuple[float, float, float, float], below: tuple[float, float, float]) -> tuple[float, float, float]:
    """``top`` (with its alpha) composited over an opaque colour."""
    *rgb, alpha = top
    return tuple(alpha * c + (1 - alpha) * b for c, b in zip(rgb, below, strict=True))


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2.1's relative luminance of an sRGB colour with channels 0..255."""
    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: tuple[float, float, float], second: tuple[float, float, float]) -> float:
    """WCAG 2.1's contrast ratio (L1 + 0.05) / (L2 + 0.05), from 1 to 21."""
    high, low = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def backdrop(backgrounds: list[str]) -> tuple[float, float, float]:
    """The opaque colour behind an element: its and its ancestors' backgrounds (innermost
    first) composited over the canvas' white."""
    colour = (255.0, 255.0, 255.0)
    for text in reversed(backgrounds):
        colour = over(parse_color(text), colour)
    return colour


_TEXTS = """(root) => {
    const backgrounds = (element) => {
        const found = [];
        for (let e = element; e; e = e.parentElement) found.push(getComputedStyle(e).backgroundColor);
        return found;
    };
    const dimmed = (element) => {
        for (let e = element; e; e = e.parentElement) if (Number(getComputedStyle(e).opacity) < 1) return true;
        return false;
    };
    const texts = [];
    for (const element of [root, ...root.querySelectorAll("*")]) {
        const own = [...element.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join("").trim();
        if (!own || element.closest("svg, option") || element.getClientRects().length === 0) continue;
        texts.push({ text: own.slice(0, 40), color: getComputedStyle(element).color,
                     backgrounds: backgrounds(element), dimmed: dimmed(element) });
    }
    return texts;
}"""


def text_contrasts(locator: Any) -> list[tuple[str, float]]:
    """(text, contrast against its backdrop) of every visible text in the widget at ``locator``.

    Text inside a dimmed (opacity < 1) control is left out: WCAG 1.4.3 exempts inactive
    controls, and the explorer dims the output-padding slider while it does not apply.
    """
    found = []
    for item in locator.evaluate(_TEXTS):
        if item["dimmed"]:
            continue
        below = backdrop(item["backgrounds"])
        found.append((item["text"], contrast(over(parse_color(item["color"]), below), below)))
    return found


def jupyterlab_theme_variables(theme: str = "theme-dark-extension") -> dict[str, str]:
    """The ``--jp-*`` and ``--md-*`` custom properties of an installed JupyterLab theme
    (``share/jupyter/lab/themes/@jupyterlab/<theme>/index.css``); skips when JupyterLab (or
    that theme) is not installed, fails when SEGTUTOR_REQUIRE_SITE=1."""
    path = Path(sys.prefix) / "share" / "jupyter" / "lab" / "themes" / "@jupyterlab" / theme / "index.css"
    if not path.is_file():
        unavailable(f"JupyterLab's {theme} is not installed at {path}; pip install jupyterlab")
    css = path.read_text()
    found = dict(re.findall(r"(--(?:jp|md)-[\w-]+)\s*:\s*([^;}]+)", css))
    if "--jp-layout-color0" not in found:
        raise ValueError(f"{path} defines no --jp-layout-color0: not a JupyterLab theme file?")
    return {name: value.strip() for name, value in found.items()}


def apply_theme(page: Any, variables: dict[str, str]) -> None:
    """Set theme variables on the page's root, and the page background and text to the theme's
    (as JupyterLab's notebook does: --jp-layout-color0 behind, --jp-content-font-color1 text)."""
    page.evaluate(
        """(variables) => {
            for (const [name, value] of Object.entries(variables)) document.documentElement.style.setProperty(name, value);
            document.body.style.background = "var(--jp-layout-color0)";
            document.body.style.color = "var(--jp-content-font-color1)";
        }""",
        variables,
    )
