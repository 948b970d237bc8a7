"""The GPU path, on CUDA only (skipped cleanly without it): the training command with mixed
precision, channels_last and torch.compile; the comparison's costs; the throughput benchmark;
and, with two GPUs, the command under torchrun with nccl and SyncBatchNorm."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segtutor.recipes import COMPARISON
from segtutor.train.__main__ import main

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

TINY = ["--model", "unet", "--tiny", "--data", "shapes", "--image-size", "64", "--train-images",
        "32", "--batch-size", "8", "--epochs", "2", "--device", "cuda", "--no-progress"]


@pytest.mark.parametrize("extra", [[], ["--amp"], ["--amp", "--channels-last"],
                                   ["--amp", "--channels-last", "--compile"]])
def test_the_command_trains_on_cuda(tmp_path, extra):
    history = main([*TINY, *extra, "--out", str(tmp_path / "run")])
    assert history.step[-1] == 8 and all(torch.isfinite(torch.tensor(history.step_loss)))
    resumed = main([*TINY, *extra, "--out", str(tmp_path / "run"), "--resume"])
    assert resumed.step == history.step


def test_comparison_costs_on_cuda():
    costs = COMPARISON.costs("unet", min_run_time=0, device="cuda")
    on_cpu = COMPARISON.costs("unet", min_run_time=0)
    assert costs["gmacs_256"] == pytest.approx(on_cpu["gmacs_256"])  # a count: the same anywhere
    assert costs["latency_ms_256"] > 0


def test_gpu_throughput_on_cuda(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_throughput",
                                                  REPO / "benchmarks" / "gpu_throughput.py")
    throughput = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = throughput
    spec.loader.exec_module(throughput)
    rows = throughput.main(["--models", "fcn8s", "--size", "128", "--batch-size", "2",
                            "--warmup", "1", "--steps", "2", "--out", str(tmp_path / "t.csv")])
    assert all(row["images_per_second"] > 0 and row["peak_memory_mib"] > 0 for row in rows)
    assert torch.cuda.get_device_name() in (tmp_path / "t.csv").read_text()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_the_command_under_torchrun_with_nccl_and_sync_bn(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "segtutor.train", *TINY, "--sync-bn",
               "--out", str(tmp_path / "ddp")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(epochs, 2 processes)" in done.stdout and "DDP all-reduce:" in done.stdout
    history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert history["step"][-1] == 8
