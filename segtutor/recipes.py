"""Training recipes: the one module that puts models, data and the training loop together.

The rest of the package keeps its layers apart: :mod:`segtutor.data` knows no model,
:mod:`segtutor.models` no data set, and :mod:`segtutor.train` trains whatever model and
loader it is given. A *recipe* fixes every choice of one experiment -- augmentation,
normalisation, network, optimizer, schedule, loss, precision and evaluation -- in one
place, so that a chapter and a benchmark that report the same experiment run the same code
and differ only in the sizes they pass. No other module of ``segtutor`` composes models,
data and the training loop.

:class:`DeepLabShapesRecipe` is Chapter 9's comparison of DeepLab's design choices (output
stride, single rate vs ASPP, image pooling) on the synthetic ``Shapes``.
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
    check_choice,
    check_int,
    check_number,
    check_optional_bool,
    check_positive_int,
    check_positive_number,
)
from .data import ISBI2012, AugmentedPairs, JointTransform, Shapes
from .losses import DiceCELoss
from .metrics import boundary_iou, trimap_iou
from .models.deeplab import AtrousFCHead, DeepLab, DeepLabHead, deeplab_vgg16_features
from .models.unet import UNet, unet
from .ops.tiling import SymmetryAverage
from .train import History, evaluate, fit, one_cycle_in_time, predict
from .utils import seed_everything

__all__ = ["DEEPLAB_SHAPES", "DEEPLAB_SHAPES_GPU", "DEEPLAB_VARIANTS", "EVALUATIONS",
           "ISBI_UNET", "ISBI_UNET_GPU", "DeepLabShapesRecipe", "ISBIUNetRecipe", "load_isbi"]

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


# --------------------------------------------------------------------------- Chapter 9

#: The networks of Chapter 9's two experiments, by name: ``(output stride, head)``. The
#: first three differ only in the output stride, all with v3's head (ASPP with image
#: pooling; its rates scaled to keep their reach in pixels); ``"os8"`` is also the full end
#: of the ASPP ablation, whose other two are LargeFOV's single-rate head (v1) and ASPP
#: without the image-pooling branch.
DEEPLAB_VARIANTS: dict[str, tuple[int, str]] = {
    "os32": (32, "aspp+pooling"),
    "os16": (16, "aspp+pooling"),
    "os8": (8, "aspp+pooling"),
    "largefov": (8, "largefov"),
    "aspp": (8, "aspp"),
}


@dataclass(frozen=True)
class DeepLabShapesRecipe:
    """Chapter 9's experiments: narrow DeepLab networks on ``Shapes`` for a fixed number of steps.

    * **data**: ``Shapes`` of ``image_size`` pixels, ``steps * batch_size`` training images
      (one epoch; seed 0) and ``val_images`` held out (seed 1);
    * **networks** (:meth:`model`): DeepLab's VGG16 backbone with holes
      (:func:`~segtutor.models.deeplab.deeplab_vgg16_features`, ``width`` channels in the first
      stage, batch norm so that it trains from scratch) at output stride 32, 16 or 8, and a
      head: LargeFOV's (fc6 3x3 at rate ``largefov_rate``, fc7, fc8, ``fc_channels`` wide,
      dropout 0.1) or v3's ASPP (3x3 branches at ``aspp_rates`` at output stride 8, scaled
      by ``8 / output_stride`` and rounded, at least 1, so that they reach as far in pixels;
      ``fc_channels`` per branch), with or without image pooling. The rates are the
      papers' scaled to this image size: a 3x3 filter at rate 12 spans 25 cells, more than
      the 13x13 map a 96-pixel image gives at output stride 8, where it would degenerate
      to its centre tap (:func:`~segtutor.models.deeplab.effective_taps`);
    * **training**: AdamW at ``lr`` with a one-cycle schedule over the ``steps``,
      cross-entropy, one epoch -- the same budget in steps for every network, so the
      seconds per step measure their cost;
    * **evaluation** (:meth:`evaluate`): mIoU, trimap IoU (``band`` pixels around the true
      edges) and Boundary IoU (Cheng et al. 2021) on the held-out images.

    Raises:
        TypeError, ValueError: a field of the wrong type or out of range.
    """

    image_size: int = 96
    batch_size: int = 8
    steps: int = 240
    width: int = 8
    fc_channels: int = 64
    largefov_rate: int = 4
    aspp_rates: tuple[int, ...] = (2, 4, 6)
    lr: float = 1e-2
    val_images: int = 64
    band: int = 2

    def __post_init__(self) -> None:
        for name in ("image_size", "batch_size", "steps", "width", "fc_channels",
                     "largefov_rate", "val_images", "band"):
            check_positive_int(getattr(self, name), name)
        for rate in self.aspp_rates:
            check_positive_int(rate, "aspp_rates entry")
        check_positive_number(self.lr, "lr")

    def train_set(self) -> Shapes:
        """One epoch of ``steps * batch_size`` training images (seed 0)."""
        return Shapes(length=self.steps * self.batch_size, size=self.image_size, seed=0)

    def val_set(self) -> Shapes:
        """The held-out images (seed 1)."""
        return Shapes(length=self.val_images, size=self.image_size, seed=1)

    def model(self, variant: str) -> DeepLab:
        """A freshly initialised network of :data:`DEEPLAB_VARIANTS` ``variant``.

        Raises:
            ValueError: an unknown variant.
        """
        check_choice(variant, "variant", tuple(DEEPLAB_VARIANTS))
        output_stride, head_kind = DEEPLAB_VARIANTS[variant]
        backbone = deeplab_vgg16_features(width=self.width, batch_norm=True,
                                          pool5a=head_kind == "largefov",
                                          output_stride=output_stride)
        channels = [m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)][-1].out_channels
        classes = Shapes.num_classes
        if head_kind == "largefov":
            rates: tuple[int, ...] = (self.largefov_rate,)
            head: torch.nn.Module = AtrousFCHead(channels, self.fc_channels, classes,
                                                 self.largefov_rate, dropout=0.1)
        else:
            rates = self.rates_at(output_stride)
            head = DeepLabHead(channels, classes, rates, channels=self.fc_channels,
                               image_pooling=head_kind == "aspp+pooling")
        return DeepLab(backbone, head, classes, rates, output_stride)

    def rates_at(self, output_stride: int) -> tuple[int, ...]:
        """``aspp_rates`` (given for output stride 8) scaled to reach as far in pixels."""
        return tuple(max(1, round(rate * 8 / output_stride)) for rate in self.aspp_rates)

    def train(self, variant: str, *, seed: int = 0, device: str | torch.device | None = None,
              progress: bool = False) -> tuple[DeepLab, History, float]:
        """Seed, build :meth:`model` and train it for ``steps`` steps.

        Returns:
            the trained network (in training mode, on ``device``), its history and the wall
            seconds of training.
        """
        check_int(seed, "seed", minimum=0)
        seed_everything(seed)
        net = self.model(variant)
        loader = DataLoader(self.train_set(), batch_size=self.batch_size, shuffle=True,
                            drop_last=True, generator=torch.Generator().manual_seed(seed))
        steps = len(loader)
        started = time.perf_counter()
        history = fit(net, loader, num_classes=Shapes.num_classes, epochs=1,
                      optimizer=lambda params: torch.optim.AdamW(params, lr=self.lr),
                      lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.OneCycleLR(
                          optimizer, max_lr=self.lr, total_steps=steps),
                      seed=seed, device=device, progress=progress)
        return net, history, time.perf_counter() - started

    def evaluate(self, model: torch.nn.Module, images: Tensor, masks: Tensor) -> dict[str, float]:
        """mIoU, trimap IoU and Boundary IoU of ``model`` on ``images`` ``[N, 3, H, W]``."""
        labels = predict(model, images).cpu()
        classes = Shapes.num_classes
        metrics = evaluate(model, DataLoader(list(zip(images, masks, strict=True)),
                                             batch_size=32), classes)
        return {"miou": metrics["mean_iou"],
                "trimap_iou": trimap_iou(labels, masks, classes, width=self.band),
                "boundary_iou": boundary_iou(labels, masks, classes)}


#: Chapter 9 on a CPU: 96-pixel images, 240 steps of 8 (``benchmarks/deeplab_shapes.py``
#: repeats it over seeds).
DEEPLAB_SHAPES = DeepLabShapesRecipe()

#: Chapter 9 on a GPU: larger images (rates scaled with them) and longer training.
DEEPLAB_SHAPES_GPU = DeepLabShapesRecipe(image_size=192, steps=1500, width=16,
                                         fc_channels=128, largefov_rate=8,
                                         aspp_rates=(4, 8, 12))
