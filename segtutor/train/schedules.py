"""Learning-rate schedules for :func:`segtutor.train.fit`: :func:`one_cycle_in_time`.

:func:`~segtutor.train.fit` takes a schedule as a factory ``optimizer -> scheduler`` and
steps it after every optimizer step; PyTorch's own schedulers (``OneCycleLR``, ``StepLR``)
work that way too. The one here follows the clock instead of the step count, for training
with a time budget.
"""

from __future__ import annotations

import math
import time

import torch

from .._checks import check_number, check_positive_number

__all__ = ["one_cycle_in_time"]


def one_cycle_in_time(optimizer: torch.optim.Optimizer, seconds: float, *, warmup: float = 0.15,
                      start_factor: float = 0.04) -> torch.optim.lr_scheduler.LambdaLR:
    """A one-cycle learning rate driven by the clock, for training with a time budget.

    The factor on the optimizer's learning rate rises linearly from ``start_factor`` to 1
    over the first ``warmup`` share of ``seconds``, then follows a cosine down to 0 at
    ``seconds`` (and stays 0 after). A schedule in *steps* (``OneCycleLR``) needs the number
    of steps in advance, which a time budget does not know; this one ends the decay exactly
    when :func:`~segtutor.train.fit`'s ``time_budget`` ends, on a fast or a slow machine.
    The clock starts when the scheduler is built, so build it in ``fit``'s ``lr_scheduler``
    factory. It is meant for runs that are not resumed: a resumed run restarts the clock
    (and the warm-up).
    `Smith & Topin 2017 <https://arxiv.org/abs/1708.07120>`_.

    Args:
        optimizer: the optimizer whose learning rates are scaled.
        seconds: the time budget, a finite number > 0.
        warmup: share of ``seconds`` spent warming up, in ``[0, 1)``.
        start_factor: factor at time 0, in ``(0, 1]``.

    Raises:
        TypeError: ``seconds``, ``warmup`` or ``start_factor`` is not a real number.
        ValueError: one of them is outside its range.
    """
    seconds = check_positive_number(seconds, "seconds")
    warmup = check_number(warmup, "warmup", minimum=0, maximum=1, strict_maximum=True)
    start_factor = check_number(start_factor, "start_factor", minimum=0, strict_minimum=True,
                                maximum=1)
    started = time.perf_counter()

    def factor(_step: int) -> float:
        done = min((time.perf_counter() - started) / seconds, 1.0)
        if done < warmup:
            return start_factor + (1 - start_factor) * done / warmup
        return 0.5 * (1 + math.cos(math.pi * (done - warmup) / (1 - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
