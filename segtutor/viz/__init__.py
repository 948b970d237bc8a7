"""Pictures: the VOC palette, mask overlays, prediction grids, training curves and
accuracy-versus-cost plots.

Diagrams of convolution arithmetic live in :mod:`segtutor.viz.diagrams`; the interactive
widgets (which also work in the static HTML site) in :mod:`segtutor.viz.widgets`,
:mod:`segtutor.viz.receptive_widget` and :mod:`segtutor.viz.roi_widget`
(:class:`RoIExplorer`, RoIPool versus RoIAlign, whose static figure is
:func:`plot_roi_quantisation`).
"""

from .plots import (
    IGNORE_INDEX,
    colorize,
    overlay,
    plot_history,
    plot_tradeoff,
    show_image,
    show_mask,
    show_predictions,
    voc_palette,
)
from .roi import RoIFigure, plot_roi_quantisation
from .roi_widget import RoIExplorer
from .source import show_source

__all__ = [
    "IGNORE_INDEX",
    "RoIExplorer",
    "RoIFigure",
    "colorize",
    "overlay",
    "plot_history",
    "plot_roi_quantisation",
    "plot_tradeoff",
    "show_image",
    "show_mask",
    "show_predictions",
    "show_source",
    "voc_palette",
]
