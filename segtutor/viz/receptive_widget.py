"""An interactive receptive-field view that keeps working in the static HTML book.

:class:`ReceptiveFieldViewer` is an `anywidget <https://anywidget.dev>`_ like
:class:`segtutor.viz.widgets.ConvExplorer`: its controls, drawing and arithmetic run in the
browser (``receptive_field.js`` next to this file), so it stays interactive in JupyterLab,
Colab and the published page. Hover over (or click) a cell of a layer's output grid and the
input region that unit reads is highlighted, clipped to the input, with the part that falls
in the zero padding drawn dashed; the receptive field size ``r``, effective stride ``S`` and
effective padding ``P`` of the layer are printed. The JavaScript maps a unit back through the
layers with the same recurrences as :func:`segtutor.arithmetic.receptive_field` (Araujo,
Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019,
https://distill.pub/2019/computing-receptive-fields/); the tests check that the two agree.

The stack travels to the browser as a list of plain dicts (:func:`layer_dicts`), one per
layer, for example ``{"type": "conv", "k": [3, 3], "s": [1, 1], "p": [1, 1], "d": [1, 1]}``.
:meth:`ReceptiveFieldViewer.static_figure` draws the current view with matplotlib
(:func:`segtutor.viz.receptive.plot_receptive_field`), the fallback for print.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import anywidget
import traitlets
from torch import nn

from segtutor import arithmetic
from segtutor._checks import check_bool, check_int, check_int_pair, describe
from segtutor.arithmetic import (
    Conv,
    ConvTranspose,
    LayerField,
    LayerSpec,
    Pool,
    ReceptiveFieldTable,
    Upsample,
)
from segtutor.viz import diagrams
from segtutor.viz._frontend import widget_module

__all__ = [
    "MAX_INPUT_SIZE",
    "PRESETS",
    "Preset",
    "ReceptiveFieldViewer",
    "layer_dicts",
    "layers_from_dicts",
]

_HERE = Path(__file__).parent

#: Largest input side the viewer draws (the input grid is square).
MAX_INPUT_SIZE = 256

#: The keys of each layer type's dict besides ``"type"``, with the spec field they fill.
_DICT_KEYS: dict[str, tuple[str, ...]] = {
    "conv": ("k", "s", "p", "d"),
    "pool": ("k", "s", "p", "d", "ceil_mode"),
    "conv_transpose": ("k", "s", "p", "d", "output_padding"),
    "upsample": ("factor", "mode"),
    "identity": (),
}
_SPEC_CLASSES = {"conv": Conv, "pool": Pool, "conv_transpose": ConvTranspose, "upsample": Upsample}
_PAIR_KEYS = {"k", "s", "p", "d", "output_padding", "factor"}


class Preset(NamedTuple):
    """A layer stack the viewer offers, with the input size it starts from."""

    layers: list[LayerSpec]
    input_size: int


def _vgg16_conv1_to_pool3() -> list[LayerSpec]:
    """VGG16's first three blocks: 3x3 convolutions (padding 1) and 2x2 max pooling."""
    layers: list[LayerSpec] = []
    for convolutions in (2, 2, 3):
        layers += [Conv(3, p=1)] * convolutions + [Pool(2)]
    return layers


#: The stacks every viewer offers in its preset menu, besides the one it was given.
PRESETS: dict[str, Preset] = {
    "3 convs": Preset([Conv(3, p=1)] * 3, 12),
    "conv-pool x2": Preset([Conv(3, p=1), Pool(2)] * 2, 16),
    "dilated 1-2-4": Preset([Conv(3, p=1), Conv(3, p=2, d=2), Conv(3, p=4, d=4)], 16),
    "VGG16 conv1-pool3": Preset(_vgg16_conv1_to_pool3(), 48),
    "down-up (bilinear)": Preset(
        [Conv(3, p=1), Pool(2), Conv(3, p=1), Upsample(2, "bilinear"), Conv(3, p=1)], 16),
    "transposed conv": Preset([Conv(3, s=2, p=1), Conv(3, s=2, p=1), ConvTranspose(4, s=2, p=1)], 16),
}


