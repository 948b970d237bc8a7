"""The training loop: :func:`fit` and the pieces it is made of.

:func:`fit` checks its arguments, builds what the loop needs (device, mixed precision,
loss, optimizer, scheduler, a :class:`~segtutor.train.checkpoints._RunState`), resumes
from a checkpoint if there is one, then hands over to a :class:`_Trainer`. Its pieces:

- :class:`_Stopping`: the epochs and the time budget, whichever ends first.
- :class:`_Validation`: validation metrics that leave the random generators untouched.
- :class:`_Reporter`: the progress bar and the printed lines.
- :class:`_DeferredInterrupt`: a Ctrl-C that waits for the current step to finish.
- :class:`_Trainer`: the epochs, the steps and the History entries.

Under ``torch.distributed`` (e.g. ``torchrun`` and a ``DistributedDataParallel`` model) every
process runs the same loop: :func:`_world` says which rank a process is, the ranks agree
after every step on whether to stop (time budget, Ctrl-C) so that none waits forever for the
others' gradients, the recorded loss is the mean over the ranks, a ``DistributedSampler``
gets ``set_epoch`` before each epoch, and only rank 0 prints and writes checkpoints.

What is saved and restored, and how an epoch is replayed on resumption, is in
:mod:`segtutor.train.checkpoints`.
"""

from __future__ import annotations

import math
import numbers
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .._checks import IGNORE_INDEX, check_bool, check_optional_bool, check_optional_int, describe
from ..losses import CrossEntropyLoss
from ..metrics import ConfusionMatrix
from ..utils import seed_everything
from .checkpoints import _loader_generators, _rng_state, _RunState, _set_rng_state
from .evaluation import _check_model, _resolve_device, _unpack, evaluate
from .history import History

__all__ = ["fit"]

LossFn = Callable[..., Tensor]
OptimizerArg = torch.optim.Optimizer | Callable[..., torch.optim.Optimizer] | None
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


# -- arguments ------------------------------------------------------------------------


def _check_optional_seconds(value: object, name: str) -> float | None:
    """None, or a finite number of seconds > 0 (``_checks`` has no optional number check).

    Raises:
        TypeError: ``value`` is neither None nor a real number.
        ValueError: ``value`` is not finite or not > 0.
    """
    if value is None:
        return None
    what = "None or a finite number of seconds > 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}, got {describe(value)} ({type(value).__name__})")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return float(value)


def _check_train_loader(loader: object) -> None:
    """A loader with a length (for the progress bar and resumption) that yields batches."""
    if not isinstance(loader, Sized):
        raise TypeError(f"train_loader must have a length (e.g. a DataLoader over a map-style "
                        f"dataset), got {type(loader).__name__}")
    if len(loader) == 0:
        raise ValueError("train_loader yields no batches (len(train_loader) == 0)")


def _amp_dtype(amp: bool | None, device: torch.device) -> torch.dtype | None:
    """CUDA: bfloat16 where supported, else float16 (with a GradScaler); CPU: bfloat16.

    ``None`` turns it on for CUDA only: whether bfloat16 is faster on a CPU depends on
    the CPU (native on recent x86 with AVX-512 BF16 or AMX, emulated and slower on older
    ones), so it is measured, not assumed (Chapter 8 times both).

    Raises:
        TypeError: ``amp`` is not True, False or None.
        ValueError: ``amp=True`` on a device that is neither CUDA nor the CPU.
    """
    check_optional_bool(amp, "amp")
    if amp is None:
        amp = device.type == "cuda"
    if not amp:
        return None
    if device.type == "cpu":
        return torch.bfloat16
    if device.type != "cuda":
        raise ValueError(f"amp=True needs a CUDA or CPU device, got {device}; use amp=None "
                         f"(automatic) or amp=False")
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _build_optimizer(optimizer: OptimizerArg, model: nn.Module) -> torch.optim.Optimizer:
    if optimizer is None:
        return torch.optim.AdamW(model.parameters(), lr=1e-3)
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer):
        built = optimizer(model.parameters())
        if isinstance(built, torch.optim.Optimizer):
            return built
    raise TypeError(f"optimizer must be None, a torch.optim.Optimizer, or a factory that takes "
                    f"model.parameters() and returns one, got {describe(optimizer)}")


