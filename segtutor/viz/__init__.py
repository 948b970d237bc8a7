"""Pictures: the VOC palette, mask overlays, prediction grids and training curves.

Diagrams of convolution arithmetic live in :mod:`segtutor.viz.diagrams`; the interactive
widgets (which also work in the static HTML site) in :mod:`segtutor.viz.widgets`.
"""

from .plots import (
    IGNORE_INDEX,
    colorize,
    overlay,
    plot_history,
    show_image,
    show_mask,
    show_predictions,
    voc_palette,
)
from .source import show_source

__all__ = [
    "IGNORE_INDEX",
    "colorize",
    "overlay",
    "plot_history",
    "show_image",
    "show_mask",
    "show_predictions",
    "show_source",
    "voc_palette",
]
