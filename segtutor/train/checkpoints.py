"""Checkpoints of :func:`segtutor.train.fit`: what they hold, how they are written and read.

A checkpoint is the dict that :meth:`_RunState.payload` builds: the state dicts of the
model, optimizer, scheduler and gradient scaler, where the run stands (epochs and batches
done, optimizer steps, the :class:`~segtutor.train.History`) and the random number
generators as they were when the epoch began and when the last step ended. It holds only
tensors, numbers, strings, lists and dicts, so it loads with ``torch.load(path,
weights_only=True)``, which cannot run code hidden in a file.

- :data:`CHECKPOINT_FORMAT` marks the files; :func:`load_checkpoint` reads one back.
- :func:`_save_atomically` writes through a temporary file, so that a crash never leaves
  half a checkpoint.
- :func:`_check_architecture` refuses a checkpoint of another network.
- :func:`_rng_state` and :func:`_set_rng_state` save and restore PyTorch's (CPU, CUDA,
  MPS), NumPy's and Python's global generators and those of the loader
  (:func:`_loader_generators`); :meth:`_RunState.epoch_batches` uses them to replay an
  interrupted epoch's data order exactly.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .history import History

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint"]

CHECKPOINT_FORMAT = "segtutor.train/1"

RngState = dict[str, Any]


# -- random number generators ---------------------------------------------------------


def _rng_state(generators: list[torch.Generator]) -> RngState:
    """Every generator's state as tensors and plain Python values."""
    numpy_state = np.random.get_state(legacy=False)
    version, internal, gauss_next = random.getstate()
    return {
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


def _set_rng_state(state: RngState, generators: list[torch.Generator] | None) -> None:
    """Restore the global generators and, if ``generators`` is given, the loader's.

    Raises:
        ValueError: ``generators`` and the saved state differ in number.
    """
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


# -- the architecture -----------------------------------------------------------------


def _unwrap(model: nn.Module) -> nn.Module:
    """The module itself, also for a ``torch.compile``-d or ``DistributedDataParallel`` one."""
    model = getattr(model, "_orig_mod", model)
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
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


# -- files ----------------------------------------------------------------------------


def _save_atomically(payload: dict[str, Any], path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint that :func:`~segtutor.train.fit` wrote (``weights_only=True``).

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


# -- the state of a run ---------------------------------------------------------------


@dataclass
class _RunState:
    """Everything a checkpoint holds: what training changes and where the run stands.

    Attributes:
        model, optimizer, scheduler, scaler: saved and restored by their state dicts
            (``scheduler`` may be None, ``scaler`` is saved only when enabled).
        generators: the train loader's own generators (see :func:`_loader_generators`).
        history: the entries so far and every step's loss.
        epochs_done: complete epochs.
        batches_done: batches of the current epoch already trained on.
        global_step: optimizer steps so far.
        epoch_start_rng: the generators when the current epoch began (None between epochs).
        rng_after_step: the generators when the last step ended.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    generators: list[torch.Generator] = field(default_factory=list)
    history: History = field(default_factory=History)
    epochs_done: int = 0
    batches_done: int = 0
    global_step: int = 0
    epoch_start_rng: RngState | None = None
    rng_after_step: RngState | None = None

    def payload(self) -> dict[str, Any]:
        """The checkpoint dict (see :func:`load_checkpoint`)."""
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

    def save(self, path: Path | None) -> None:
        """Write the checkpoint to ``path`` atomically; nothing if ``path`` is None."""
        if path is not None:
            _save_atomically(self.payload(), path)

    def restore(self, path: Path, batches_per_epoch: int) -> None:
        """Load the checkpoint at ``path`` into the state.

        The generators are restored later, by :meth:`epoch_batches`, when the interrupted
        epoch is replayed.

        Raises:
            ValueError: not a segtutor checkpoint, one of another architecture, or one that
                stopped later in an epoch than ``batches_per_epoch`` allows.
        """
        saved = load_checkpoint(path)
        _check_architecture(self.model, saved, path)
        _unwrap(self.model).load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved["scheduler"] is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler.is_enabled() and saved["scaler"] is not None:
            self.scaler.load_state_dict(saved["scaler"])
        self.epochs_done, self.batches_done = saved["epochs_done"], saved["batches_done"]
        if self.batches_done > batches_per_epoch:
            raise ValueError(f"checkpoint {str(path)!r} stopped after {self.batches_done} "
                             f"batches of an epoch, but the train_loader has only "
                             f"{batches_per_epoch}; resume with the same loader")
        self.global_step = saved["global_step"]
        self.history = History.from_dict(saved["history"])
        self.epoch_start_rng, self.rng_after_step = saved["epoch_start_rng"], saved["rng"]

    def epoch_batches(self, loader: Iterable[Any], resumed: bool) -> Iterator[Any]:
        """The epoch's batch iterator, fast-forwarded past the batches already done.

        A fresh epoch records the generators as it begins. A resumed one restores them as
        they were when the epoch began, draws the batches already trained on again (so the
        loader's order and any augmentation repeat), then restores the generators as they
        were after the last step.
        """
        if resumed:
            _set_rng_state(self.epoch_start_rng, self.generators)
        else:
            self.epoch_start_rng = _rng_state(self.generators)
        batches = iter(loader)
        for _ in range(self.batches_done):
            next(batches)
        if resumed and self.batches_done > 0:
            _set_rng_state(self.rng_after_step, None)
        return batches

    def record_step(self, loss: float) -> None:
        """Count one optimizer step with its ``loss`` and note the generators after it."""
        self.batches_done += 1
        self.global_step += 1
        self.history.step_loss.append(loss)
        self.rng_after_step = _rng_state(self.generators)

    def finish_epoch(self) -> None:
        """Count a complete epoch; the next starts from the generators as they are."""
        self.epochs_done, self.batches_done = self.epochs_done + 1, 0
        self.epoch_start_rng = None
