"""The receptive-field viewer (segtutor/viz/receptive_widget.py and receptive_field.js).

Its browser-side arithmetic runs under node and must give, on a grid of stacks and for every
output unit, the r, S, P, output sizes and regions of segtutor.arithmetic.receptive_field; it
is also checked against PyTorch directly: output sizes against the layers' real shapes, regions
against the input pixels that get a gradient from one output unit. Then the Python side: the
conversion of specs and modules to the dicts the browser receives, the widget's traits and
their checks, and the matplotlib fallback.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from torch import nn

from segtutor import arithmetic
from segtutor.arithmetic import Conv, ConvTranspose, Pool, Upsample
from segtutor.viz.receptive_widget import (
    MAX_INPUT_SIZE,
    PRESETS,
    ReceptiveFieldViewer,
    layer_dicts,
    layers_from_dicts,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED_MODULE = ROOT / "segtutor" / "viz" / "widget_controls.js"
MODULE = ROOT / "segtutor" / "viz" / "receptive_field.js"
RUNNER = ROOT / "tests" / "js" / "receptive_field.mjs"
NODE = shutil.which("node")
LIMIT = 40  # largest square input the node runner tries when it looks for the smallest one

needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)")


def run_js(cases: list[dict]) -> list[dict]:
    """The viewer's own JavaScript on each {layers, input_size: [h, w], limit} case."""
    out = subprocess.run([NODE, str(RUNNER), str(MODULE)], input=json.dumps(cases),
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


# ----------------------------------------------------------------------- stacks to try


def pair(rng: random.Random, low: int, high: int) -> list[int]:
    """Mostly square, sometimes a different height and width."""
    first = rng.randint(low, high)
    return [first, rng.randint(low, high) if rng.random() < 0.25 else first]


def random_layer(rng: random.Random) -> dict:
    kind = rng.choice(["conv", "conv", "pool", "conv_transpose", "upsample", "identity"])
    if kind == "conv":
        return {"type": kind, "k": pair(rng, 1, 4), "s": pair(rng, 1, 3), "p": pair(rng, 0, 2),
                "d": pair(rng, 1, 3)}
    if kind == "pool":
        k = rng.randint(1, 3)
        return {"type": kind, "k": [k, k], "s": pair(rng, 1, 3), "p": [rng.randint(0, k // 2)] * 2,
                "d": pair(rng, 1, 2), "ceil_mode": rng.random() < 0.4}
    if kind == "conv_transpose":
        s, d = pair(rng, 1, 3), pair(rng, 1, 2)
        extra = [rng.randint(0, max(s_, d_) - 1) for s_, d_ in zip(s, d, strict=True)]
        return {"type": kind, "k": pair(rng, 1, 4), "s": s, "p": pair(rng, 0, 2), "d": d,
                "output_padding": extra}
    if kind == "upsample":
        return {"type": kind, "factor": pair(rng, 1, 3), "mode": rng.choice(["nearest", "bilinear"])}
    return {"type": "identity"}


def python_table(layers: list[dict], size: tuple[int, int]) -> arithmetic.ReceptiveFieldTable | None:
    """segtutor.arithmetic's table, or None when it refuses the input size."""
    try:
        return arithmetic.receptive_field(layers_from_dicts(layers), size)
    except ValueError:
        return None


def stack_cases(count: int, seed: int, max_output: int = 16) -> list[dict]:
    """Random stacks on random (possibly non-square) inputs, outputs small enough to check
    every unit; about one in five does not fit its input."""
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        layers = [random_layer(rng) for _ in range(rng.randint(1, 5))]
        size = (rng.randint(1, 12), rng.randint(1, 12))
        table = python_table(layers, size)
        if table and max(max(f.output_size) for f in table.layers) > max_output:
            continue
        cases.append({"layers": layers, "input_size": list(size), "limit": LIMIT})
    return cases


def text(pair_: tuple) -> list[str]:
    return [str(value) for value in pair_]


def clipped(region, size):
    out = [[max(first, 0), min(last, n - 1)] for (first, last), n in zip(region, size, strict=True)]
    return out if all(first <= last for first, last in out) else None


# ----------------------------------------------------------------------- JS equals Python


@needs_node
def test_js_fields_and_regions_equal_segtutor_receptive_field_on_a_grid_of_stacks():
    cases = stack_cases(240, seed=0) + [
        {"layers": layer_dicts(p.layers), "input_size": [p.input_size] * 2, "limit": LIMIT}
        for p in PRESETS.values()
    ]
    fitting = refused = units = fractional = 0
    for case, js in zip(cases, run_js(cases), strict=True):
        size = tuple(case["input_size"])
        table = python_table(case["layers"], size)
        if table is None:
            refused += 1
            assert "error" in js, f"{case}: Python refuses the input, JavaScript draws {js}"
            continue
        fitting += 1
        assert len(js["layers"]) == len(table.layers), case
        for field, js_field in zip(table.layers, js["layers"], strict=True):
            where = f"{case}, layer {field.index}"
            assert js_field["r"] == text(field.size), where
            assert js_field["S"] == text(field.stride), where
            assert js_field["P"] == text(field.padding), where
            assert tuple(js_field["outputSize"]) == field.output_size, where
            rows, cols = field.output_size
            expected = [field.region(row, col) for row in range(rows) for col in range(cols)]
            assert [tuple(map(tuple, r)) for r in js_field["regions"]] == expected, where
            assert js_field["clipped"] == [clipped(r, size) for r in expected], where
            units += rows * cols
            fractional += any(isinstance(s, Fraction) for s in field.stride)
    assert fitting > 150 and refused > 20 and units > 20_000 and fractional > 50  # all exercised


@needs_node
def test_js_smallest_input_is_the_smallest_python_accepts():
    cases = stack_cases(80, seed=1)
    for case, js in zip(cases, run_js(cases), strict=True):
        smallest = next((n for n in range(1, LIMIT + 1)
                         if python_table(case["layers"], (n, n)) is not None), None)
        assert js["minInputSize"] == smallest, case


# ----------------------------------------------------------------------- JS against PyTorch


def torch_layer(layer: dict, positive_probe: bool = False) -> nn.Module:
    """The PyTorch layer a dict describes (one channel). With ``positive_probe`` weights are
    ones and max pooling becomes average pooling, so every pixel a unit reads gets gradient."""
    kind, get = layer["type"], (lambda key: tuple(layer[key]))
    if kind == "conv":
        module = nn.Conv2d(1, 1, get("k"), get("s"), get("p"), get("d"), bias=False)
    elif kind == "conv_transpose":
        module = nn.ConvTranspose2d(1, 1, get("k"), get("s"), get("p"), get("output_padding"),
                                    bias=False, dilation=get("d"))
    elif kind == "pool" and positive_probe:
        assert get("d") == (1, 1), "average pooling has no dilation"
        return nn.AvgPool2d(get("k"), get("s"), get("p"), layer["ceil_mode"])
    elif kind == "pool":
        return nn.MaxPool2d(get("k"), get("s"), get("p"), get("d"), ceil_mode=layer["ceil_mode"])
    elif kind == "upsample":
        factor = tuple(float(f) for f in get("factor"))
        return nn.Upsample(scale_factor=factor, mode=layer["mode"],
                           align_corners=False if layer["mode"] == "bilinear" else None)
    else:
        return nn.Identity()
    nn.init.ones_(module.weight)
    return module


def pytorch_sizes(layers: list[dict], size: tuple[int, int]) -> list[tuple[int, int]] | None:
    """Each layer's output size by running it, or None when PyTorch refuses (or gives nothing)."""
    x = torch.zeros(1, 1, *size)
    sizes = []
    try:
        for layer in layers:
            x = torch_layer(layer)(x)
            if x.numel() == 0:
                return None
            sizes.append(tuple(x.shape[-2:]))
    except RuntimeError:
        return None
    return sizes


@needs_node
def test_js_output_sizes_and_refusals_equal_pytorch_shapes():
    cases = stack_cases(150, seed=2)
    refused = 0
    with torch.no_grad():
        for case, js in zip(cases, run_js(cases), strict=True):
            sizes = pytorch_sizes(case["layers"], tuple(case["input_size"]))
            if sizes is None:
                refused += 1
                assert "error" in js, f"{case}: PyTorch refuses, JavaScript gives {js}"
            else:
                assert [tuple(f["outputSize"]) for f in js["layers"]] == sizes, case
    assert refused > 10


def gradient_box(layers: list[dict], size: tuple[int, int], unit: tuple[int, int]):
    """First and last input row and column with a non-zero gradient from one output unit."""
    x = torch.ones(1, 1, *size, dtype=torch.float64, requires_grad=True)
    y = x
    for layer in layers:
        y = torch_layer(layer, positive_probe=True).double()(y)
    y[0, 0, unit[0], unit[1]].backward()
    mask = x.grad[0, 0] != 0
    if not mask.any():
        return None  # e.g. a transposed convolution's output_padding: no input writes there
    rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
    return [(int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))]


def reads_every_input(layer: dict) -> bool:
    """Whether each output reads a contiguous block and together they read every input.

    True for every layer of the book's networks: windows at least as large as their stride,
    and no dilation in transposed convolutions and pooling (average pooling has none, and
    is what the gradient probe uses). Elsewhere ``region`` is the hull of an interval of
    units, which can be larger than the set of pixels really read (a dilated kernel can skip
    exactly the units that a sparse layer before it wrote), or non-empty where a transposed
    convolution wrote nothing.
    """
    if layer["type"] not in ("conv", "pool", "conv_transpose"):
        return True
    large_enough = all(k >= s for k, s in zip(layer["k"], layer["s"], strict=True))
    return large_enough and (layer["type"] == "conv" or layer["d"] == [1, 1])


@needs_node
def test_js_regions_inside_the_input_are_the_pixels_with_gradient_in_pytorch():
    """Units whose whole field lies on the input (the padding, zero, has no gradient)."""
    cases = [c for c in stack_cases(400, seed=3, max_output=12)
             if all(reads_every_input(layer) for layer in c["layers"])]
    checked = 0
    for case, js in zip(cases, run_js(cases), strict=True):
        if "error" in js:
            continue
        size = tuple(case["input_size"])
        last = js["layers"][-1]
        cols = last["outputSize"][1]
        for index, area in enumerate(last["regions"]):
            inside = all(0 <= first and last_ < n for (first, last_), n in zip(area, size, strict=True))
            if inside and index % 3 == 0:
                unit = divmod(index, cols)
                assert gradient_box(case["layers"], size, unit) == [tuple(a) for a in area], (case, unit)
                checked += 1
    assert checked > 300


@needs_node
def test_js_module_exports_render_for_anywidget():
    script = (
        "const src = require('fs').readFileSync(process.argv[1], 'utf8');"
        "import('data:text/javascript;base64,' + Buffer.from(src).toString('base64'))"
        ".then(m => console.log(JSON.stringify([typeof m.default.render, m.pairText("
        "[m.fraction(6, 4), m.fraction(3, 2)]), m.floorDiv(-7, 2), m.ceilDiv(-7, 2)])))"
    )
    out = subprocess.run([NODE, "-e", script, str(MODULE)], capture_output=True, text=True,
                         check=True, timeout=60)
    assert json.loads(out.stdout) == ["function", str(Fraction(3, 2)), -7 // 2, -(7 // 2)]


# ----------------------------------------------------------------------- specs and modules to dicts


def test_layer_dicts_of_modules_build_layers_of_the_same_shapes():
    network = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(8, 8, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(1, 2)),
        nn.AvgPool2d(3, stride=2, padding=1), nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1),
        nn.Upsample(scale_factor=2.0, mode="bilinear"), nn.Conv2d(8, 8, 3, padding="same", dilation=2),
    )
    dicts = layer_dicts(network)
    assert [d["type"] for d in dicts] == ["conv", "identity", "identity", "pool", "conv", "pool",
                                          "conv_transpose", "upsample", "conv"]
    assert dicts[4] == {"type": "conv", "k": [3, 5], "s": [1, 2], "p": [1, 2], "d": [1, 2]}
    assert dicts[8]["p"] == [2, 2]  # padding="same" with dilation 2
    x = torch.zeros(1, 3, 23, 29)
    with torch.no_grad():
        for module, layer in zip(network, dicts, strict=True):
            rebuilt = torch_layer(layer)
            y = module(x)
            assert rebuilt(x[:, :1]).shape[-2:] == y.shape[-2:], (module, layer)
            x = y


def test_layer_dicts_of_specs_fill_in_pytorch_defaults():
    dicts = layer_dicts([Conv(3), Pool(2), ConvTranspose((2, 3), s=2), Upsample(2)])
    assert dicts == [
        {"type": "conv", "k": [3, 3], "s": [1, 1], "p": [0, 0], "d": [1, 1]},
        {"type": "pool", "k": [2, 2], "s": [2, 2], "p": [0, 0], "d": [1, 1], "ceil_mode": False},
        {"type": "conv_transpose", "k": [2, 3], "s": [2, 2], "p": [0, 0], "d": [1, 1],
         "output_padding": [0, 0]},
        {"type": "upsample", "factor": [2, 2], "mode": "nearest"},
    ]
    assert nn.MaxPool2d(2).stride == 2  # the default the pool dict spells out
    assert layer_dicts(dicts) == dicts  # dicts pass through
    assert json.loads(json.dumps(dicts)) == dicts  # plain JSON for the browser


@pytest.mark.parametrize(
    ("layers", "error", "message"),
    [
        ([], ValueError, r"needs at least one layer"),
        ([{"type": "linear"}], ValueError, r"layer 0: unknown layer type 'linear'; use one of"),
        ([{"type": "conv", "k": 3, "stride": 2}], ValueError, r"layer 0: a 'conv' layer has no \['stride'\]"),
        ([Conv(3), {"type": "conv", "k": 2.5}], TypeError, r"layer 1: k must be an int or a pair .*, got 2.5"),
        ([{"type": "conv", "k": [3, 3, 3]}], ValueError, r"layer 0: k must be an int or a pair"),
        ([{"type": "pool", "k": 2, "ceil_mode": 1}], TypeError, r"ceil_mode must be True or False, got 1"),
        ([Conv(0)], ValueError, r"layer 0: kernel size k must be a positive int"),
        ([Upsample(2, "bicubic")], ValueError, r"upsampling mode must be one of .*, got 'bicubic'"),
        ([nn.Upsample(scale_factor=1.5)], ValueError, r"upsampling factor 1.5 is not a whole number"),
        ([nn.Upsample(size=8)], ValueError, r"fixed output size"),
        ([nn.Linear(3, 3)], ValueError, r"cannot compute the receptive field of Linear"),
        ([Conv(3), "conv"], TypeError, r"layer 1: expected a layer spec .* got 'conv' \(str\)"),
    ],
)
def test_bad_layers_are_refused_with_the_reason(layers, error, message):
    with pytest.raises(error, match=message):
        layer_dicts(layers)


def test_residual_block_is_refused():
    from torchvision.models.resnet import BasicBlock

    with pytest.raises(ValueError, match=r"plain stack of layers and cannot show BasicBlock"):
        layer_dicts([BasicBlock(4, 4)])
    with pytest.raises(ValueError, match=r"layer 1: .* cannot show BasicBlock"):
        layer_dicts(nn.Sequential(nn.Conv2d(4, 4, 3), BasicBlock(4, 4)))


def test_a_block_that_describes_itself_is_refused_too():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def receptive_field_layers(self) -> list[nn.Module]:
            return [self.conv, nn.ReLU(), self.conv]

    with pytest.raises(ValueError, match=r"cannot show Block \(its receptive field takes 3 rows\)"):
        ReceptiveFieldViewer([Conv(3), nn.Sequential(Block())])


def test_layers_from_dicts_refuses_what_is_not_a_dict():
    with pytest.raises(TypeError, match=r"layer 0 must be a dict, got Conv"):
        layers_from_dicts([Conv(3)])


# ----------------------------------------------------------------------- the widget


def test_widget_loads_the_javascript_and_css_files():
    viewer = ReceptiveFieldViewer()
    # the widget's own file, then the helpers every widget shares (segtutor.viz._frontend)
    assert viewer._esm == f"{MODULE.read_text()}\n{SHARED_MODULE.read_text()}"
    assert "function suppressNotebookShortcuts(root)" in viewer._esm
    assert "receptive-field-viewer" in viewer._css


def test_given_stack_comes_first_and_every_preset_is_offered():
    stack = [Conv(3, p=1), nn.ReLU(), Pool(2)]
    viewer = ReceptiveFieldViewer(stack, 20, name="mine")
    entries = viewer.get_state()["_presets"]
    assert [e["name"] for e in entries] == ["mine", *PRESETS]
    assert entries[0]["layers"] == layer_dicts(stack)
    assert entries[0]["labels"] == ["Conv k3 s1 p1", "ReLU", "Pool k2"]
    assert viewer.preset == "mine" and viewer.input_size == 20
    assert (viewer.layer, viewer.unit) == (2, [5, 5])  # last layer (10x10 output), centre unit


def test_default_viewer_starts_from_the_first_preset():
    viewer = ReceptiveFieldViewer()
    name, preset = next(iter(PRESETS.items()))
    assert (viewer.preset, viewer.input_size, viewer.layer) == (name, preset.input_size,
                                                               len(preset.layers) - 1)


def test_region_is_the_pixels_with_gradient_in_pytorch():
    stack = [nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3, padding=2, dilation=2)]
    viewer = ReceptiveFieldViewer(stack, 24, unit=(5, 6))
    assert viewer.region == tuple(gradient_box(layer_dicts(stack), (24, 24), (5, 6)))
    assert viewer.field.output_size == nn.Sequential(*stack)(torch.zeros(1, 1, 24, 24)).shape[-2:]