# --------------------------------------------------------------------------- the wire format


def _whole_factors(name: str, factor: object) -> list[int]:
    """An upsampling factor (``2``, ``2.0`` or a pair) as ``[height, width]`` of ``int``."""
    factors = list(factor) if isinstance(factor, (tuple, list)) else [factor, factor]
    if len(factors) != 2:
        raise ValueError(f"{name}: factor must be a number or a pair (height, width), got {factor!r}")
    for f in factors:
        whole = isinstance(f, float) and f.is_integer()
        if not whole and (isinstance(f, bool) or not isinstance(f, numbers.Integral)):
            raise ValueError(f"{name}: upsampling factor {factor!r} is not a whole number; the "
                             f"viewer draws integer factors such as 2 or 4")
    return [int(f) for f in factors]


def _as_layer(layer: object, name: str) -> object:
    """One entry of the given stack, a dict turned into its spec; specs and modules as given."""
    if isinstance(layer, dict):
        return _dict_spec(layer, name)
    if isinstance(layer, (nn.Module, list, tuple, *_SPEC_CLASSES.values())):
        return layer
    raise TypeError(f"{name}: expected a layer spec (Conv, Pool, ConvTranspose, Upsample), an "
                    f"nn.Module or a dict, got {describe(layer)} ({type(layer).__name__})")


def _refuse_blocks(layers: list[object]) -> None:
    """A block (a residual one, say) takes several rows, which one layer of the viewer cannot show."""
    for index, layer in enumerate(layers):
        modules = layer.modules() if isinstance(layer, nn.Module) else ()
        block = next((m for m in modules if arithmetic.main_path(m) is not None), None)
        if block is not None:
            rows = len(arithmetic.layer_specs(block))
            raise ValueError(
                f"layer {index}: the viewer draws a plain stack of layers and cannot show "
                f"{type(block).__name__} (its receptive field takes {rows} rows); pass its "
                f"layers one by one")


def _stack(layers: object) -> tuple[list[LayerSpec], ReceptiveFieldTable]:
    """The stack's specs and its receptive-field table (which checks every layer)."""
    entries = list(layers) if isinstance(layers, (list, tuple, nn.Sequential)) else [layers]
    given = [_as_layer(layer, f"layer {index}") for index, layer in enumerate(entries)]
    _refuse_blocks(given)
    specs = arithmetic.layer_specs(given)
    if not specs:
        raise ValueError(f"the viewer needs at least one layer, got {layers!r}")
    return specs, arithmetic.receptive_field(given)  # names the layer it refuses, and why


def _spec_dict(spec: LayerSpec, name: str) -> dict[str, Any]:
    """The plain dict of one spec, every size a pair ``[height, width]``."""
    if isinstance(spec, nn.Identity):
        return {"type": "identity"}
    kind = next(kind for kind, cls in _SPEC_CLASSES.items() if isinstance(spec, cls))
    out: dict[str, Any] = {"type": kind}
    for key in _DICT_KEYS[kind]:
        value = getattr(spec, key)
        if key == "s" and value is None:
            value = spec.k  # a pooling window's default stride is its size, as in PyTorch
        if key == "factor":
            value = _whole_factors(name, value)
        elif key in _PAIR_KEYS:
            value = list(check_int_pair(value, f"{name}: {key}"))
        out[key] = value
    return out


def _dict_spec(layer: dict[str, Any], name: str) -> LayerSpec:
    """The spec that one layer dict describes (missing keys take the spec's defaults)."""
    kind = layer.get("type")
    if kind not in _DICT_KEYS:
        raise ValueError(f"{name}: unknown layer type {kind!r}; use one of {sorted(_DICT_KEYS)}")
    unknown = set(layer) - {"type", *_DICT_KEYS[kind]}
    if unknown:
        raise ValueError(f"{name}: a {kind!r} layer has no {sorted(unknown)}; its keys are "
                         f"{['type', *_DICT_KEYS[kind]]}")
    if kind == "identity":
        return nn.Identity()
    values = {}
    for key in _DICT_KEYS[kind]:
        if key not in layer:
            continue
        value = layer[key]
        if key in _PAIR_KEYS:
            value = check_int_pair(value, f"{name}: {key}")
        elif key == "ceil_mode":
            check_bool(value, f"{name}: ceil_mode")
        values[key] = value
    return _SPEC_CLASSES[kind](**values)


