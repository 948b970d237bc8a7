"""Parameters, speed and memory of every registered model on the CPU, next to external ones.

Run from the repository root (segmentation_models_pytorch comes from
``benchmarks/requirements.txt``; it is not a dependency of the package)::

    python -m pip install -r benchmarks/requirements.txt
    python benchmarks/bench_models.py              # all models, 256x256, batch 1
    python benchmarks/bench_models.py --models fcn8s vgg16 --repeats 5 --threads 1

It prints two Markdown tables: every registered model, then each of ours next to the
closest external implementation with the ratios ours/theirs: torchvision's ``vgg16`` for ours;
segmentation_models_pytorch's ``Unet`` with a VGG13-BN encoder of depth 4 for our ``unet``;
torchvision's ``deeplabv3_resnet50`` (same architecture, same keys) for ours; smp's
``DeepLabV3Plus`` with a ResNet-50 encoder for our ``deeplabv3plus_resnet50`` (a different
decoder: separable convolutions, see ``segtutor.models.deeplab``); smp's ``PSPNet`` with a
ResNet-50 encoder for our ``pspnet_resnet50`` (a different network: smp pools the undilated
layer2, see ``segtutor.models.pspnet``).

Method. Every model runs in a fresh Python process (``--worker``), so that one model's
memory cannot hide another's; all models get the same thread count. Full-size networks are
built with their defaults, ``in_channels=3`` and ``num_classes=21`` (Pascal VOC; 1000 for
ImageNet classifiers), on one random 3x256x256 image -- two for the networks whose
image-pooling batch norm cannot train on a single image (:data:`BATCH_OF_TWO`). A model that cannot take such an image
(e.g. the patch classifier) gets a row saying why.

Parameters, times and saved bytes are measured by ``segtutor.bench``, as in the book:

* **forward**: median wall time of ``--repeats`` runs in ``eval()`` mode under
  ``torch.no_grad()``, after one warm-up run (``segtutor.bench.median_seconds``).
* **forward+backward**: median wall time of ``--repeats`` runs of forward, cross-entropy
  against a random target and ``backward()`` in ``train()`` mode, after one warm-up run.
* **saved for backward**: the bytes of the tensors autograd keeps between the forward and
  the backward pass (``segtutor.bench.saved_for_backward_bytes``: recorded with
  ``torch.autograd.graph.saved_tensors_hooks``, each storage counted once, the parameters
  excluded) -- the activation memory of training, exact and independent of the allocator.
* **peak RSS rise**: how far the process's peak resident memory (Linux's ``VmHWM``, reset
  just before) rises above its resident memory (``VmRSS``) during the first
  forward+backward, with the model and input already built. It includes everything that
  pass allocates (activations, gradients, workspace) as the operating system sees it, so it
  depends a little on the allocator.

Wall times on a shared machine are noisy; compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from segtutor import models
from segtutor.bench import count_parameters, median_seconds, saved_for_backward_bytes

#: External implementations, each compared with one of ours.
EXTERNAL = {
    "torchvision.vgg16": "vgg16",
    "smp.Unet(vgg13_bn, depth 4)": "unet",
    "torchvision.deeplabv3_resnet50": "deeplabv3_resnet50",
    "smp.DeepLabV3Plus(resnet50)": "deeplabv3plus_resnet50",
    "smp.PSPNet(resnet50)": "pspnet_resnet50",
}
#: Models whose image-pooling batch norm sees a 1x1 map, so training needs two images.
BATCH_OF_TWO = {"deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3plus_resnet50",
                "torchvision.deeplabv3_resnet50", "smp.DeepLabV3Plus(resnet50)",
                # PSPNet's 1x1 bin (smp's has no batch norm there: two images to compare alike)
                "pspnet_resnet50", "pspnet_resnet101", "smp.PSPNet(resnet50)"}


class OutOnly(nn.Module):
    """torchvision's segmentation models return ``{"out": ...}``; keep the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


@dataclass
class Measurement:
    """What one worker process measured for one model."""

    name: str
    parameters: int
    forward_ms: float
    train_step_ms: float
    saved_mib: float
    peak_rss_mib: float


def build(name: str) -> nn.Module:
    """A full-size model: ours by registry name, or one of :data:`EXTERNAL`.

    Raises:
        ValueError: ``name`` is neither registered nor external.
    """
    if name == "torchvision.vgg16":
        import torchvision
        return torchvision.models.vgg16()
    if name == "torchvision.deeplabv3_resnet50":
        import torchvision
        return OutOnly(torchvision.models.segmentation.deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=21))
    if name == "smp.DeepLabV3Plus(resnet50)":
        import segmentation_models_pytorch as smp
        return smp.DeepLabV3Plus(encoder_name="resnet50", encoder_weights=None, classes=21)
    if name == "smp.PSPNet(resnet50)":
        import segmentation_models_pytorch as smp
        return smp.PSPNet(encoder_name="resnet50", encoder_weights=None, classes=21)
    if name == "smp.Unet(vgg13_bn, depth 4)":
        import segmentation_models_pytorch as smp
        return smp.Unet(encoder_name="vgg13_bn", encoder_weights=None, encoder_depth=4,
                        decoder_channels=(512, 256, 128, 64), classes=21)
    task = models.model_info(name).task
    return models.create(name, num_classes=21 if task == "semantic" else 1000, in_channels=3)


