"""Showing the package's own source in the book, so that text and code never drift apart."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["show_source"]


def show_source(obj: Any) -> Any:
    """Display an object's real source code, syntax-highlighted, in a notebook.

    The book uses this instead of pasting code, so the text always shows what runs.
    """
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
