"""Training throughput (images/s) of U-Net, DeepLab v3 and FCN-8s in float32 and mixed precision.

Run from the repository root on a machine with a GPU::

    python benchmarks/gpu_throughput.py                         # 512 x 512, batch 8, CUDA
    python benchmarks/gpu_throughput.py --compile               # also each mode + torch.compile
    python benchmarks/gpu_throughput.py --device cpu --size 64 --batch-size 2 --steps 2 --models unet

Each network (``segtutor.models.create`` with its defaults, 21 classes: full width, random
weights) trains on random images and labels of ``--size`` pixels with AdamW and
cross-entropy, in the modes:

* ``fp32``: float32 throughout;
* ``amp``: autocast in the dtype ``segtutor.train.fit`` picks (bfloat16 where the GPU supports
  it, else float16 with a gradient scaler; bfloat16 on a CPU);
* ``amp+channels_last``: the same with the network and the images in the ``channels_last``
  memory layout, which tensor cores prefer;
* with ``--compile``, each of them again under ``torch.compile`` (its first steps compile and
  are part of the warm-up).

After ``--warmup`` steps, ``--steps`` steps are timed (the device synchronised before and
after); a row holds the images per second and the peak memory the CUDA allocator saw. The
goal the book sets: on a modern GPU, ``amp+channels_last`` trains at least twice as fast as
``fp32``. The CSV (``benchmarks/results/gpu_throughput.csv`` by default) starts with comment
lines naming the machine (and the GPU), the date and the command; ``--out -`` prints it only.
"""

from __future__ import annotations

import argparse
import gc
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from segtutor import models
from segtutor.bench import write_results
from segtutor.train.loop import _amp_dtype  # fit's own choice of dtype
from segtutor.utils import device as pick_device

DEFAULT_OUT = Path(__file__).parent / "results" / "gpu_throughput.csv"
MODELS = ("unet", "deeplabv3_resnet50", "fcn8s")
MODES = ("fp32", "amp", "amp+channels_last")
FIELDS = ("model", "mode", "compiled", "size", "batch_size", "images_per_second",
          "peak_memory_mib", "speedup_over_fp32")


def images_per_second(name: str, mode: str, *, device: torch.device, size: int, batch_size: int,
                      warmup: int, steps: int, compiled: bool) -> tuple[float, float]:
    """Train ``name`` in ``mode`` for ``warmup`` + ``steps`` steps; the timed images/s and the
    peak CUDA memory in MiB (NaN off CUDA)."""
    torch.manual_seed(0)
    net = models.create(name, num_classes=21).to(device).train()
    images = torch.randn(batch_size, 3, size, size, device=device)
    labels = torch.randint(0, 21, (batch_size, size, size), device=device)
    dtype = _amp_dtype(True, device) if mode != "fp32" else None
    if mode == "amp+channels_last":
        net = net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    forward = torch.compile(net) if compiled else net

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            output = forward(images)
            output = output["out"] if isinstance(output, dict) else output
            loss = F.cross_entropy(output.float(), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    synchronize()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else float("nan"))
    return batch_size * steps / seconds, peak


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--size", type=int, default=512, help="image side (default 512)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per step (default 8)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--compile", action="store_true", help="also each mode under torch.compile")
    parser.add_argument("--device", default=None, help="cuda (default when available), cpu, ...")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="CSV path, or - for stdout")
    args = parser.parse_args(argv)
    for option in ("size", "batch_size", "steps"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    try:
        device = pick_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    rows: list[dict[str, object]] = []
    for name in args.models:
        for compiled in (False, True) if args.compile else (False,):
            base = None
            for mode in MODES:
                rate, peak = images_per_second(name, mode, device=device, size=args.size,
                                               batch_size=args.batch_size, warmup=args.warmup,
                                               steps=args.steps, compiled=compiled)
                gc.collect()  # the last network's memory, before the next is built
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                base = rate if mode == "fp32" else base
                rows.append({"model": name, "mode": mode, "compiled": compiled, "size": args.size,
                             "batch_size": args.batch_size, "images_per_second": round(rate, 2),
                             "peak_memory_mib": round(peak, 1),
                             "speedup_over_fp32": round(rate / base, 3)})
                print(", ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    where = (f"device: {torch.cuda.get_device_name(device)}" if device.type == "cuda"
             else f"device: {device}")
    command = "python benchmarks/gpu_throughput.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    write_results(args.out, rows, FIELDS, command, comments=[where])
    return rows


if __name__ == "__main__":
    main()
