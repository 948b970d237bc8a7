"""``python -m segtutor.train``: train any of the book's semantic networks from the command line.

Examples::

    python -m segtutor.train --model unet --data isbi --time-budget 120 --out runs/unet
    python -m segtutor.train --model fcn8s --data shapes --epochs 5 --out runs/fcn8s
    python -m segtutor.train --model fcn8s --data shapes --epochs 10 --out runs/fcn8s --resume

It is :func:`segtutor.train.fit` with the choices a command line needs: the network
(``--model``, any registered ``"semantic"`` builder, built with ``num_classes`` and
``in_channels`` from the data), the data set (``--data``: the synthetic ``Shapes``, ISBI
2012, Pascal VOC 2012 or Oxford-IIIT Pet, read from ``--data-root``), AdamW at ``--lr`` with a
one-cycle schedule over the run (in steps for ``--epochs``, in seconds for ``--time-budget``),
mixed precision (``--amp``), ``channels_last`` and ``torch.compile``. ``--out`` receives the
checkpoint (``checkpoint.pt``, loadable with ``torch.load(..., weights_only=True)``), the
history (``history.csv``, ``history.json``) and its plot (``history.png``); ``--resume``
continues the checkpoint there, and without it an existing checkpoint is never overwritten.
The run ends by printing the validation mIoU.

Several processes, one device each: ``torchrun --nproc_per_node=N -m segtutor.train ...``
runs the same command under ``DistributedDataParallel`` (backend nccl on CUDA, gloo on the
CPU). ``--batch-size`` is the global batch, split evenly across the ranks; a
``DistributedSampler`` (used in a single process too, so that both see the same batches)
deals out the data; ``--sync-bn`` turns batch norm into ``SyncBatchNorm`` (CUDA only, as in
PyTorch); rank 0 alone prints and writes, and the process group is destroyed on the way
out, also after an error. At the end rank 0 also prints the gradient traffic that DDP's
all-reduce carried per step (counted by :class:`GradientTraffic`, DDP's own all-reduce hook).

This module is the one place besides :mod:`segtutor.recipes` that composes models, data and
the training loop; the rest of :mod:`segtutor.train` knows a model only as an ``nn.Module``.
Bad values end the command with one line naming the value and what is valid (exit code 2).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision.transforms import v2

from ..data import (
    ISBI2012,
    AugmentedPairs,
    JointTransform,
    OxfordPets,
    Shapes,
    VOCSegmentation,
    default_isbi_root,
    eval_transforms,
    train_transforms,
)
from ..models import create, list_models, model_info
from ..utils import device as pick_device
from . import History, fit, load_checkpoint, one_cycle_in_time

__all__ = ["DATASETS", "GradientTraffic", "build_data", "main", "parser"]

#: The data sets ``--data`` accepts.
DATASETS: tuple[str, ...] = ("shapes", "isbi", "voc", "pets")

#: Held-out ``Shapes`` images for validation (a fixed seed, apart from the training seed).
SHAPES_VAL_IMAGES = 64


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``segtutor.train: error: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(kind: type) -> type:
    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a positive {kind.__name__}, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}, got {text!r}")
        return value
    convert.__name__ = f"positive {kind.__name__}"
    return convert  # type: ignore[return-value]


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"width\": 16}}', "
                                         f"got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    """The command line (``python -m segtutor.train --help`` prints it)."""
    p = _Parser(prog="segtutor.train", description=__doc__.split("\n")[0].strip("`: "),
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, metavar="NAME",
                   help="a registered semantic network: " + ", ".join(list_models("semantic")))
    p.add_argument("--data", required=True, choices=DATASETS, help="the data set")
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder of the data set (not used by shapes; isbi defaults to "
                        "segtutor.data.default_isbi_root())")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--epochs", type=_positive(int), help="epochs of training")
    budget.add_argument("--time-budget", type=_positive(float), metavar="SECONDS",
                        help="seconds of training (checked between steps)")
    p.add_argument("--batch-size", type=_positive(int), default=8, help="images per step")
    p.add_argument("--lr", type=_positive(float), default=1e-3,
                   help="peak learning rate of AdamW's one-cycle schedule")
    p.add_argument("--image-size", type=_positive(int), default=64,
                   help="training crops (shapes: the images) are this many pixels square")
    p.add_argument("--train-images", type=_positive(int), default=1024,
                   help="images per epoch for shapes and isbi (random crops of the slices)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision (default: on for CUDA only)")
    p.add_argument("--model-kwargs", type=_json_object, default={}, metavar="JSON",
                   help='more keyword arguments of the builder, e.g. \'{"width": 16}\'')
    p.add_argument("--tiny", action="store_true",
                   help="build the model at its registered smoke-test size (tiny_kwargs)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--sync-bn", action="store_true",
                   help="SyncBatchNorm across the ranks (under torchrun on CUDA only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best there is)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and data order")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--out", type=Path, required=True,
                   help="folder for checkpoint.pt, history.csv/.json and history.png")
    p.add_argument("--resume", action="store_true",
                   help="continue the checkpoint in --out (without it, an existing one is an error)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar")
    return p


def build_data(name: str, root: Path | None, *, image_size: int, train_images: int
               ) -> tuple[Dataset, Dataset, int, int, int]:
    """``(train set, validation set, num_classes, in_channels, validation batch size)``.

    Raises:
        ValueError: an unknown ``name``, or no root for a data set that needs one.
        FileNotFoundError: the root does not hold the data set (the message says how to get it).
    """
    if name == "shapes":
        return (Shapes(length=train_images, size=image_size, seed=0),
                Shapes(length=SHAPES_VAL_IMAGES, size=image_size, seed=1),
                Shapes.num_classes, 3, 32)
    if name == "isbi":
        root = root if root is not None else default_isbi_root()
        if root is None:
            raise ValueError("--data isbi needs --data-root (no ISBI 2012 copy found in the "
                             "default places)")
        slices = list(ISBI2012(root, split="train"))
        augment = JointTransform(v2.RandomCrop(image_size), v2.RandomHorizontalFlip(),
                                 v2.RandomVerticalFlip())
        return (AugmentedPairs(slices, augment, train_images), ISBI2012(root, split="test"),
                ISBI2012.num_classes, 1, 1)
    if name in ("voc", "pets"):
        if root is None:
            raise ValueError(f"--data {name} needs --data-root")
        if name == "voc":
            return (VOCSegmentation(root, "train", transforms=train_transforms(image_size)),
                    VOCSegmentation(root, "val", transforms=eval_transforms()),
                    VOCSegmentation.num_classes, 3, 1)
        return (OxfordPets(root, "trainval", transforms=train_transforms(image_size)),
                OxfordPets(root, "test", transforms=eval_transforms()), 2, 3, 1)
    raise ValueError(f"data must be one of {DATASETS}, got {name!r}")


def write_history(history: History, out: Path) -> None:
    """``history.json`` (everything), ``history.csv`` (one row per entry) and ``history.png``."""
    (out / "history.json").write_text(json.dumps(history.to_dict(), indent=1))
    columns = ("epoch", "step", "train_loss", "val_miou", "val_pixel_accuracy", "seconds", "lr")
    with (out / "history.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows(zip(*(getattr(history, c) for c in columns), strict=True))
    import matplotlib  # noqa: PLC0415 - only the command draws, and without a display
    matplotlib.use("Agg")
    from ..viz import plot_history  # noqa: PLC0415

    figure = plot_history(history)
    figure.savefig(out / "history.png", dpi=100, bbox_inches="tight")


class GradientTraffic:
    """A ``DistributedDataParallel`` communication hook: DDP's default all-reduce, counted.

    Register it with ``ddp_model.register_comm_hook(None, traffic.hook)``: every gradient
    bucket DDP hands over is all-reduced exactly as without a hook
    (``torch.distributed.algorithms.ddp_comm_hooks.default_hooks.allreduce_hook``: the
    bucket is divided by the world size and summed across the ranks), and its bytes and
    the seconds until its all-reduce completes are added up. ``bytes_per_step`` is what one
    rank hands to the all-reduce per optimizer step -- a ring all-reduce then sends
    ``2 (N - 1) / N`` times that over each rank's link. The seconds overlap the rest of the
    backward pass (DDP starts a bucket's all-reduce as soon as its gradients are ready), so
    they are the communication's duration, not what it adds to a step.

    Attributes:
        bytes: bytes of all buckets so far.
        buckets: buckets so far.
        steps: backward passes so far (a step ends with DDP's last bucket).
        seconds: wall seconds from handing each bucket over to its all-reduce completing,
            summed over the buckets.
    """

    def __init__(self) -> None:
        self.bytes = 0
        self.buckets = 0
        self.steps = 0
        self.seconds = 0.0

    # DDP checks the hook's annotations against the classes themselves, which postponed
    # annotations (strings) would not match: ``bucket`` is a ``dist.GradBucket``, the result
    # a ``torch.futures.Future[Tensor]``.
    def hook(self, process_group, bucket):
        """DDP's default all-reduce of ``bucket`` over ``process_group``, counted and timed."""
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        buffer = bucket.buffer()
        self.bytes += buffer.numel() * buffer.element_size()
        self.buckets += 1
        self.steps += bucket.is_last()
        started = time.perf_counter()

        def done(future):
            self.seconds += time.perf_counter() - started
            return future.value()

        return default_hooks.allreduce_hook(process_group, bucket).then(done)

    @property
    def bytes_per_step(self) -> float:
        """Mean bytes per backward pass (0 before the first)."""
        return self.bytes / self.steps if self.steps else 0.0

    @property
    def seconds_per_step(self) -> float:
        """Mean all-reduce seconds per backward pass, summed over its buckets (0 before the first)."""
        return self.seconds / self.steps if self.steps else 0.0


def _world() -> tuple[int, int, int]:
    """``(rank, local rank, world size)`` from torchrun's environment; ``(0, 0, 1)`` without."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def main(argv: Sequence[str] | None = None) -> History:
    """Run the command with ``argv`` (default ``sys.argv[1:]``); return the run's History.

    Under torchrun every rank calls it; each returns the (same) History.
    """
    p = parser()
    args = p.parse_args(argv)
    rank, local_rank, world = _world()
    if args.model not in list_models("semantic"):
        p.error(f"--model must be one of {list_models('semantic')}, got {args.model!r}")
    if args.workers < 0:
        p.error(f"--workers must be >= 0, got {args.workers}")
    if args.batch_size % world:
        p.error(f"--batch-size {args.batch_size} (the global batch) must be divisible by the "
                f"{world} processes")
    if args.sync_bn and world == 1:
        p.error("--sync-bn synchronises batch norm across processes: run under torchrun")
    checkpoint = args.out / "checkpoint.pt"
    if checkpoint.exists() and not args.resume:
        p.error(f"{checkpoint} exists; pass --resume to continue it, or choose another --out")
    if args.resume and not checkpoint.exists():
        p.error(f"--resume: no checkpoint at {checkpoint}")
    try:
        train_set, val_set, num_classes, in_channels, val_batch = build_data(
            args.data, args.data_root, image_size=args.image_size,
            train_images=args.train_images)
        if world > 1:
            device = (torch.device("cuda", local_rank)
                      if torch.cuda.is_available() and args.device in (None, "cuda")
                      else pick_device("cpu"))
        else:
            device = pick_device(args.device)
        kwargs = {**(model_info(args.model).tiny_kwargs if args.tiny else {}), **args.model_kwargs}
        torch.manual_seed(args.seed)  # the weights; fit seeds again for the data order
        model = create(args.model, num_classes=num_classes, in_channels=in_channels, **kwargs)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as error:
        p.error(str(error).splitlines()[0])
    if args.sync_bn and device.type != "cuda":
        p.error("--sync-bn needs CUDA: PyTorch's SyncBatchNorm runs only on CUDA devices")
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                 seed=args.seed, drop_last=True)
    loader = DataLoader(train_set, batch_size=args.batch_size // world, sampler=sampler,
                        drop_last=True, num_workers=args.workers)
    if len(loader) == 0:
        p.error(f"--batch-size {args.batch_size} is larger than the {len(train_set)} training "
                f"images")
    if args.resume and args.epochs is not None:
        _check_same_schedule(p, checkpoint, args.epochs, len(loader))
    val_loader = DataLoader(val_set, batch_size=val_batch, num_workers=args.workers)
    if world > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        history = _train(args, model, loader, val_loader, num_classes, device, world, rank,
                         checkpoint)
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if rank == 0:
        write_history(history, args.out)
        print(f"{args.model} on {args.data}: validation mIoU {history.val_miou[-1]:.4f}, pixel "
              f"accuracy {history.val_pixel_accuracy[-1]:.4f} after {history.step[-1]} steps "
              f"({history.stop_reason}, {world} process{'es' if world > 1 else ''}); wrote "
              f"{args.out}")
    return history


def _check_same_schedule(p: argparse.ArgumentParser, checkpoint: Path, epochs: int,
                         steps_per_epoch: int) -> None:
    """Refuse to resume a one-cycle schedule over another number of steps than it began with.

    A one-cycle schedule is fixed by its total length from its first step on (its warm-up
    and its annealing are fractions of it); stretching it half-way would jump the learning
    rate. ``--epochs`` is the total, counting the epochs already done, so resuming with the
    same value continues exactly.
    """
    scheduler = load_checkpoint(checkpoint).get("scheduler") or {}
    total = scheduler.get("total_steps")
    if total is not None and total != epochs * steps_per_epoch:
        p.error(f"--resume with --epochs {epochs}: the checkpoint's one-cycle schedule spans "
                f"{total} steps ({total // steps_per_epoch} epochs of {steps_per_epoch}), not "
                f"{epochs * steps_per_epoch}; a begun one-cycle schedule cannot be stretched. "
                f"Resume with --epochs {total // steps_per_epoch}, or start a new run in another "
                f"--out")


def _train(args: argparse.Namespace, model: nn.Module, loader: DataLoader,
           val_loader: DataLoader, num_classes: int, device: torch.device, world: int,
           rank: int, checkpoint: Path) -> History:
    """Wrap ``model`` as asked (SyncBatchNorm, channels_last, DDP, compile) and call ``fit``."""
    if args.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    traffic = GradientTraffic()
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        model.register_comm_hook(None, traffic.hook)
    if args.compile:
        model = torch.compile(model)
    if args.epochs is not None:
        total_steps = args.epochs * len(loader)

        def schedule(optimizer: torch.optim.Optimizer):
            return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr,
                                                       total_steps=total_steps)
    else:
        def schedule(optimizer: torch.optim.Optimizer):
            return one_cycle_in_time(optimizer, args.time_budget)

    if rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
    history = fit(model, loader, val_loader, num_classes=num_classes, epochs=args.epochs,
                  time_budget=args.time_budget,
                  optimizer=lambda params: torch.optim.AdamW(params, lr=args.lr),
                  lr_scheduler=schedule, device=device, amp=args.amp,
                  checkpoint=checkpoint, resume=args.resume, seed=args.seed,
                  progress=args.progress)
    if world > 1 and rank == 0:
        gradients = sum(p.numel() * p.element_size() for p in model.parameters()
                        if p.requires_grad)
        print(f"DDP all-reduce: {traffic.bytes_per_step:,.0f} bytes of gradients per step per "
              f"process in {traffic.buckets / max(traffic.steps, 1):.0f} bucket(s), "
              f"{1000 * traffic.seconds_per_step:.1f} ms per step until complete, over "
              f"{traffic.steps} steps (the trainable parameters' gradients: {gradients:,} "
              f"bytes)")
    return history


if __name__ == "__main__":
    main(sys.argv[1:])
