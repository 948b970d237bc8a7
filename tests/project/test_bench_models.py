"""benchmarks/bench_models.py: its Linux memory figures, its tables, and that it measures with
segtutor.bench (the timings are not tested)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import segtutor.bench
from segtutor import models

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_models.py"
spec = importlib.util.spec_from_file_location("bench_models", SCRIPT)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_models"] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)


def test_measurements_come_from_segtutor_bench():
    # one implementation of each measurement, shared with the book (tested in
    # tests/unit/test_bench.py against hand-computed figures)
    assert bench.saved_for_backward_bytes is segtutor.bench.saved_for_backward_bytes
    assert bench.median_seconds is segtutor.bench.median_seconds
    assert bench.count_parameters is segtutor.bench.count_parameters
    assert not hasattr(bench, "median_ms")


def test_measure_one_small_model():
    m = bench.measure("tiny_fcn", 32, 1)
    model = models.create("tiny_fcn", num_classes=21, in_channels=3)
    assert m.name == "tiny_fcn"
    assert m.parameters == segtutor.bench.count_parameters(model)
    assert m.saved_mib == segtutor.bench.saved_for_backward_bytes(
        model.train(), torch.randn(1, 3, 32, 32)) / 2**20
    assert m.forward_ms > 0 and m.train_step_ms > 0 and m.peak_rss_mib >= 0


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