def layer_dicts(layers: object) -> list[dict[str, Any]]:
    """The stack as the viewer's JavaScript receives it: one plain dict per layer.

    Args:
        layers: a list (or ``nn.Sequential``) of :class:`~segtutor.arithmetic.Conv`,
            :class:`~segtutor.arithmetic.Pool`, :class:`~segtutor.arithmetic.ConvTranspose`,
            :class:`~segtutor.arithmetic.Upsample` specs, dicts in this same format, and
            ``nn.Conv2d``, ``nn.ConvTranspose2d``, ``nn.MaxPool2d``, ``nn.AvgPool2d``,
            ``nn.Upsample`` or element-wise modules (ReLU, BatchNorm2d, ...).

    Returns:
        dicts such as ``{"type": "conv", "k": [3, 3], "s": [1, 1], "p": [1, 1], "d": [1, 1]}``
        (``"pool"`` adds ``"ceil_mode"``, ``"conv_transpose"`` adds ``"output_padding"``,
        ``"upsample"`` has ``"factor"`` and ``"mode"``, an element-wise layer is
        ``{"type": "identity"}``), one per row of
        :func:`~segtutor.arithmetic.receptive_field`'s table.

    Raises:
        ValueError: an empty stack, a layer :func:`~segtutor.arithmetic.receptive_field`
            refuses, a block that it opens into several rows (a residual block, see
            :func:`~segtutor.arithmetic.main_path`), an unknown dict key or type, or an
            upsampling factor that is not a whole number.
        TypeError: a layer of another kind, or a size that is not an ``int``.
    """
    specs, _ = _stack(layers)
    return [_spec_dict(spec, f"layer {index}") for index, spec in enumerate(specs)]


def layers_from_dicts(dicts: Sequence[dict[str, Any]]) -> list[LayerSpec]:
    """The specs that :func:`layer_dicts` dicts describe, for :func:`~segtutor.arithmetic.receptive_field`.

    An ``{"type": "identity"}`` layer becomes ``nn.Identity()``, which keeps the rows of the
    receptive-field table aligned with the viewer's layers.

    Raises:
        ValueError: an unknown layer type or key.
        TypeError: a layer that is not a dict, or a size that is not an ``int``.
    """
    specs: list[LayerSpec] = []
    for index, layer in enumerate(dicts):
        if not isinstance(layer, dict):
            raise TypeError(f"layer {index} must be a dict, got {describe(layer)} "
                            f"({type(layer).__name__})")
        specs.append(_dict_spec(layer, f"layer {index}"))
    return specs


def _preset_entry(name: str, layers: object, input_size: int) -> dict[str, Any]:
    """A menu entry: the stack's dicts, a short label per layer, the starting input size."""
    specs, table = _stack(layers)
    return {"name": name, "layers": [_spec_dict(spec, f"layer {index}") for index, spec in
                                     enumerate(specs)],
            "labels": [f.layer for f in table.layers],  # "Conv2d k3 p1", "ReLU"
            "input_size": input_size}


# --------------------------------------------------------------------------- the widget


def _check_input_size(value: object) -> int:
    return check_int(value, "input_size (the side of the square input)", minimum=1,
                     maximum=MAX_INPUT_SIZE)


class _InputSize(traitlets.Int):
    def validate(self, obj: Any, value: Any) -> int:
        return _check_input_size(value)


def _check_unit(value: object) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise TypeError(f"unit must be a pair (row, col), got {describe(value)}")
    return [check_int(v, f"unit[{axis}]") for axis, v in enumerate(value)]


class _Index(traitlets.Int):
    def validate(self, obj: Any, value: Any) -> int:
        return check_int(value, "layer")


class _Unit(traitlets.List):
    def validate(self, obj: Any, value: Any) -> list[int]:
        return _check_unit(value)


