"""Training recipes: the one module that puts models, data and the training loop together.

The rest of the package keeps its layers apart: :mod:`segtutor.data` knows no model,
:mod:`segtutor.models` no data set, and :mod:`segtutor.train` trains whatever model and
loader it is given. A *recipe* fixes every choice of one experiment -- augmentation,
normalisation, network, optimizer, schedule, loss, precision and evaluation -- in one
place, so that a chapter and a benchmark that report the same experiment run the same code
and differ only in the sizes they pass. No other module of ``segtutor`` composes models,
data and the training loop.

:class:`FCNShapesRecipe` is Chapter 6's comparison of FCN-32s, FCN-16s and FCN-8s on the
synthetic ``Shapes``.
:class:`SegNetShapesRecipe` is Chapter 7's comparison of SegNet's decoder upsamplings (max
unpooling with the encoder's indices, nearest, bilinear, bilinear with FCN's skips) on
``Shapes``, scored as Chapter 6's.
:class:`DeepLabShapesRecipe` is Chapter 9's comparison of DeepLab's design choices (output
stride, single rate vs ASPP, image pooling) on the synthetic ``Shapes``.
:class:`GlobalContextRecipe` is Chapter 10's: a small FCN with and without a context module
(pyramid pooling, ASPP with image pooling) on ``FramedShapes``, whose labels depend on a
frame at the image's border.
:class:`ComparisonRecipe` is Chapter 12's: every semantic network of the book, from Chapter 1's
small FCN to DeepLab v3+, trained on ``Shapes`` under one budget of steps, with its costs
(parameters, multiply-adds, CPU latency, activation memory) measured beside its scores.
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
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.models.detection import MaskRCNN
from torchvision.transforms import v2

from ._checks import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_optional_bool,
    check_positive_int,
    check_positive_number,
    check_probability,
)
from .arithmetic import measure_receptive_field, receptive_field
from .bench import count_flops, count_parameters, median_seconds, saved_for_backward_bytes
from .data import (
    ISBI2012,
    AugmentedPairs,
    ElasticGrid,
    FramedShapes,
    JointTransform,
    Shapes,
    ShapesInstances,
    detection_collate,
)
from .data.weightmap import unet_weight_map
from .losses import CrossEntropyLoss, DiceCELoss
from .metrics import ISBI_SCORES, ConfusionMatrix, boundary_iou, coco_ap, isbi_scores, trimap_iou
from .models import create as create_model
from .models.deeplab import AtrousFCHead, DeepLab, DeepLabHead, deeplab_vgg16_features
from .models.fcn import FCN, fcn
from .models.mask_rcnn import mask_rcnn
from .models.pspnet import PyramidPooling
from .models.segnet import SEGNET_UPSAMPLINGS, SegNet, segnet
from .models.unet import UNet, unet
from .ops import conv_bn_relu
from .ops.tiling import SymmetryAverage
from .train import History, evaluate, fit, one_cycle_in_time, predict
from .utils import device as pick_device
from .utils import eval_mode, seed_everything

__all__ = ["DEEPLAB_SHAPES", "DEEPLAB_SHAPES_GPU", "DEEPLAB_VARIANTS", "EVALUATIONS",
           "FCN_SHAPES", "FCN_SHAPES_GPU", "FCN_VARIANTS", "FCNShapesRecipe", "GLOBAL_CONTEXT", "GLOBAL_CONTEXT_GPU", "GLOBAL_CONTEXT_VARIANTS",
           "ISBI_UNET", "ISBI_UNET_GPU", "MASK_RCNN_SHAPES", "MASK_RCNN_SHAPES_GPU",
           "MASK_RCNN_VARIANTS", "SEGNET_SHAPES", "SEGNET_SHAPES_GPU", "DeepLabShapesRecipe",
           "GlobalContextRecipe", "ISBIUNetRecipe", "MaskRCNNShapesRecipe", "SegNetShapesRecipe",
           "load_isbi"]

Pairs = Sequence[tuple[Tensor, Tensor]]

#: Pixels added on each side of a crop before :class:`~segtutor.data.ElasticGrid` warps it
#: (three times its 10-pixel standard deviation) and cut off after.
ELASTIC_MARGIN = 30

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
      contrast=0.2)``, with ``elastic`` also the paper's elastic deformation
      (:class:`~segtutor.data.ElasticGrid`: a 3 x 3 grid, 10 pixels; applied to a crop
      :data:`ELASTIC_MARGIN` pixels wider on each side, then centre-cropped, so no pixel
      comes from outside); normalised by the mean and standard deviation of the training
      pixels; ``steps_per_epoch`` batches of ``batch_size`` crops per epoch;
    * **network**: ``unet(num_classes, in_channels, base_channels, bilinear)`` (batch norm,
      four poolings; 2 x 2 up-convolutions, or with ``bilinear`` bilinear upsampling and a
      1 x 1 convolution);
    * **training**: AdamW (``lr``, ``weight_decay``), a one-cycle learning rate driven by the
      clock (:func:`segtutor.train.one_cycle_in_time`) over ``budget`` seconds,
      cross-entropy plus soft Dice (:class:`segtutor.losses.DiceCELoss`; cross-entropy
      alone with ``dice=False``), the cross-entropy weighted per pixel by the paper's
      weight map (:func:`~segtutor.data.weightmap.unet_weight_map`, ``w0=10``,
      ``sigma=5``, computed once per training image) with ``weight_map=True``; with ``amp=True``
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
    elastic: bool = False
    dice: bool = True
    weight_map: bool = False
    budget: float = 120.0
    steps_per_epoch: int = 50
    num_classes: int = 2
    in_channels: int = 1
    bilinear: bool = False

    def __post_init__(self) -> None:
        for name in ("crop", "batch_size", "base_channels", "steps_per_epoch",
                     "in_channels"):
            check_positive_int(getattr(self, name), name)
        check_int(self.num_classes, "num_classes", minimum=2)
        check_positive_number(self.lr, "lr")
        check_positive_number(self.budget, "budget")
        check_number(self.weight_decay, "weight_decay", minimum=0)
        for name in ("jitter", "elastic", "dice", "weight_map", "bilinear"):
            check_bool(getattr(self, name), name)

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
        """Random crop, flip, 90-degree rotation (elastic deformation, jitter), then ``normalize``."""
        rotations = v2.RandomChoice([v2.RandomRotation((angle, angle))
                                     for angle in (0, 90, 180, 270)])
        margin = ELASTIC_MARGIN if self.elastic else 0
        steps: list[v2.Transform] = [v2.RandomCrop(self.crop + 2 * margin),
                                     v2.RandomHorizontalFlip(), rotations]
        if self.elastic:
            steps += [ElasticGrid(grid=3, sigma=10.0), v2.CenterCrop(self.crop)]
        if self.jitter:
            steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2))
        return JointTransform(*steps, normalize)

    def train_loader(self, train_pairs: Pairs, normalize: v2.Normalize) -> DataLoader:
        """Shuffled batches of augmented crops; ``steps_per_epoch`` full batches per epoch.

        With ``weight_map`` the batches are ``(images, masks, weights)``: each training
        image's weight map is computed once, on the whole image, and cropped and turned with it.
        """
        pairs: Sequence[tuple[Tensor, ...]] = train_pairs
        if self.weight_map:
            pairs = [(image, mask, unet_weight_map(mask, num_classes=self.num_classes,
                                                   foreground=1, w0=10.0, sigma=5.0))
                     for image, mask in train_pairs]
        crops = AugmentedPairs(pairs, self.augmentation(normalize),
                               length=self.steps_per_epoch * self.batch_size)
        return DataLoader(crops, batch_size=self.batch_size, shuffle=True, drop_last=True)

    @staticmethod
    def test_loader(test_pairs: Pairs, normalize: v2.Normalize) -> DataLoader:
        """The held-out images whole and normalised, one per batch."""
        return DataLoader([(normalize(image), mask) for image, mask in test_pairs], batch_size=1)

    # -- network and training -----------------------------------------------------------

    def model(self) -> UNet:
        """A freshly initialised ``unet(num_classes, in_channels, base_channels, bilinear)``."""
        return unet(num_classes=self.num_classes, in_channels=self.in_channels,
                    base_channels=self.base_channels, bilinear=self.bilinear)

    def optimizer(self, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.AdamW:
        """AdamW with the recipe's learning rate and weight decay."""
        return torch.optim.AdamW(parameters, lr=self.lr, weight_decay=self.weight_decay)

    def loss(self) -> DiceCELoss | CrossEntropyLoss:
        """Cross-entropy plus soft Dice, equally weighted; cross-entropy alone if not ``dice``.

        Either takes the batch's weight map, if any, as ``loss(logits, masks, weights)``.
        """
        return DiceCELoss() if self.dice else CrossEntropyLoss()

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

        Each image is predicted once per method; the same labels give the pixel metrics
        and, for two classes (ISBI 2012: membrane 0, cell 1), the challenge's segmentation
        scores (:func:`segtutor.metrics.isbi_scores`), averaged over the images.

        Returns:
            ``{"one pass": metrics, "8 rotations/flips": metrics}``, each the dict of
            :meth:`segtutor.metrics.ConfusionMatrix.compute` (``mean_iou``,
            ``pixel_accuracy``, ``per_class_iou``, ...), with two classes also the keys of
            :data:`segtutor.metrics.ISBI_SCORES`, and ``"seconds"``.
        """
        if device is not None:  # else the model stays where it is
            model.to(device if isinstance(device, torch.device) else pick_device(device))
        results: dict[str, dict[str, Any]] = {}
        for method, predictor in zip(EVALUATIONS, (model, SymmetryAverage(model)), strict=True):
            started = time.perf_counter()
            matrix, segmentations = ConfusionMatrix(self.num_classes), []
            for images, masks in test_loader:
                labels = predict(predictor, images).cpu()
                matrix.update(labels, masks)
                if self.num_classes == 2:
                    segmentations += [isbi_scores(label, mask)
                                      for label, mask in zip(labels, masks, strict=True)]
            scores = {key: statistics.mean(s[key] for s in segmentations)
                      for key in (ISBI_SCORES if segmentations else ())}
            results[method] = {**matrix.compute(), **scores,
                               "seconds": time.perf_counter() - started}
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


class _ShapesExperiment:
    """What Chapters 6, 7, 9 and 10's recipes share: their data drawn from the recipe's sizes
    (``image_size``, ``batch_size``, ``steps``, ``val_images``) and one epoch of AdamW at
    ``lr`` with a one-cycle schedule over the ``steps`` of the recipe's ``model(variant)``.
    """

    image_size: int
    batch_size: int
    steps: int
    val_images: int
    lr: float

    def train_set(self) -> Shapes:
        """One epoch of ``steps * batch_size`` training images (seed 0)."""
        return Shapes(length=self.steps * self.batch_size, size=self.image_size, seed=0)

    def val_set(self) -> Shapes:
        """The held-out images (seed 1)."""
        return Shapes(length=self.val_images, size=self.image_size, seed=1)

    def val_tensors(self) -> tuple[Tensor, Tensor]:
        """The held-out images ``[N, 3, H, W]`` and masks ``[N, H, W]``, stacked for ``evaluate``."""
        val = self.val_set()
        return (torch.stack([image for image, _ in val]), torch.stack([mask for _, mask in val]))

    #: ``Shapes``' classes, background included (not a field: the data fixes it).
    num_classes = Shapes.num_classes

    def train(self, variant: str, *, seed: int = 0, device: str | torch.device | None = None,
              progress: bool = False) -> tuple[torch.nn.Module, History, float]:
        """Seed, build :meth:`model` ``(variant)`` and train it for ``steps`` steps.

        Returns:
            the trained network (in training mode, on ``device``), its history and the wall
            seconds of training.
        """
        return _train_one_cycle(lambda: self.model(variant), self.train_set(),
                                batch_size=self.batch_size, lr=self.lr,
                                num_classes=self.num_classes, seed=seed, device=device,
                                progress=progress)

    def model(self, variant: str) -> torch.nn.Module:
        """A freshly initialised network of ``variant``: each recipe defines its own."""
        raise NotImplementedError(f"{type(self).__name__} does not define model()")


@dataclass(frozen=True)
class DeepLabShapesRecipe(_ShapesExperiment):
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


def _train_one_cycle(build: Callable[[], DeepLab], data: Dataset, *, batch_size: int,
                     lr: float, num_classes: int, seed: int,
                     device: str | torch.device | None,
                     progress: bool) -> tuple[DeepLab, History, float]:
    """Chapters 9 and 10's training: seed, ``build()``, one epoch of AdamW with a one-cycle LR.

    Returns:
        the trained network (in training mode, on ``device``), its history and the wall
        seconds of training.
    """
    check_int(seed, "seed", minimum=0)
    seed_everything(seed)
    net = build()
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    steps = len(loader)
    started = time.perf_counter()
    history = fit(net, loader, num_classes=num_classes, epochs=1,
                  optimizer=lambda params: torch.optim.AdamW(params, lr=lr),
                  lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.OneCycleLR(
                      optimizer, max_lr=lr, total_steps=steps),
                  seed=seed, device=device, progress=progress)
    return net, history, time.perf_counter() - started


# --------------------------------------------------------------------------- Chapter 6

#: Chapter 6's three networks, by name: the output stride of their finest scores before the
#: last upsampling (FCN-32s: none fused; FCN-16s: pool4's; FCN-8s: pool4's and pool3's).
FCN_VARIANTS: dict[str, int] = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}


@dataclass(frozen=True)
class FCNShapesRecipe(_ShapesExperiment):
    """Chapter 6's experiment: narrow FCN-32s, 16s and 8s on ``Shapes`` for a fixed number of steps.

    * **data**: ``Shapes`` of ``image_size`` pixels, ``steps * batch_size`` training images
      (one epoch; seed 0) and ``val_images`` held out (seed 1);
    * **networks** (:meth:`model`): :func:`~segtutor.models.fcn.fcn` at the variant's output
      stride (:data:`FCN_VARIANTS`), VGG16's layout with ``width`` channels in the first
      stage and batch norm (not in the paper, whose ImageNet initialisation made training
      from scratch unnecessary; here it lets the network learn from scratch in a few hundred
      steps), fc6 and fc7 ``fc_channels`` wide with ``dropout``, the transposed
      convolutions bilinear and frozen unless ``freeze_upsampling=False``;
    * **training**: AdamW at ``lr`` with a one-cycle schedule over the ``steps``,
      cross-entropy, one epoch -- the same budget in steps for every network, so the
      seconds per step measure their cost;
    * **evaluation** (:meth:`evaluate`): pixel accuracy, mIoU, trimap IoU (``band`` pixels
      around the true edges) and Boundary IoU (Cheng et al. 2021) on the held-out images.

    Raises:
        TypeError, ValueError: a field of the wrong type or out of range.
    """

    image_size: int = 96
    batch_size: int = 8
    steps: int = 240
    width: int = 8
    fc_channels: int = 64
    dropout: float = 0.1
    freeze_upsampling: bool = True
    lr: float = 1e-2
    val_images: int = 64
    band: int = 2

    def __post_init__(self) -> None:
        for name in ("image_size", "batch_size", "steps", "width", "fc_channels",
                     "val_images", "band"):
            check_positive_int(getattr(self, name), name)
        check_probability(self.dropout, "dropout")
        check_bool(self.freeze_upsampling, "freeze_upsampling")
        check_positive_number(self.lr, "lr")

    def model(self, variant: str) -> FCN:
        """A freshly initialised network of :data:`FCN_VARIANTS` ``variant``.

        Raises:
            ValueError: an unknown variant.
        """
        check_choice(variant, "variant", tuple(FCN_VARIANTS))
        return fcn(output_stride=FCN_VARIANTS[variant], num_classes=Shapes.num_classes,
                   width=self.width, fc_channels=self.fc_channels, dropout=self.dropout,
                   batch_norm=True, freeze_upsampling=self.freeze_upsampling)


    def evaluate(self, model: torch.nn.Module, images: Tensor, masks: Tensor) -> dict[str, float]:
        """Pixel accuracy, mIoU, trimap IoU and Boundary IoU of ``model`` on ``images`` ``[N, 3, H, W]``."""
        labels = predict(model, images).cpu()
        matrix = ConfusionMatrix(Shapes.num_classes)
        matrix.update(labels, masks)
        return {"pixel_accuracy": matrix.pixel_accuracy(), "miou": matrix.mean_iou(),
                "trimap_iou": trimap_iou(labels, masks, Shapes.num_classes, width=self.band),
                "boundary_iou": boundary_iou(labels, masks, Shapes.num_classes)}


#: Chapter 6 on a CPU: 96-pixel images, 240 steps of 8 (``benchmarks/fcn_shapes.py``
#: repeats it over seeds).
FCN_SHAPES = FCNShapesRecipe()

#: Chapter 6 on a GPU: 192-pixel images and longer training.
FCN_SHAPES_GPU = FCNShapesRecipe(image_size=192, steps=3000)


# --------------------------------------------------------------------------- Chapter 7

@dataclass(frozen=True)
class SegNetShapesRecipe(_ShapesExperiment):
    """Chapter 7's experiment: narrow SegNets that differ only in how the decoder upsamples.

    * **data**: ``Shapes`` of ``image_size`` pixels, ``steps * batch_size`` training images
      (one epoch; seed 0) and ``val_images`` held out (seed 1), as Chapters 6 and 9;
    * **networks** (:meth:`model`): :func:`~segtutor.models.segnet.segnet` with ``width``
      channels in the first stage and each of :data:`~segtutor.models.segnet.SEGNET_UPSAMPLINGS`:
      max unpooling with the encoder's indices (SegNet), nearest or bilinear interpolation
      (the same weights, no indices), bilinear plus a learned 1x1 projection of the
      encoder's pooled map added at each scale (FCN's skips; the paper's FCN-Basic);
    * **training**: AdamW at ``lr`` with a one-cycle schedule over the ``steps``,
      cross-entropy, one epoch -- the same budget in steps for every network;
    * **evaluation** (:meth:`evaluate`, Chapter 6's): pixel accuracy, mIoU, trimap IoU
      (``band`` pixels around the true edges) and Boundary IoU on the held-out images.

    Raises:
        TypeError, ValueError: a field of the wrong type or out of range.
    """

    image_size: int = 64
    batch_size: int = 8
    steps: int = 240
    width: int = 12
    lr: float = 5e-3
    val_images: int = 64
    band: int = 2

    def __post_init__(self) -> None:
        for name in ("image_size", "batch_size", "steps", "width", "val_images", "band"):
            check_positive_int(getattr(self, name), name)
        check_positive_number(self.lr, "lr")

    evaluate = FCNShapesRecipe.evaluate  # Chapter 6's scores

    def model(self, upsampling: str) -> SegNet:
        """A freshly initialised SegNet whose decoder upsamples by ``upsampling``.

        Raises:
            ValueError: ``upsampling`` is not one of ``SEGNET_UPSAMPLINGS``.
        """
        check_choice(upsampling, "upsampling", SEGNET_UPSAMPLINGS)
        return segnet(num_classes=Shapes.num_classes, width=self.width, upsampling=upsampling)



#: Chapter 7 on a CPU: 64-pixel images, 240 steps of 8 (``benchmarks/segnet_decoders.py``
#: repeats it over seeds).
SEGNET_SHAPES = SegNetShapesRecipe()

#: Chapter 7 on a GPU: 192-pixel images and longer training.
SEGNET_SHAPES_GPU = SegNetShapesRecipe(image_size=192, steps=3000)


# --------------------------------------------------------------------------- Chapter 10

#: The networks of Chapter 10's global-context experiment, by name: ``(context module,
#: bins, pooling)``. All are the same small FCN of output stride 8
#: (:meth:`GlobalContextRecipe.model`); the first three are the main comparison (nothing,
#: PSPNet's pyramid pooling, DeepLab v3's ASPP with image pooling), the last two the
#: pyramid's ablation (the global 1x1 bin alone; max instead of average pooling).
GLOBAL_CONTEXT_VARIANTS: dict[str, tuple[str | None, tuple[int, ...], str]] = {
    "fcn": (None, (), "avg"),
    "fcn+ppm": ("ppm", (1, 2, 3, 6), "avg"),
    "fcn+aspp": ("aspp", (), "avg"),
    "fcn+ppm(1)": ("ppm", (1,), "avg"),
    "fcn+ppm-max": ("ppm", (1, 2, 3, 6), "max"),
}


@dataclass(frozen=True)
class GlobalContextRecipe(_ShapesExperiment):
    """Chapter 10's experiment: does a network see far enough? Small FCNs on ``FramedShapes``.

    * **data**: :class:`~segtutor.data.FramedShapes` of ``image_size`` pixels with a frame of
      ``frame_width`` pixels in one of ``frame_colours``; a shape's class is its kind x the
      frame's colour, so a pixel far from the border cannot be labelled from its
      neighbourhood. ``steps * batch_size`` training images (one epoch; seed 0) and
      ``val_images`` held out (seed 1);
    * **networks** (:meth:`model`): one FCN of output stride ``2 ** len(widths)`` -- stages of
      two 3x3 conv-BN-ReLU blocks (:func:`~segtutor.ops.conv_bn_relu`) with ``widths[i]``
      channels, each stage followed by 2x2 max pooling --, a head and bilinear upsampling to
      the input (the :class:`~segtutor.models.deeplab.DeepLab` container: backbone, head, no
      decoder). The plain FCN's head is a 1x1 classifier; ``fcn+ppm`` puts PSPNet's
      :class:`~segtutor.models.pspnet.PyramidPooling` (``bins``, average or max pooling;
      ``2 x`` the channels) before it; ``fcn+aspp`` replaces it by DeepLab v3's
      :class:`~segtutor.models.deeplab.DeepLabHead` (ASPP with image pooling,
      ``aspp_channels`` per branch, ``aspp_rates`` on the stride-8 map, dropout 0.5, a 3x3
      convolution, the classifier) on an FCN narrowed to ``aspp_widths``, so that the three
      main networks' parameter counts stay within 10 % of each other;
    * **training**: AdamW at ``lr`` with a one-cycle schedule over the ``steps``,
      cross-entropy, one epoch: the same number of steps for every network, so the seconds
      per step measure their cost;
    * **evaluation** (:meth:`evaluate`): mIoU, per-class IoU, and the confusion matrix of the
      frame-dependent classes, with ``frame_error``: the fraction of shape pixels given the
      right kind but the wrong frame colour (``1 - 1 / len(frame_colours)`` is a guess).

    :meth:`receptive_field` gives the plain FCN's computed and measured receptive fields,
    to compare with the image.

    Raises:
        TypeError, ValueError: a field of the wrong type or out of range.
    """

    image_size: int = 96
    frame_width: int = 5
    frame_colours: tuple[str, ...] = ("red", "blue")
    num_objects: tuple[int, int] = (1, 3)
    object_size: tuple[float, float] = (0.25, 0.4)
    batch_size: int = 8
    steps: int = 400
    widths: tuple[int, ...] = (16, 32, 56)
    aspp_widths: tuple[int, ...] = (16, 32, 40)
    aspp_channels: int = 16
    aspp_rates: tuple[int, ...] = (2, 4, 6)
    lr: float = 1e-2
    val_images: int = 64

    def __post_init__(self) -> None:
        for name in ("image_size", "frame_width", "batch_size", "steps", "aspp_channels",
                     "val_images"):
            check_positive_int(getattr(self, name), name)
        for name in ("widths", "aspp_widths", "aspp_rates"):
            for value in getattr(self, name):
                check_positive_int(value, f"{name} entry")
            if not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty tuple of positive ints, got ()")
        if self.batch_size < 2:  # the pyramid's 1x1 bin and ASPP's image pooling
            raise ValueError(f"batch_size must be >= 2 (batch norm after a 1x1 pooling), "
                             f"got {self.batch_size}")
        check_positive_number(self.lr, "lr")
        self.val_set()  # checks the data options

    @property
    def output_stride(self) -> int:
        """``2 ** len(widths)``: one 2x2 max pooling per stage."""
        return 2 ** len(self.widths)

    def data(self, length: int, seed: int) -> FramedShapes:
        """``length`` images of the recipe's ``FramedShapes`` drawn with ``seed``."""
        return FramedShapes(length=length, size=self.image_size, seed=seed,
                            frame_width=self.frame_width, frame_colours=self.frame_colours,
                            num_objects=self.num_objects, object_size=self.object_size)

    def train_set(self) -> FramedShapes:
        """One epoch of ``steps * batch_size`` training images (seed 0)."""
        return self.data(self.steps * self.batch_size, seed=0)

    def val_set(self) -> FramedShapes:
        """The held-out images (seed 1)."""
        return self.data(self.val_images, seed=1)

    @property
    def num_classes(self) -> int:
        """The data's classes: background plus one per (frame colour, kind)."""
        return self.val_set().num_classes

    @staticmethod
    def features(widths: Sequence[int], in_channels: int = 3) -> torch.nn.Sequential:
        """The FCN's stages: two 3x3 conv-BN-ReLU blocks each, then 2x2 max pooling."""
        layers: list[torch.nn.Module] = []
        channels = in_channels
        for width in widths:
            for _ in range(2):
                layers.append(conv_bn_relu(channels, width))
                channels = width
            layers.append(torch.nn.MaxPool2d(2))
        return torch.nn.Sequential(*layers)

    def model(self, variant: str) -> DeepLab:
        """A freshly initialised network of :data:`GLOBAL_CONTEXT_VARIANTS` ``variant``.

        Raises:
            ValueError: an unknown variant.
        """
        check_choice(variant, "variant", tuple(GLOBAL_CONTEXT_VARIANTS))
        context, bins, pooling = GLOBAL_CONTEXT_VARIANTS[variant]
        widths = self.aspp_widths if context == "aspp" else self.widths
        backbone = self.features(widths)
        channels, rates = widths[-1], ()
        layers: list[torch.nn.Module] = []
        if context == "ppm":
            ppm = PyramidPooling(channels, bins, pooling=pooling)
            layers.append(ppm)
            channels = ppm.total_channels
        elif context == "aspp":
            rates = self.aspp_rates
            head = DeepLabHead(channels, self.num_classes, rates, channels=self.aspp_channels)
            return DeepLab(backbone, head, self.num_classes, rates, self.output_stride)
        layers.append(torch.nn.Conv2d(channels, self.num_classes, 1))
        return DeepLab(backbone, torch.nn.Sequential(*layers), self.num_classes, rates,
                       self.output_stride)

    def receptive_field(self, input_size: int | None = None) -> dict[str, Any]:
        """The plain FCN's receptive field, computed and measured, next to the image.

        Args:
            input_size: the image side for the measurement (``None``: ``image_size``).

        Returns:
            ``{"computed": side, "measured": (height, width), "image_size": side,
            "table": ReceptiveFieldTable}``: the computed side (Araujo et al.'s recurrences
            over the FCN's layers, without the final interpolation), the extent of the
            input pixels that move the logits of the centre output pixel (by
            backpropagation, through the whole network including the bilinear upsampling).
        """
        size = self.image_size if input_size is None else check_positive_int(input_size,
                                                                              "input_size")
        net = self.model("fcn")
        table = receptive_field(net.receptive_field_layers())
        measured = measure_receptive_field(net, size)
        return {"computed": table.overall.size[0], "measured": measured.size,
                "image_size": size, "table": table}

    def evaluate(self, model: torch.nn.Module, images: Tensor, masks: Tensor,
                 batch_size: int = 32) -> dict[str, Any]:
        """mIoU, per-class IoU and the frame-dependent classes' confusion on ``images`` ``[N, 3, H, W]``.

        Returns:
            ``miou`` (all classes, background included), ``per_class_iou`` (a list, in the
            order of the data's ``classes``), ``kind_miou`` (the mIoU of background, circle,
            square and triangle, each kind's classes merged over the frame colours: what a
            network gets right without the frame), ``confusion`` (``int64[K, K]`` pixel
            counts of the ``K = num_classes - 1`` frame-dependent classes: row = truth,
            column = prediction, pixels of other classes left out) and ``frame_error`` (of
            the pixels of a shape that were given a class of the right kind, the fraction
            with the wrong frame colour; ``1 - 1 / len(frame_colours)`` for a guess).
        """
        check_positive_int(batch_size, "batch_size")
        kinds = len(self.val_set().kinds)
        to_kind = torch.tensor([0] + [1 + c % kinds for c in range(self.num_classes - 1)])
        matrix, kind_matrix = ConfusionMatrix(self.num_classes), ConfusionMatrix(kinds + 1)
        for start in range(0, len(images), batch_size):
            labels = predict(model, images[start:start + batch_size]).cpu()
            truth = masks[start:start + batch_size]
            matrix.update(labels, truth)
            kind_matrix.update(to_kind[labels], to_kind[truth])
        confusion = matrix.matrix[1:, 1:].cpu()
        same_kind = to_kind[1:, None] == to_kind[None, 1:]
        right_kind = confusion[same_kind].sum()
        wrong_frame = confusion[same_kind & ~torch.eye(len(confusion), dtype=torch.bool)].sum()
        return {"miou": matrix.mean_iou(), "per_class_iou": matrix.per_class_iou().tolist(),
                "kind_miou": kind_matrix.mean_iou(), "confusion": confusion,
                "frame_error": float(wrong_frame / right_kind) if right_kind else float("nan")}


#: Chapter 10 on a CPU: 96-pixel images with a 5-pixel frame, 400 steps of 8.
#: ``benchmarks/global_context.py`` repeats it over seeds.
GLOBAL_CONTEXT = GlobalContextRecipe()

#: Chapter 10 on a GPU: 192-pixel images (a 10-pixel frame, ASPP rates doubled with the
#: map) and longer training.
GLOBAL_CONTEXT_GPU = GlobalContextRecipe(image_size=192, frame_width=10, batch_size=16,
                                         steps=1500, aspp_rates=(4, 8, 12))


# --------------------------------------------------------------------------- Chapter 11

#: Chapter 11's ablations (the paper's Table 2b and 2c in miniature), by name:
#: ``(roi_pooler, mask_loss)`` of :func:`~segtutor.models.mask_rcnn.mask_rcnn`. ``"align"``
#: is Mask R-CNN itself (segtutor's RoIAlign, per-class sigmoid masks); ``"pool"`` reads the
#: RoIs with Fast R-CNN's RoIPool instead; ``"softmax"`` keeps RoIAlign and trains the masks
#: with a per-pixel softmax over the classes.
MASK_RCNN_VARIANTS: dict[str, tuple[str, str]] = {
    "align": ("align", "sigmoid"),
    "pool": ("pool", "sigmoid"),
    "softmax": ("align", "softmax"),
}


@dataclass(frozen=True)
class MaskRCNNShapesRecipe:
    """Chapter 11's experiment: a CPU-sized Mask R-CNN on ``ShapesInstances``, a fixed number of steps.

    * **data**: :class:`~segtutor.data.ShapesInstances` of ``image_size`` pixels with
      ``num_instances`` objects of ``object_size``, same-class objects pushed against each
      other with probability ``touch``, flat-coloured unless ``textured``; ``steps *
      batch_size`` training images, each seen once (seed 0), drawn by ``workers`` loader
      processes beside the training (``0``: in the training process), and ``test_images``
      held out (seed 1: other images, same distribution);
    * **network** (:meth:`model`): :func:`~segtutor.models.mask_rcnn.mask_rcnn` --
      torchvision's Mask R-CNN on a small ``conv_bn_relu`` backbone of ``widths`` (output
      stride 4, one feature level), anchors of ``anchor_sizes`` pixels, a box head of
      ``representation_size``, a mask head of ``mask_channels``,
      ``box_batch_size_per_image`` sampled RoIs per image and ``rpn_post_nms_top_n``
      proposals; ``roi_pooler`` and ``mask_loss`` as in :data:`MASK_RCNN_VARIANTS`;
    * **training** (:meth:`train`): AdamW (``lr``, ``weight_decay``) with a one-cycle
      learning rate over the ``steps``, the sum of torchvision's five losses (RPN
      objectness and box, classifier, box regression, mask);
    * **evaluation** (:meth:`evaluate`): COCO's mask and box AP (IoU 0.50:0.95, 0.50 and
      0.75) of the held-out predictions, by pycocotools (:func:`segtutor.metrics.coco_ap`).

    Raises:
        TypeError, ValueError: a field of the wrong type or out of range.
    """

    image_size: int = 64
    num_instances: tuple[int, int] = (2, 5)
    object_size: tuple[float, float] = (0.2, 0.4)
    touch: float = 0.5
    textured: bool = False
    widths: tuple[int, ...] = (16, 32, 64)
    representation_size: int = 256
    mask_channels: int = 32
    anchor_sizes: tuple[int, ...] = (12, 20, 32, 44)
    rpn_post_nms_top_n: int = 50
    box_batch_size_per_image: int = 64
    batch_size: int = 4
    steps: int = 600
    lr: float = 3e-3
    weight_decay: float = 1e-4
    test_images: int = 128
    roi_pooler: str = "align"
    mask_loss: str = "sigmoid"
    workers: int = 1

    def __post_init__(self) -> None:
        for name in ("batch_size", "steps", "test_images"):
            check_positive_int(getattr(self, name), name)
        check_int(self.workers, "workers", minimum=0)
        check_positive_number(self.lr, "lr")
        check_number(self.weight_decay, "weight_decay", minimum=0)
        self.test_data()  # checks the data options
        self.model()  # checks the network options

    def data(self, length: int, seed: int) -> ShapesInstances:
        """``length`` images of the recipe's ``ShapesInstances`` drawn with ``seed``."""
        return ShapesInstances(length=length, size=self.image_size, seed=seed,
                               num_instances=self.num_instances,
                               object_size=self.object_size, touch=self.touch,
                               textured=self.textured)

    def train_set(self) -> ShapesInstances:
        """One epoch of ``steps * batch_size`` training images (seed 0)."""
        return self.data(self.steps * self.batch_size, seed=0)

    def test_data(self) -> ShapesInstances:
        """The ``test_images`` held-out images (seed 1, disjoint from the training images)."""
        return self.data(self.test_images, seed=1)

    def model(self, *, roi_pooler: str | None = None, mask_loss: str | None = None) -> MaskRCNN:
        """A freshly initialised network (``roi_pooler``, ``mask_loss``: ``None`` for the
        recipe's)."""
        return mask_rcnn(num_classes=ShapesInstances.num_classes, image_size=self.image_size,
                         widths=self.widths, representation_size=self.representation_size,
                         mask_channels=self.mask_channels, anchor_sizes=self.anchor_sizes,
                         rpn_post_nms_top_n=self.rpn_post_nms_top_n,
                         box_batch_size_per_image=self.box_batch_size_per_image,
                         roi_pooler=self.roi_pooler if roi_pooler is None else roi_pooler,
                         mask_loss=self.mask_loss if mask_loss is None else mask_loss)

    def train(self, *, seed: int = 0, roi_pooler: str | None = None, mask_loss: str | None = None,
              device: str | torch.device | None = None,
              log_every: int | None = None) -> tuple[MaskRCNN, History, float]:
        """Seed, build :meth:`model` and train it for ``steps`` steps of ``batch_size`` images.

        Args:
            seed: seeds the weights, the order of the training images and torchvision's
                sampling of anchors and RoIs.
            roi_pooler, mask_loss: override the recipe's (e.g. :data:`MASK_RCNN_VARIANTS`).
            device: where to train (``None``: CUDA, then MPS, then the CPU).
            log_every: print the losses every this many steps (``None``: never).

        Returns:
            the trained network (on ``device``, in training mode), its history (one entry:
            the mean loss, the seconds, the last learning rate; ``step_loss`` the summed
            loss of every step) and the wall seconds of training.
        """
        check_int(seed, "seed", minimum=0)
        if log_every is not None:
            check_positive_int(log_every, "log_every")
        where = pick_device(device) if not isinstance(device, torch.device) else device
        seed_everything(seed)
        net = self.model(roi_pooler=roi_pooler, mask_loss=mask_loss).to(where).train()
        loader = DataLoader(self.train_set(), batch_size=self.batch_size, shuffle=True,
                            drop_last=True, collate_fn=detection_collate,
                            generator=torch.Generator().manual_seed(seed),
                            num_workers=self.workers)
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr,
                                      weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.lr,
                                                       total_steps=self.steps)
        history = History()
        started = time.perf_counter()
        for step, (images, targets) in enumerate(loader, start=1):
            losses = net([image.to(where) for image in images],
                         [{key: value.to(where) for key, value in target.items()}
                          for target in targets])
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            history.step_loss.append(loss.item())
            if log_every is not None and (step % log_every == 0 or step == self.steps):
                print(f"step {step}/{self.steps} ({time.perf_counter() - started:.0f} s): "
                      + ", ".join(f"{key} {value.item():.3f}" for key, value in losses.items()),
                      flush=True)
        seconds = time.perf_counter() - started
        history.epoch.append(1.0)
        history.step.append(len(history.step_loss))
        history.train_loss.append(sum(history.step_loss) / max(len(history.step_loss), 1))
        history.val_miou.append(float("nan"))
        history.val_pixel_accuracy.append(float("nan"))
        history.seconds.append(seconds)
        history.lr.append(optimizer.param_groups[0]["lr"])
        history.stop_reason = "epochs"
        return net, history, seconds

    @staticmethod
    def predict(model: torch.nn.Module, data: Dataset, *, batch_size: int = 16
                ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """``model``'s detections on every image of ``data`` and the targets, on the CPU."""
        check_positive_int(batch_size, "batch_size")
        where = next(model.parameters()).device
        predictions, targets = [], []
        with eval_mode(model), torch.no_grad():
            for images, batch_targets in DataLoader(data, batch_size=batch_size,
                                                    collate_fn=detection_collate):
                found = model([image.to(where) for image in images])
                predictions += [{key: value.cpu() for key, value in item.items()}
                                for item in found]
                targets += batch_targets
        return predictions, targets

    def evaluate(self, model: torch.nn.Module, data: Dataset | None = None, *,
                 batch_size: int = 16) -> dict[str, float]:
        """COCO mask and box AP of ``model`` on ``data`` (``None``: :meth:`test_data`).

        Returns:
            ``mask_AP``, ``mask_AP50``, ``mask_AP75`` (mask IoU), ``box_AP``, ``box_AP50``,
            ``box_AP75`` (box IoU), each in ``[0, 1]``, and ``seconds`` (prediction and
            scoring).
        """
        started = time.perf_counter()
        predictions, targets = self.predict(model, self.test_data() if data is None else data,
                                            batch_size=batch_size)
        scores: dict[str, float] = {}
        for prefix, iou_type in (("mask", "segm"), ("box", "bbox")):
            ap = coco_ap(predictions, targets, iou_type=iou_type)
            scores.update({f"{prefix}_{key}": ap[key] for key in ("AP", "AP50", "AP75")})
        scores["seconds"] = time.perf_counter() - started
        return scores


#: Chapter 11 on a CPU: 64-pixel images, a 1-M-parameter Mask R-CNN, 600 steps of 4 images,
#: about 95 s on two cores (``benchmarks/maskrcnn_ablation.py`` repeats it per variant over
#: seeds). Tuned on this machine: objects of 0.25-0.45 of the side, or 32 sampled RoIs per
#: image, reached mask AP50 0.82-0.87 in the same steps; these objects with 32 RoIs 0.90-0.91
#: (seeds 0, 1), with 64 RoIs 0.93 (seed 0; the chapter prints its own run's).
MASK_RCNN_SHAPES = MaskRCNNShapesRecipe()

#: Chapter 11 on a GPU: 128-pixel images (anchors doubled with them), a wider network and
#: longer training.
MASK_RCNN_SHAPES_GPU = MaskRCNNShapesRecipe(image_size=128, widths=(32, 64, 128),
                                            mask_channels=64, anchor_sizes=(24, 40, 64, 88),
                                            box_batch_size_per_image=64, batch_size=8,
                                            steps=3000)



# --------------------------------------------------------------------------- Chapter 12

#: Chapter 12's networks, by registered name (:func:`segtutor.models.create`), with the
#: keyword arguments of the version trained on the shared benchmark, in the book's order.
#: The VGG-style networks (Chapter 1's small FCN, FCN-8s, SegNet, U-Net, DeepLab v1) are
#: narrowed as in their chapters, with batch norm where the paper had none so that they
#: train from scratch in a few hundred steps; the ResNet networks (DeepLab v3 and v3+,
#: PSPNet) keep torchvision's full-width ResNet-18 -- torchvision has no narrower ResNet --
#: and so are 15-60 times larger: the comparison is of networks as one would use them, not
#: of equal parameter counts.
COMPARISON_NETWORKS: dict[str, dict[str, Any]] = {
    "tiny_fcn": {"width": 16},
    "fcn8s": {"width": 8, "fc_channels": 64, "batch_norm": True, "dropout": 0.1},
    "segnet": {"width": 12},
    "unet": {"base_channels": 12, "depth": 3},
    "deeplab_v1": {"width": 8, "fc_channels": 64, "batch_norm": True, "dropout": 0.1},
    "deeplabv3_resnet50": {"backbone": "resnet18"},
    "deeplabv3plus_resnet50": {"backbone": "resnet18"},
    "pspnet_resnet50": {"backbone": "resnet18"},
}

#: How Chapter 12 names each network of :data:`COMPARISON_NETWORKS` in its tables and plots.
COMPARISON_LABELS: dict[str, str] = {
    "tiny_fcn": "small FCN (ch. 1)", "fcn8s": "FCN-8s", "segnet": "SegNet", "unet": "U-Net",
    "deeplab_v1": "DeepLab v1", "deeplabv3_resnet50": "DeepLab v3 (ResNet-18)",
    "deeplabv3plus_resnet50": "DeepLab v3+ (ResNet-18)", "pspnet_resnet50": "PSPNet (ResNet-18)",
}


@dataclass(frozen=True)
class ComparisonRecipe(_ShapesExperiment):
    """Chapter 12's benchmark: every network of :data:`COMPARISON_NETWORKS` under one budget.

    * **data**: ``Shapes`` of ``image_size`` pixels, ``steps * batch_size`` training images
      (one epoch; seed 0) and ``val_images`` held out (seed 1), as Chapters 6, 7 and 9;
    * **networks** (:meth:`model`): the registered builder with the keyword arguments of
      :data:`COMPARISON_NETWORKS`, freshly initialised (no pre-trained weights);
    * **training**: AdamW at ``lr`` with a one-cycle schedule over the ``steps``,
      cross-entropy, one epoch -- the same data and the same steps for every network;
    * **evaluation** (:meth:`evaluate`, Chapter 6's): pixel accuracy, mIoU, trimap IoU
      (``band`` pixels around the true edges) and Boundary IoU on the held-out images;
    * **costs** (:meth:`costs`): parameters, multiply-adds of one forward pass, CPU latency
      and the activation memory of training, at the ``cost_sizes`` a user would run.

    Raises:
        TypeError, ValueError: a field of the wrong type or out of range.
    """

    image_size: int = 64
    batch_size: int = 8
    steps: int = 240
    lr: float = 5e-3
    val_images: int = 64
    band: int = 2
    cost_sizes: tuple[int, ...] = (256, 512)

    def __post_init__(self) -> None:
        for name in ("image_size", "batch_size", "steps", "val_images", "band"):
            check_positive_int(getattr(self, name), name)
        check_positive_number(self.lr, "lr")
        if not isinstance(self.cost_sizes, tuple) or not self.cost_sizes:
            raise TypeError(f"cost_sizes must be a non-empty tuple of image sides, got "
                            f"{self.cost_sizes!r}")
        for size in self.cost_sizes:
            check_positive_int(size, "cost_sizes entry")

    evaluate = FCNShapesRecipe.evaluate  # Chapter 6's scores

    def model(self, name: str) -> torch.nn.Module:
        """A freshly initialised network ``name`` of :data:`COMPARISON_NETWORKS`.

        Raises:
            ValueError: ``name`` is not one of them.
        """
        check_choice(name, "network", tuple(COMPARISON_NETWORKS))
        return create_model(name, num_classes=Shapes.num_classes, **COMPARISON_NETWORKS[name])

    def costs(self, name: str, *, min_run_time: float = 0.3,
              device: str | torch.device = "cpu") -> dict[str, float]:
        """What network ``name`` costs at each side ``s`` of ``cost_sizes`` on ``device``.

        A fresh network (the costs do not depend on the weights), on one random image:

        * ``parameters``;
        * ``gmacs_{s}``: multiply-adds of one forward pass, in units of 10**9, *counted*
          from the shapes (:func:`~segtutor.bench.count_flops` / 2), not measured;
        * ``latency_ms_{s}``: median wall time of one forward pass in ``eval()`` mode under
          ``torch.inference_mode()``, after a warm-up (:func:`~segtutor.bench.median_seconds`,
          at the current ``torch.get_num_threads()`` on a CPU; CUDA is synchronised);
        * ``activation_mib_{s}``: the bytes autograd keeps for the backward pass of one
          image in training mode (:func:`~segtutor.bench.saved_for_backward_bytes`, measured
          on two images -- an image-pooling batch norm cannot train on one -- and halved).

        Raises:
            ValueError: ``name`` is not one of :data:`COMPARISON_NETWORKS`.
        """
        check_number(min_run_time, "min_run_time", minimum=0)
        where = pick_device(str(device))
        net = self.model(name).to(where)
        result: dict[str, float] = {"parameters": count_parameters(net)}
        for size in self.cost_sizes:
            image = torch.randn(1, 3, size, size, device=where)
            with eval_mode(net), torch.inference_mode():
                result[f"gmacs_{size}"] = count_flops(net, image) / 2e9
                result[f"latency_ms_{size}"] = 1000 * median_seconds(
                    lambda image=image: net(image), min_run_time=min_run_time)
            net.train()
            result[f"activation_mib_{size}"] = saved_for_backward_bytes(
                net, image.expand(2, -1, -1, -1).contiguous()) / 2 / 2**20
        return result


#: Chapter 12 on a CPU: 64-pixel images, 240 steps of 8 (``benchmarks/compare_all.py``
#: repeats it over seeds); costs at 256 and 512 pixels.
COMPARISON = ComparisonRecipe()

#: Chapter 12 on a GPU: 192-pixel images and longer training.
COMPARISON_GPU = ComparisonRecipe(image_size=192, steps=3000)
