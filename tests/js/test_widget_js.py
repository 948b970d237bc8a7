"""The explorer widget's browser-side arithmetic (segtutor/viz/conv_explorer.js), run under node.

The JavaScript must give the sizes of segtutor.arithmetic (itself checked against PyTorch)
and refuse the same configurations with the same messages; the cells it marks as never read
must be those that get no gradient through ``F.conv1d``. Also the Python side of the widget:
its traits, their checks and its static matplotlib fallback.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import traitlets

from segtutor import arithmetic
from segtutor.viz.widgets import LIMITS, ConvExplorer, explorer_output_size

ROOT = Path(__file__).resolve().parents[2]
SHARED_MODULE = ROOT / "segtutor" / "viz" / "widget_controls.js"
MODULE = ROOT / "segtutor" / "viz" / "conv_explorer.js"
RUNNER = ROOT / "tests" / "js" / "arithmetic.mjs"
NODE = shutil.which("node")

needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)")


def run_js(configs: list[dict]) -> list[dict]:
    """Explain every configuration with the widget's own JavaScript."""
    out = subprocess.run(
        [NODE, str(RUNNER), str(MODULE)], input=json.dumps(configs), capture_output=True,
        text=True, check=True, timeout=60,
    )
    return json.loads(out.stdout)


def config(i, k, s, p, d, transposed=False, output_padding=0) -> dict:
    return {"i": i, "k": k, "s": s, "p": p, "d": d, "transposed": transposed,
            "output_padding": output_padding}


def python_result(c: dict) -> tuple[int | None, str | None]:
    """(size, None) or (None, message) from segtutor.arithmetic via the widget's rules."""
    try:
        return explorer_output_size(**c), None
    except ValueError as error:
        return None, str(error)


def grid() -> list[dict]:
    """Every small configuration, including invalid values of each setting."""
    direct = itertools.product(range(0, 8), range(0, 6), range(0, 5), range(-1, 5), range(0, 4))
    configs = [config(*values) for values in direct]
    transposed = itertools.product(range(0, 8), range(0, 6), range(0, 5), range(-1, 5),
                                   range(0, 4), range(-1, 4))
    configs += [config(i, k, s, p, d, True, op) for i, k, s, p, d, op in transposed]
    configs += [config(5, 3, 2, 1, 1, False, op) for op in (1, 2)]  # output_padding needs transposed
    return configs


@needs_node
def test_js_sizes_and_refusals_equal_segtutor_arithmetic_on_a_grid():
    configs = grid()
    results = run_js(configs)
    assert len(results) == len(configs)
    valid = invalid = 0
    for c, js in zip(configs, results, strict=True):
        size, message = python_result(c)
        if message is None:
            valid += 1
            assert js.get("size") == size, f"{c}: JavaScript gives {js}, Python {size}"
            (equation,) = [line for line in js["formula"] if line.startswith("o = ")]
            assert equation.endswith(f"= {size}"), (c, js["formula"])
        else:
            invalid += 1
            assert js.get("error") == message, f"{c}: JavaScript gives {js}, Python refuses: {message}"
    assert valid > 1000 and invalid > 1000  # both branches are really exercised


@needs_node
def test_js_direct_sizes_match_pytorch_conv2d_on_examples():
    examples = [config(5, 3, 2, 1, 1), config(7, 3, 2, 0, 2), config(6, 3, 2, 1, 1), config(4, 4, 1, 2, 1)]
    examples += [config(3, 3, 2, 1, 1, True, 1), config(4, 3, 1, 0, 2, True, 1), config(5, 3, 1, 3, 1, True, 0)]
    for c, js in zip(examples, run_js(examples), strict=True):
        x = torch.zeros(1, 1, c["i"], c["i"])
        w = torch.zeros(1, 1, c["k"], c["k"])
        if c["transposed"]:
            y = F.conv_transpose2d(x, w, stride=c["s"], padding=c["p"], dilation=c["d"],
                                   output_padding=c["output_padding"])
        else:
            y = F.conv2d(x, w, stride=c["s"], padding=c["p"], dilation=c["d"])
        assert js["size"] == y.shape[-1] == y.shape[-2], (c, js)


