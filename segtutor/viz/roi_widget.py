"""RoIPool versus RoIAlign, interactive, in the notebook and in the static HTML book.

:class:`RoIExplorer` is an `anywidget <https://anywidget.dev>`_ like
:class:`segtutor.viz.receptive_widget.ReceptiveFieldViewer`: its controls, drawing and
arithmetic run in the browser (``roi_explorer.js`` next to this file), so it stays
interactive in JupyterLab, Colab and the published page. It draws a feature map and one box
on it, scaled by ``spatial_scale``: RoIPool's box rounded to whole cells and its
``floor``/``ceil`` bins (Girshick, "Fast R-CNN", https://arxiv.org/abs/1504.08083) next to
RoIAlign's exact bins and bilinear sample points (He et al., "Mask R-CNN",
https://arxiv.org/abs/1703.06870), and prints how far each operator's bin edges land from
the exact ones in input pixels. The JavaScript computes what
:mod:`segtutor.arithmetic.roi` computes, which is what torchvision's kernels compute; the
tests check all three agree. :meth:`RoIExplorer.static_figure` draws the current view with
matplotlib (:func:`segtutor.viz.roi.plot_roi_quantisation`), the fallback for print.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from segtutor._checks import check_bool, check_choice, check_int, check_number, describe
from segtutor.arithmetic import (
    Box,
    Misalignment,
    RoIAlignSamples,
    RoIPoolBins,
    misalignment,
    roi_align_samples,
    roi_pool_bins,
)
from segtutor.viz import diagrams
from segtutor.viz._frontend import widget_module
from segtutor.viz.roi import ALIGN_COLOR, MODES, POOL_COLOR, SAMPLE_COLOR

__all__ = [
    "BOX_STEP",
    "FEATURE_SIZE_LIMITS",
    "OUTPUT_SIZE_LIMITS",
    "SAMPLING_RATIOS",
    "SPATIAL_SCALES",
    "RoIExplorer",
    "adjust_box",
]

_HERE = Path(__file__).parent

#: The feature-map scales on offer: input strides 1 to 32 (a ResNet's C1 to C5).
SPATIAL_SCALES = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)
#: RoIAlign's samples per bin and axis on offer; -1 is torchvision's adaptive default.
SAMPLING_RATIOS = (-1, 1, 2, 4)
#: Rows (and columns) of the feature map, inclusive.
FEATURE_SIZE_LIMITS = (1, 32)
#: Bins per side, inclusive (Mask R-CNN uses 7 for boxes, 14 for masks).
OUTPUT_SIZE_LIMITS = (1, 14)
#: The box sliders' step, in input pixels.
BOX_STEP = 0.25

_SCALE_TEXT = ", ".join("1" if s == 1 else f"1/{int(1 / s)}" for s in SPATIAL_SCALES)
_CORNERS = {"x1": "left edge", "y1": "top edge", "x2": "right edge", "y2": "bottom edge"}


def _quarter_pixel(value: float) -> float:
    """To the sliders' quarter pixel, halves up (as the JavaScript's ``quarterPixel``)."""
    return math.floor(value * 4 + 0.5) / 4


def adjust_box(box: Box, old_scale: float, new_scale: float,
               feature_size: tuple[int, int]) -> Box:
    """The box after a change of scale or map size, as the explorer's controls move it.

    A new scale keeps the box over the same feature cells (its coordinates times
    ``old_scale / new_scale``, rounded to a quarter pixel); then it is clipped to the new
    input, ``[0, width / new_scale] x [0, height / new_scale]``. The same as ``adjustBox``
    in ``roi_explorer.js``.
    """
    factor = old_scale / new_scale
    limits = (feature_size[1] / new_scale, feature_size[0] / new_scale)  # x, y
    moved = [min(v if factor == 1 else _quarter_pixel(v * factor), limits[i % 2])
             for i, v in enumerate(box)]
    return min(moved[0], moved[2]), min(moved[1], moved[3]), moved[2], moved[3]


# --------------------------------------------------------------------------- the checks


def _check_corner(name: str, value: object) -> float:
    return check_number(value, f"{name} ({_CORNERS[name]} of the box, input pixels)")


def _check_feature_size(value: object) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise TypeError(f"feature_size must be a pair (rows, cols), got {describe(value)}")
    low, high = FEATURE_SIZE_LIMITS
    return [check_int(v, f"feature_size[{axis}] (map {'rows' if axis == 0 else 'cols'})",
                      minimum=low, maximum=high) for axis, v in enumerate(value)]


def _check_scale(value: object) -> float:
    scale = check_number(value, "spatial_scale")
    if scale not in SPATIAL_SCALES:
        raise ValueError(f"spatial_scale must be one of {_SCALE_TEXT}, got {value!r}")
    return scale


def _check_output_size(value: object) -> int:
    return check_int(value, "output_size (bins per side)", minimum=OUTPUT_SIZE_LIMITS[0],
                     maximum=OUTPUT_SIZE_LIMITS[1])


def _check_sampling_ratio(value: object) -> int:
    return check_choice(check_int(value, "sampling_ratio"), "sampling_ratio", SAMPLING_RATIOS)


def _check_mode(value: object) -> str:
    return check_choice(value, "mode", MODES)


def _check_fits(box: Box, feature_size: list[int], scale: float) -> None:
    """The box must lie on the input, corners in order."""
    width, height = feature_size[1] / scale, feature_size[0] / scale
    x1, y1, x2, y2 = box
    if not (0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height):
        raise ValueError(
            f"box (x1, y1, x2, y2) must satisfy 0 <= x1 <= x2 <= {width:g} and "
            f"0 <= y1 <= y2 <= {height:g} (the {width:g}x{height:g} px input of a "
            f"{feature_size[0]}x{feature_size[1]} map at spatial_scale {scale:g}), got "
            f"{tuple(box)}")


class _Corner(traitlets.Float):
    def validate(self, obj: Any, value: Any) -> float:
        return _check_corner(self.name, value)


class _Checked(traitlets.TraitType):
    """A trait whose value one of the module's checks validates."""

    def __init__(self, check: Any, default: Any, **kwargs: Any) -> None:
        super().__init__(default, **kwargs)
        self._check = check

    def validate(self, obj: Any, value: Any) -> Any:
        return self._check(value)


