"""Receptive fields: the input region one output unit of a stack of layers reads.

The recurrences are those of Araujo, Norris & Sim, "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019 (https://distill.pub/2019/computing-receptive-fields/),
extended to upsampling layers (stride ``1/f``). A stack is given as small spec dataclasses
(:class:`Conv`, :class:`Pool`, :class:`ConvTranspose`, :class:`Upsample`), as modules, or
both; :func:`layer_specs` turns it into specs, and :func:`receptive_field` computes from
those specs (module -> spec -> one step per axis). :func:`measure_receptive_field` checks
the result by backpropagation.

    >>> receptive_field([Conv(3, p=1), Pool(2), Conv(3, p=1)]).overall.size
    (8, 8)

A block whose shortcut reads a subset of what its main path reads (a residual block)
counts by its main path. :func:`layer_specs` opens a block in one of two ways:

* a converter registered for its class with :func:`register_layers`, by the class itself
  or by its qualified name (so that this module need not import the package that defines
  it); torchvision's ``BasicBlock`` and ``Bottleneck`` are registered by name;
* a method ``receptive_field_layers()`` of the block that returns its main path::

      class Branch(nn.Module):
          def receptive_field_layers(self) -> list[nn.Module]:
              return [self.conv, self.bn, self.relu]
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from operator import attrgetter
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._checks import (
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_int_pair,
    check_number,
    check_optional_int,
    describe,
)
from .sizes import conv_output_size, conv_transpose_output_size, pool_output_size

__all__ = [
    "Conv",
    "ConvTranspose",
    "Interval",
    "LayerField",
    "LayerSpec",
    "MeasuredField",
    "Number",
    "Pool",
    "ReceptiveFieldTable",
    "Upsample",
    "layer_specs",
    "main_path",
    "measure_receptive_field",
    "receptive_field",
    "register_layers",
]

#: A receptive-field quantity: an ``int``, or a ``Fraction`` after upsampling layers.
Number = int | Fraction

#: Input indices ``(first, last)`` along one axis.
Interval = tuple[int, int]


# --------------------------------------------------------------------------- layer specs


@dataclass(frozen=True)
class Conv:
    """A convolution for :func:`receptive_field`: kernel ``k``, stride ``s``, padding ``p``,
    dilation ``d`` (each an ``int`` or a pair ``(height, width)``)."""

    k: int | tuple[int, int]
    s: int | tuple[int, int] = 1
    p: int | tuple[int, int] = 0
    d: int | tuple[int, int] = 1


@dataclass(frozen=True)
class Pool:
    """A max or average pooling window for :func:`receptive_field`; ``s=None`` means ``k``."""

    k: int | tuple[int, int]
    s: int | tuple[int, int] | None = None
    p: int | tuple[int, int] = 0
    d: int | tuple[int, int] = 1
    ceil_mode: bool = False


@dataclass(frozen=True)
class ConvTranspose:
    """A transposed convolution for :func:`receptive_field` (stride ``s`` means ``1/s``)."""

    k: int | tuple[int, int]
    s: int | tuple[int, int] = 1
    p: int | tuple[int, int] = 0
    d: int | tuple[int, int] = 1
    output_padding: int | tuple[int, int] = 0


@dataclass(frozen=True)
class Upsample:
    """Interpolation by ``factor``, ``mode`` ``"nearest"`` or ``"bilinear"``
    (``align_corners=False``).

    The factor is a positive number or a pair ``(height, width)`` of them: a whole number
    such as 2 in the book's networks, and whatever ``nn.Upsample(scale_factor=...)`` holds
    for a module converted by :func:`layer_specs`."""

    factor: float | tuple[float, float]
    mode: str = "nearest"


#: One layer as :func:`layer_specs` gives it; an element-wise layer is ``nn.Identity()``.
LayerSpec = Conv | Pool | ConvTranspose | Upsample | nn.Identity

_SPECS = (Conv, Pool, ConvTranspose, Upsample)
_UPSAMPLE_MODES = ("nearest", "bilinear")


# --------------------------------------------------------------------------- blocks

#: Main-path converters, by class or by qualified class name ("package.module.Class").
_CONVERTERS: dict[type | str, Callable[[nn.Module], object]] = {}


def register_layers(kind: type | str, converter: Callable[[nn.Module], Sequence[object]]) -> None:
    """Teach :func:`layer_specs` (and so :func:`receptive_field`) the main path of a block.

    Example::

        register_layers("torchvision.models.resnet.BasicBlock",
                        lambda block: [block.conv1, block.conv2])

    Args:
        kind: the block's class, or its qualified name ``f"{cls.__module__}.{cls.__qualname__}"``,
            which matches without importing the class. Subclasses match too; the most
            specific class in the method resolution order that is registered, or that
            defines ``receptive_field_layers()``, decides.
        converter: ``converter(block)`` returns the layers along the block's main path in
            forward order: modules, specs, containers of them, other blocks.

    Raises:
        TypeError: ``kind`` is neither a class nor a string, or ``converter`` is not callable.
        ValueError: ``kind`` is a string that is not a dotted name.
    """
    if not isinstance(kind, (type, str)):
        raise TypeError(f"kind must be a class or a qualified class name such as "
                        f"'torchvision.models.resnet.Bottleneck', got {describe(kind)} "
                        f"({type(kind).__name__})")
    if isinstance(kind, str) and "." not in kind.strip("."):
        raise ValueError(f"kind must be a qualified class name 'package.module.Class', got {kind!r}")
    _CONVERTERS[kind] = check_callable(converter, "converter")


register_layers("torchvision.models.resnet.BasicBlock", attrgetter("conv1", "conv2"))
register_layers("torchvision.models.resnet.Bottleneck", attrgetter("conv1", "conv2", "conv3"))


def _converter(module: nn.Module) -> Callable[[nn.Module], object] | None:
    """The converter of the most specific class of ``module`` that has one, else None."""
    for cls in type(module).__mro__:
        for key in (cls, f"{cls.__module__}.{cls.__qualname__}"):
            if key in _CONVERTERS:
                return _CONVERTERS[key]
        if "receptive_field_layers" in vars(cls):
            return type(module).receptive_field_layers
    return None


def main_path(module: nn.Module) -> list[object] | None:
    """The layers along a block's main path, as :func:`layer_specs` opens it; None if not a block.

    A block is a module whose class is registered with :func:`register_layers` or defines
    ``receptive_field_layers()``.

    Raises:
        ValueError: the main path contains the block itself.
    """
    converter = _converter(module)
    if converter is None:
        return None
    layers = converter(module)
    layers = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    if any(layer is module for layer in layers):
        raise ValueError(f"the main path of {type(module).__name__} contains the block itself")
    return layers


# --------------------------------------------------------------------------- modules to specs

_IDENTITY_MODULES: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU,
    nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d,
    nn.Dropout, nn.Dropout2d,
)


def _compact(value: object) -> object:
    """A size as the specs are written by hand: ``(3, 3)`` as ``3``, ``2.0`` as ``2``."""
    if isinstance(value, (tuple, list)):
        value = tuple(_compact(v) for v in value)
        return value[0] if len(value) == 2 and value[0] == value[1] else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _conv_padding(module: nn.Conv2d) -> object:
    """The per-side padding of ``module`` (PyTorch's ``"same"`` puts ``d(k-1)//2`` first)."""
    if module.padding == "valid":
        return 0
    if module.padding == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(module.kernel_size, module.dilation, strict=True))
    return module.padding


