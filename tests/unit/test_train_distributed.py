"""fit and python -m segtutor.train under torchrun: two gloo processes on the CPU train as one.

Two processes with half the batch each and DistributedDataParallel's averaged gradients take
the same steps as one process with the whole batch, for a network without batch norm or
dropout (whose statistics and masks would differ between a half and a whole batch): FCN-8s
(no batch norm by default) with ``dropout=0``. The sums run in another order, so the
weights agree to float32 rounding, not bit for bit (tolerances below). Each test starts
``torchrun`` (``python -m torch.distributed.run``) as a subprocess, as a reader would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

#: Trains the FCN on 32 Shapes images (4 global batches of 8) with fit, in one process or,
#: under torchrun, with DDP and a DistributedSampler; writes the checkpoint and step losses.
SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler
    from segtutor import models
    from segtutor.data import Shapes
    from segtutor.train import fit

    out, epochs = sys.argv[1], int(sys.argv[2])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    torch.manual_seed(0)
    model = models.create("fcn8s", num_classes=4, width=4, fc_channels=16, dropout=0.0)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    data = Shapes(length=32, size=32, seed=0)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, seed=0, drop_last=True)
    loader = DataLoader(data, batch_size=8 // world, sampler=sampler, drop_last=True)
    history = fit(model, loader, num_classes=4, epochs=epochs, device="cpu", seed=0,
                  optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3),
                  checkpoint=out, progress=False)
    if rank == 0:
        with open(out + ".json", "w") as file:
            json.dump(history.step_loss, file)
    if world > 1:
        dist.destroy_process_group()
''')

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def run(command: list[str], processes: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    """``python command...``, or the same under torchrun with ``processes`` ranks."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={processes}"] if processes > 1 else [sys.executable])
    return subprocess.run([*launcher, *command], env=ENV, cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=check)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()  # DDP's "module." prefix is not saved
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "train.py"
    path.write_text(SCRIPT)
    return path


@pytest.fixture(scope="module")
def one_process(script) -> Path:
    out = script.parent / "single.pt"
    run([str(script), str(out), "2"])
    return out


def test_two_processes_take_the_steps_of_one_with_the_whole_batch(script, one_process):
    out = script.parent / "ddp.pt"
    run([str(script), str(out), "2"], processes=2)
    single = json.loads(Path(str(one_process) + ".json").read_text())
    double = json.loads(Path(str(out) + ".json").read_text())
    assert len(single) == len(double) == 8  # 2 epochs of 32 / 8
    assert double == pytest.approx(single, rel=1e-5)  # the mean loss over the two ranks
    assert_same_weights(weights(out), weights(one_process))


def test_a_checkpoint_written_under_ddp_resumes_in_one_process(script, one_process):
    out = script.parent / "half.pt"
    run([str(script), str(out), "1"], processes=2)  # one epoch on two ranks
    assert torch.load(out, weights_only=True)["epochs_done"] == 1
    run([str(script), str(out), "2"])  # the second in a single process, resumed
    assert_same_weights(weights(out), weights(one_process))


def test_the_command_under_torchrun(tmp_path):
    common = ["-m", "segtutor.train", "--model", "fcn8s", "--tiny", "--model-kwargs",
              '{"dropout": 0.0}', "--data", "shapes", "--image-size", "32", "--train-images",
              "32", "--batch-size", "8", "--epochs", "1", "--no-progress"]
    single = run([*common, "--out", str(tmp_path / "one")])
    double = run([*common, "--out", str(tmp_path / "two")], processes=2)
    assert "(epochs, 2 processes)" in double.stdout and "(epochs, 1 process)" in single.stdout
    losses = [json.loads((tmp_path / name / "history.json").read_text())["step_loss"]
              for name in ("one", "two")]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert_same_weights(weights(tmp_path / "two" / "checkpoint.pt"),
                        weights(tmp_path / "one" / "checkpoint.pt"))
    # the gradient traffic, counted by the command's all-reduce hook (the same losses above
    # show that the hook all-reduces as DDP's default does): every trainable parameter's
    # float32 gradient once per step, 4 steps of the global batch of 8 over 32 images
    traffic = re.search(r"DDP all-reduce: ([\d,]+) bytes of gradients per step per process in "
                        r"(\d+) bucket\(s\), ([\d.]+) ms per step until complete, over (\d+) "
                        r"steps", double.stdout)
    assert traffic, double.stdout
    from segtutor import models
    net = models.create("fcn8s", num_classes=4, **models.model_info("fcn8s").tiny_kwargs,
                        dropout=0.0)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert trainable < sum(p.numel() for p in net.parameters())  # frozen upsampling: not sent
    assert int(traffic[1].replace(",", "")) == 4 * trainable
    assert int(traffic[2]) >= 1 and float(traffic[3]) > 0 and int(traffic[4]) == 4
    assert "DDP all-reduce" not in single.stdout
    refused = run([*common, "--sync-bn", "--out", str(tmp_path / "sync")], processes=2,
                  check=False)
    assert refused.returncode != 0
    assert "--sync-bn needs CUDA" in refused.stderr