def _build_scheduler(factory: SchedulerFactory | None, optimizer: torch.optim.Optimizer) -> Any:
    if factory is None:
        return None
    if isinstance(factory, torch.optim.lr_scheduler.LRScheduler) or not callable(factory):
        raise TypeError(f"lr_scheduler must be a factory such as "
                        f"lambda opt: OneCycleLR(opt, max_lr=1e-2, total_steps=n) (fit builds "
                        f"the optimizer it binds to), got {describe(factory)}")
    return factory(optimizer)


# -- several processes ---------------------------------------------------------------


def _world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised ``torch.distributed`` group, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _collective_device(device: torch.device) -> torch.device:
    """Where a collective's tensor must live: NCCL reduces CUDA tensors only, gloo CPU ones."""
    return device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")


def _across_ranks(values: list[float], device: torch.device, op: str) -> list[float]:
    """``values`` summed (``op="mean"``: averaged) or maximised over the ranks; unchanged
    in a single process. All ranks must call it at the same point."""
    _, world = _world()
    if world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device(device))
    reduce = torch.distributed.ReduceOp.MAX if op == "max" else torch.distributed.ReduceOp.SUM
    torch.distributed.all_reduce(tensor, op=reduce)
    if op == "mean":
        tensor /= world
    return tensor.tolist()


def _same_lr_on_all_ranks(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Give every rank rank 0's learning rates (a clock-driven schedule such as
    :func:`~segtutor.train.one_cycle_in_time` reads a slightly different clock on each, and
    ranks that step with different rates would drift apart); nothing in a single process."""
    if _world()[1] == 1:
        return
    rates = torch.tensor([group["lr"] for group in optimizer.param_groups], dtype=torch.float64,
                         device=_collective_device(device))
    torch.distributed.broadcast(rates, src=0)
    for group, rate in zip(optimizer.param_groups, rates.tolist(), strict=True):
        group["lr"] = rate


# -- the pieces of the loop -----------------------------------------------------------


class _DeferredInterrupt:
    """Within the block, a first Ctrl-C only sets :attr:`requested`, so that the training
    loop can finish its step and save; a second Ctrl-C raises at once. Outside the main
    thread signals cannot be caught, and Ctrl-C raises as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _DeferredInterrupt:
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread and signal.getsignal(signal.SIGINT) is not None:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@dataclass(frozen=True)
class _Stopping:
    """When training stops: after ``epochs`` in all, or ``time_budget`` seconds of this call."""

    epochs: int | None
    time_budget: float | None
    started: float = field(default_factory=time.perf_counter)

    def more_epochs(self, epochs_done: int) -> bool:
        return self.epochs is None or epochs_done < self.epochs

    def budget_spent(self) -> bool:
        return (self.time_budget is not None
                and time.perf_counter() - self.started >= self.time_budget)


@dataclass(frozen=True)
class _Validation:
    """Validation metrics after each History entry (NaN without a loader)."""

    loader: DataLoader | None
    num_classes: int
    ignore_index: int

    def measure(self, state: _RunState) -> dict[str, Any]:
        """mIoU and pixel accuracy of ``state.model``; the generators are left as they
        were, so that validating never changes the training run."""
        if self.loader is None:
            return {"mean_iou": math.nan, "pixel_accuracy": math.nan}
        before = _rng_state(state.generators)
        metrics = evaluate(state.model, self.loader, self.num_classes,
                           ignore_index=self.ignore_index)
        _set_rng_state(before, state.generators)
        return metrics


