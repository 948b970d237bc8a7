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

What lives where (import everything from ``segtutor.train``; the modules are the
package's own layout):

- :mod:`~segtutor.train.loop`: :func:`fit` and the training loop (stopping rules,
  validation, progress output, deferred Ctrl-C, mixed precision).
- :mod:`~segtutor.train.checkpoints`: the checkpoint format, :func:`load_checkpoint`,
  atomic saving, the architecture check, and saving and restoring the random number
  generators (global and the loader's) for exact resumption.
- :mod:`~segtutor.train.history`: :class:`History`, what :func:`fit` measured.
- :mod:`~segtutor.train.schedules`: :func:`one_cycle_in_time`, a learning rate driven
  by the clock.
- :mod:`~segtutor.train.evaluation`: :func:`evaluate` and :func:`predict`.
- :func:`eval_mode` comes from :mod:`segtutor.utils`.

``segtutor.train`` knows a model only as an ``nn.Module``: it imports
:mod:`segtutor.losses`, :mod:`segtutor.metrics`, :mod:`segtutor.utils` and
``segtutor._checks``, never ``segtutor.models``, ``segtutor.data`` or ``segtutor.viz``.
"""

from __future__ import annotations

from ..utils import eval_mode
from .checkpoints import load_checkpoint
from .evaluation import evaluate, predict
from .history import History
from .loop import fit
from .schedules import one_cycle_in_time

__all__ = ["History", "eval_mode", "evaluate", "fit", "load_checkpoint", "one_cycle_in_time",
           "predict"]