def test_select_changes_everything_consistently():
    viewer = ReceptiveFieldViewer()
    viewer.select(preset="VGG16 conv1-pool3")
    preset = PRESETS["VGG16 conv1-pool3"]
    assert viewer.input_size == preset.input_size and viewer.layer == len(preset.layers) - 1
    assert viewer.unit == [3, 3]  # 48 / 8 = 6 outputs, centre 3
    viewer.select(input_size=64)
    assert viewer.unit == [4, 4]
    viewer.select(layer=0, unit=(0, 63))
    assert viewer.region == ((-1, 1), (62, 64))  # a 3x3 convolution with padding 1, at the corner


def test_single_trait_changes_are_checked_against_the_others():
    viewer = ReceptiveFieldViewer([Conv(3, p=1), Pool(2)], 10)  # outputs 10 and 5
    viewer.unit = [4, 4]
    with pytest.raises(ValueError, match=r"unit=\(7, 0\) is outside the 5x5 output of layer 1; "
                                         r"change both with select\(\)"):
        viewer.unit = [7, 0]
    with pytest.raises(ValueError, match=r"layer=2 is not a layer of 'your stack' \(0 \.\. 1\)"):
        viewer.layer = 2
    with pytest.raises(ValueError, match=r"layer 1 does not fit its input"):
        viewer.input_size = 1
    assert (viewer.input_size, viewer.layer, viewer.unit) == (10, 1, [4, 4])  # unchanged


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(input_size=0), ValueError, rf"input_size .* must be an int in \[1, {MAX_INPUT_SIZE}\], got 0"),
        (dict(input_size=MAX_INPUT_SIZE + 1), ValueError, r"input_size .* must be an int in .*, got 257"),
        (dict(input_size=(16, 24)), TypeError, r"input_size \(the side of the square input\) must be an int"),
        (dict(input_size=1), ValueError, r"layer 1 does not fit its input"),
        (dict(layer=2), ValueError, r"layer=2 is not a layer of 'your stack': use -2 <= layer < 2"),
        (dict(layer=True), TypeError, r"layer must be an int, got True"),
        (dict(unit=(8, 0)), ValueError, r"unit=\(8, 0\) is outside the 8x8 output of layer 1"),
        (dict(unit=(1, 2, 3)), TypeError, r"unit must be a pair \(row, col\)"),
        (dict(unit=(1.0, 2)), TypeError, r"unit\[0\] must be an int, got 1.0"),
        (dict(name="3 convs"), ValueError, r"name='3 convs' is already a preset's name"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        ReceptiveFieldViewer([Conv(3, p=1), Pool(2)], **{"input_size": 16, **kwargs})


def test_select_refuses_an_unknown_preset_and_changes_nothing():
    viewer = ReceptiveFieldViewer()
    before = viewer.get_state()
    with pytest.raises(ValueError, match=r"preset='VGG19' is not on offer; choose one of \['3 convs'"):
        viewer.select(preset="VGG19")
    with pytest.raises(ValueError, match=r"unit=\(0, 99\) is outside"):
        viewer.select(layer=0, unit=(0, 99))
    assert viewer.get_state() == before


def test_state_from_the_browser_is_applied_at_once():
    """The page changes preset, input size, layer and unit in one message."""
    viewer = ReceptiveFieldViewer()
    viewer.set_state({"preset": "dilated 1-2-4", "input_size": 20, "layer": 1, "unit": [19, 0]})
    # Layer 1 (k=3, d=2, p=2) reads layer-0 rows 17, 19, 21; layer 0 (k=3, p=1) rows 16..22.
    assert viewer.region == ((16, 22), (-3, 3))


def test_static_figure_draws_the_chosen_unit():
    viewer = ReceptiveFieldViewer([Conv(3, p=1), Pool(2), Conv(3, p=1)], 16, unit=(2, 5))
    figure = viewer.static_figure()
    assert (figure.unit, figure.region, figure.field.index) == ((2, 5), viewer.region, 2)
