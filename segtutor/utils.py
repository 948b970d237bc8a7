"""Device choice, seeding, runtime profiles and environment detection.

Every chapter starts with :func:`start_chapter`, which picks the device (CUDA, then
Apple's MPS, then the CPU), seeds every random number generator, and prints the
versions and the *runtime profile*: ``"cpu"`` (small images, short training, at most
three minutes a chapter on two cores) or ``"gpu"`` (larger images, longer training,
real data sets when they can be downloaded).
"""

from __future__ import annotations

import inspect
import os
import platform
import random
import sys
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")

PROFILES = ("cpu", "gpu")
_DEVICE_TYPES = ("cuda", "mps", "cpu")


def device(prefer: str | None = None) -> torch.device:
    """Return the best available device: CUDA, then MPS, then CPU.

    Args:
        prefer: force one of ``"cuda"``, ``"mps"`` or ``"cpu"`` (an index such as
            ``"cuda:1"`` is allowed). ``None`` picks automatically. The environment
            variable ``SEGTUTOR_DEVICE`` overrides the automatic choice.

    Raises:
        ValueError: ``prefer`` names an unknown device type, or one that is not available.
    """
    prefer = prefer or os.environ.get("SEGTUTOR_DEVICE") or None
    if prefer is not None:
        kind = prefer.split(":")[0]
        if kind not in _DEVICE_TYPES:
            raise ValueError(f"unknown device {prefer!r}; expected one of {_DEVICE_TYPES}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} requested but CUDA is not available here")
        if kind == "mps" and not _mps_available():
            raise ValueError(f"device {prefer!r} requested but MPS is not available here")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int = 0, deterministic: bool = False) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (all devices).

    Args:
        seed: a non-negative integer.
        deterministic: also ask PyTorch for deterministic kernels (slower on GPU).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def in_ci() -> bool:
    """True under continuous integration (the ``CI`` environment variable is set)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def runtime_profile(dev: torch.device | None = None) -> str:
    """``"gpu"`` on a CUDA device, else ``"cpu"``; ``SEGTUTOR_PROFILE`` overrides it."""
    forced = os.environ.get("SEGTUTOR_PROFILE")
    if forced is not None:
        if forced not in PROFILES:
            raise ValueError(f"SEGTUTOR_PROFILE={forced!r}; expected one of {PROFILES}")
        return forced
    dev = dev if dev is not None else device()
    return "gpu" if dev.type == "cuda" else "cpu"


@dataclass(frozen=True)
class Runtime:
    """What a chapter runs on: the device, the profile and the seed."""

    device: torch.device
    profile: str
    seed: int

    def pick(self, *, cpu: T, gpu: T) -> T:
        """Choose a setting by profile, e.g. ``rt.pick(cpu=64, gpu=256)`` for an image size."""
        return gpu if self.profile == "gpu" else cpu

    @property
    def amp(self) -> bool:
        """Whether mixed precision is worth using (CUDA only)."""
        return self.device.type == "cuda"


def versions() -> dict[str, str]:
    """Versions of Python, segtutor and the libraries the book uses."""
    import segtutor

    found = {"python": platform.python_version(), "segtutor": segtutor.__version__}
    for name in ("torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "anywidget"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = "not installed"
    return found


def start_chapter(seed: int = 0, *, prefer: str | None = None, quiet: bool = False) -> Runtime:
    """Pick the device, seed everything and print what the chapter runs on.

    Returns:
        a :class:`Runtime` whose :meth:`Runtime.pick` scales settings by profile.
    """
    dev = device(prefer)
    seed_everything(seed)
    rt = Runtime(device=dev, profile=runtime_profile(dev), seed=seed)
    if not quiet:
        torch_threads = torch.get_num_threads()
        where = "Colab" if in_colab() else ("CI" if in_ci() else "local")
        print(f"device: {dev} | profile: {rt.profile} | seed: {seed} | "
              f"{where}, {torch_threads} CPU threads")
        print(" | ".join(f"{k} {v}" for k, v in versions().items()))
    return rt


def show_source(obj: Any) -> Any:
    """Display an object's real source code, syntax-highlighted, in a notebook.

    The book uses this instead of pasting code, so the text always shows what runs.
    """
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


def median_seconds(fn: Any, *, min_run_time: float = 0.2) -> float:
    """Median wall-clock seconds of one call ``fn()``, measured by ``torch.utils.benchmark``.

    The benchmark warms up, synchronises CUDA, and repeats ``fn`` until ``min_run_time``
    seconds have passed (at least once), so one slow outlier does not decide the figure.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {fn!r}")
    if not min_run_time >= 0:
        raise ValueError(f"min_run_time must be >= 0 seconds, got {min_run_time!r}")
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
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
