"""Training, evaluation and prediction for every network of the book.

:func:`fit` trains any segtutor model on a loader of ``(image, mask)`` batches for a
number of epochs, a time budget in seconds, or both (whichever ends first), with a
progress bar, validation mIoU after each epoch, mixed precision (automatic on CUDA,
bfloat16 on request on the CPU), a clock-driven learning-rate schedule, and
checkpoints that make an interrupted run lose nothing::

    history = fit(model, train_loader, val_loader, num_classes=4, epochs=10,
                  checkpoint="runs/tiny_fcn.pt")
    history.val_miou[-1]

Checkpoints are written at the end of each epoch, when the time budget runs out, and
when the run is interrupted (Ctrl-C or Jupyter's interrupt button: the current step
finishes, the checkpoint is written, then ``KeyboardInterrupt`` is raised). Calling
:func:`fit` again with the same arguments resumes where the run stopped -- mid-epoch
included -- and ends with the same weights as a run that was never interrupted: the
checkpoint stores the random number generators as they were when the epoch began and
when the last step ended, and resuming replays the epoch's data order up to that step.
That holds when all randomness comes from PyTorch's, NumPy's and Python's global
generators or from generators attached to the loader (``DataLoader(...,
generator=g)``), and the loader is built the same way both times.

Checkpoints hold only tensors, numbers, strings, lists and dicts, so they load with
``torch.load(path, weights_only=True)``, which cannot run code hidden in a file.
"""

from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sized
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .losses import CrossEntropyLoss
from .metrics import ConfusionMatrix
from .utils import device as best_device
from .utils import seed_everything

__all__ = ["History", "evaluate", "fit", "load_checkpoint", "one_cycle_in_time", "predict"]

CHECKPOINT_FORMAT = "segtutor.train/1"

LossFn = Callable[..., Tensor]
OptimizerArg = torch.optim.Optimizer | Callable[..., torch.optim.Optimizer] | None
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


# -- history --------------------------------------------------------------------------


