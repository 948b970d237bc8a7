"""segtutor's pure-PyTorch RoIAlign and RoIPool against torchvision's compiled operators.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/roi_ops.py            # CPU, one thread
    python benchmarks/roi_ops.py --rois 128 --out -           # print only

The setting is a detector's box head on one image: a 256-channel feature map of 50 x 50
cells (stride 16 of an 800 x 800 image, ``spatial_scale = 1/16``) and 512 random RoIs of
realistic sizes (sides log-uniform between 16 and 512 image pixels, inside the image). For
each operator -- ``roi_align`` with ``sampling_ratio`` 2 and -1 (``aligned=False``, as
torchvision's detectors) and ``roi_pool`` -- and each output size (7 x 7 for boxes,
14 x 14 for masks), it times the forward pass and the forward plus backward pass (the
gradient of a random weighting of the output, to the feature map) of
``torchvision.ops`` and of ``segtutor.ops`` with :func:`segtutor.bench.median_seconds`.
The CSV (``benchmarks/results/roi_ops.csv`` by default) has one row per operator, output
and pass, with the milliseconds of both and their ratio (segtutor / torchvision); it starts
with comment lines naming the machine, the date, the command and the machine's load average
(at the start and the end); ``--out -`` prints it only.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision.ops

import segtutor.ops
from segtutor.bench import median_seconds, write_results

DEFAULT_OUT = Path(__file__).parent / "results" / "roi_ops.csv"
FIELDS = ("op", "output", "pass", "torchvision_ms", "segtutor_ms", "ratio")
#: ``(name, function name, keyword arguments)`` of the operators compared.
OPERATORS = (
    ("roi_align(sampling_ratio=2)", "roi_align", {"sampling_ratio": 2, "aligned": False}),
    ("roi_align(sampling_ratio=-1)", "roi_align", {"sampling_ratio": -1, "aligned": False}),
    ("roi_pool", "roi_pool", {}),
)
IMAGE_SIZE = 800
STRIDE = 16


def random_rois(count: int, generator: torch.Generator) -> torch.Tensor:
    """``Tensor[count, 5]`` boxes in one image of ``IMAGE_SIZE`` pixels, sides log-uniform in
    [16, 512] pixels."""
    sides = torch.empty(count, 2).uniform_(math.log(16), math.log(512), generator=generator).exp()
    corners = torch.rand(count, 2, generator=generator) * (IMAGE_SIZE - sides)
    return torch.cat([torch.zeros(count, 1), corners, corners + sides], 1)


def timed(op: Callable[..., torch.Tensor], features: torch.Tensor, rois: torch.Tensor,
          output: int, kwargs: dict, backward: bool, min_run_time: float) -> float:
    """Median milliseconds of ``op(features, rois, output, 1/16, **kwargs)`` (and backward)."""
    weights = torch.randn(len(rois), features.shape[1], output, output,
                          generator=torch.Generator().manual_seed(1))
    inputs = features.detach().requires_grad_(backward)

    def step() -> None:
        out = op(inputs, rois, output, 1 / STRIDE, **kwargs)
        if backward:
            inputs.grad = None
            (out * weights).sum().backward()

    return 1000 * median_seconds(step, min_run_time=min_run_time, repeats=3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rois", type=int, default=512, help="RoIs (default 512)")
    parser.add_argument("--channels", type=int, default=256, help="feature channels (256)")
    parser.add_argument("--outputs", nargs="+", type=int, default=[7, 14])
    parser.add_argument("--min-run-time", type=float, default=1.0,
                        help="seconds of timed calls per measurement at least (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="CSV path, or - for stdout")
    args = parser.parse_args(argv)
    if min(args.rois, args.channels, args.threads, *args.outputs) < 1:
        parser.error("need --rois, --channels, --threads and --outputs >= 1")
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    cells = IMAGE_SIZE // STRIDE
    features = torch.randn(1, args.channels, cells, cells, generator=generator)
    rois = random_rois(args.rois, generator)
    load = [os.getloadavg()[0]]
    rows = []
    for name, function, kwargs in OPERATORS:
        for output in args.outputs:
            for backward in (False, True):
                ms = {library: timed(getattr(module, function), features,
                                     rois, output, kwargs, backward, args.min_run_time)
                      for library, module in (("torchvision", torchvision.ops),
                                              ("segtutor", segtutor.ops))}
                rows.append({"op": name, "output": f"{output}x{output}",
                             "pass": "forward+backward" if backward else "forward",
                             "torchvision_ms": round(ms["torchvision"], 2),
                             "segtutor_ms": round(ms["segtutor"], 2),
                             "ratio": round(ms["segtutor"] / ms["torchvision"], 2)})
                print(", ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    load.append(os.getloadavg()[0])
    note = (f"load average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end: other "
            "work on the machine slows both libraries; the ratio is the figure to read")
    write_results(args.out, rows, FIELDS, "python benchmarks/roi_ops.py "
                  + shlex.join(sys.argv[1:] if argv is None else argv), comments=[note])
    print(summary(rows))


def summary(rows: list[dict[str, object]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| operator | output | pass | torchvision ms | segtutor ms | ratio |",
             "|---|---|---|---:|---:|---:|"]
    lines += [f"| {r['op']} | {r['output']} | {r['pass']} | {r['torchvision_ms']} | "
              f"{r['segtutor_ms']} | {r['ratio']} |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