class ReceptiveFieldViewer(anywidget.AnyWidget):
    """Hover over an output cell of a layer to see the input region it reads.

    The browser draws the square input (blue) and the chosen layer's output grid (cyan).
    Hovering over an output cell, or clicking it (which keeps it chosen), or setting the
    row and column sliders highlights the input region of that unit: filled where it lies on
    the input, dashed where it reaches into the zero padding. Below the drawing the viewer
    prints the region and the layer's ``r``, ``S`` and ``P``. Menus choose the stack (the one
    given, or one of the :data:`PRESETS`) and the layer; a slider changes the input size.

    Example::

        from segtutor.arithmetic import Conv, Pool
        from segtutor.viz.receptive_widget import ReceptiveFieldViewer
        ReceptiveFieldViewer([Conv(3, p=1), Pool(2), Conv(3, p=1)], input_size=16)

    Synced traits: ``preset`` (the name of the stack shown), ``input_size``, ``layer`` (an
    index into the stack) and ``unit`` (``[row, col]`` of the chosen output cell). Change
    several at once, consistently, with :meth:`select`.

    Args:
        layers: the stack, anything :func:`layer_dicts` accepts (e.g. a list of
            ``arithmetic.Conv``/``Pool`` specs or of ``nn.Module`` objects); ``None`` starts from
            the first preset.
        input_size: the input's side, ``1 .. MAX_INPUT_SIZE``; ``None`` is 32 for a given
            stack (a preset has its own).
        layer: which layer's output to show; negative counts from the end.
        unit: the chosen output cell ``(row, col)``; ``None`` is the centre.
        name: the menu entry of the given stack.
        **kwargs: passed to :class:`anywidget.AnyWidget`.

    Raises:
        ValueError: the stack is refused (see :func:`layer_dicts`), does not fit the input,
            ``name`` is a preset's, or ``input_size``, ``layer`` or ``unit`` is out of range.
        TypeError: an argument has the wrong type.
    """

    _esm = widget_module("receptive_field.js")  # the file and the shared widget_controls.js
    _css = _HERE / "receptive_field.css"

    preset = traitlets.Unicode("", help="name of the stack shown").tag(sync=True)
    input_size = _InputSize(16, help="side of the square input").tag(sync=True)
    layer = _Index(0, help="index of the layer whose output is shown").tag(sync=True)
    unit = _Unit([0, 0], help="chosen output cell [row, col]").tag(sync=True)
    _presets = traitlets.List(traitlets.Dict(), help="the stacks on offer").tag(sync=True)
    _max_input_size = traitlets.Int(MAX_INPUT_SIZE).tag(sync=True)
    _colors = traitlets.Dict({
        "input": diagrams.INPUT_COLOR, "output": diagrams.OUTPUT_COLOR,
        "kernel": diagrams.KERNEL_COLOR, "kernelOpacity": diagrams.KERNEL_ALPHA,
        "padding": diagrams.PADDING_COLOR,
    }).tag(sync=True)

    def __init__(
        self,
        layers: object = None,
        input_size: int | None = None,
        *,
        layer: int = -1,
        unit: tuple[int, int] | None = None,
        name: str = "your stack",
        **kwargs: Any,
    ) -> None:
        presets = [_preset_entry(n, p.layers, p.input_size) for n, p in PRESETS.items()]
        if layers is not None:
            if name in PRESETS:
                raise ValueError(f"name={name!r} is already a preset's name; choose another "
                                 f"(presets: {list(PRESETS)})")
            size = 32 if input_size is None else input_size
            presets.insert(0, _preset_entry(name, layers, _check_input_size(size)))
        super().__init__(_presets=presets, **kwargs)
        chosen = presets[0]
        self.select(preset=chosen["name"],
                    input_size=chosen["input_size"] if input_size is None else input_size,
                    layer=layer, unit=unit)

    # -- reading the state

    @property
    def layers(self) -> list[LayerSpec]:
        """The specs of the stack shown (element-wise layers as ``nn.Identity()``)."""
        return layers_from_dicts(self._entry(self.preset)["layers"])

    @property
    def table(self) -> ReceptiveFieldTable:
        """:func:`~segtutor.arithmetic.receptive_field` of the stack at the current input size."""
        return arithmetic.receptive_field(self.layers, self.input_size)

    @property
    def field(self) -> LayerField:
        """The receptive field of the chosen layer."""
        return self.table.layers[self.layer]

    @property
    def region(self) -> tuple[arithmetic.Interval, arithmetic.Interval]:
        """Input rows and columns ``(first, last)`` the chosen unit reads, padding included."""
        return self.field.region(*self.unit)

    def _entry(self, name: str) -> dict[str, Any]:
        for entry in self._presets:
            if entry["name"] == name:
                return entry
        raise ValueError(f"preset={name!r} is not on offer; choose one of "
                         f"{[entry['name'] for entry in self._presets]}")

    # -- changing it

    def select(
        self,
        *,
        preset: str | None = None,
        input_size: int | None = None,
        layer: int | None = None,
        unit: tuple[int, int] | None = None,
    ) -> None:
        """Change what the viewer shows, keeping the settings consistent (as its controls do).

        A new ``preset`` starts from its own input size, its last layer and the centre unit;
        a new ``input_size`` or ``layer`` moves the unit to the centre. Arguments given
        override those defaults.

        Raises:
            ValueError: an unknown preset, an input the stack does not fit, or ``layer`` /
                ``unit`` outside the stack or the layer's output. Nothing changes then.
            TypeError: an argument has the wrong type.
        """
        name = self.preset if preset is None else preset
        entry = self._entry(name)
        if input_size is None:
            input_size = entry["input_size"] if preset is not None else self.input_size
        table = arithmetic.receptive_field(layers_from_dicts(entry["layers"]),
                                           _check_input_size(input_size))
        count = len(table.layers)
        if layer is None:
            layer = count - 1 if preset is not None else self.layer
        if not -count <= check_int(layer, "layer") < count:
            raise ValueError(f"layer={layer} is not a layer of {name!r}: use -{count} <= layer < {count}")
        layer %= count
        rows, cols = table.layers[layer].output_size
        if unit is None:
            unit = (rows // 2, cols // 2)
        row, col = _check_unit(unit)
        if not (0 <= row < rows and 0 <= col < cols):
            raise ValueError(f"unit={tuple(unit)} is outside the {rows}x{cols} output of layer "
                             f"{layer}: use 0 <= row < {rows} and 0 <= col < {cols}")
        with self.hold_sync(), self.hold_trait_notifications():
            self.preset, self.input_size, self.layer, self.unit = name, input_size, layer, [row, col]

    @traitlets.validate("preset", "input_size", "layer", "unit")
    def _check_consistent(self, proposal: traitlets.Bunch) -> Any:
        """Refuse a single change that leaves the others invalid (use :meth:`select`)."""
        if not self._presets:  # still being constructed
            return proposal.value
        state = {"preset": self.preset, "input_size": self.input_size, "layer": self.layer,
                 "unit": self.unit, proposal.trait.name: proposal.value}
        table = arithmetic.receptive_field(layers_from_dicts(self._entry(state["preset"])["layers"]),
                                           state["input_size"])
        if not 0 <= state["layer"] < len(table.layers):
            raise ValueError(f"layer={state['layer']} is not a layer of {state['preset']!r} "
                             f"(0 .. {len(table.layers) - 1}); change both with select()")
        rows, cols = table.layers[state["layer"]].output_size
        row, col = state["unit"]
        if not (0 <= row < rows and 0 <= col < cols):
            raise ValueError(f"unit={tuple(state['unit'])} is outside the {rows}x{cols} output of "
                             f"layer {state['layer']}; change both with select()")
        return proposal.value

    def static_figure(self, image: object = None) -> Any:
        """The current view drawn by matplotlib, for print and readers without JavaScript.

        Args:
            image: optional picture under the input grid (see
                :func:`~segtutor.viz.receptive.plot_receptive_field`).

        Returns:
            a :class:`segtutor.viz.receptive.ReceptiveFieldFigure` (a notebook displays it).
        """
        from segtutor.viz.receptive import plot_receptive_field

        return plot_receptive_field(self.layers, self.input_size, tuple(self.unit),
                                    layer=self.layer, image=image)
