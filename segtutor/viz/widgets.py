"""Interactive widgets that keep working in the static HTML book.

:class:`ConvExplorer` is an `anywidget <https://anywidget.dev>`_ whose controls, drawing and
arithmetic all run in the browser (``conv_explorer.js`` next to this file). The Python object
carries the settings: it sets the initial values and reads the state back. Because nothing
needs a kernel, the widget stays interactive in JupyterLab, in Colab (anywidget switches on
Colab's custom widget manager itself; no ipywidgets upgrade) and in the published page, where
myst-nb embeds the widget state, including the JavaScript, when the book build executes the
notebook.

The drawing follows Dumoulin & Visin's conventions (https://arxiv.org/abs/1603.07285,
https://github.com/vdumoulin/conv_arithmetic); :meth:`ConvExplorer.static_figure` draws the
same configuration with matplotlib (:mod:`segtutor.viz.diagrams`) as the static fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

from segtutor import arithmetic
from segtutor.viz._frontend import widget_module

__all__ = ["ConvExplorer", "LIMITS", "explorer_output_size"]

_HERE = Path(__file__).parent

#: Range of every numeric control, inclusive (the sliders' min and max). Kept small so that
#: every configuration draws at a readable cell size and redraws within a frame.
LIMITS: dict[str, tuple[int, int]] = {
    "i": (1, 10),
    "k": (1, 5),
    "s": (1, 3),
    "p": (0, 5),
    "d": (1, 3),
    "output_padding": (0, 2),
}

_MEANINGS = {
    "i": "input size",
    "k": "kernel size",
    "s": "stride",
    "p": "padding",
    "d": "dilation",
    "output_padding": "output padding",
}


def explorer_output_size(
    i: int, k: int, s: int, p: int, d: int, transposed: bool, output_padding: int
) -> int:
    """Output size of the configuration the explorer shows, by :mod:`segtutor.arithmetic`.

    Args:
        i, k, s, p, d: input size, kernel size, stride, padding, dilation.
        transposed: a transposed convolution (``nn.ConvTranspose2d``) instead of ``nn.Conv2d``.
        output_padding: extra bottom/right rows and columns; only for ``transposed``.

    Returns:
        the output's height (= width).

    Raises:
        ValueError: the configuration is impossible (the message says why), including
            ``output_padding != 0`` without ``transposed``.
        TypeError: a size is not an ``int``.
    """
    if transposed:
        return arithmetic.conv_transpose_output_size(i, k, s, p, d, output_padding)
    if output_padding != 0:
        raise ValueError(
            f"output_padding={output_padding} only applies to a transposed convolution; "
            "switch transposed on or set output_padding=0"
        )
    return arithmetic.conv_output_size(i, k, s, p, d)


class _Setting(traitlets.Int):
    """An ``int`` trait limited to ``LIMITS[name]``; wrong types raise ``TypeError``."""

    def validate(self, obj: Any, value: Any) -> int:
        low, high = LIMITS[self.name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"ConvExplorer.{self.name} ({_MEANINGS[self.name]}) must be an int in "
                f"[{low}, {high}], got {value!r} ({type(value).__name__})"
            )
        if not low <= value <= high:
            raise ValueError(
                f"ConvExplorer.{self.name}={value} is outside the explorer's range for the "
                f"{_MEANINGS[self.name]}: use {low} <= {self.name} <= {high}"
            )
        return value


class _Switch(traitlets.Bool):
    """A ``bool`` trait that refuses anything else (``1`` or ``"yes"`` included)."""

    def validate(self, obj: Any, value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError(
                f"ConvExplorer.{self.name} must be True or False, got {value!r} "
                f"({type(value).__name__})"
            )
        return value


class ConvExplorer(anywidget.AnyWidget):
    """Explore convolution arithmetic: sliders, the drawn grids, the formula, step and play.

    The browser draws the padded input (blue cells, dashed padding), the kernel footprint at
    the current output position and the output (cyan); a transposed convolution is drawn as
    the equivalent stride-1 convolution over the zero-inserted, padded input. It shows the
    output-size formula with the numbers plugged in and refuses impossible settings with the
    reason (the same messages as :mod:`segtutor.arithmetic`).

    Example::

        from segtutor.viz.widgets import ConvExplorer
        ConvExplorer(i=5, k=3, s=2, p=1)            # o = floor((5 + 2*1 - 3)/2) + 1 = 3

    Synced traits: ``i, k, s, p, d, transposed, output_padding`` (Python or the controls may
    change them) and the read-only ``output_size`` and ``error``. Those two are computed
    here on every change and again by the browser when the widget is displayed; an
    impossible configuration gives ``output_size == 0`` and the reason in ``error``.

    Args:
        i: input size (height = width), within ``LIMITS["i"]``.
        k: kernel size.
        s: stride.
        p: zero padding on each side.
        d: dilation.
        transposed: show a transposed convolution (``nn.ConvTranspose2d``).
        output_padding: extra bottom/right output rows and columns (transposed only).
        **kwargs: passed to :class:`anywidget.AnyWidget` (e.g. ``layout``).

    Raises:
        TypeError: a setting has the wrong type (``bool`` is not an ``int`` here).
        ValueError: a setting is outside ``LIMITS``, or the starting configuration is
            impossible (the controls can reach impossible ones later; the widget then shows
            the reason instead of a drawing).
    """

    _esm = widget_module("conv_explorer.js")  # the file and the shared widget_controls.js
    _css = _HERE / "conv_explorer.css"

    i = _Setting(5, help="input size").tag(sync=True)
    k = _Setting(3, help="kernel size").tag(sync=True)
    s = _Setting(1, help="stride").tag(sync=True)
    p = _Setting(0, help="padding on each side").tag(sync=True)
    d = _Setting(1, help="dilation").tag(sync=True)
    transposed = _Switch(False, help="transposed convolution").tag(sync=True)
    output_padding = _Setting(0, help="extra bottom/right output (transposed only)").tag(sync=True)
    output_size = traitlets.Int(0, read_only=True, help="0 when impossible").tag(sync=True)
    error = traitlets.Unicode("", read_only=True, help="why the setting is impossible").tag(
        sync=True
    )
    _limits = traitlets.Dict({name: list(bounds) for name, bounds in LIMITS.items()}).tag(
        sync=True
    )

    def __init__(
        self,
        i: int = 5,
        k: int = 3,
        s: int = 1,
        p: int = 0,
        d: int = 1,
        transposed: bool = False,
        output_padding: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            i=i, k=k, s=s, p=p, d=d, transposed=transposed, output_padding=output_padding,
            **kwargs,
        )
        self._update_result()  # traitlets only notifies changes, and defaults are no change
        if self.error:
            raise ValueError(f"ConvExplorer cannot start from an impossible setting: {self.error}")

    @traitlets.observe("i", "k", "s", "p", "d", "transposed", "output_padding")
    def _update_result(self, change: dict[str, Any] | None = None) -> None:
        try:
            size, error = explorer_output_size(**self.settings()), ""
        except ValueError as exc:
            size, error = 0, str(exc)
        self.set_trait("output_size", size)
        self.set_trait("error", error)

    def settings(self) -> dict[str, Any]:
        """The current settings as keyword arguments (``i, k, s, p, d, transposed, output_padding``)."""
        return {
            "i": self.i,
            "k": self.k,
            "s": self.s,
            "p": self.p,
            "d": self.d,
            "transposed": self.transposed,
            "output_padding": self.output_padding,
        }

    def static_figure(self, step: int = 0) -> Any:
        """The same diagram drawn by matplotlib, for print and for readers without JavaScript.

        Args:
            step: the output position to show, row-major, ``0 <= step < output_size**2``.

        Returns:
            a :class:`segtutor.viz.diagrams.ConvDiagram` (a notebook displays it).

        Raises:
            ValueError: the current setting is impossible, or ``step`` is out of range.
        """
        from segtutor.viz import diagrams

        if self.error:
            raise ValueError(f"nothing to draw: {self.error}")
        c = self.settings()
        if c.pop("transposed"):
            return diagrams.draw_transposed_conv(**c, step=step)
        c.pop("output_padding")
        return diagrams.draw_conv(**c, step=step)