# --------------------------------------------------------------------------- the widget


class RoIExplorer(anywidget.AnyWidget):
    """Move a box over a feature map and watch RoIPool round it and RoIAlign sample it.

    The browser draws the feature map (blue cells) and the box scaled onto it (dashed). On
    the RoIPool side: the box rounded to whole cells (``round(x s)``, ``x2`` and ``y2``
    inclusive) and its bins with ``floor``/``ceil`` edges, which overlap (darker) or differ
    in size, clipped to the map. On the RoIAlign side: its equal, exact bins and the
    bilinear sample points of each bin, where they read the map (half a cell down and right
    of the box unless ``aligned``); pointing at a sample shows the four cells it
    interpolates and their weights. Below, the readout and the misalignment: how far each
    operator's bin edges land from the exact ones, in input pixels
    (:func:`segtutor.arithmetic.misalignment`).

    Example::

        from segtutor.viz import RoIExplorer
        RoIExplorer((21, 13, 150, 107), feature_size=(10, 14), spatial_scale=1/16)

    Synced traits: ``x1, y1, x2, y2`` (the box, input pixels), ``feature_size``
    (``[rows, cols]``), ``spatial_scale`` (one of :data:`SPATIAL_SCALES`), ``output_size``,
    ``sampling_ratio`` (one of :data:`SAMPLING_RATIOS`), ``aligned`` and ``mode``
    (``"both"``, ``"pool"`` or ``"align"``). The box must lie on the input
    (``feature_size / spatial_scale``); change several settings at once with :meth:`select`,
    which moves the box along as the controls do (:func:`adjust_box`).

    Args:
        box: ``(x1, y1, x2, y2)`` in input pixels; ``None`` for a default box.
        feature_size: ``(rows, cols)`` of the map, each within :data:`FEATURE_SIZE_LIMITS`.
        spatial_scale: feature-map size over input size.
        output_size: bins per side, within :data:`OUTPUT_SIZE_LIMITS`.
        sampling_ratio: RoIAlign's samples per bin and axis; ``-1`` is adaptive.
        aligned: RoIAlign's half-cell correction (torchvision's default is ``False``).
        mode: ``"both"`` side by side, ``"pool"`` or ``"align"`` alone.
        **kwargs: passed to :class:`anywidget.AnyWidget`.

    Raises:
        TypeError: an argument of the wrong type (``bool`` for a number included).
        ValueError: a setting outside its range, or a box off the input or with its corners
            out of order.
    """

    _esm = widget_module("roi_explorer.js")  # the file and the shared widget_controls.js
    _css = _HERE / "roi_explorer.css"

    x1 = _Corner(21.0, help="left edge of the box, input pixels").tag(sync=True)
    y1 = _Corner(13.0, help="top edge of the box, input pixels").tag(sync=True)
    x2 = _Corner(150.0, help="right edge of the box, input pixels").tag(sync=True)
    y2 = _Corner(107.0, help="bottom edge of the box, input pixels").tag(sync=True)
    feature_size = _Checked(_check_feature_size, [10, 14], help="[rows, cols] of the map").tag(sync=True)
    spatial_scale = _Checked(_check_scale, 0.0625, help="map size over input size").tag(sync=True)
    output_size = _Checked(_check_output_size, 7, help="bins per side").tag(sync=True)
    sampling_ratio = _Checked(_check_sampling_ratio, -1, help="RoIAlign samples per bin and axis").tag(sync=True)
    aligned = _Checked(lambda v: check_bool(v, "aligned"), False, help="RoIAlign's half-cell shift").tag(sync=True)
    mode = _Checked(_check_mode, "both", help="what to show").tag(sync=True)
    _limits = traitlets.Dict({"feature_size": list(FEATURE_SIZE_LIMITS),
                              "output_size": list(OUTPUT_SIZE_LIMITS), "box_step": BOX_STEP}).tag(sync=True)
    _scales = traitlets.List(list(SPATIAL_SCALES)).tag(sync=True)
    _sampling_ratios = traitlets.List(list(SAMPLING_RATIOS)).tag(sync=True)
    _colors = traitlets.Dict({
        "cell": diagrams.INPUT_COLOR, "pool": POOL_COLOR, "align": ALIGN_COLOR,
        "sample": SAMPLE_COLOR, "tap": diagrams.OUTPUT_COLOR,
    }).tag(sync=True)

    def __init__(
        self,
        box: tuple[float, float, float, float] | None = None,
        *,
        feature_size: tuple[int, int] = (10, 14),
        spatial_scale: float = 1 / 16,
        output_size: int = 7,
        sampling_ratio: int = -1,
        aligned: bool = False,
        mode: str = "both",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._ready = True
        self.select(box=(21, 13, 150, 107) if box is None else box, feature_size=feature_size,
                    spatial_scale=spatial_scale, output_size=output_size,
                    sampling_ratio=sampling_ratio, aligned=aligned, mode=mode)

    # -- reading the state

    @property
    def box(self) -> Box:
        """``(x1, y1, x2, y2)`` in input pixels."""
        return self.x1, self.y1, self.x2, self.y2

    @property
    def input_size(self) -> tuple[float, float]:
        """``(height, width)`` of the input in pixels, the map's size over the scale."""
        return self.feature_size[0] / self.spatial_scale, self.feature_size[1] / self.spatial_scale

    def settings(self) -> dict[str, Any]:
        """The arguments of :func:`~segtutor.viz.roi.plot_roi_quantisation` for this view."""
        return {"box": self.box, "feature_size": tuple(self.feature_size),
                "output_size": self.output_size, "spatial_scale": self.spatial_scale,
                "sampling_ratio": self.sampling_ratio, "aligned": self.aligned, "mode": self.mode}

    @property
    def pool(self) -> RoIPoolBins:
        """RoIPool's bins, clipped to the map (:func:`~segtutor.arithmetic.roi_pool_bins`)."""
        return roi_pool_bins(self.box, self.output_size, self.spatial_scale,
                             feature_size=tuple(self.feature_size))

    @property
    def align(self) -> RoIAlignSamples:
        """RoIAlign's bins and samples (:func:`~segtutor.arithmetic.roi_align_samples`)."""
        return roi_align_samples(self.box, self.output_size, self.spatial_scale,
                                 self.sampling_ratio, self.aligned)

    @property
    def misalignment(self) -> Misalignment:
        """Both operators' bin edges against the exact ones, in input pixels."""
        return misalignment(self.box, self.output_size, self.spatial_scale, aligned=self.aligned)

    # -- changing it

    def select(
        self,
        *,
        box: tuple[float, float, float, float] | None = None,
        feature_size: tuple[int, int] | None = None,
        spatial_scale: float | None = None,
        output_size: int | None = None,
        sampling_ratio: int | None = None,
        aligned: bool | None = None,
        mode: str | None = None,
    ) -> None:
        """Change several settings at once, consistently (as the explorer's controls do).

        Without ``box``, a new ``spatial_scale`` or ``feature_size`` moves the current box
        along (:func:`adjust_box`: over the same cells, clipped to the new input).

        Raises:
            TypeError, ValueError: a bad setting, or a given box off the input. Nothing
                changes then.
        """
        size = self.feature_size if feature_size is None else _check_feature_size(feature_size)
        scale = self.spatial_scale if spatial_scale is None else _check_scale(spatial_scale)
        if box is None:
            new_box = adjust_box(self.box, self.spatial_scale, scale, tuple(size))
        else:
            if not isinstance(box, (tuple, list)) or len(box) != 4:
                raise TypeError(f"box must be (x1, y1, x2, y2), got {describe(box)}")
            new_box = tuple(_check_corner(name, v) for name, v in zip(_CORNERS, box, strict=True))
        _check_fits(new_box, size, scale)
        values = {"feature_size": size, "spatial_scale": scale,
                  **dict(zip(_CORNERS, new_box, strict=True))}
        for name, value, check in (("output_size", output_size, _check_output_size),
                                   ("sampling_ratio", sampling_ratio, _check_sampling_ratio),
                                   ("aligned", aligned, lambda v: check_bool(v, "aligned")),
                                   ("mode", mode, _check_mode)):
            if value is not None:
                values[name] = check(value)
        with self.hold_sync(), self.hold_trait_notifications():
            for name, value in values.items():
                setattr(self, name, value)

    @traitlets.validate("x1", "y1", "x2", "y2", "feature_size", "spatial_scale")
    def _check_consistent(self, proposal: traitlets.Bunch) -> Any:
        """Refuse a single change that moves the box off the input (use :meth:`select`)."""
        if not getattr(self, "_ready", False):  # still being constructed
            return proposal.value
        state = {"x1": self.x1, "y1": self.y1, "x2": self.x2, "y2": self.y2,
                 "feature_size": self.feature_size, "spatial_scale": self.spatial_scale,
                 proposal.trait.name: proposal.value}
        try:
            _check_fits(tuple(state[name] for name in _CORNERS), state["feature_size"],
                        state["spatial_scale"])
        except ValueError as error:
            raise ValueError(f"{error}; change several settings at once with select()") from None
        return proposal.value

    def static_figure(self) -> Any:
        """The current view drawn by matplotlib, for print and readers without JavaScript.

        Returns:
            a :class:`segtutor.viz.roi.RoIFigure` (a notebook displays it).
        """
        from segtutor.viz.roi import plot_roi_quantisation

        return plot_roi_quantisation(**self.settings())