@needs_node
def test_js_formula_plugs_in_the_numbers():
    lines = run_js([config(5, 3, 2, 1, 1)])[0]["formula"]
    assert lines[0] == "o = ⌊(i + 2p − k)/s⌋ + 1 = ⌊(5 + 2·1 − 3)/2⌋ + 1 = 3"
    dilated = run_js([config(7, 3, 1, 0, 2)])[0]["formula"]
    assert dilated[0].startswith("k̂ = k + (k − 1)(d − 1) = 3 + 2·1 = 5")
    assert dilated[1] == "o = ⌊(i + 2p − k̂)/s⌋ + 1 = ⌊(7 + 2·0 − 5)/1⌋ + 1 = 3"
    transposed = run_js([config(3, 3, 2, 1, 1, True, 1)])[0]["formula"]
    assert transposed[0].endswith("(3 − 1)·2 − 2·1 + 1·(3 − 1) + 1 + 1 = 6")
    assert "s − 1 = 1 zero(s)" in transposed[1] and "d(k − 1) − p = 1" in transposed[1]


@needs_node
def test_js_transposed_layout_is_the_equivalent_convolution_of_segtutor_arithmetic():
    configs = [config(i, k, s, p, d, True, op)
               for i, k, s, p, d, op in itertools.product(range(1, 6), range(1, 5), range(1, 4),
                                                         range(0, 4), range(1, 3), range(0, 3))]
    configs = [c for c in configs if python_result(c)[1] is None]
    for c, js in zip(configs, run_js(configs), strict=True):
        equivalent = arithmetic.transposed_as_conv(c["k"], c["s"], c["p"], c["d"], c["output_padding"])
        assert js["length"] == equivalent.padded_input_size(c["i"]), c


def never_read_by_pytorch(c: dict) -> list[int]:
    """Input cells whose gradient is zero: no output of the (transposed) convolution reads them."""
    x = torch.ones(1, 1, c["i"], dtype=torch.float64, requires_grad=True)
    w = torch.ones(1, 1, c["k"], dtype=torch.float64)
    if c["transposed"]:
        y = F.conv_transpose1d(x, w, stride=c["s"], padding=c["p"], dilation=c["d"],
                               output_padding=c["output_padding"])
    else:
        y = F.conv1d(x, w, stride=c["s"], padding=c["p"], dilation=c["d"])
    y.sum().backward()
    return [j for j in range(c["i"]) if x.grad[0, 0, j] == 0]


@needs_node
def test_js_never_read_cells_are_those_without_gradient_in_pytorch():
    direct = [config(i, k, s, p, d) for i, k, s, p, d in itertools.product(
        range(1, 8), range(1, 4), range(1, 4), range(0, 2), range(1, 4))]
    transposed = [config(i, k, s, p, d, True, op) for i, k, s, p, d, op in itertools.product(
        range(1, 5), range(1, 4), range(1, 3), range(0, 4), range(1, 3), range(0, 2))]
    configs = [c for c in direct + transposed if python_result(c)[1] is None]
    faded = 0
    for c, js in zip(configs, run_js(configs), strict=True):
        assert js["unreadInputs"] == never_read_by_pytorch(c), c
        faded += bool(js["unreadInputs"])
    assert faded > 10  # the odd case and dilation holes really occur in the grid


@needs_node
def test_js_module_exports_render_for_anywidget_and_the_python_limits():
    script = (
        "const src = require('fs').readFileSync(process.argv[1], 'utf8');"
        "import('data:text/javascript;base64,' + Buffer.from(src).toString('base64'))"
        ".then(m => console.log(JSON.stringify([typeof m.default.render, m.DEFAULT_LIMITS])))"
    )
    out = subprocess.run([NODE, "-e", script, str(MODULE)], capture_output=True, text=True,
                         check=True, timeout=60)
    render, limits = json.loads(out.stdout)
    assert render == "function"
    assert limits == {name: list(bounds) for name, bounds in LIMITS.items()}


# ----------------------------------------------------------------------- the Python side


def test_widget_loads_the_javascript_and_css_files():
    widget = ConvExplorer()
    # the widget's own file, then the helpers every widget shares (segtutor.viz._frontend)
    assert widget._esm == f"{MODULE.read_text()}\n{SHARED_MODULE.read_text()}"
    assert "function suppressNotebookShortcuts(root)" in widget._esm
    assert "conv-explorer" in widget._css


