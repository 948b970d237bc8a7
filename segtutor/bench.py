"""Measuring models: parameter counts and wall-clock times with one statistic.

Every time the book and ``benchmarks/`` report is the *median* of repeated calls after a
warm-up (:func:`median_seconds`), measured by ``torch.utils.benchmark``, which also
synchronises CUDA. A count of multiply--accumulates from ``FlopCounterMode`` is a count
from the shapes, not a measurement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._checks import check_bool, check_callable, check_number

__all__ = ["count_parameters", "median_seconds"]


def median_seconds(fn: Callable[[], Any], *, min_run_time: float = 0.2) -> float:
    """Median wall-clock seconds of one call ``fn()``, measured by ``torch.utils.benchmark``.

    The benchmark warms up, synchronises CUDA, and repeats ``fn`` until ``min_run_time``
    seconds have passed (at least once), so one slow outlier does not decide the figure.

    Raises:
        TypeError: ``fn`` is not callable, or ``min_run_time`` not a number.
        ValueError: ``min_run_time`` is negative.
    """
    check_callable(fn, "fn")
    check_number(min_run_time, "min_run_time", minimum=0)
    import logging

    # Importing torch.utils.benchmark logs a CUDA_HOME warning on CUDA builds without a GPU.
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        logger.setLevel(level)
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    return float(timer.blocked_autorange(min_run_time=min_run_time).median)


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    check_bool(trainable_only, "trainable_only")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
