"""The browser side the package's anywidgets share: each widget's ES module, assembled.

An anywidget's module is handed to the browser as text and loaded from a blob, so it cannot
import a neighbouring file. :func:`widget_module` appends ``widget_controls.js`` (what every
widget needs, such as keeping JupyterLab's shortcuts off the widget's controls) to the
widget's own file; the widgets set their ``_esm`` to the result.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHARED_MODULE", "widget_module"]

_HERE = Path(__file__).parent

#: The file of helpers appended to every widget's module.
SHARED_MODULE = _HERE / "widget_controls.js"


def widget_module(filename: str) -> str:
    """The ES module of one widget: ``segtutor/viz/<filename>`` followed by the shared helpers.

    Args:
        filename: the widget's JavaScript file next to this module, e.g. ``"conv_explorer.js"``.

    Returns:
        the module's source text.

    Raises:
        TypeError: ``filename`` is not a ``str``.
        ValueError: ``filename`` is not a ``.js`` file in ``segtutor/viz``.
    """
    if not isinstance(filename, str):
        raise TypeError(f"filename must be a str such as 'conv_explorer.js', got "
                        f"{filename!r} ({type(filename).__name__})")
    path = _HERE / filename
    valid = sorted(p.name for p in _HERE.glob("*.js") if p != SHARED_MODULE)
    if Path(filename).name != filename or path == SHARED_MODULE or not path.is_file() \
            or path.suffix != ".js":
        raise ValueError(f"no widget module {filename!r} in segtutor/viz; use one of {valid}")
    return f"{path.read_text()}\n{SHARED_MODULE.read_text()}"