def _upsample_spec(module: nn.Upsample, name: str) -> Upsample:
    if module.scale_factor is None:
        raise ValueError(f"{name}: {describe(module)} gives a fixed output size, not a "
                         f"scale factor, so its stride depends on the input; use scale_factor")
    if module.mode == "bilinear" and module.align_corners:
        raise ValueError(f"{name}: bilinear upsampling with align_corners=True has no "
                         f"constant stride; use align_corners=False")
    return Upsample(_compact(module.scale_factor), module.mode)


def _module_spec(module: nn.Module, name: str) -> LayerSpec:
    """The spec of a single (non-container, non-block) module."""
    if isinstance(module, _IDENTITY_MODULES):
        return nn.Identity()
    if isinstance(module, nn.ConvTranspose2d):
        return ConvTranspose(*map(_compact, (module.kernel_size, module.stride, module.padding,
                                             module.dilation, module.output_padding)))
    if isinstance(module, nn.Conv2d):
        return Conv(*map(_compact, (module.kernel_size, module.stride, _conv_padding(module),
                                    module.dilation)))
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        dilation = getattr(module, "dilation", 1)  # average pooling has none
        return Pool(*map(_compact, (module.kernel_size, module.stride, module.padding, dilation)),
                    module.ceil_mode)
    if isinstance(module, nn.Upsample):
        return _upsample_spec(module, name)
    raise ValueError(
        f"{name}: cannot compute the receptive field of {describe(module)}; supported: "
        f"Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, Upsample, element-wise layers "
        f"(ReLU, BatchNorm2d, Dropout, ...), nn.Sequential, torchvision ResNet blocks, and "
        f"blocks registered with register_layers() or that define receptive_field_layers()"
    )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _named_layers(layers: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    """``(name, layer)`` in forward order: containers opened, blocks along their main path."""
    if isinstance(layers, nn.Sequential):
        for child_name, child in layers.named_children():
            yield from _named_layers(child, _join(prefix, child_name))
    elif isinstance(layers, (list, tuple)):
        for index, layer in enumerate(layers):
            yield from _named_layers(layer, _join(prefix, str(index)))
    elif isinstance(layers, nn.Module) and (path := main_path(layers)) is not None:
        names = {id(module): name for name, module in layers.named_modules()}
        for index, layer in enumerate(path):
            yield from _named_layers(layer, _join(prefix, names.get(id(layer), str(index))))
    else:
        yield prefix, layers


class _Row(NamedTuple):
    """One layer of a stack: its dotted name, the label errors use, what was given, its spec."""

    name: str
    label: str
    layer: object
    spec: LayerSpec


def _rows(layers: object) -> list[_Row]:
    rows = []
    for index, (name, layer) in enumerate(_named_layers(layers)):
        label = f"layer {index} ({name})" if name != str(index) else f"layer {index}"
        if isinstance(layer, nn.Module):
            spec = _module_spec(layer, label)
        elif isinstance(layer, _SPECS):
            spec = layer
        else:
            raise ValueError(f"{label}: unknown layer {describe(layer)}")
        rows.append(_Row(name, label, layer, spec))
    return rows


def layer_specs(layers: object) -> list[LayerSpec]:
    """The specs of a stack, one per row of :func:`receptive_field`'s table.

    ``nn.Sequential`` containers, lists and tuples are opened, blocks replaced by their
    :func:`main_path` (recursively), ``Conv2d``, ``ConvTranspose2d``, ``MaxPool2d``,
    ``AvgPool2d`` and ``Upsample`` become :class:`Conv`, :class:`ConvTranspose`,
    :class:`Pool` and :class:`Upsample` (a size equal in height and width as one number), and
    element-wise modules (``ReLU``, ``BatchNorm2d``, ``Dropout``, ...) ``nn.Identity()``.
    Specs pass through unchanged; :func:`receptive_field` checks their values.

        >>> layer_specs(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)))
        [Conv(k=3, s=1, p=1, d=1), Identity(), Pool(k=2, s=2, p=0, d=1, ceil_mode=False)]

    Raises:
        ValueError: a module of another kind (the message lists what is supported), an
            ``nn.Upsample`` without a constant stride, or an object that is no layer; the
            message names the layer (``layer 2 (features.2)``).
    """
    return [row.spec for row in _rows(layers)]


# --------------------------------------------------------------------------- steps along one axis


@dataclass(frozen=True)
class _Step:
    """One layer along one axis.

    For Distill's recurrences: ``span`` is the distance between the first and last input a
    unit reads (``d(k - 1)`` for a convolution); ``stride`` and ``padding`` map output
    index ``u`` to the first input index ``u * stride - padding``. They are fractions for
    upsampling layers. ``back`` maps an interval of output indices to the exact interval
    of input indices it reads; ``output_size`` maps an input size to the output size.
    """

    span: Fraction
    stride: Fraction
    padding: Fraction
    back: Callable[[int, int], Interval]
    output_size: Callable[[int], int]


def _window_back(k: int, s: int, p: int, d: int) -> Callable[[int, int], Interval]:
    """Convolution or pooling: outputs ``a..b`` read inputs ``a*s - p .. b*s - p + d(k-1)``."""
    return lambda a, b: (a * s - p, b * s - p + d * (k - 1))


def _transpose_back(k: int, s: int, p: int, d: int) -> Callable[[int, int], Interval]:
    """Transposed convolution: input ``u`` writes to outputs ``u*s - p + t*d``, t < k.

    Returns the first and last input that writes into outputs ``a..b`` (with dilation
    some inputs in between may write nothing there).
    """
    def writes_into(u: int, a: int, b: int) -> bool:
        first_tap = max(0, -((u * s - p - a) // d))  # smallest t with u*s - p + t*d >= a
        return first_tap < k and u * s - p + first_tap * d <= b

    def back(a: int, b: int) -> Interval:
        lo, hi = -((d * (k - 1) - p - a) // s), (b + p) // s
        while lo <= hi and not writes_into(lo, a, b):
            lo += 1
        while hi >= lo and not writes_into(hi, a, b):
            hi -= 1
        return lo, hi

    return back


def _nearest_back(f: Fraction) -> Callable[[int, int], Interval]:
    """Nearest upsampling: output ``j`` copies input ``floor(j / f)``."""
    return lambda a, b: (math.floor(a / f), math.floor(b / f))


def _bilinear_back(f: Fraction) -> Callable[[int, int], Interval]:
    """Bilinear upsampling (align_corners=False): output ``j`` sits at ``c = (j + 1/2)/f - 1/2``
    and mixes inputs ``floor(c)`` and ``floor(c) + 1``; the second has weight 0 when ``c``
    is a whole number (away from the borders, where PyTorch clamps)."""
    def centre(j: int) -> Fraction:
        return (j + Fraction(1, 2)) / f - Fraction(1, 2)

    return lambda a, b: (math.floor(centre(a)), math.ceil(centre(b)))


def _identity_back(a: int, b: int) -> Interval:
    return a, b


def _identity_size(i: int) -> int:
    return i


_IDENTITY_STEP = _Step(Fraction(0), Fraction(1), Fraction(0), _identity_back, _identity_size)

_Pair = tuple[int, int]


def _window_steps(k: _Pair, s: _Pair, p: _Pair, d: _Pair, size: Callable[..., int]) -> list[_Step]:
    """Convolution or pooling; ``size(i, k=, s=, p=, d=)`` is the output size."""
    return [_Step(Fraction(d_ * (k_ - 1)), Fraction(s_), Fraction(p_), _window_back(k_, s_, p_, d_),
                  partial(size, k=k_, s=s_, p=p_, d=d_))
            for k_, s_, p_, d_ in zip(k, s, p, d, strict=True)]


def _conv_transpose_steps(k: _Pair, s: _Pair, p: _Pair, d: _Pair, op: _Pair) -> list[_Step]:
    # Zero insertion (stride 1/s), then a stride-1 convolution over the stretched input
    # with padding d(k-1) - p: measured in input pixels, span and padding divide by s.
    return [_Step(Fraction(d_ * (k_ - 1), s_), Fraction(1, s_), Fraction(d_ * (k_ - 1) - p_, s_),
                  _transpose_back(k_, s_, p_, d_),
                  partial(conv_transpose_output_size, k=k_, s=s_, p=p_, d=d_, output_padding=o_))
            for k_, s_, p_, d_, o_ in zip(k, s, p, d, op, strict=True)]


def _upsample_steps(factors: Sequence[Fraction], mode: str) -> list[_Step]:
    # Nearest reads one input (span 0) starting at j/f; bilinear reads two (span 1)
    # starting at floor(j/f - (f - 1)/(2f)).
    steps = []
    for f in factors:
        if mode == "nearest":
            span, padding, back = Fraction(0), Fraction(0), _nearest_back(f)
        else:
            span, padding, back = Fraction(1), (f - 1) / (2 * f), _bilinear_back(f)
        steps.append(_Step(span, 1 / f, padding, back, lambda i, f=f: math.floor(i * f)))
    return steps


def _window(spec: Conv | Pool | ConvTranspose, name: str) -> tuple[_Pair, _Pair, _Pair, _Pair]:
    """Kernel size, stride, padding and dilation of a spec as pairs, checked."""
    k = check_int_pair(spec.k, f"{name}: kernel size k", minimum=1)
    if isinstance(spec, Pool) and spec.s is None:
        s = k
    else:
        s = check_int_pair(spec.s, f"{name}: stride s", minimum=1)
    p = check_int_pair(spec.p, f"{name}: padding p", minimum=0)
    d = check_int_pair(spec.d, f"{name}: dilation d", minimum=1)
    return k, s, p, d


def _factors(factor: object, name: str) -> list[Fraction]:
    """An upsampling factor (a positive number or a pair of them) as two exact fractions."""
    pair = factor if isinstance(factor, (tuple, list)) else (factor, factor)
    if len(pair) != 2:
        raise ValueError(f"{name}: upsampling factor must be a number or a pair (height, width), "
                         f"got {describe(factor)}")
    checked = [check_number(f, f"{name}: upsampling factor", minimum=0, strict_minimum=True)
               for f in pair]
    return [Fraction(f) if isinstance(f, numbers.Rational) else Fraction(c)
            for f, c in zip(pair, checked, strict=True)]


def _spec_steps(spec: LayerSpec, name: str) -> list[_Step]:
    """The (height, width) steps of one spec, its values checked."""
    if isinstance(spec, nn.Identity):
        return [_IDENTITY_STEP] * 2
    if isinstance(spec, Upsample):
        mode = check_choice(spec.mode, f"{name}: upsampling mode", _UPSAMPLE_MODES)
        return _upsample_steps(_factors(spec.factor, name), mode)
    k, s, p, d = _window(spec, name)
    if isinstance(spec, Conv):
        return _window_steps(k, s, p, d, conv_output_size)
    if isinstance(spec, Pool):
        ceil_mode = check_bool(spec.ceil_mode, f"{name}: ceil_mode")
        return _window_steps(k, s, p, d, partial(pool_output_size, ceil_mode=ceil_mode))
    output_padding = check_int_pair(spec.output_padding, f"{name}: output_padding", minimum=0)
    return _conv_transpose_steps(k, s, p, d, output_padding)


# --------------------------------------------------------------------------- the table


def _as_number(value: Fraction) -> Number:
    return int(value) if value.denominator == 1 else value


@dataclass(frozen=True)
class LayerField:
    """The receptive field of one unit of a layer's output, on the network's input.

    Each quantity is a pair (height, width): ``size`` r, ``stride`` S (the input distance
    between neighbouring output units) and ``padding`` P (how far the first unit's field
    starts before the input), from Distill's recurrences. Without upsampling they are
    integers and exact. Upsampling layers enter with stride ``1/f`` and the quantities
    become ``Fraction`` values: S = 1/2 means two output units per input pixel, while r is then
    only an estimate, because the exact extent changes with the unit's position (a zero
    inserted by a transposed convolution or an exactly aligned bilinear sample reads
    nothing). :meth:`region` maps each unit back layer by layer instead (see its caveats).
    """

    index: int
    name: str
    layer: str
    size: tuple[Number, Number]
    stride: tuple[Number, Number]
    padding: tuple[Number, Number]
    output_size: tuple[int, int] | None = None
    back: tuple[tuple[Callable[[int, int], Interval], ...], ...] = field(
        default=((), ()), repr=False, compare=False)

    def region(self, row: int, col: int) -> tuple[Interval, Interval]:
        """Input rows and columns ``(first, last)`` that output unit ``(row, col)`` reads.

        Found by mapping the unit back through every layer. Without upsampling this is
        Distill's ``first = u * S - P``, ``last = first + r - 1``. Values below 0 or beyond
        the input lie in the padding (a unit near the border sees less real input).

        The result is the *hull* (first to last) of the pixels the unit can read, and it is
        exact -- every pixel in it reaches the unit -- for stacks whose windows are at
        least as large as their strides and that have no dilated transposed convolution
        or pooling (the book's stacks, checked against gradients in the tests). Otherwise
        the hull can contain holes: dilation and inserted zeros skip pixels, a stride
        larger than the window skips rows, a later layer's padding can map back onto real
        input, and a unit that reads only inserted zeros still gets a (non-empty) interval.
        """
        out = []
        for u, chain in zip((row, col), self.back, strict=True):
            first = last = check_int(u, "output index")
            for back in reversed(chain):
                first, last = back(first, last)
            out.append((first, last))
        return out[0], out[1]


@dataclass(frozen=True)
class ReceptiveFieldTable:
    """Per-layer receptive fields of a stack; ``overall`` is the last layer's."""

    layers: tuple[LayerField, ...]

    @property
    def overall(self) -> LayerField:
        """The field of a unit of the stack's final output."""
        return self.layers[-1]

    def __str__(self) -> str:
        def fmt(pair: tuple) -> str:
            return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"

        show_size = self.layers[0].output_size is not None
        header = f"{'#':>3}  {'layer':<36} {'r':>9} {'S':>7} {'P':>9}" + (
            f" {'output':>11}" if show_size else "")
        lines = [header, "-" * len(header)]
        for f in self.layers:
            label = f.layer if f.name == str(f.index) else f"{f.name}: {f.layer}"
            line = (f"{f.index:>3}  {label[:36]:<36} {fmt(f.size):>9} {fmt(f.stride):>7} "
                    f"{fmt(f.padding):>9}")
            if show_size:
                line += f" {f.output_size[0]:>5}x{f.output_size[1]:<5}"
            lines.append(line)
        return "\n".join(lines)


def _short(layer: object) -> str:
    """A compact label such as ``Conv2d k3 s1 p1`` or ``Upsample x2 bilinear``."""
    def part(letter: str, value: object, default: object) -> str:
        if isinstance(value, (tuple, list)):
            value = value[0] if len(set(value)) == 1 else "x".join(map(str, value))
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return "" if value == default else f" {letter}{value}"

    kind = type(layer).__name__
    if isinstance(layer, (Upsample, nn.Upsample)):
        factor = layer.factor if isinstance(layer, Upsample) else layer.scale_factor
        return f"{kind}{part('x', factor, None)} {layer.mode}"
    attributes = (("k", "kernel_size", "k", None), ("s", "stride", "s", None),
                  ("p", "padding", "p", 0), ("d", "dilation", "d", 1))
    label = kind
    for letter, module_attr, spec_attr, default in attributes:
        value = getattr(layer, module_attr, getattr(layer, spec_attr, None))
        if value is not None:
            label += part(letter, value, default)
    return label


def receptive_field(
    layers: object, input_size: int | tuple[int, int] | None = None
) -> ReceptiveFieldTable:
    """Receptive field size r, effective stride S and effective padding P after every layer.

    Uses the recurrences of Araujo, Norris & Sim (Distill 2019,
    https://distill.pub/2019/computing-receptive-fields/) in forward order: after a layer
    with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d``,
    ``r += d(k - 1) * S``, ``P += p * S`` and ``S *= s``, starting from ``r = S = 1, P = 0``;
    summed out, ``r = 1 + sum_l d_l(k_l - 1) prod_{i<l} s_i`` and ``S = prod_l s_l``.

    Upsampling layers have stride ``1/f`` and make ``S``, ``P`` and ``r`` ``Fraction`` values:
    nearest upsampling reads one input (span 0), bilinear two (span 1), a transposed
    convolution is ``s - 1`` inserted zeros (stride ``1/s``) followed by a stride-1
    convolution (span ``d(k - 1)/s`` in input pixels). ``S`` stays exact, but ``r`` is then
    an estimate: the exact extent depends on the unit's position, and
    :meth:`LayerField.region` gives it. A residual block's field is that of its main path,
    because its shortcut (identity, or a strided 1x1 convolution) reads a subset of the
    same pixels.

    Args:
        layers: a list of :class:`Conv`, :class:`Pool`, :class:`ConvTranspose`,
            :class:`Upsample` specs and/or ``nn.Module`` objects (``Conv2d``, ``ConvTranspose2d``,
            ``MaxPool2d``, ``AvgPool2d``, ``Upsample``, element-wise layers such as ``ReLU``,
            ``BatchNorm2d`` and ``Dropout``, ``nn.Sequential`` opened up, blocks such as
            torchvision's ``BasicBlock``/``Bottleneck`` by their main path), or one
            ``nn.Sequential``; :func:`layer_specs` turns them into specs.
        input_size: ``H`` or ``(H, W)``; when given, each layer's output size is computed
            too (and a stack that does not fit the input raises ``ValueError``).

    Raises:
        ValueError: an unknown layer type, a non-positive kernel, stride or dilation (the
            message names the layer), an empty stack, or a stack that does not fit
            ``input_size``.
        TypeError: a size in a spec that is not an ``int``.
    """
    rows = _rows(layers)  # module -> spec, as layer_specs gives them
    if not rows:
        raise ValueError(f"receptive_field needs at least one layer, got {layers!r}")
    sizes = None if input_size is None else list(check_int_pair(input_size, "input_size", minimum=1))
    r, stride, padding = [Fraction(1)] * 2, [Fraction(1)] * 2, [Fraction(0)] * 2
    chains: tuple[list, list] = ([], [])
    table = []
    for index, row in enumerate(rows):
        for axis, step in enumerate(_spec_steps(row.spec, row.label)):  # spec -> steps
            r[axis] += step.span * stride[axis]
            padding[axis] += step.padding * stride[axis]
            stride[axis] *= step.stride
            chains[axis].append(step.back)
            if sizes is not None:
                try:
                    sizes[axis] = step.output_size(sizes[axis])
                except ValueError as error:
                    raise ValueError(f"{row.label} does not fit its input: {error}") from None
        table.append(LayerField(
            index=index, name=row.name, layer=_short(row.layer),
            size=(_as_number(r[0]), _as_number(r[1])),
            stride=(_as_number(stride[0]), _as_number(stride[1])),
            padding=(_as_number(padding[0]), _as_number(padding[1])),
            output_size=None if sizes is None else (sizes[0], sizes[1]),
            back=(tuple(chains[0]), tuple(chains[1])),
        ))
    return ReceptiveFieldTable(tuple(table))


# --------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class MeasuredField:
    """The input pixels that receive a non-zero gradient from one output unit."""

    mask: Tensor
    rows: tuple[int, int]
    cols: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        """Extent ``(height, width)`` of the region: ``last - first + 1`` per axis."""
        return self.rows[1] - self.rows[0] + 1, self.cols[1] - self.cols[0] + 1


def _positive_probe(network: nn.Module) -> nn.Module:
    """A float64 copy with positive weights and max pooling replaced by average pooling.

    With positive weights, zero biases and a positive input every ReLU passes and no two
    gradient paths cancel, so every pixel in the receptive field gets a positive gradient.
    Max pooling routes the gradient to one pixel per window, so it becomes an average
    pool with the same window, stride, padding and ceil mode (same geometry).
    """
    probe = nn.Sequential(copy.deepcopy(network)).double().eval().requires_grad_(False)
    for parent in probe.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                if child.dilation not in (1, (1, 1)):
                    raise ValueError(f"cannot measure a dilated max pool ({child!r}): "
                                     f"average pooling has no dilation")
                setattr(parent, child_name, nn.AvgPool2d(
                    child.kernel_size, child.stride, child.padding, child.ceil_mode))
    with torch.no_grad():
        for module in probe.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()  # identity in eval mode: no sign flips
    return probe


def measure_receptive_field(
    network: nn.Module,
    input_size: int | tuple[int, int],
    unit: tuple[int, int] | None = None,
    in_channels: int | None = None,
) -> MeasuredField:
    """Measure the receptive field of one output unit by backpropagation.

    A float64 copy of ``network`` gets positive constant weights (max pooling becomes
    average pooling of the same geometry); the gradient of output ``unit`` (summed over
    channels) with respect to a constant positive input is non-zero exactly on the
    pixels that unit depends on. Pick a unit far enough from the border that padding
    does not cut its field.

    Args:
        network: the layers, as an ``nn.Module``.
        input_size: ``H`` or ``(H, W)``.
        unit: output position ``(row, col)``; ``None`` takes the centre.
        in_channels: input channels; ``None`` reads them from the first convolution.

    Raises:
        TypeError: ``input_size`` or ``in_channels`` is not an ``int``.
        ValueError: a size that is not positive, ``unit`` outside the output, or a dilated
            max pool (its average-pool stand-in has no dilation).
    """
    height, width = check_int_pair(input_size, "input_size", minimum=1)
    in_channels = check_optional_int(in_channels, "in_channels", minimum=1)
    if in_channels is None:
        first = next((m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))), None)
        in_channels = first.in_channels if first is not None else 1
    probe = _positive_probe(network)
    x = torch.ones(1, in_channels, height, width, dtype=torch.float64, requires_grad=True)
    y = probe(x)
    row, col = unit if unit is not None else (y.shape[-2] // 2, y.shape[-1] // 2)
    if not (0 <= row < y.shape[-2] and 0 <= col < y.shape[-1]):
        raise ValueError(f"unit {unit} is outside the output of size {tuple(y.shape[-2:])}")
    y[0, :, row, col].sum().backward()
    mask = (x.grad[0] != 0).any(dim=0)
    rows = mask.any(dim=1).nonzero().flatten()
    cols = mask.any(dim=0).nonzero().flatten()
    return MeasuredField(mask, (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1])))