def test_widget_output_size_follows_segtutor_arithmetic():
    widget = ConvExplorer(i=5, k=3, s=2, p=1, d=1)
    assert (widget.output_size, widget.error) == (arithmetic.conv_output_size(5, 3, 2, 1), "")
    widget.transposed = True
    assert widget.output_size == arithmetic.conv_transpose_output_size(5, 3, 2, 1)
    widget.output_padding = 1
    assert widget.output_size == arithmetic.conv_transpose_output_size(5, 3, 2, 1, 1, 1)


def test_widget_reports_an_impossible_setting_reached_later():
    widget = ConvExplorer(i=3, k=3)
    widget.k = 5
    assert widget.output_size == 0
    with pytest.raises(ValueError) as expected:
        arithmetic.conv_output_size(3, 5)
    assert widget.error == str(expected.value)


def test_widget_state_carries_settings_and_limits():
    state = ConvExplorer(i=6, k=2, s=2, p=0, d=1).get_state()
    assert {name: state[name] for name in ("i", "k", "s", "p", "d")} == dict(i=6, k=2, s=2, p=0, d=1)
    assert state["transposed"] is False and state["output_size"] == 3
    assert state["_limits"] == {name: list(bounds) for name, bounds in LIMITS.items()}


def test_output_size_and_error_are_read_only():
    widget = ConvExplorer()
    with pytest.raises(traitlets.TraitError, match="read-only"):
        widget.output_size = 7


@pytest.mark.parametrize("name", ["i", "k", "s", "p", "d", "output_padding"])
def test_setting_outside_the_limits_raises_value_error(name):
    low, high = LIMITS[name]
    with pytest.raises(ValueError, match=rf"ConvExplorer\.{name}={high + 1} is outside .* <= {high}"):
        ConvExplorer(**{name: high + 1})
    with pytest.raises(ValueError, match=rf"ConvExplorer\.{name}={low - 1} is outside"):
        ConvExplorer(**{name: low - 1})


@pytest.mark.parametrize("value", [2.0, "3", True, None])
def test_setting_of_the_wrong_type_raises_type_error(value):
    with pytest.raises(TypeError, match=r"ConvExplorer\.s \(stride\) must be an int"):
        ConvExplorer(s=value)
    widget = ConvExplorer()
    with pytest.raises(TypeError, match=r"ConvExplorer\.k \(kernel size\) must be an int"):
        widget.k = value


def test_transposed_must_be_a_bool():
    with pytest.raises(TypeError, match=r"ConvExplorer\.transposed must be True or False, got 1"):
        ConvExplorer(transposed=1)


def test_impossible_starting_setting_raises_value_error():
    with pytest.raises(ValueError, match=r"impossible setting: the kernel \(k=5, d=1"):
        ConvExplorer(i=2, k=5)
    with pytest.raises(ValueError, match="output_padding=1 only applies to a transposed"):
        ConvExplorer(output_padding=1)
    with pytest.raises(ValueError, match="output_padding=2 must be smaller than the stride s=2"):
        ConvExplorer(s=2, transposed=True, output_padding=2)


def test_explorer_output_size_refuses_output_padding_without_transposed():
    with pytest.raises(ValueError, match="output_padding=1 only applies to a transposed convolution"):
        explorer_output_size(5, 3, 1, 0, 1, False, 1)


@pytest.mark.parametrize(
    "settings",
    [dict(i=5, k=3, s=2, p=1), dict(i=3, k=3, s=2, p=1, transposed=True, output_padding=1)],
    ids=["conv", "transposed"],
)
def test_static_figure_draws_the_same_configuration(settings):
    widget = ConvExplorer(**settings)
    diagram = widget.static_figure(step=2)
    assert diagram.output_size == widget.output_size
    assert diagram.input_size == widget.i and diagram.step == 2


def test_static_figure_of_an_impossible_setting_raises_value_error():
    widget = ConvExplorer(i=3, k=3)
    widget.k = 5
    with pytest.raises(ValueError, match=r"nothing to draw: the kernel \(k=5"):
        widget.static_figure()
