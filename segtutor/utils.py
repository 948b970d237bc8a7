"""Device choice, seeding, runtime profiles, environment detection and module modes.

Every chapter starts with :func:`start_chapter`, which picks the device (CUDA, then
Apple's MPS, then the CPU), seeds every random number generator, and prints the
versions and the *runtime profile*: ``"cpu"`` (small images, short training, at most
three minutes a chapter on two cores) or ``"gpu"`` (larger images, longer training,
real data sets when they can be downloaded).

:func:`eval_mode` runs a block with a model in evaluation mode and restores every
module's own mode afterwards. (``show_source`` moved to :mod:`segtutor.viz`,
``median_seconds`` and ``count_parameters`` to :mod:`segtutor.bench`; the old names still
work for one release, with a ``DeprecationWarning``.)
"""

from __future__ import annotations

import os
import platform
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from ._checks import check_int
from ._deprecated import moved_names

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
    check_int(seed, "seed", minimum=0)
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


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in evaluation mode, then restore every module's own mode.

    Batch norm then uses its running statistics and dropout is off. On leaving the block
    (also on an error) each submodule gets back the ``training`` flag it had, so a model
    with a frozen, evaluating part stays that way::

        with eval_mode(model):
            logits = model(images)

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


__getattr__ = moved_names(__name__, {"show_source": "segtutor.viz",
                                     "median_seconds": "segtutor.bench",
                                     "count_parameters": "segtutor.bench"})
