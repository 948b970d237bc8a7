"""Training recipes: the one module that puts models, data and the training loop together.

The rest of the package keeps its layers apart: :mod:`segtutor.data` knows no model,
:mod:`segtutor.models` no data set, and :mod:`segtutor.train` trains whatever model and
loader it is given. A *recipe* fixes every choice of one experiment -- augmentation,
normalisation, network, optimizer, schedule, loss, precision and evaluation -- in one
place, so that a chapter and a benchmark that report the same experiment run the same code
and differ only in the sizes they pass. No other module of ``segtutor`` composes models,
data and the training loop.

:class:`ISBIUNetRecipe` is Chapter 8's U-Net on ISBI 2012; :data:`ISBI_UNET` is its
two-minute CPU configuration (which ``benchmarks/isbi_unet.py`` repeats over seeds) and
:data:`ISBI_UNET_GPU` the chapter's larger GPU one::

    train_pairs, test_pairs = load_isbi(root)
    normalize = ISBI_UNET.normalization(train_pairs)
    net, history = ISBI_UNET.train(ISBI_UNET.train_loader(train_pairs, normalize), seed=0)
    results = ISBI_UNET.evaluate(net, ISBI_UNET.test_loader(test_pairs, normalize))
    results["8 rotations/flips"]["mean_iou"]
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from ._checks import (
    check_bool,
    check_int,
    check_number,
    check_optional_bool,
    check_positive_int,
    check_positive_number,
)
from .data import ISBI2012, AugmentedPairs, JointTransform
from .losses import DiceCELoss
from .models.unet import UNet, unet
from .ops.tiling import SymmetryAverage
from .train import History, evaluate, fit, one_cycle_in_time
from .utils import seed_everything

__all__ = ["EVALUATIONS", "ISBI_UNET", "ISBI_UNET_GPU", "ISBIUNetRecipe", "load_isbi"]

Pairs = Sequence[tuple[Tensor, Tensor]]

#: The two ways :meth:`ISBIUNetRecipe.evaluate` predicts the held-out images.
EVALUATIONS = ("one pass", "8 rotations/flips")


def load_isbi(root: str | os.PathLike[str]) -> tuple[list[tuple[Tensor, Tensor]],
                                                     list[tuple[Tensor, Tensor]]]:
    """ISBI 2012's training slices 0-24 and held-out slices 25-29, each read (and checked) once.

    Raises:
        FileNotFoundError: ``root`` is not an ISBI 2012 folder (see :class:`ISBI2012`).
    """
    return list(ISBI2012(root, split="train")), list(ISBI2012(root, split="test"))


@dataclass(frozen=True)
class ISBIUNetRecipe:
    """Chapter 8's recipe: a narrow same-padding U-Net trained on random crops for a time budget.

    * **data**: random ``crop x crop`` crops of the training images held in memory, a
      random horizontal flip and a random rotation by 0, 90, 180 or 270 degrees (so all
      eight orientations), with ``jitter`` also ``ColorJitter(brightness=0.2,
      contrast=0.2)``; normalised by the mean and standard deviation of the training
      pixels; ``steps_per_epoch`` batches of ``batch_size`` crops per epoch;
    * **network**: ``unet(num_classes, in_channels, base_channels)`` (batch norm, up-
      convolutions, four poolings);
    * **training**: AdamW (``lr``, ``weight_decay``), a one-cycle learning rate driven by the
      clock (:func:`segtutor.train.one_cycle_in_time`) over ``budget`` seconds,
      cross-entropy plus soft Dice (:class:`segtutor.losses.DiceCELoss`); with ``amp=True``
      bfloat16 autocast (float16 or bfloat16 on CUDA) and the ``channels_last`` layout;
    * **evaluation**: whole held-out images, predicted in one pass and averaged over the
      eight rotations and flips (:class:`segtutor.ops.tiling.SymmetryAverage`).

    The defaults are ISBI 2012 (one grey channel, classes membrane and cell) on a CPU.

    Raises:
        TypeError, ValueError: a field of the wrong type or out of range.
    """

    crop: int = 128
    batch_size: int = 8
    base_channels: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    jitter: bool = False
    budget: float = 120.0
    steps_per_epoch: int = 50
    num_classes: int = 2
    in_channels: int = 1

    def __post_init__(self) -> None:
        for name in ("crop", "batch_size", "base_channels", "steps_per_epoch",
                     "in_channels"):
            check_positive_int(getattr(self, name), name)
        check_int(self.num_classes, "num_classes", minimum=2)
        check_positive_number(self.lr, "lr")
        check_positive_number(self.budget, "budget")
        check_number(self.weight_decay, "weight_decay", minimum=0)
        check_bool(self.jitter, "jitter")

    # -- data -----------------------------------------------------------------------------

    @staticmethod
    def normalization(train_pairs: Pairs) -> v2.Normalize:
        """``v2.Normalize`` by the per-channel mean and standard deviation of all training pixels.

        Raises:
            ValueError: ``train_pairs`` is empty.
        """
        if len(train_pairs) == 0:
            raise ValueError("train_pairs is empty; give at least one (image, mask) pair")
        pixels = torch.stack([image for image, _ in train_pairs])
        return v2.Normalize(pixels.mean(dim=(0, 2, 3)).tolist(), pixels.std(dim=(0, 2, 3)).tolist())

    def augmentation(self, normalize: v2.Normalize) -> JointTransform:
        """Random crop, flip, 90-degree rotation (and jitter), then ``normalize``."""
        rotations = v2.RandomChoice([v2.RandomRotation((angle, angle))
                                     for angle in (0, 90, 180, 270)])
        steps: list[v2.Transform] = [v2.RandomCrop(self.crop), v2.RandomHorizontalFlip(),
                                     rotations]
        if self.jitter:
            steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2))
        return JointTransform(*steps, normalize)

    def train_loader(self, train_pairs: Pairs, normalize: v2.Normalize) -> DataLoader:
        """Shuffled batches of augmented crops; ``steps_per_epoch`` full batches per epoch."""
        crops = AugmentedPairs(train_pairs, self.augmentation(normalize),
                               length=self.steps_per_epoch * self.batch_size)
        return DataLoader(crops, batch_size=self.batch_size, shuffle=True, drop_last=True)

    @staticmethod
    def test_loader(test_pairs: Pairs, normalize: v2.Normalize) -> DataLoader:
        """The held-out images whole and normalised, one per batch."""
        return DataLoader([(normalize(image), mask) for image, mask in test_pairs], batch_size=1)

    # -- network and training -----------------------------------------------------------

    def model(self) -> UNet:
        """A freshly initialised ``unet(num_classes, in_channels, base_channels)``."""
        return unet(num_classes=self.num_classes, in_channels=self.in_channels,
                    base_channels=self.base_channels)

    def optimizer(self, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.AdamW:
        """AdamW with the recipe's learning rate and weight decay."""
        return torch.optim.AdamW(parameters, lr=self.lr, weight_decay=self.weight_decay)

    @staticmethod
    def loss() -> DiceCELoss:
        """Cross-entropy plus soft Dice, equally weighted."""
        return DiceCELoss()

    def train(self, train_loader: DataLoader, *, seed: int, amp: bool | None = None,
              device: str | torch.device | None = None,
              progress: bool = False) -> tuple[UNet, History]:
        """Seed, build :meth:`model` and train it for ``budget`` seconds with :func:`segtutor.train.fit`.

        Args:
            train_loader: e.g. :meth:`train_loader`.
            seed: seeds the generators before the weights are drawn, and again (in ``fit``)
                before the first batch, so a seed fixes weights and data order.
            amp: ``True``: mixed precision (bfloat16 autocast on the CPU) and the
                ``channels_last`` layout; ``False``: float32; ``None``: ``fit``'s choice
                (on for CUDA only), in the default layout.
            device: where to train (``None``: CUDA, then MPS, then the CPU).
            progress: show ``fit``'s progress bar and per-epoch lines.

        Returns:
            the trained network (on ``device``, in training mode) and its history.
        """
        check_int(seed, "seed", minimum=0)
        check_optional_bool(amp, "amp")
        seed_everything(seed)
        net = self.model()
        if amp:
            net = net.to(memory_format=torch.channels_last)
        history = fit(net, train_loader, num_classes=self.num_classes, time_budget=self.budget,
                      optimizer=self.optimizer,
                      lr_scheduler=lambda optimizer: one_cycle_in_time(optimizer, self.budget),
                      loss_fn=self.loss(), device=device, amp=amp, seed=seed,
                      progress=progress)
        return net, history

    # -- evaluation -----------------------------------------------------------------------

    def evaluate(self, model: torch.nn.Module, test_loader: DataLoader, *,
                 device: str | torch.device | None = None) -> dict[str, dict[str, Any]]:
        """Metrics on ``test_loader`` for each of :data:`EVALUATIONS`, with the seconds each took.

        Returns:
            ``{"one pass": metrics, "8 rotations/flips": metrics}``, each the dict of
            :func:`segtutor.train.evaluate` (``mean_iou``, ``pixel_accuracy``,
            ``per_class_iou``, ...) plus ``"seconds"``.
        """
        results: dict[str, dict[str, Any]] = {}
        for method, predictor in zip(EVALUATIONS, (model, SymmetryAverage(model)), strict=True):
            started = time.perf_counter()
            metrics = evaluate(predictor, test_loader, num_classes=self.num_classes,
                               device=device)
            results[method] = {**metrics, "seconds": time.perf_counter() - started}
        return results


#: Chapter 8 on a CPU: 128-pixel crops, batches of 8, 16 base channels (1.94 M parameters),
#: two minutes. ``benchmarks/isbi_unet.py`` measures this recipe (and its ``jitter`` variant).
ISBI_UNET = ISBIUNetRecipe()

#: Chapter 8 on a GPU: larger crops and batches, a wider network, eight minutes.
ISBI_UNET_GPU = ISBIUNetRecipe(crop=256, batch_size=16, base_channels=32, budget=480.0)
