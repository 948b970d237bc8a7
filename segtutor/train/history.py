""":class:`History`: what :func:`segtutor.train.fit` measured, one entry per epoch.

It is a plain dataclass of lists, so that it travels inside a checkpoint (which holds only
tensors, numbers, strings, lists and dicts) and into JSON through :meth:`History.to_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["History"]


@dataclass
class History:
    """What :func:`~segtutor.train.fit` measured; ``segtutor.viz.plot_history`` plots it.

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