@dataclass(frozen=True)
class _Reporter:
    """The progress bar, the per-step log and the one line printed per History entry."""

    progress: bool
    log_every: int | None
    epochs: int | None
    validating: bool

    def progress_bar(self, state: _RunState, batches_per_epoch: int) -> Any:
        from tqdm.auto import tqdm

        total = f"/{self.epochs}" if self.epochs is not None else ""
        return tqdm(total=batches_per_epoch, initial=state.batches_done, leave=False,
                    desc=f"epoch {state.epochs_done + 1}{total}", disable=not self.progress)

    def step(self, bar: Any, state: _RunState) -> None:
        """Advance the bar by the step just recorded in ``state``; log every few steps."""
        losses = state.history.step_loss
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        if self.log_every and state.global_step % self.log_every == 0:
            recent = losses[-self.log_every:]
            bar.write(f"step {state.global_step}: mean loss {sum(recent) / len(recent):.4f}")

    def entry(self, history: History, i: int = -1) -> None:
        """Print History entry ``i``."""
        h = history
        text = f"epoch {h.epoch[i]:.4g} | step {h.step[i]} | train loss {h.train_loss[i]:.4f}"
        if self.validating:
            text += (f" | val mIoU {h.val_miou[i]:.3f} | val pixel acc "
                     f"{h.val_pixel_accuracy[i]:.3f}")
        self.say(text + f" | {h.seconds[i]:.1f} s")

    def say(self, text: str) -> None:
        if self.progress:
            print(text, flush=True)


# -- the loop -------------------------------------------------------------------------


