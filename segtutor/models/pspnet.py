"""PSPNet: the pyramid pooling module on a dilated ResNet (Zhao, Shi, Qi, Wang & Jia).

Paper: "Pyramid Scene Parsing Network", CVPR 2017, https://arxiv.org/abs/1612.01105.

A dilated ResNet (output stride 8) gives a feature map whose receptive field is large in
theory but, the paper argues, much smaller in practice, so a pixel's prediction misses the
scene around it. The **pyramid pooling module** (:class:`PyramidPooling`, the paper's
Fig. 3) adds that context explicitly: the map is average-pooled to ``1x1``, ``2x2``, ``3x3``
and ``6x6`` bins, each pooled map is reduced by a 1x1 convolution to a quarter of the
channels (batch norm, ReLU), upsampled bilinearly back to the map's size and concatenated
with the map itself; a 3x3 convolution and a 1x1 classifier then predict every pixel from
its own features *and* four summaries of its surroundings, the ``1x1`` bin being the whole
image.

**Adaptive pooling windows.** ``nn.AdaptiveAvgPool2d(bins)`` splits a side of ``size``
positions into ``bins`` windows ``[floor(i * size / bins), ceil((i + 1) * size / bins))``
(:func:`adaptive_pool_windows`); when ``bins`` does not divide ``size`` neighbouring windows
overlap by one position (and their lengths may differ). Only when it divides is the pooling
a fixed ``AvgPool2d(kernel, stride)`` (:func:`fixed_pooling_for`), which matters for export
(see there).

**The batch-of-one pitfall.** The ``1x1`` bin pools each image to one value per channel,
so in training mode its batch norm normalises over the batch alone and fails for a batch
of one image, as DeepLab v3's image pooling does
(:class:`~segtutor.models.deeplab.ASPPPooling`); :class:`PyramidStage` raises a
``ValueError`` that names the fix.

**The networks.** :func:`pspnet_resnet50` and :func:`pspnet_resnet101` build :class:`PSPNet`:
torchvision's ResNet dilated to output stride 8
(:func:`~segtutor.models.resnet.resnet_backbone`), :class:`PSPHead` on layer4 and, with
``aux_loss=True``, the paper's auxiliary loss head on layer3 (:meth:`PSPNet.forward_with_aux`).
How they differ from the Caffe original and from segmentation_models_pytorch's ``PSPNet`` is
in :func:`pspnet_resnet50`'s docstring.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from .._checks import (
    check_bool,
    check_choice,
    check_optional_int,
    check_positive_int,
    check_probability,
)
from ..ops import conv_bn_relu
from .deeplab import ASPPPooling, AuxHead, BackboneWithHeads
from .registry import register
from .resnet import RESNETS, ResNetBackbone, layer_channels, resnet_backbone

__all__ = [
    "AUX_WEIGHT",
    "HEAD_CHANNELS",
    "POOLINGS",
    "PSPNet",
    "PSP_BINS",
    "PSP_OUTPUT_STRIDES",
    "PSPHead",
    "PyramidPooling",
    "PyramidStage",
    "adaptive_pool_windows",
    "fixed_pooling_for",
    "pspnet_resnet50",
    "pspnet_resnet101",
]

#: The paper's pyramid: bins of 1x1, 2x2, 3x3 and 6x6.
PSP_BINS = (1, 2, 3, 6)
#: The pooling of the pyramid's stages: average (the paper's choice) or max (its ablation).
POOLINGS = ("avg", "max")
#: Channels of the 3x3 convolution after the pyramid (512).
HEAD_CHANNELS = 512
#: Output strides of the backbone: 8 (the paper) or 16 (cheaper).
PSP_OUTPUT_STRIDES = (8, 16)
#: Weight of the auxiliary (layer3) loss in training: ``loss(out) + 0.4 * loss(aux)``.
AUX_WEIGHT = 0.4


# --------------------------------------------------------------------------- pooling windows


def adaptive_pool_windows(size: int, bins: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` windows adaptive pooling uses to split ``size`` positions in ``bins``.

    PyTorch's ``adaptive_avg_pool2d`` (and ``adaptive_max_pool2d``) give output ``i`` the
    input positions ``start = floor(i * size / bins)`` to ``end = ceil((i + 1) * size / bins)``
    (exclusive), along each axis independently. When ``bins`` divides ``size`` these are
    ``bins`` disjoint windows of ``size / bins`` positions; otherwise neighbouring windows
    overlap by one position and may differ in length (``size=5, bins=3``: ``[0, 2), [1, 4),
    [3, 5)``); with ``bins > size`` positions repeat.

    Args:
        size: the input's length along the axis.
        bins: the output's length along the axis.

    Returns:
        ``bins`` pairs ``(start, end)``.

    Raises:
        TypeError, ValueError: ``size`` or ``bins`` is not a positive int.
    """
    check_positive_int(size, "size")
    check_positive_int(bins, "bins")
    return [((i * size) // bins, -((-(i + 1) * size) // bins)) for i in range(bins)]


def fixed_pooling_for(size: int, bins: int) -> tuple[int, int]:
    """``(kernel, stride)`` of the fixed pooling equal to adaptive pooling of ``size`` into ``bins``.

    When ``bins`` divides ``size``, ``AvgPool2d(kernel_size=size // bins, stride=size // bins)``
    computes exactly what ``AdaptiveAvgPool2d(bins)`` does (the same disjoint windows, see
    :func:`adaptive_pool_windows`); otherwise no fixed kernel and stride do, since the
    adaptive windows differ in length or overlap.

    **Export.** ONNX's ``AveragePool`` and many inference runtimes need a fixed kernel and
    stride, so an exported PSPNet has its pyramid fixed to one feature-map size, and with it
    the input size. PSPNet's ``473 x 473`` crops fit: ``473 = 8 * 59 + 1`` gives a
    ``60 x 60`` map at output stride 8 (torchvision's ResNet: ``473 -> 237 -> 119 -> 60``),
    which 1, 2, 3 and 6 all divide (kernels 60, 30, 20 and 10). Each of the three halvings
    rounds up, so every input from 473 to 480 pixels gives 60, and 472 gives 59, which no bin
    but 1 divides. Implementations either export at such a fixed input size, or resize (or pad)
    any other input to one before the network and the logits back after it;
    segmentation_models_pytorch's ``PSPBlock`` pools with ``F.interpolate(mode="area")``
    instead while ``torch.onnx`` exports (its source says adaptive pooling "is often
    problematic during export").

    Args:
        size: the feature map's length along the axis (e.g. 60).
        bins: the pyramid level's bins along the axis (e.g. 6).

    Returns:
        ``(kernel, stride)``, both ``size // bins``.

    Raises:
        TypeError, ValueError: ``size`` or ``bins`` is not a positive int.
        ValueError: ``bins`` does not divide ``size``.
    """
    check_positive_int(size, "size")
    check_positive_int(bins, "bins")
    if size % bins:
        raise ValueError(
            f"size must be a multiple of bins={bins} for a fixed pooling, got size={size}: "
            f"adaptive pooling then uses the overlapping windows "
            f"{adaptive_pool_windows(size, bins)}, which no fixed kernel and stride give; "
            "resize the input so that the feature map is a multiple of every bin "
            "(e.g. 473 x 473 -> 60 x 60 at output stride 8), or keep adaptive pooling")
    return size // bins, size // bins


# --------------------------------------------------------------------------- the pyramid


def _check_bins(bins: object) -> tuple[int, ...]:
    if not isinstance(bins, (tuple, list)):
        raise TypeError(f"bins must be a tuple or list of positive ints, got {bins!r} "
                        f"({type(bins).__name__})")
    if not bins:
        raise ValueError(f"bins must be a non-empty tuple or list of positive ints, got {bins!r}")
    return tuple(check_positive_int(b, "each bin") for b in bins)


class PyramidStage(ASPPPooling):
    """One level of the pyramid: pool to ``bins x bins``, 1x1 conv, BN, ReLU, upsample back.

    DeepLab v3's image pooling (:class:`~segtutor.models.deeplab.ASPPPooling`) is this stage
    with ``bins=1``; the class extends it, so the layers, ``forward`` and the batch check are
    the same code. Layers (``state_dict`` keys): ``0`` the adaptive pooling (average or max),
    ``1`` the 1x1 convolution (no bias: batch norm follows), ``2`` the ``BatchNorm2d``, ``3``
    the ReLU; ``forward`` resizes the result to the input's size (bilinear,
    ``align_corners=False``).

    Args:
        in_channels: channels of the feature map.
        out_channels: channels after the 1x1 convolution.
        bins: the pooled map is ``bins x bins``.
        pooling: ``"avg"`` (the paper) or ``"max"``.

    Attributes:
        bins: as given.
        pooling: as given.
    """

    def __init__(self, in_channels: int, out_channels: int, bins: int,
                 pooling: str = "avg") -> None:
        check_positive_int(bins, "bins")
        check_choice(pooling, "pooling", POOLINGS)
        super().__init__(in_channels, out_channels)
        self[0] = nn.AdaptiveAvgPool2d(bins) if pooling == "avg" else nn.AdaptiveMaxPool2d(bins)
        self.bins = bins
        self.pooling = pooling

    def check_batch(self, batch_size: int) -> None:
        """Raise ``ValueError`` if batch norm would train on one value per channel.

        That happens for the ``1x1`` bin with a batch of one image (in training mode):
        batch norm then normalises ``batch_size * bins * bins == 1`` values.
        """
        if batch_size * self.bins * self.bins == 1 and self[2].training:
            raise ValueError(
                "the pyramid pooling's 1x1 bin cannot train on a batch of 1 image: it pools "
                "each image to 1x1, so its batch norm sees one value per channel. Use a batch "
                "size >= 2, or put batch norm in eval mode (model.eval() for inference, or "
                "freeze the BatchNorm2d layers when fine-tuning with single images)")


class PyramidPooling(nn.Module):
    """The pyramid pooling module (PSPNet's Fig. 3): the map concatenated with its pyramid.

    One :class:`PyramidStage` per entry of ``bins`` (``stages.0`` ... in the given order),
    each pooling the ``[N, in_channels, h, w]`` map to ``b x b``, reducing it to
    ``out_channels`` (default ``in_channels // len(bins)``: 512 of 2048 for the paper's four
    levels) and upsampling it back; ``forward`` returns ``cat([x, stage_1(x), ...], dim=1)``
    with ``in_channels + len(bins) * out_channels`` channels (``2 * in_channels`` for the
    default). Any ``h, w >= 1`` works (adaptive pooling repeats positions when ``b > h``).

    Args:
        in_channels: channels of the feature map (2048 for ResNet-50/101's layer4).
        bins: the pyramid's levels, ``(1, 2, 3, 6)`` in the paper.
        pooling: ``"avg"`` (the paper's choice) or ``"max"``; the paper's ablation
            (its Table 1) compares the two.
        out_channels: channels of *each* stage; ``None`` for ``in_channels // len(bins)``.

    Attributes:
        bins, pooling: as given.
        stage_channels: channels of each stage.
        total_channels: channels of the output.

    Raises:
        TypeError, ValueError: ``in_channels`` or ``out_channels`` not a positive int, bins
            that are not a non-empty tuple or list of positive ints, an unknown ``pooling``,
            or ``in_channels < len(bins)`` with the default ``out_channels``.
    """

    def __init__(self, in_channels: int, bins: Sequence[int] = PSP_BINS, *,
                 pooling: str = "avg", out_channels: int | None = None) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        self.bins = _check_bins(bins)
        self.pooling = check_choice(pooling, "pooling", POOLINGS)
        check_optional_int(out_channels, "out_channels", minimum=1)
        if out_channels is None:
            out_channels = in_channels // len(self.bins)
            if out_channels == 0:
                raise ValueError(f"in_channels must be >= len(bins) = {len(self.bins)} for the "
                                 f"default out_channels = in_channels // len(bins), got "
                                 f"in_channels={in_channels}; give out_channels")
        self.stage_channels = out_channels
        self.total_channels = in_channels + len(self.bins) * out_channels
        self.stages = nn.ModuleList(
            PyramidStage(in_channels, out_channels, b, pooling) for b in self.bins)

    def receptive_field_layers(self) -> list[nn.Module]:
        """The local path only: the input, passed on unchanged (an empty main path).

        The pooled stages are left out: their field depends on the input's size (a ``b x b``
        bin reads about ``1/b`` of the map in each direction, the ``1x1`` bin all of it), so
        no fixed size, stride and padding describes them.
        :func:`~segtutor.arithmetic.receptive_field` of a PSPNet is therefore the field of
        its convolutions (what a pixel sees without the pyramid's context), while
        :func:`~segtutor.arithmetic.measure_receptive_field` of the whole network finds the
        whole image.
        """
        return []

    def check_batch(self, batch_size: int) -> None:
        """Every stage's :meth:`PyramidStage.check_batch` (the 1x1 bin's, in practice)."""
        for stage in self.stages:
            stage.check_batch(batch_size)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, total_channels, h, w]``: ``x`` and every stage's output, concatenated."""
        self.check_batch(x.shape[0])
        return torch.cat([x, *(stage(x) for stage in self.stages)], dim=1)


# --------------------------------------------------------------------------- the network


class PSPHead(nn.Sequential):
    """PSPNet's head: the pyramid, a 3x3 convolution (BN, ReLU), dropout, the 1x1 classifier.

    Keys: ``pyramid`` (:class:`PyramidPooling`), ``bottleneck`` (a 3x3 convolution from
    ``pyramid.total_channels`` to ``channels``, batch norm, ReLU), ``dropout`` (0.1),
    ``classifier`` (1x1 to the classes, with a bias).

    Args:
        in_channels: the backbone's channels (2048 for ResNet-50/101's layer4).
        num_classes: the classes.
        bins: the pyramid's levels.
        pooling: the pyramid's pooling, ``"avg"`` or ``"max"``.
        channels: channels of the 3x3 convolution (512).
        dropout: dropout probability before the classifier (0.1).
    """

    def __init__(self, in_channels: int, num_classes: int, bins: Sequence[int] = PSP_BINS, *,
                 pooling: str = "avg", channels: int = HEAD_CHANNELS,
                 dropout: float = 0.1) -> None:
        pyramid = PyramidPooling(in_channels, bins, pooling=pooling)
        super().__init__(OrderedDict([
            ("pyramid", pyramid),
            ("bottleneck", conv_bn_relu(pyramid.total_channels, channels, 3)),
            ("dropout", nn.Dropout(check_probability(dropout, "dropout"))),
            ("classifier", nn.Conv2d(channels, check_positive_int(num_classes, "num_classes"), 1)),
        ]))


class PSPNet(BackboneWithHeads):
    """PSPNet: a dilated ResNet, the pyramid pooling head, logits resized to the input.

    ``model(x)`` returns the logits ``[N, num_classes, H, W]`` (the model contract): the
    head's stride-8 (or 16) scores resized bilinearly (``align_corners=False``) to the input,
    for any ``H, W >= 1``. With an auxiliary head, :meth:`forward_with_aux` returns
    ``(out, aux)`` from one backbone pass, for the paper's deeply supervised training loss
    ``loss(out) + 0.4 * loss(aux)`` (:data:`AUX_WEIGHT`). Both come from
    :class:`~segtutor.models.deeplab.BackboneWithHeads`, which :class:`DeepLabV3` shares.

    Args:
        backbone: a :class:`~segtutor.models.resnet.ResNetBackbone` returning
            ``{"out": layer4}`` (and ``"aux": layer3`` with an auxiliary head).
        classifier: :class:`PSPHead`.
        aux_classifier: :class:`~segtutor.models.deeplab.AuxHead` on layer3, or ``None``.

    Attributes:
        output_stride: the backbone's, 8 or 16.
        bins: the pyramid's levels.
        min_size: 1.
    """

    def __init__(self, backbone: ResNetBackbone, classifier: PSPHead,
                 aux_classifier: AuxHead | None = None) -> None:
        super().__init__(backbone, classifier, aux_classifier)
        self.num_classes = classifier.classifier.out_channels
        self.bins = classifier.pyramid.bins

    def receptive_field_layers(self) -> list[nn.Module]:
        """Backbone, then the head without the pyramid's pooled stages: the convolutional field.

        See :meth:`PyramidPooling.receptive_field_layers`: the pooled stages' fields depend
        on the input's size, and the ``1x1`` bin's global context extends what each output
        reads to the whole image.
        """
        return [self.backbone, self.classifier]


def _pspnet(*, backbone: str, num_classes: int, aux_loss: bool,
            weights_backbone: str | WeightsEnum | None, progress: bool, in_channels: int,
            output_stride: int, bins: Sequence[int], pooling: str) -> PSPNet:
    """The two builders: check everything cheap, then build the backbone and the heads."""
    check_positive_int(num_classes, "num_classes")
    check_bool(aux_loss, "aux_loss")
    check_bool(progress, "progress")
    check_choice(output_stride, "output_stride", PSP_OUTPUT_STRIDES)
    check_choice(backbone, "backbone", tuple(RESNETS))
    bins = _check_bins(bins)
    check_choice(pooling, "pooling", POOLINGS)
    return_layers = {"layer4": "out", **({"layer3": "aux"} if aux_loss else {})}
    features = resnet_backbone(backbone, output_stride=output_stride,
                               weights_backbone=weights_backbone, in_channels=in_channels,
                               return_layers=return_layers, progress=progress)
    channels = layer_channels(backbone)
    return PSPNet(features, PSPHead(channels["layer4"], num_classes, bins, pooling=pooling),
                  AuxHead(channels["layer3"], num_classes) if aux_loss else None)


_TINY = {"backbone": "resnet18"}


@register(tiny_kwargs=_TINY)
def pspnet_resnet50(*, num_classes: int = 21, aux_loss: bool = False,
                    weights_backbone: str | WeightsEnum | None = None, progress: bool = True,
                    in_channels: int = 3, output_stride: int = 8, backbone: str = "resnet50",
                    bins: Sequence[int] = PSP_BINS, pooling: str = "avg") -> PSPNet:
    """PSPNet with a dilated ResNet-50 (https://arxiv.org/abs/1612.01105).

    torchvision's ResNet-50 at output stride 8 (layer3 dilated by 2, layer4 by 4; 16 allowed:
    layer4 by 2), :func:`~segtutor.models.resnet.resnet_backbone`; on layer4 (2048 channels)
    :class:`PSPHead`: :class:`PyramidPooling` with bins 1, 2, 3, 6 (four stages of 512
    channels: 4096 channels out), a 3x3 convolution to 512 (BN, ReLU), dropout 0.1, a 1x1
    classifier; the stride-8 scores are resized bilinearly to the input. ``aux_loss=True``
    adds the paper's deep supervision: :class:`~segtutor.models.deeplab.AuxHead` on layer3
    (a 3x3 convolution 1024 -> 256, BN, ReLU, dropout 0.1, 1x1 to the classes), read through
    :meth:`PSPNet.forward_with_aux` and weighted 0.4 in the training loss.

    **Parameters** for 21 classes: 46,592,597 (48,957,802 with the auxiliary head) =
    ResNet-50 without its ``fc`` 23,508,032 + the pyramid ``4 * (2048 * 512 + 2 * 512)`` =
    4,198,400 + the 3x3 convolution ``9 * 4096 * 512 + 2 * 512`` = 18,875,392 + the
    classifier ``512 * 21 + 21`` = 10,773 (+ the auxiliary head ``9 * 1024 * 256 + 2 * 256 +
    256 * 21 + 21`` = 2,365,205). The 3x3 convolution on the 4096 concatenated channels holds
    more weights than the rest of the head and almost as many as the backbone.

    **The original.** The paper's Caffe ResNets have a deep stem -- three 3x3 convolutions
    (64, 64 and 128 channels in the released prototxts) in place of the single 7x7
    convolution, like the later "ResNet-C/D" variants -- so its ImageNet weights are not
    torchvision's and do not load here; torchvision's ResNet has the 7x7 stem (and, the
    "v1.5" variant, puts a downsampling block's stride in its 3x3 convolution rather than
    the first 1x1). The training recipe (learning-rate schedule, augmentation, crop size) is
    not part of the network.

    **Compared with segmentation_models_pytorch** ``PSPNet(encoder_name="resnet50",
    encoder_weights=None)`` (read from its source, version 0.6): smp's default
    ``encoder_depth=3`` stops the encoder after layer2 -- the pyramid pools the *undilated*
    stride-8 layer2 features (512 channels; layer3 and layer4 are built, and counted in its
    parameters, but never run), where PSPNet pools the dilated layer4 (2048 channels, a much
    larger receptive field); its stages have ``512 // 4 = 128`` channels, the ``1x1`` stage
    without batch norm (a 1x1 convolution with a bias, so a batch of one trains), and are
    upsampled with ``align_corners=True`` and concatenated *before* the input; the pyramid's
    1024 channels are fused by a **1x1** convolution to 512 (BN, ReLU) and ``Dropout2d(0.2)``,
    the classifier is a **3x3** convolution, and the logits are upsampled by a fixed factor 8
    (``align_corners=True``), so the input's height and width must be multiples of 8; there
    is no deep-supervision head (smp's ``aux_params`` is an image-level classifier).

    Args:
        num_classes: the classes (21 for Pascal VOC, 150 for ADE20K).
        aux_loss: build the auxiliary head on layer3.
        weights_backbone: ``None`` or ImageNet weights for the ResNet (``"IMAGENET1K_V1"``,
            ``"DEFAULT"`` or a torchvision ``ResNet50_Weights`` member), downloaded through
            torchvision's weights API; the heads start random.
        progress: show a download progress bar.
        in_channels: channels of the input images (3 for pretrained weights).
        output_stride: 8 (default, the paper) or 16.
        backbone: the ResNet (``"resnet50"``; ``"resnet18"`` for CPU experiments).
        bins: the pyramid's levels (``(1, 2, 3, 6)``).
        pooling: the pyramid's pooling, ``"avg"`` (the paper) or ``"max"``.

    Raises:
        TypeError, ValueError: an argument of the wrong type or value (an ``output_stride``
            other than 8 or 16, an unknown backbone, bad bins), or pretrained weights with
            ``in_channels != 3``.
        WeightsUnavailableError: the backbone weights cannot be downloaded.
    """
    return _pspnet(backbone=backbone, num_classes=num_classes, aux_loss=aux_loss,
                   weights_backbone=weights_backbone, progress=progress,
                   in_channels=in_channels, output_stride=output_stride, bins=bins,
                   pooling=pooling)


@register(tiny_kwargs=_TINY)
def pspnet_resnet101(*, num_classes: int = 21, aux_loss: bool = False,
                     weights_backbone: str | WeightsEnum | None = None, progress: bool = True,
                     in_channels: int = 3, output_stride: int = 8, backbone: str = "resnet101",
                     bins: Sequence[int] = PSP_BINS, pooling: str = "avg") -> PSPNet:
    """PSPNet with a dilated ResNet-101, the paper's Pascal VOC and Cityscapes model (https://arxiv.org/abs/1612.01105).

    As :func:`pspnet_resnet50` with torchvision's ResNet-101 (``ResNet101_Weights``):
    65,584,725 parameters (67,949,930 with the auxiliary head) for 21 classes = ResNet-101
    without its ``fc`` 42,500,160 + the same head 23,084,565 (+ 2,365,205).
    """
    return _pspnet(backbone=backbone, num_classes=num_classes, aux_loss=aux_loss,
                   weights_backbone=weights_backbone, progress=progress,
                   in_channels=in_channels, output_stride=output_stride, bins=bins,
                   pooling=pooling)