def loss_of(output: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a random target: per pixel for logits maps, per image otherwise."""
    generator = torch.Generator().manual_seed(0)
    classes = output.shape[1]
    target = torch.randint(0, classes, (output.shape[0], *output.shape[2:]), generator=generator)
    return F.cross_entropy(output, target)


def resident_mib(field: str = "VmRSS") -> float:
    """A memory figure of this process from Linux's ``/proc/self/status``, in MiB.

    ``VmRSS`` is the resident memory now, ``VmHWM`` its peak ("high water mark") since the
    process started or since :func:`reset_peak`.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # the kernel reports kB
    raise RuntimeError(f"{field} not found in /proc/self/status")


def reset_peak() -> None:
    """Reset ``VmHWM`` to the current resident memory (Linux: ``5`` into ``clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def measure(name: str, size: int, repeats: int) -> Measurement:
    """Measure one model in this process (called in a fresh worker process)."""
    torch.manual_seed(0)
    model = build(name)
    x = torch.randn(2 if name in BATCH_OF_TWO else 1, 3, size, size)

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        loss_of(model(x)).backward()

    model.train()
    reset_peak()  # forget the peak of building the model
    before = resident_mib()
    train_step()
    peak = resident_mib("VmHWM") - before
    train_ms = 1000 * median_seconds(train_step, repeats=repeats, min_run_time=0)
    saved = saved_for_backward_bytes(model, x) / 2**20
    model.eval()
    with torch.no_grad():
        forward_ms = 1000 * median_seconds(lambda: model(x), repeats=repeats, min_run_time=0)
    return Measurement(name, count_parameters(model), forward_ms, train_ms, saved, peak)


def run_worker(name: str, size: int, repeats: int, threads: int | None) -> Measurement | str:
    """Measure ``name`` in a fresh Python process; a string says why it could not run."""
    command = [sys.executable, __file__, "--worker", name, "--size", str(size),
               "--repeats", str(repeats)]
    if threads is not None:
        command += ["--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        return lines[-1]
    return Measurement(**json.loads(result.stdout.strip().splitlines()[-1]))


def table_of_models(results: dict[str, Measurement | str]) -> str:
    """Markdown table: one row per model."""
    rows = ["| model | parameters | forward (ms) | forward+backward (ms) | "
            "saved for backward (MiB) | peak RSS rise (MiB) |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, m in results.items():
        if isinstance(m, str):
            rows.append(f"| `{name}` | n/a: {m} | | | | |")
        else:
            rows.append(f"| `{name}` | {m.parameters:,} | {m.forward_ms:.0f} | "
                        f"{m.train_step_ms:.0f} | {m.saved_mib:.0f} | {m.peak_rss_mib:.0f} |")
    return "\n".join(rows)


def table_of_ratios(results: dict[str, Measurement | str]) -> str:
    """Markdown table: ours next to the external implementation, with ratios ours/theirs."""
    rows = ["| ours | external | parameters | forward | forward+backward | "
            "saved for backward | peak RSS rise |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for external, ours in EXTERNAL.items():
        if ours not in results:
            continue
        a, b = results[ours], results.get(external)
        if not isinstance(a, Measurement) or not isinstance(b, Measurement):
            rows.append(f"| `{ours}` | {external} | not measured | | | | |")
            continue
        ratios = [a.parameters / b.parameters, a.forward_ms / b.forward_ms,
                  a.train_step_ms / b.train_step_ms, a.saved_mib / b.saved_mib,
                  a.peak_rss_mib / b.peak_rss_mib]
        rows.append(f"| `{ours}` | {external} | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=None,
                        help="registered names to measure (default: all)")
    parser.add_argument("--size", type=int, default=256, help="image height and width")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in every worker (default: PyTorch's choice)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [n for n in args.models or [] if n not in models.list_models()]
    if unknown:
        parser.error(f"unknown models {unknown}; registered: {models.list_models()}")
    if args.size < 32 or args.repeats < 1 or (args.threads is not None and args.threads < 1):
        parser.error(f"need --size >= 32, --repeats >= 1 and --threads >= 1, got {args.size}, "
                     f"{args.repeats} and {args.threads}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.worker is not None:
        print(json.dumps(asdict(measure(args.worker, args.size, args.repeats))))
        return
    names = args.models or models.list_models()
    externals = [e for e, ours in EXTERNAL.items() if ours in names]
    print(f"# {len(names)} models + {len(externals)} external, {args.size}x{args.size}, batch 1, "
          f"CPU, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}")
    results: dict[str, Measurement | str] = {}
    for name in [*names, *externals]:
        start = time.perf_counter()
        results[name] = run_worker(name, args.size, args.repeats, args.threads)
        print(f"# measured {name} in {time.perf_counter() - start:.0f} s", flush=True)
    print()
    print(table_of_models(results))
    print()
    print(table_of_ratios(results))


if __name__ == "__main__":
    main()