@dataclass
class _Trainer:
    """One :func:`fit` call: the loop over epochs and steps around a :class:`_RunState`."""

    state: _RunState
    loader: DataLoader
    loss_fn: LossFn
    device: torch.device
    amp_dtype: torch.dtype | None
    stopping: _Stopping
    validation: _Validation
    reporter: _Reporter
    checkpoint: Path | None

    def resume(self) -> bool:
        """Load the checkpoint if there is one; True if the run resumes from it."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        state = self.state
        state.restore(self.checkpoint, len(self.loader))
        self.reporter.say(f"resumed from {str(self.checkpoint)!r} after {state.epochs_done} "
                          f"epoch(s) and {state.batches_done} batch(es), step "
                          f"{state.global_step}")
        return True

    def save(self) -> None:
        if _world()[0] == 0:  # one writer; every rank holds the same state
            self.state.save(self.checkpoint)

    def agree_to_stop(self, interrupt: _DeferredInterrupt) -> tuple[bool, bool]:
        """``(time budget spent, Ctrl-C pressed)`` on any rank: all ranks stop together."""
        spent, pressed = _across_ranks(
            [float(self.stopping.budget_spent()), float(interrupt.requested)], self.device, "max")
        interrupt.requested = bool(pressed)
        return bool(spent), bool(pressed)

    def run(self, resumed: bool, interrupt: _DeferredInterrupt) -> None:
        """Train epoch after epoch until ``stopping`` says so (or Ctrl-C)."""
        self.state.history.stop_reason = "epochs"
        while self.stopping.more_epochs(self.state.epochs_done):
            spent, _ = self.agree_to_stop(interrupt)
            self.stop_if_interrupted(interrupt)
            if spent:
                self.state.history.stop_reason = "time_budget"
                break
            finished = self.run_epoch(resumed, interrupt)
            resumed = False
            if not finished:
                self.state.history.stop_reason = "time_budget"
                break
        self.stop_if_interrupted(interrupt)  # a Ctrl-C during the last validation

    def stop_if_interrupted(self, interrupt: _DeferredInterrupt) -> None:
        """Save and raise KeyboardInterrupt if Ctrl-C was pressed (between two steps)."""
        if interrupt.requested:
            self.state.history.stop_reason = "interrupted"
            self.save()
            raise KeyboardInterrupt("training interrupted; checkpoint saved")

    def run_epoch(self, resumed: bool, interrupt: _DeferredInterrupt) -> bool:
        """Train until the epoch ends (True) or the time budget runs out (False)."""
        state = self.state
        entry_started, steps_before = time.perf_counter(), len(state.history.step_loss)
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # a DistributedSampler shuffles by epoch
            sampler.set_epoch(state.epochs_done)
        batches = state.epoch_batches(self.loader, resumed)
        state.model.train()
        bar = self.reporter.progress_bar(state, len(self.loader))
        try:
            while (batch := self.next_batch(batches)) is not None:
                state.record_step(self.step(batch))
                self.reporter.step(bar, state)
                spent, _ = self.agree_to_stop(interrupt)
                self.stop_if_interrupted(interrupt)
                if spent and state.batches_done < len(self.loader):
                    self.end_entry(entry_started, steps_before)  # a partial epoch
                    return False
        finally:
            bar.close()
        state.finish_epoch()
        self.end_entry(entry_started, steps_before)
        return True

    def next_batch(self, batches: Iterator[Any]) -> Any:
        """The next batch, or None at the end; a Ctrl-C while loading still saves."""
        try:
            return next(batches)
        except StopIteration:
            return None
        except KeyboardInterrupt:
            self.state.history.stop_reason = "interrupted"
            self.save()  # the model is consistent: the interruption came between steps
            raise

    def step(self, batch: Any) -> float:
        """One optimizer step (and scheduler step) on ``batch``; returns the loss.

        Raises:
            FloatingPointError: the loss is NaN or infinite.
        """
        state = self.state
        images, masks, weights = _unpack(batch, self.device)
        state.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype,
                            enabled=self.amp_dtype is not None):
            logits = state.model(images)
            extra = () if weights is None else (weights,)
            loss = self.loss_fn(logits, masks, *extra)
        value = _across_ranks([loss.item()], self.device, "mean")[0]
        if not math.isfinite(value):
            raise FloatingPointError(f"the training loss is {value} at step "
                                     f"{state.global_step + 1}; lower the learning rate or "
                                     f"check the data")
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        if state.scheduler is not None:
            state.scheduler.step()
            _same_lr_on_all_ranks(state.optimizer, self.device)
        return value

    def end_entry(self, entry_started: float, steps_before: int) -> None:
        """Validate, append one History entry, print it and save the checkpoint."""
        state = self.state
        metrics = self.validation.measure(state)
        losses = state.history.step_loss[steps_before:]
        h = state.history
        h.epoch.append(state.epochs_done + state.batches_done / len(self.loader))
        h.step.append(state.global_step)
        h.train_loss.append(sum(losses) / len(losses) if losses else math.nan)
        h.val_miou.append(metrics["mean_iou"])
        h.val_pixel_accuracy.append(metrics["pixel_accuracy"])
        h.seconds.append(time.perf_counter() - entry_started)
        h.lr.append(float(state.optimizer.param_groups[0]["lr"]))
        self.reporter.entry(h)
        self.save()


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    *,
    num_classes: int,
    epochs: int | None = None,
    time_budget: float | None = None,
    optimizer: OptimizerArg = None,
    lr_scheduler: SchedulerFactory | None = None,
    loss_fn: LossFn | None = None,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = True,
    seed: int | None = None,
    progress: bool = True,
    log_every: int | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> History:
    """Train ``model`` and return its :class:`History`.

    Args:
        model: any network mapping ``float[N, C, H, W]`` to logits ``[N, K, H, W]``. It is
            moved to ``device`` and left there, in training mode.
        train_loader: yields ``(images, masks)`` or ``(images, masks, pixel_weights)``
            batches (the weights are passed on as ``loss_fn(logits, masks, weights)``,
            e.g. U-Net's border weight map); must have a length.
        val_loader: optional; when given, validation mIoU and pixel accuracy are measured
            after every epoch (and after a partial epoch cut by the time budget).
        num_classes: ``K``, for the validation metrics.
        epochs: total number of epochs (counting those of a resumed checkpoint).
        time_budget: wall-clock seconds for this call, checked between steps; the
            validation of the last, partial epoch runs after it.
        optimizer: an optimizer over ``model``'s parameters, a factory
            ``params -> optimizer``, or None for ``AdamW(lr=1e-3)``.
        lr_scheduler: a factory ``optimizer -> scheduler``; the scheduler is stepped after
            every optimizer step (so give ``total_steps`` in steps, not epochs).
        loss_fn: ``(logits, masks) -> scalar``; None for cross-entropy ignoring
            ``ignore_index`` (:class:`segtutor.losses.CrossEntropyLoss`).
        device: None picks CUDA, then MPS, then CPU (:func:`segtutor.utils.device`).
        amp: mixed precision; None turns it on for CUDA only (bfloat16 where supported,
            else float16 with a gradient scaler). True on the CPU trains under bfloat16
            autocast (weights, optimizer and metrics stay float32); True on MPS is an error.
        checkpoint: a file path; written at the end of every epoch, when the time budget
            runs out, and on Ctrl-C.
        resume: if ``checkpoint`` exists, continue from it (else it is overwritten).
        seed: seed Python, NumPy and PyTorch first (:func:`segtutor.utils.seed_everything`);
            a resumed run restores the checkpoint's generators instead.
        progress: show a tqdm progress bar and print one line per epoch.
        log_every: also print the mean loss every ``log_every`` steps.
        ignore_index: mask value that the default loss and the metrics skip.

    Several processes: inside an initialised ``torch.distributed`` process group (as
    ``torchrun`` and ``python -m segtutor.train`` set up), give every rank the same call with
    a ``DistributedDataParallel`` model and a loader over a ``DistributedSampler``: the
    sampler is told each epoch, the ranks stop together (time budget, Ctrl-C), the recorded
    losses are the means over the ranks, and only rank 0 prints and writes the checkpoint
    (every rank resumes from it). Each rank validates on the whole ``val_loader``.

    Returns:
        the :class:`History` (including the entries of a resumed checkpoint).

    Raises:
        TypeError: an argument of the wrong type (e.g. ``epochs=1.5``,
            ``time_budget="10"``, ``amp="yes"``), or a batch that is not a pair or triple.
        ValueError: neither ``epochs`` nor ``time_budget``, a value out of range (e.g.
            ``epochs=0``), ``amp=True`` on MPS, an empty loader, or a checkpoint from a
            different architecture.
        FloatingPointError: the loss became NaN or infinite.
        KeyboardInterrupt: on Ctrl-C, after the current step finished and the checkpoint
            (if any) was saved.
    """
    if epochs is None and time_budget is None:
        raise ValueError("give epochs, time_budget (seconds), or both (training stops at "
                         "whichever comes first); got neither")
    epochs = check_optional_int(epochs, "epochs", minimum=1)
    time_budget = _check_optional_seconds(time_budget, "time_budget")
    ConfusionMatrix(num_classes, ignore_index)  # validates num_classes and ignore_index
    _check_model(model)
    _check_train_loader(train_loader)
    log_every = check_optional_int(log_every, "log_every", minimum=1)
    check_bool(resume, "resume")
    check_bool(progress, "progress")
    progress = progress and _world()[0] == 0  # under torch.distributed rank 0 speaks
    if seed is not None:
        seed_everything(seed)
    dev = _resolve_device(device)
    model.to(dev)
    amp_dtype = _amp_dtype(amp, dev)
    loss_fn = loss_fn if loss_fn is not None else CrossEntropyLoss(ignore_index=ignore_index)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(dev)
    optimizer_ = _build_optimizer(optimizer, model)
    state = _RunState(
        model=model, optimizer=optimizer_, scheduler=_build_scheduler(lr_scheduler, optimizer_),
        scaler=torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16),
        generators=_loader_generators(train_loader),
    )
    trainer = _Trainer(
        state=state, loader=train_loader, loss_fn=loss_fn, device=dev, amp_dtype=amp_dtype,
        stopping=_Stopping(epochs, time_budget),
        validation=_Validation(val_loader, num_classes, ignore_index),
        reporter=_Reporter(progress, log_every, epochs, validating=val_loader is not None),
        checkpoint=Path(checkpoint) if checkpoint is not None else None,
    )
    resumed = trainer.resume() if resume else False
    with _DeferredInterrupt() as interrupt:
        trainer.run(resumed, interrupt)
    return state.history