@dataclass
class History:
    """What :func:`fit` measured; ``segtutor.viz.plot_history`` plots it.

    One entry per epoch (index ``i`` of every per-entry list belongs together), plus one
    for a partial epoch when the time budget ran out in the middle of it.

    Attributes:
        epoch: epochs of training seen at the entry, e.g. ``3.0``, or ``3.4`` for a
            partial fourth epoch.
        step: optimizer steps taken so far.
        train_loss: mean training loss over the steps since the previous entry.
        val_miou: validation mean IoU (NaN without a validation loader).
        val_pixel_accuracy: validation pixel accuracy (NaN without a validation loader).
        seconds: wall-clock seconds of training and validation since the previous entry.
        lr: learning rate of the first parameter group at the entry.
        step_loss: the training loss of every step (not per entry).
        stop_reason: why the last call stopped: ``"epochs"``, ``"time_budget"`` or
            ``"interrupted"``.
    """

    epoch: list[float] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_miou: list[float] = field(default_factory=list)
    val_pixel_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of lists (safe for JSON and for ``weights_only`` checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Rebuild a :class:`History` from :meth:`to_dict`'s output.

        Raises:
            ValueError: keys are missing or unknown.
        """
        names = {f.name for f in fields(cls)}
        missing, unknown = names - set(data), set(data) - names
        if missing or unknown:
            raise ValueError(f"not a History dict: missing keys {sorted(missing)}, unknown keys "
                             f"{sorted(unknown)}; expected {sorted(names)}")
        return cls(**{name: (list(v) if isinstance(v, list) else v) for name, v in data.items()})

    def __len__(self) -> int:
        return len(self.epoch)


# -- random number generators ---------------------------------------------------------


def _rng_state(generators: list[torch.Generator]) -> dict[str, Any]:
    """Every generator's state as tensors and plain Python values."""
    numpy_state = np.random.get_state(legacy=False)
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "mps": torch.mps.get_rng_state() if torch.backends.mps.is_available() else None,
        "numpy": {
            "key": numpy_state["state"]["key"].astype(np.int64).tolist(),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "generators": [g.get_state() for g in generators],
    }
    return state


def _set_rng_state(state: dict[str, Any], generators: list[torch.Generator] | None) -> None:
    """Restore the global generators and, if ``generators`` is given, the loader's."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state["mps"] is not None and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])
    saved = state["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": np.array(saved["key"], dtype=np.uint32), "pos": saved["pos"]},
        "has_gauss": saved["has_gauss"],
        "gauss": saved["gauss"],
    })
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    if generators is None:
        return
    if len(generators) != len(state["generators"]):
        raise ValueError(f"the train_loader has {len(generators)} seeded generator(s) but the "
                         f"checkpoint recorded {len(state['generators'])}; build the loader the "
                         f"same way as in the interrupted run")
    for generator, saved_state in zip(generators, state["generators"], strict=True):
        generator.set_state(saved_state)


def _loader_generators(loader: Any) -> list[torch.Generator]:
    """The distinct generators a DataLoader draws its order and worker seeds from."""
    owners = (loader, getattr(loader, "sampler", None),
              getattr(getattr(loader, "batch_sampler", None), "sampler", None))
    found: list[torch.Generator] = []
    for owner in owners:
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


# -- checkpoints ----------------------------------------------------------------------


def _unwrap(model: nn.Module) -> nn.Module:
    """The module itself, also for a ``torch.compile``-d model."""
    return getattr(model, "_orig_mod", model)


def _class_name(model: nn.Module) -> str:
    cls = type(_unwrap(model))
    return f"{cls.__module__}.{cls.__qualname__}"


def _key_shapes(model: nn.Module) -> dict[str, list[int]]:
    return {key: list(value.shape) for key, value in _unwrap(model).state_dict().items()}


def _check_architecture(model: nn.Module, saved: dict[str, Any], path: Path) -> None:
    """Raise ValueError if ``saved`` came from a different architecture than ``model``."""
    ours, theirs = _key_shapes(model), saved["model_keys"]
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    reshaped = [f"{k}: {theirs[k]} vs {ours[k]}" for k in sorted(set(ours) & set(theirs))
                if theirs[k] != ours[k]]
    if saved["model_class"] == _class_name(model) and not (missing or unexpected or reshaped):
        return
    raise ValueError(
        f"checkpoint {str(path)!r} holds a {saved['model_class']} but the model is a "
        f"{_class_name(model)}; keys only in the model: {missing[:5]}, keys only in the "
        f"checkpoint: {unexpected[:5]}, shapes that differ (checkpoint vs model): "
        f"{reshaped[:5]}. Use another checkpoint path or resume=False to start afresh."
    )


def _save_atomically(payload: dict[str, Any], path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`fit` with ``torch.load(..., weights_only=True)``.

    Returns:
        the checkpoint dict: ``model`` (a state_dict), ``optimizer``, ``scheduler``,
        ``scaler``, ``epochs_done``, ``batches_done``, ``global_step``, ``history``,
        ``model_class``, ``model_keys``, ``rng`` and ``epoch_start_rng``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a segtutor checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a checkpoint written by segtutor.train.fit "
                         f"(expected format {CHECKPOINT_FORMAT!r})")
    return payload


# -- Ctrl-C ---------------------------------------------------------------------------


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


# -- the training loop ----------------------------------------------------------------


def _check_stopping(epochs: int | None, time_budget: float | None) -> None:
    if epochs is None and time_budget is None:
        raise ValueError("give epochs, time_budget (seconds), or both (training stops at "
                         "whichever comes first); got neither")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        raise ValueError(f"epochs must be a positive int or None, got {epochs!r}")
    if time_budget is not None and (isinstance(time_budget, bool)
                                    or not isinstance(time_budget, int | float)
                                    or not time_budget > 0 or math.isinf(time_budget)):
        raise ValueError(f"time_budget must be a positive, finite number of seconds or None, "
                         f"got {time_budget!r}")


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return best_device()
    if isinstance(device, str):
        return best_device(device)
    if isinstance(device, torch.device):
        return device
    raise TypeError(f"device must be None, a string such as 'cuda' or a torch.device, "
                    f"got {device!r}")


def _amp_dtype(amp: bool | None, device: torch.device) -> torch.dtype | None:
    """CUDA: bfloat16 where supported, else float16 (with a GradScaler); CPU: bfloat16.

    ``None`` turns it on for CUDA only: whether bfloat16 is faster on a CPU depends on
    the CPU (native on recent x86 with AVX-512 BF16 or AMX, emulated and slower on older
    ones), so it is measured, not assumed (Chapter 8 times both).
    """
    if amp is None:
        amp = device.type == "cuda"
    if not isinstance(amp, bool):
        raise TypeError(f"amp must be True, False or None, got {amp!r}")
    if not amp:
        return None
    if device.type == "cpu":
        return torch.bfloat16
    if device.type != "cuda":
        raise ValueError(f"amp=True needs a CUDA or CPU device, got {device}; use amp=None "
                         f"(automatic) or amp=False")
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def one_cycle_in_time(optimizer: torch.optim.Optimizer, seconds: float, *, warmup: float = 0.15,
                      start_factor: float = 0.04) -> torch.optim.lr_scheduler.LambdaLR:
    """A one-cycle learning rate driven by the clock, for training with a time budget.

    The factor on the optimizer's learning rate rises linearly from ``start_factor`` to 1
    over the first ``warmup`` share of ``seconds``, then follows a cosine down to 0 at
    ``seconds`` (and stays 0 after). A schedule in *steps* (``OneCycleLR``) needs the number
    of steps in advance, which a time budget does not know; this one ends the decay exactly
    when :func:`fit`'s ``time_budget`` ends, on a fast or a slow machine. The clock starts
    when the scheduler is built, so build it in ``fit``'s ``lr_scheduler`` factory. It is
    meant for runs that are not resumed: a resumed run restarts the clock (and the warm-up).
    `Smith & Topin 2017 <https://arxiv.org/abs/1708.07120>`_.

    Args:
        optimizer: the optimizer whose learning rates are scaled.
        seconds: the time budget, a finite number > 0.
        warmup: share of ``seconds`` spent warming up, in ``[0, 1)``.
        start_factor: factor at time 0, in ``(0, 1]``.

    Raises:
        ValueError: a value outside its range.
    """
    if (isinstance(seconds, bool) or not isinstance(seconds, int | float)
            or not (seconds > 0 and math.isfinite(seconds))):
        raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be in [0, 1), got {warmup!r}")
    if not 0 < start_factor <= 1:
        raise ValueError(f"start_factor must be in (0, 1], got {start_factor!r}")
    started = time.perf_counter()

    def factor(_step: int) -> float:
        done = min((time.perf_counter() - started) / seconds, 1.0)
        if done < warmup:
            return start_factor + (1 - start_factor) * done / warmup
        return 0.5 * (1 + math.cos(math.pi * (done - warmup) / (1 - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
                    f"model.parameters() and returns one, got {optimizer!r}")


def _build_scheduler(factory: SchedulerFactory | None, optimizer: torch.optim.Optimizer) -> Any:
    if factory is None:
        return None
    if isinstance(factory, torch.optim.lr_scheduler.LRScheduler) or not callable(factory):
        raise TypeError(f"lr_scheduler must be a factory such as "
                        f"lambda opt: OneCycleLR(opt, max_lr=1e-2, total_steps=n) (fit builds "
                        f"the optimizer it binds to), got {factory!r}")
    return factory(optimizer)


def _unpack(batch: Any, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(image, mask)`` or ``(image, mask, pixel_weights)``, moved to ``device``."""
    if not isinstance(batch, list | tuple) or len(batch) not in (2, 3):
        kind = type(batch).__name__
        size = f" of length {len(batch)}" if isinstance(batch, Sized) else ""
        raise TypeError(f"a batch must be (images, masks) or (images, masks, pixel_weights), "
                        f"got a {kind}{size}")
    moved = [t.to(device, non_blocking=True) for t in batch]
    return moved[0], moved[1], (moved[2] if len(moved) == 3 else None)


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@dataclass
class _Trainer:
    """The state of one :func:`fit` call; its methods are the steps of the loop."""

    model: nn.Module
    loader: DataLoader
    val_loader: DataLoader | None
    num_classes: int
    ignore_index: int
    epochs: int | None
    time_budget: float | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: LossFn
    device: torch.device
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    checkpoint: Path | None
    progress: bool
    log_every: int | None
    history: History = field(default_factory=History)
    epochs_done: int = 0
    batches_done: int = 0
    global_step: int = 0
    started: float = field(default_factory=time.perf_counter)
    epoch_start_rng: dict[str, Any] | None = None
    rng_after_step: dict[str, Any] | None = None
    generators: list[torch.Generator] = field(default_factory=list)

    # -- checkpoints

    def payload(self) -> dict[str, Any]:
        model = _unwrap(self.model)
        return {
            "format": CHECKPOINT_FORMAT,
            "model_class": _class_name(model),
            "model_keys": _key_shapes(model),
            "model": model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epochs_done": self.epochs_done,
            "batches_done": self.batches_done,
            "global_step": self.global_step,
            "history": self.history.to_dict(),
            "rng": self.rng_after_step or _rng_state(self.generators),
            "epoch_start_rng": self.epoch_start_rng or _rng_state(self.generators),
        }

    def save(self) -> None:
        if self.checkpoint is not None:
            _save_atomically(self.payload(), self.checkpoint)

    def restore(self) -> bool:
        """Load the checkpoint if there is one; True if the run resumes from it."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        saved = load_checkpoint(self.checkpoint)
        _check_architecture(self.model, saved, self.checkpoint)
        _unwrap(self.model).load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved["scheduler"] is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler.is_enabled() and saved["scaler"] is not None:
            self.scaler.load_state_dict(saved["scaler"])
        self.epochs_done, self.batches_done = saved["epochs_done"], saved["batches_done"]
        if self.batches_done > len(self.loader):
            raise ValueError(f"checkpoint {str(self.checkpoint)!r} stopped after "
                             f"{self.batches_done} batches of an epoch, but the train_loader has "
                             f"only {len(self.loader)}; resume with the same loader")
        self.global_step = saved["global_step"]
        self.history = History.from_dict(saved["history"])
        self.epoch_start_rng, self.rng_after_step = saved["epoch_start_rng"], saved["rng"]
        self.say(f"resumed from {str(self.checkpoint)!r} after {self.epochs_done} epoch(s) and "
                 f"{self.batches_done} batch(es), step {self.global_step}")
        return True

    # -- the loop

    def budget_spent(self) -> bool:
        return (self.time_budget is not None
                and time.perf_counter() - self.started >= self.time_budget)

    def run(self, resumed: bool, interrupt: _DeferredInterrupt) -> None:
        self.history.stop_reason = "epochs"
        while self.epochs is None or self.epochs_done < self.epochs:
            self.stop_if_interrupted(interrupt)
            if self.budget_spent():
                self.history.stop_reason = "time_budget"
                break
            finished = self.run_epoch(resumed, interrupt)
            resumed = False
            if not finished:
                self.history.stop_reason = "time_budget"
                break
        self.stop_if_interrupted(interrupt)  # a Ctrl-C during the last validation

    def stop_if_interrupted(self, interrupt: _DeferredInterrupt) -> None:
        """Save and raise KeyboardInterrupt if Ctrl-C was pressed (between two steps)."""
        if interrupt.requested:
            self.history.stop_reason = "interrupted"
            self.save()
            raise KeyboardInterrupt("training interrupted; checkpoint saved")

    def start_epoch(self, resumed: bool) -> Iterator[Any]:
        """The epoch's batch iterator, fast-forwarded past the batches already done."""
        if resumed:
            _set_rng_state(self.epoch_start_rng, self.generators)
        else:
            self.epoch_start_rng = _rng_state(self.generators)
        batches = iter(self.loader)
        for _ in range(self.batches_done):
            next(batches)
        if resumed and self.batches_done > 0:
            _set_rng_state(self.rng_after_step, None)
        return batches

    def run_epoch(self, resumed: bool, interrupt: _DeferredInterrupt) -> bool:
        """Train until the epoch ends (True) or the time budget runs out (False)."""
        entry_started, steps_before = time.perf_counter(), len(self.history.step_loss)
        batches = self.start_epoch(resumed)
        self.model.train()
        bar = self.progress_bar()
        try:
            while (batch := self.next_batch(batches)) is not None:
                self.step(batch, bar)
                self.stop_if_interrupted(interrupt)
                if self.budget_spent() and self.batches_done < len(self.loader):
                    self.end_entry(entry_started, steps_before)  # a partial epoch
                    return False
        finally:
            bar.close()
        self.epochs_done, self.batches_done = self.epochs_done + 1, 0
        self.epoch_start_rng = None  # the next epoch starts from the generators as they are
        self.end_entry(entry_started, steps_before)
        return True

    def next_batch(self, batches: Iterator[Any]) -> Any:
        """The next batch, or None at the end; a Ctrl-C while loading still saves."""
        try:
            return next(batches)
        except StopIteration:
            return None
        except KeyboardInterrupt:
            self.history.stop_reason = "interrupted"
            self.save()  # the model is consistent: the interruption came between steps
            raise

    def step(self, batch: Any, bar: Any) -> None:
        images, masks, weights = _unpack(batch, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype,
                            enabled=self.amp_dtype is not None):
            logits = self.model(images)
            extra = () if weights is None else (weights,)
            loss = self.loss_fn(logits, masks, *extra)
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"the training loss is {value} at step {self.global_step + 1}"
                                     f"; lower the learning rate or check the data")
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        self.batches_done += 1
        self.global_step += 1
        self.history.step_loss.append(value)
        self.rng_after_step = _rng_state(self.generators)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        if self.log_every and self.global_step % self.log_every == 0:
            recent = self.history.step_loss[-self.log_every:]
            bar.write(f"step {self.global_step}: mean loss {sum(recent) / len(recent):.4f}")

    def end_entry(self, entry_started: float, steps_before: int) -> None:
        """Validate, append one History entry, print it and save the checkpoint."""
        metrics = self.validate()
        losses = self.history.step_loss[steps_before:]
        h = self.history
        h.epoch.append(self.epochs_done + self.batches_done / len(self.loader))
        h.step.append(self.global_step)
        h.train_loss.append(sum(losses) / len(losses) if losses else math.nan)
        h.val_miou.append(metrics["mean_iou"])
        h.val_pixel_accuracy.append(metrics["pixel_accuracy"])
        h.seconds.append(time.perf_counter() - entry_started)
        h.lr.append(float(self.optimizer.param_groups[0]["lr"]))
        self.say(self.describe(-1))
        self.save()

    def validate(self) -> dict[str, Any]:
        """Validation metrics; the generators are left as they were, so that validating
        never changes the training run."""
        if self.val_loader is None:
            return {"mean_iou": math.nan, "pixel_accuracy": math.nan}
        before = _rng_state(self.generators)
        metrics = evaluate(self.model, self.val_loader, self.num_classes,
                           ignore_index=self.ignore_index)
        _set_rng_state(before, self.generators)
        return metrics

    # -- output

    def progress_bar(self) -> Any:
        from tqdm.auto import tqdm

        total = f"/{self.epochs}" if self.epochs is not None else ""
        return tqdm(total=len(self.loader), initial=self.batches_done, leave=False,
                    desc=f"epoch {self.epochs_done + 1}{total}", disable=not self.progress)

    def describe(self, i: int) -> str:
        h = self.history
        text = (f"epoch {h.epoch[i]:.4g} | step {h.step[i]} | train loss {h.train_loss[i]:.4f}")
        if self.val_loader is not None:
            text += (f" | val mIoU {h.val_miou[i]:.3f} | val pixel acc "
                     f"{h.val_pixel_accuracy[i]:.3f}")
        return text + f" | {h.seconds[i]:.1f} s"

    def say(self, text: str) -> None:
        if self.progress:
            print(text, flush=True)


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
    ignore_index: int = 255,
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

    Returns:
        the :class:`History` (including the entries of a resumed checkpoint).

    Raises:
        ValueError: neither ``epochs`` nor ``time_budget``, a bad value for either,
            ``amp=True`` on MPS, an empty loader, or a checkpoint from a different
            architecture.
        TypeError: an argument of the wrong kind, or a batch that is not a pair.
        FloatingPointError: the loss became NaN or infinite.
        KeyboardInterrupt: on Ctrl-C, after the current step finished and the checkpoint
            (if any) was saved.
    """
    _check_stopping(epochs, time_budget)
    ConfusionMatrix(num_classes, ignore_index)  # validates num_classes and ignore_index
    if not isinstance(train_loader, Sized):
        raise TypeError(f"train_loader must have a length (e.g. a DataLoader over a map-style "
                        f"dataset), got {type(train_loader).__name__}")
    if len(train_loader) == 0:
        raise ValueError("train_loader yields no batches (len(train_loader) == 0)")
    if log_every is not None and (isinstance(log_every, bool) or not isinstance(log_every, int)
                                  or log_every < 1):
        raise ValueError(f"log_every must be a positive int or None, got {log_every!r}")
    if seed is not None:
        seed_everything(seed)
    dev = _resolve_device(device)
    model.to(dev)
    amp_dtype = _amp_dtype(amp, dev)
    loss_fn = loss_fn if loss_fn is not None else CrossEntropyLoss(ignore_index=ignore_index)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(dev)
    optimizer_ = _build_optimizer(optimizer, model)
    trainer = _Trainer(
        model=model, loader=train_loader, val_loader=val_loader, num_classes=num_classes,
        ignore_index=ignore_index, epochs=epochs, time_budget=time_budget, optimizer=optimizer_,
        scheduler=_build_scheduler(lr_scheduler, optimizer_), loss_fn=loss_fn, device=dev,
        amp_dtype=amp_dtype,
        scaler=torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16),
        checkpoint=Path(checkpoint) if checkpoint is not None else None,
        progress=progress, log_every=log_every, generators=_loader_generators(train_loader),
    )
    resumed = trainer.restore() if resume else False
    with _DeferredInterrupt() as interrupt:
        trainer.run(resumed, interrupt)
    return trainer.history


# -- evaluation and prediction --------------------------------------------------------


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    device: str | torch.device | None = None,
    *,
    ignore_index: int = 255,
) -> dict[str, Any]:
    """Metrics of ``model`` over ``loader`` (see :meth:`segtutor.metrics.ConfusionMatrix.compute`).

    The model runs in eval mode under ``torch.inference_mode()``; its previous mode is
    restored afterwards.

    Args:
        model: the network.
        loader: yields ``(images, masks)`` (a third element is ignored).
        num_classes: number of classes.
        device: where to run; None keeps the model where it is, otherwise the model is
            moved there.
        ignore_index: mask value that is not counted.

    Returns:
        ``pixel_accuracy``, ``mean_accuracy``, ``mean_iou``, ``mean_dice``,
        ``per_class_iou``, ``per_class_dice``.
    """
    if device is not None:
        model.to(_resolve_device(device))
    dev = _model_device(model)
    matrix = ConfusionMatrix(num_classes, ignore_index)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in loader:
                images, masks, _ = _unpack(batch, dev)
                matrix.update(model(images), masks)
    finally:
        model.train(was_training)
    return matrix.compute()


def predict(model: nn.Module, images: Tensor) -> Tensor:
    """Class labels ``int64[N, H, W]`` for ``images`` ``float[N, C, H, W]`` (or ``[H, W]``
    for one image ``[C, H, W]``), on the device of ``images``.

    The model runs in eval mode on its own device; its previous mode is restored.

    Raises:
        ValueError: ``images`` is neither 3-D nor 4-D.
    """
    if not isinstance(images, Tensor) or images.ndim not in (3, 4):
        raise ValueError(f"images must be a tensor [N, C, H, W] or [C, H, W], got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    batch = images.unsqueeze(0) if images.ndim == 3 else images
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            labels = model(batch.to(_model_device(model))).argmax(dim=1)
    finally:
        model.train(was_training)
    labels = labels.to(images.device)
    return labels[0] if images.ndim == 3 else labels
