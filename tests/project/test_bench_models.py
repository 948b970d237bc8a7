"""benchmarks/bench_models.py: its memory measurements and tables (the timings are not tested)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_models.py"
spec = importlib.util.spec_from_file_location("bench_models", SCRIPT)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_models"] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)


def test_saved_for_backward_counts_activations_not_parameters():
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    # the convolution saves its input (and its weight, a parameter: not counted);
    # the ReLU saves its output
    expected = x.numel() * 4 + 2 * 5 * 8 * 8 * 4
    assert bench.saved_for_backward_bytes(model, x) == expected


class Cube(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x) * x


def test_saved_for_backward_counts_a_shared_storage_once():
    x = torch.randn(3, 4, requires_grad=True)
    # x * x saves x twice (one storage); (x * x) * x saves the square and x again
    assert bench.saved_for_backward_bytes(Cube(), x) == 2 * x.numel() * 4


def test_resident_memory_fields_and_reset():
    assert bench.resident_mib("VmRSS") > 0
    bench.reset_peak()
    assert bench.resident_mib("VmHWM") >= bench.resident_mib("VmRSS") * 0.9
    with pytest.raises(RuntimeError, match="VmNope not found"):
        bench.resident_mib("VmNope")


def test_tables_show_ratios_and_failures():
    ours = bench.Measurement("vgg16", 100, 10.0, 30.0, 4.0, 8.0)
    theirs = bench.Measurement("torchvision.vgg16", 50, 5.0, 10.0, 2.0, 2.0)
    results = {"vgg16": ours, "torchvision.vgg16": theirs, "odd": "ValueError: no"}
    models_table = bench.table_of_models(results)
    assert "| `vgg16` | 100 | 10 | 30 | 4 | 8 |" in models_table
    assert "| `odd` | n/a: ValueError: no |" in models_table
    ratios = bench.table_of_ratios(results)
    assert "| `vgg16` | torchvision.vgg16 | 2.00x | 2.00x | 3.00x | 2.00x | 4.00x |" in ratios


def test_unknown_model_is_refused():
    with pytest.raises(SystemExit):
        bench.parse_args(["--models", "nope"])
