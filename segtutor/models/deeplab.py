"""DeepLab v1, v2, v3 and v3+ (Chen, Papandreou, Kokkinos, Murphy, Yuille, Schroff, Adam, Zhu).

Papers:

* v1, DeepLab-LargeFOV: "Semantic Image Segmentation with Deep Convolutional Nets and Fully
  Connected CRFs", ICLR 2015, https://arxiv.org/abs/1412.7062;
* v2, ASPP: "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous
  Convolution, and Fully Connected CRFs", TPAMI 2017, https://arxiv.org/abs/1606.00915;
* v3: "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017,
  https://arxiv.org/abs/1706.05587;
* v3+: "Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation",
  ECCV 2018, https://arxiv.org/abs/1802.02611.

The idea all four share is the *atrous* ("hole", dilated) convolution: a 3x3 filter whose taps
lie ``rate`` pixels apart sees a ``2 * rate + 1`` wide window with nine weights. Striding is
removed from the last stages of an ImageNet network and its later filters are dilated
instead, so the features stay at output stride 8 (or 16) with the receptive field of the
original network, and the classifier's large windows come from large rates, not large
kernels.

* :func:`deeplab_v1` (DeepLab-LargeFOV) on VGG16: pool4 and pool5 with stride 1, conv5
  dilated by 2, fc6 a 3x3 convolution at rate 12 with 1024 channels, fc7 1x1 with 1024,
  fc8 the classes; output stride 8, logits upsampled bilinearly to the input.
* :func:`deeplab_v2` (ASPP-L) on the same VGG16: four fc6-fc7-fc8 branches at rates 6, 12, 18,
  24 whose class scores are **summed**; ``backbone="resnet101"`` is the paper's ResNet-101
  model (four 3x3 classifiers at those rates on layer4 at output stride 8, summed).
* :func:`deeplabv3_resnet50`, :func:`deeplabv3_resnet101`: ResNet at output stride 8 or 16;
  ASPP with batch norm and an image-pooling branch; the ``state_dict`` is torchvision's.
* :func:`deeplabv3plus_resnet50`: v3's encoder at output stride 16 plus a decoder that
  refines the stride-4 features of layer1.

**Sizes and alignment.** The Caffe models of v1/v2 upsample the stride-8 scores with an
``Interp`` layer (align-corners bilinear) and were run on sizes ``8k + 1`` (321, 513), where
output pixel ``y`` reads score ``y / 8`` exactly. Here, as everywhere in the book, the logits
are resized to the input with ``F.interpolate(..., mode="bilinear", align_corners=False)``
for any size; at ``8k + 1`` the two differ by a fraction of a pixel.

**Two pitfalls, with helpers.** The image-pooling branch of ASPP averages each image to a
single 1x1 map before its batch norm, so in training mode a batch of one image gives batch
norm one value per channel and fails; :class:`ASPPPooling` raises a ``ValueError`` naming
the fix (a batch of at least 2, or batch norm in eval mode). And a 3x3 atrous filter whose
rate approaches the feature map's size has only its centre tap on the map (v3 paper, Fig. 4):
:func:`effective_taps` counts the taps that fall on the map; the models report their rates
in ``model.atrous_rates``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import VGG16_Weights, WeightsEnum
from torchvision.models.segmentation import (
    DeepLabV3_ResNet50_Weights,
    DeepLabV3_ResNet101_Weights,
)

from .._checks import (
    check_bool,
    check_choice,
    check_int_pair,
    check_optional_bool,
    check_positive_int,
    check_probability,
)
from ..ops import conv_bn_relu
from ._contract import check_input
from .fcn import vgg16_state_to_fcn
from .registry import register
from .resnet import RESNETS, ResNetBackbone, layer_channels, resnet_backbone
from .vgg import (
    FULL_WIDTH,
    check_pretrained_fits,
    feature_channels,
    init_vgg_weights,
    load_weights,
    make_features,
    resolve_weights,
)

__all__ = [
    "ASPP",
    "ASPP_RATES",
    "LARGEFOV_RATE",
    "V2_RATES",
    "VGG_OUTPUT_STRIDES",
    "ASPPConv",
    "ASPPPooling",
    "AtrousFCHead",
    "AuxHead",
    "BackboneWithHeads",
    "BranchSum",
    "DeepLab",
    "DeepLabHead",
    "DeepLabV3",
    "DeepLabV3Plus",
    "DeepLabV3PlusDecoder",
    "EffectiveTaps",
    "aspp_rates",
    "deeplab_v1",
    "deeplab_v2",
    "deeplab_vgg16_features",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3plus_resnet50",
    "effective_taps",
    "largefov_rate",
]

#: fc6's rate in DeepLab-LargeFOV (v1): a 3x3 filter spanning 25x25 pool5 cells.
LARGEFOV_RATE = 12
#: The four branches of ASPP-L (v2).
V2_RATES = (6, 12, 18, 24)
#: v3/v3+ ASPP rates at output stride 16; doubled at output stride 8 (see :func:`aspp_rates`).
ASPP_RATES = (6, 12, 18)
#: Channels of every ASPP branch and of v3's head (256 in the papers and torchvision).
ASPP_CHANNELS = 256
#: Channels the v3+ decoder reduces the low-level (layer1) features to.
LOW_LEVEL_CHANNELS = 48
#: Output strides of v3 and v3+ (the backbone's 32 is too coarse for them).
V3_OUTPUT_STRIDES = (8, 16)
#: Output strides of the VGG16 backbone of v1/v2 (8 is DeepLab's; 16 and 32 for comparison).
VGG_OUTPUT_STRIDES = (8, 16, 32)

_VGG = "vgg16"


# --------------------------------------------------------------------------- rates and taps


def aspp_rates(output_stride: int) -> tuple[int, int, int]:
    """The atrous rates of v3/v3+'s ASPP: (6, 12, 18) at output stride 16, (12, 24, 36) at 8.

    The v3 paper trains at output stride 16 and doubles the rates when it evaluates at 8, so
    the filters keep covering the same part of the image; torchvision's DeepLabV3 (output
    stride 8) uses (12, 24, 36).

    Raises:
        ValueError: ``output_stride`` is not 8 or 16.
    """
    check_choice(output_stride, "output_stride", V3_OUTPUT_STRIDES)
    return tuple(rate * 16 // output_stride for rate in ASPP_RATES)  # type: ignore[return-value]


class EffectiveTaps(NamedTuple):
    """How many taps of an atrous filter fall on the feature map (the rest read zero padding).

    Attributes:
        centre: taps on the map for the filter centred on the map's middle position.
        mean: taps on the map averaged over every position of the map.
        taps: the filter's taps in all (9 for 3x3).
    """

    centre: int
    mean: float
    taps: int


def _taps_per_position(rate: int, size: int, kernel_size: int) -> list[int]:
    """Along one axis: for each position, how many of the ``kernel_size`` taps are inside."""
    half = (kernel_size - 1) // 2
    return [sum(0 <= i + (t - half) * rate < size for t in range(kernel_size)) for i in range(size)]


def effective_taps(rate: int, feature_size: int | tuple[int, int],
                   kernel_size: int = 3) -> EffectiveTaps:
    """Count the taps of a ``kernel_size`` atrous filter at ``rate`` that land on the map.

    With "same" zero padding every tap that falls outside the ``H x W`` feature map reads a
    zero. A 3x3 filter at rate ``r`` on a map of size ``n`` has all 9 taps inside only at
    positions ``r <= i < n - r`` (along each axis); once ``r >= n`` only the centre tap is
    left at every position and the filter is a 1x1 convolution (v3 paper, Sec. 3.3 and
    Fig. 4: the valid weights on a 65x65 map as the rate grows). On that map the filter at
    the centre keeps all 9 taps up to rate 32 and only 1 from rate 33.
    The count factorises over the axes: taps(i, j) = taps_h(i) * taps_w(j).

    Args:
        rate: the dilation (1 is an ordinary convolution).
        feature_size: ``n`` or ``(H, W)`` of the feature map the filter slides over.
        kernel_size: the filter's (odd) size; 3 in DeepLab.

    Returns:
        :class:`EffectiveTaps`: at the centre position ``((H - 1) // 2, (W - 1) // 2)``,
        the mean over all ``H * W`` positions, and the filter's ``kernel_size ** 2`` taps.

    Raises:
        TypeError, ValueError: ``rate`` or a size that is not a positive int, or an even
            ``kernel_size``.
    """
    check_positive_int(rate, "rate")
    height, width = check_int_pair(feature_size, "feature_size", minimum=1)
    check_positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive int, got {kernel_size}")
    rows = _taps_per_position(rate, height, kernel_size)
    cols = _taps_per_position(rate, width, kernel_size)
    centre = rows[(height - 1) // 2] * cols[(width - 1) // 2]
    mean = (sum(rows) / height) * (sum(cols) / width)
    return EffectiveTaps(centre, mean, kernel_size * kernel_size)


# --------------------------------------------------------------------------- v1 and v2 parts


def deeplab_vgg16_features(*, in_channels: int = 3, width: int = FULL_WIDTH,
                           pool5a: bool = True, output_stride: int = 8,
                           batch_norm: bool = False) -> nn.Sequential:
    """VGG16's convolutional part with DeepLab's "hole algorithm" (output stride 8).

    Follows the released Caffe prototxts (DeepLab-LargeFOV ``train.prototxt``; DeepLab v2
    ``VGG16 ASPP-L``): every max pooling is 3x3 with padding 1 (Caffe rounds up: here
    ``ceil_mode=True``), with stride 2 for pool1-pool3 and stride 1 for pool4 and pool5;
    conv5_1-conv5_3 are dilated by 2 (they see pool4's stride-8 map as VGG's conv5 saw the
    stride-16 one); LargeFOV then has ``pool5a``, a 3x3 average pooling with stride 1 and
    padding 1, which ASPP-L does not. The layer indices are torchvision's ``vgg16().features``
    (``0`` conv1_1, ``2`` conv1_2, ... ``28`` conv5_3; ``pool5a`` is appended as ``31``), so
    ImageNet VGG16 weights load unchanged.

    ``output_stride`` 16 or 32 keeps pool4 (and pool5) at stride 2 instead, as VGG16 itself
    has them, so one network can be compared at the three output strides (Chapter 9);
    ``batch_norm`` puts a ``BatchNorm2d`` after every convolution (VGG16-BN, not in the
    paper), which lets a narrow copy train from scratch on a CPU.

    Args:
        in_channels: channels of the input image.
        width: channels of the first stage (64 in VGG16); every stage scales by ``width / 64``.
        pool5a: append LargeFOV's average pooling.
        output_stride: 8 (DeepLab), 16 (pool5 with stride 1 only) or 32 (no holes).
        batch_norm: batch norm after every convolution.

    Raises:
        TypeError, ValueError: ``in_channels`` or ``width`` not a positive int,
            ``output_stride`` not one of 8, 16, 32, or a flag that is not a bool.
    """
    check_bool(pool5a, "pool5a")
    check_choice(output_stride, "output_stride", VGG_OUTPUT_STRIDES)
    features = make_features(in_channels=in_channels, width=width, batch_norm=batch_norm)
    pools = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    strides = {8: (2, 2, 2, 1, 1), 16: (2, 2, 2, 2, 1), 32: (2, 2, 2, 2, 2)}[output_stride]
    for index, stride in zip(pools, strides, strict=True):
        features[index] = nn.MaxPool2d(3, stride=stride, padding=1, ceil_mode=True)
    if output_stride == 8:
        conv5 = [m for m in features[pools[3] + 1:pools[4]] if isinstance(m, nn.Conv2d)]
        for conv in conv5:  # the same weights, read with holes: only the geometry changes
            conv.dilation, conv.padding = (2, 2), (2, 2)
    if pool5a:
        features.append(nn.AvgPool2d(3, stride=1, padding=1))
    return features


def largefov_rate(output_stride: int) -> int:
    """fc6's rate for the same field of view in pixels: 12 at output stride 8, 6 at 16, 3 at 32."""
    check_choice(output_stride, "output_stride", VGG_OUTPUT_STRIDES)
    return LARGEFOV_RATE * 8 // output_stride


class AtrousFCHead(nn.Sequential):
    """fc6 (3x3 at ``rate``), fc7 (1x1), each with ReLU and dropout, then fc8 (1x1, the classes).

    DeepLab-LargeFOV's classifier (``rate=12``) and one branch of ASPP-L (rates 6-24).
    VGG16's fc6 was a 7x7 layer with 4096 channels; the paper subsampled its weights to a 3x3
    kernel and 1024 channels (and fc7's to 1024 x 1024) to initialise these layers. Here
    they start from random weights (He initialisation as torchvision's VGG, fc8 ~ N(0, 0.01)
    as the prototxt).

    Args:
        in_channels: channels of pool5 (512 for VGG16).
        fc_channels: channels of fc6 and fc7 (1024).
        num_classes: channels of fc8.
        rate: fc6's dilation (and padding, so the map keeps its size).
        dropout: dropout probability after fc6 and fc7 (0.5).
    """

    def __init__(self, in_channels: int, fc_channels: int, num_classes: int, rate: int,
                 dropout: float = 0.5) -> None:
        super().__init__(OrderedDict([
            ("fc6", nn.Conv2d(in_channels, fc_channels, 3, padding=rate, dilation=rate)),
            ("relu6", nn.ReLU(inplace=True)),
            ("drop6", nn.Dropout(dropout)),
            ("fc7", nn.Conv2d(fc_channels, fc_channels, 1)),
            ("relu7", nn.ReLU(inplace=True)),
            ("drop7", nn.Dropout(dropout)),
            ("fc8", nn.Conv2d(fc_channels, num_classes, 1)),
        ]))
        self.rate = rate
        init_vgg_weights(self)
        nn.init.normal_(self.fc8.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc8.bias)


class BranchSum(nn.ModuleList):
    """Parallel branches on the same input whose outputs are **summed** (DeepLab v2's ASPP).

    Each branch ends in class scores; v2 adds them ("fuses by sum"), while v3's ASPP
    concatenates features and projects them (:class:`ASPP`).

    Args:
        branches: the branches, one per rate.
        rates: the atrous rate of each branch.
    """

    def __init__(self, branches: Sequence[nn.Module], rates: Sequence[int]) -> None:
        super().__init__(branches)
        if len(rates) != len(branches):
            raise ValueError(f"rates must give one rate per branch ({len(branches)}), got {rates!r}")
        self.rates = tuple(rates)

    def forward(self, x: Tensor) -> Tensor:
        """The sum of every branch's output on ``x``."""
        branches = iter(self)
        out = next(branches)(x)
        for branch in branches:
            out = out + branch(x)
        return out

    def receptive_field_layers(self) -> list[nn.Module]:
        """The branch of the largest rate: centred like the others, its field contains theirs."""
        return [self[self.rates.index(max(self.rates))]]


class DeepLab(nn.Module):
    """DeepLab v1 or v2: a backbone at output stride 8 and a classifier head, no decoder.

    ``model(x)`` returns logits ``[N, num_classes, H, W]``: the head's stride-8 scores resized
    bilinearly to the input. Any ``H, W >= 1`` works (every pooling rounds up).

    Args:
        backbone: :func:`deeplab_vgg16_features` (an ``nn.Sequential``) or a
            :class:`~segtutor.models.resnet.ResNetBackbone` returning ``{"out": layer4}``.
        head: :class:`AtrousFCHead` (v1) or :class:`BranchSum` (v2).
        num_classes: channels of the head's output.
        atrous_rates: the head's rates, reported as ``model.atrous_rates``.
        output_stride: the backbone's (8 in the papers).

    Attributes:
        min_size: 1.
    """

    min_size = 1

    def __init__(self, backbone: nn.Module, head: nn.Module, num_classes: int,
                 atrous_rates: Sequence[int], output_stride: int = 8) -> None:
        super().__init__()
        self.output_stride = output_stride
        self.backbone = backbone
        self.head = head
        self.num_classes = num_classes
        self.atrous_rates = tuple(atrous_rates)
        first = next(m for m in backbone.modules() if isinstance(m, nn.Conv2d))
        self.in_channels = first.in_channels

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes, H, W]`` for images ``[N, in_channels, H, W]``."""
        check_input(x, self.in_channels, self.min_size, type(self).__name__)
        features = self.backbone(x)
        if isinstance(features, dict):  # a ResNetBackbone
            features = features["out"]
        return F.interpolate(self.head(features), size=x.shape[-2:], mode="bilinear",
                             align_corners=False)

    def receptive_field_layers(self) -> list[nn.Module]:
        """Backbone, then the head (for v2: its widest branch), for ``receptive_field``."""
        return [self.backbone, self.head]


# --------------------------------------------------------------------------- v3 parts (torchvision's)


class ASPPConv(nn.Sequential):
    """One atrous branch of ASPP: a 3x3 convolution at ``dilation``, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(*conv_bn_relu(in_channels, out_channels, 3, dilation=dilation))
        self.rate = dilation


class ASPPPooling(nn.Sequential):
    """ASPP's image-level branch: global average pooling, 1x1 conv, batch norm, ReLU, broadcast.

    The pooled map is 1x1, so in training mode its batch norm normalises over the batch
    alone; with a batch of one image that is a single value per channel and PyTorch fails.
    :meth:`check_batch` turns that into a clear ``ValueError`` (called by ``forward``, and by
    the models before they run the backbone).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(in_channels, out_channels, 1))

    def check_batch(self, batch_size: int) -> None:
        """Raise ``ValueError`` if batch norm would train on a batch of ``batch_size == 1``."""
        if batch_size == 1 and self[2].training:
            raise ValueError(
                "ASPP's image-pooling branch cannot train on a batch of 1 image: it pools each "
                "image to 1x1, so its batch norm sees one value per channel. Use a batch size "
                ">= 2, or put batch norm in eval mode (model.eval() for inference, or freeze "
                "the BatchNorm2d layers when fine-tuning with single images)")

    def forward(self, x: Tensor) -> Tensor:
        """The pooled features ``[N, out_channels, 1, 1]`` resized back to ``x``'s size."""
        self.check_batch(x.shape[0])
        size = x.shape[-2:]
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with image pooling (v3), torchvision's keys.

    Five parallel branches on the backbone's features -- a 1x1 convolution, three 3x3 atrous
    convolutions (:class:`ASPPConv`) and image pooling (:class:`ASPPPooling`), each with
    batch norm and ReLU -- are concatenated and projected by a 1x1 convolution (batch norm,
    ReLU, dropout).

    Args:
        in_channels: the backbone's channels (2048 for ResNet-50/101).
        atrous_rates: the rates of the 3x3 branches (see :func:`aspp_rates`).
        out_channels: channels of every branch and of the projection (256).
        dropout: after the projection; 0.5 as torchvision (the official TensorFlow code
            uses 0.1, as :func:`deeplabv3plus_resnet50` does).
        image_pooling: include the image-level branch (v3's addition to v2's ASPP; off for
            the ablation of Chapter 9).
    """

    def __init__(self, in_channels: int, atrous_rates: Sequence[int],
                 out_channels: int = ASPP_CHANNELS, dropout: float = 0.5,
                 image_pooling: bool = True) -> None:
        super().__init__()
        self.atrous_rates = tuple(check_positive_int(r, "atrous rate") for r in atrous_rates)
        check_bool(image_pooling, "image_pooling")
        self.convs = nn.ModuleList([
            conv_bn_relu(in_channels, out_channels, 1),
            *(ASPPConv(in_channels, out_channels, rate) for rate in self.atrous_rates),
            *([ASPPPooling(in_channels, out_channels)] if image_pooling else []),
        ])
        self.project = nn.Sequential(
            *conv_bn_relu(len(self.convs) * out_channels, out_channels, 1),
            nn.Dropout(check_probability(dropout, "dropout")),
        )

    @property
    def pooling(self) -> ASPPPooling | None:
        """The image-pooling branch (``None`` without one)."""
        last = self.convs[-1]
        return last if isinstance(last, ASPPPooling) else None

    def forward(self, x: Tensor) -> Tensor:
        """``[N, out_channels, h, w]`` features at the input's resolution."""
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabHead(nn.Sequential):
    """v3's classifier, torchvision's layout: ASPP, a 3x3 convolution (BN, ReLU), 1x1 to classes.

    ``channels`` (256 in the paper) and ``image_pooling`` make narrow copies and ablations.
    """

    def __init__(self, in_channels: int, num_classes: int,
                 atrous_rates: Sequence[int] = (12, 24, 36), *,
                 channels: int = ASPP_CHANNELS, image_pooling: bool = True) -> None:
        super().__init__(
            ASPP(in_channels, atrous_rates, channels, image_pooling=image_pooling),
            *conv_bn_relu(channels, channels, 3),
            nn.Conv2d(channels, num_classes, 1),
        )


class AuxHead(nn.Sequential):
    """The auxiliary classifier on layer3: torchvision's ``FCNHead`` (its keys and layers).

    A 3x3 convolution to ``in_channels // 4`` (BN, ReLU, dropout 0.1) and a 1x1 convolution to
    the classes. (Not :class:`segtutor.models.fcn.FCNHead`, which is FCN's fc6-fc7 head.)
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        inter = in_channels // 4
        super().__init__(*conv_bn_relu(in_channels, inter, 3), nn.Dropout(0.1),
                         nn.Conv2d(inter, num_classes, 1))


def _check_batch(model: nn.Module, x: object) -> None:
    """Run every :meth:`ASPPPooling.check_batch` of ``model`` before any work is done."""
    if isinstance(x, Tensor) and x.dim() == 4:
        for module in model.modules():
            if isinstance(module, ASPPPooling):
                module.check_batch(x.shape[0])


class BackboneWithHeads(nn.Module):
    """A dilated-ResNet backbone, a head and an optional auxiliary head on layer3.

    The shape torchvision gives ``DeepLabV3`` and ``FCN`` (its ``_SimpleSegmentationModel``),
    with the book's contract: ``model(x)`` returns one logits tensor ``[N, K, H, W]`` at the
    input's size, and :meth:`forward_with_aux` returns ``(out, aux)`` from one backbone pass.
    :class:`DeepLabV3` and :class:`~segtutor.models.pspnet.PSPNet` are this with their heads.
    Before the backbone runs, every image-pooling batch norm (:class:`ASPPPooling` and its
    subclasses) checks that it is not training on a batch of one image.

    Args:
        backbone: a :class:`~segtutor.models.resnet.ResNetBackbone` returning
            ``{"out": layer4}`` (and ``"aux": layer3`` with an auxiliary head).
        classifier: the head on ``"out"``.
        aux_classifier: the head on ``"aux"``, or ``None``.
    """

    min_size = 1

    def __init__(self, backbone: ResNetBackbone, classifier: nn.Module,
                 aux_classifier: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier
        self.in_channels = backbone.conv1.in_channels
        self.output_stride = backbone.output_stride

    def _run(self, x: Tensor, aux: bool) -> tuple[Tensor, Tensor | None]:
        check_input(x, self.in_channels, self.min_size, type(self).__name__)
        _check_batch(self, x)
        features = self.backbone(x)
        size = x.shape[-2:]
        out = F.interpolate(self.classifier(features["out"]), size=size, mode="bilinear",
                            align_corners=False)
        if not aux:
            return out, None
        logits = self.aux_classifier(features["aux"])
        return out, F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes, H, W]`` for images ``[N, in_channels, H, W]``.

        Raises:
            ValueError: a bad input (see ``_contract.check_input``), or a batch of one image
                in training mode (see :class:`ASPPPooling`).
        """
        return self._run(x, aux=False)[0]

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(out, aux)``: the logits and the auxiliary head's logits, both ``[N, K, H, W]``.

        torchvision's ``model(x)["out"], model(x)["aux"]``, from one backbone pass.

        Raises:
            RuntimeError: the model was built without ``aux_loss=True``.
        """
        if self.aux_classifier is None:
            raise RuntimeError(f"{type(self).__name__} was built without an auxiliary head; "
                               "build it with aux_loss=True to call forward_with_aux")
        out, aux = self._run(x, aux=True)
        return out, aux


class DeepLabV3(BackboneWithHeads):
    """DeepLab v3 on a dilated ResNet: torchvision's ``DeepLabV3`` with one logits tensor.

    ``model(x)`` returns the logits ``[N, num_classes, H, W]`` (the model contract), where
    torchvision's model returns a dict ``{"out": ..., "aux": ...}``. The auxiliary logits
    (from layer3, for the training loss ``loss(out) + 0.5 * loss(aux)`` of torchvision's
    reference recipe) come from :meth:`forward_with_aux`, which runs the backbone once and
    returns ``(out, aux)``. The ``state_dict`` keys and shapes are torchvision's, with and
    without the auxiliary head.

    Args:
        backbone: a :class:`~segtutor.models.resnet.ResNetBackbone` returning
            ``{"out": layer4}`` (and ``"aux": layer3`` with an auxiliary head).
        classifier: :class:`DeepLabHead`.
        aux_classifier: :class:`AuxHead` or ``None``.

    Attributes:
        atrous_rates: the rates of the ASPP's 3x3 branches.
        output_stride: the backbone's, 8 or 16.
        min_size: 1 (any size runs; below the output stride the features are 1x1).
    """

    def __init__(self, backbone: ResNetBackbone, classifier: DeepLabHead,
                 aux_classifier: AuxHead | None = None) -> None:
        super().__init__(backbone, classifier, aux_classifier)
        self.num_classes = classifier[-1].out_channels
        self.atrous_rates = classifier[0].atrous_rates


class DeepLabV3PlusDecoder(nn.Module):
    """v3+'s decoder: ASPP features upsampled to layer1's stride 4 and refined with its detail.

    The low-level features are reduced to 48 channels (1x1 convolution, BN, ReLU) so they do
    not outweigh the 256 ASPP channels, concatenated with the ASPP output resized to their
    size (x4 at output stride 16, x2 at 8), refined by two 3x3 convolutions with 256 channels
    (BN, ReLU) and classified by a 1x1 convolution.

    Args:
        low_channels: channels of layer1 (256 for ResNet-50).
        num_classes: the classes.
        channels: the ASPP's and the refining convolutions' channels (256).
        reduced: the low-level features' channels after the 1x1 reduction (48).
    """

    def __init__(self, low_channels: int, num_classes: int, channels: int = ASPP_CHANNELS,
                 reduced: int = LOW_LEVEL_CHANNELS) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(low_channels, reduced, 1)
        self.fuse = nn.Sequential(*conv_bn_relu(channels + reduced, channels, 3),
                                  *conv_bn_relu(channels, channels, 3))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        """Class scores at ``low``'s resolution (stride 4) from layer1 and the ASPP output."""
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([high, self.reduce(low)], dim=1)))


class DeepLabV3Plus(nn.Module):
    """DeepLab v3+: v3's encoder (dilated ResNet + ASPP) and a decoder at stride 4.

    ``model(x)`` returns logits ``[N, num_classes, H, W]``: the decoder's stride-4 scores
    resized bilinearly to the input (x4).

    Args:
        backbone: a :class:`~segtutor.models.resnet.ResNetBackbone` returning
            ``{"low": layer1, "out": layer4}``.
        aspp: :class:`ASPP` on layer4.
        decoder: :class:`DeepLabV3PlusDecoder`.

    Attributes:
        atrous_rates: the ASPP's rates.
        output_stride: the encoder's, 16 (default) or 8.
        min_size: 1.
    """

    min_size = 1

    def __init__(self, backbone: ResNetBackbone, aspp: ASPP, decoder: DeepLabV3PlusDecoder) -> None:
        super().__init__()
        self.backbone = backbone
        self.aspp = aspp
        self.decoder = decoder
        self.in_channels = backbone.conv1.in_channels
        self.num_classes = decoder.classifier.out_channels
        self.atrous_rates = aspp.atrous_rates
        self.output_stride = backbone.output_stride

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes, H, W]`` for images ``[N, in_channels, H, W]``.

        Raises:
            ValueError: a bad input, or a batch of one image in training mode
                (see :class:`ASPPPooling`).
        """
        check_input(x, self.in_channels, self.min_size, type(self).__name__)
        _check_batch(self, x)
        features = self.backbone(x)
        scores = self.decoder(features["low"], self.aspp(features["out"]))
        return F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------- builders


def _vgg_backbone(*, in_channels: int, width: int, pool5a: bool,
                  weights_backbone: str | WeightsEnum | None, progress: bool,
                  output_stride: int = 8, batch_norm: bool = False) -> nn.Sequential:
    """:func:`deeplab_vgg16_features`, with ImageNet VGG16 weights if asked for."""
    check_bool(batch_norm, "batch_norm")
    weights = resolve_weights(weights_backbone, VGG16_Weights)
    state_dict = None
    if weights is not None:
        if batch_norm:
            raise ValueError(f"pretrained backbone weights {weights!r} are for VGG16 without "
                             "batch norm; got batch_norm=True")
        check_pretrained_fits(weights, in_channels=in_channels, width=width)
        mapped = vgg16_state_to_fcn(load_weights(weights, progress=progress))
        state_dict = {key.removeprefix("backbone."): value for key, value in mapped.items()
                      if key.startswith("backbone.")}  # fc6/fc7 of VGG do not fit DeepLab's
    features = deeplab_vgg16_features(in_channels=in_channels, width=width, pool5a=pool5a,
                                      output_stride=output_stride, batch_norm=batch_norm)
    if state_dict is not None:
        features.load_state_dict(state_dict)
    return features


def _check_head_options(num_classes: object, fc_channels: object, dropout: object,
                        progress: object) -> None:
    check_positive_int(num_classes, "num_classes")
    check_positive_int(fc_channels, "fc_channels")
    check_probability(dropout, "dropout")
    check_bool(progress, "progress")


_TINY_VGG = {"width": 4, "fc_channels": 16}


@register(tiny_kwargs=_TINY_VGG)
def deeplab_v1(*, num_classes: int = 21, in_channels: int = 3,
               weights_backbone: str | WeightsEnum | None = None, width: int = FULL_WIDTH,
               fc_channels: int = 1024, dropout: float = 0.5, progress: bool = True,
               output_stride: int = 8, batch_norm: bool = False) -> DeepLab:
    """DeepLab-LargeFOV (v1): VGG16 with holes and a 3x3 fc6 at rate 12 (https://arxiv.org/abs/1412.7062).

    The backbone is :func:`deeplab_vgg16_features` (3x3 poolings, pool4/pool5 with stride 1,
    conv5 at rate 2, LargeFOV's ``pool5a``), the head an :class:`AtrousFCHead` at rate 12:
    fc6 3x3 with 1024 channels, fc7 1x1 with 1024, fc8 the classes, each of fc6/fc7 with ReLU
    and dropout 0.5. Output stride 8; the scores are resized bilinearly to the input. The
    paper's fully connected CRF post-processing is not part of the network.
    20,505,429 parameters for 21 classes (VGG16's convolutions 14,714,688; fc6 4,719,616;
    fc7 1,049,600; fc8 21,525) -- the paper's "20M" VGG16 initialisation.

    Args:
        num_classes: the classes (21 for Pascal VOC).
        in_channels: channels of the input images (3 for pretrained weights).
        weights_backbone: ``None``, or ImageNet VGG16 weights for the 13 convolutions
            (``"IMAGENET1K_V1"`` or ``torchvision.models.VGG16_Weights.IMAGENET1K_V1``),
            downloaded by torchvision and mapped as for FCN
            (:func:`~segtutor.models.fcn.vgg16_state_to_fcn`). fc6/fc7 start random: VGG's are
            7x7x4096 and the paper subsampled them, which this does not do.
        width: channels of VGG's first stage (64); pretrained weights need 64.
        fc_channels: channels of fc6 and fc7 (1024).
        dropout: dropout probability after fc6 and fc7 (0.5).
        progress: show a download progress bar.
        output_stride: 8 (the paper); 16 or 32 keep VGG's pool4 (and pool5) strides, with
            fc6's rate scaled to keep its field of view in pixels (:func:`largefov_rate`: 6 at
            16, 3 at 32) -- the comparison of Chapter 9.
        batch_norm: batch norm after every backbone convolution (not in the paper; lets a
            narrow copy train from scratch on a CPU). Pretrained weights need ``False``.

    Raises:
        TypeError, ValueError: an argument of the wrong type or value, or pretrained weights
            with ``in_channels != 3``, ``width != 64`` or ``batch_norm=True``.
        WeightsUnavailableError: the backbone weights cannot be downloaded.
    """
    _check_head_options(num_classes, fc_channels, dropout, progress)
    rate = largefov_rate(output_stride)
    backbone = _vgg_backbone(in_channels=in_channels, width=width, pool5a=True,
                             weights_backbone=weights_backbone, progress=progress,
                             output_stride=output_stride, batch_norm=batch_norm)
    head = AtrousFCHead(feature_channels(backbone), fc_channels, num_classes, rate, dropout)
    return DeepLab(backbone, head, num_classes, (rate,), output_stride)


@register(tiny_kwargs=_TINY_VGG)
def deeplab_v2(*, num_classes: int = 21, in_channels: int = 3, backbone: str = _VGG,
               weights_backbone: str | WeightsEnum | None = None, width: int = FULL_WIDTH,
               fc_channels: int = 1024, dropout: float = 0.5, progress: bool = True,
               batch_norm: bool = False) -> DeepLab:
    """DeepLab v2 with ASPP-L: four atrous branches whose class scores are summed (https://arxiv.org/abs/1606.00915).

    ``backbone="vgg16"`` (default): :func:`deeplab_vgg16_features` without ``pool5a`` (as
    the released VGG16 ASPP-L prototxt) and four :class:`AtrousFCHead` branches at rates 6,
    12, 18 and 24 (fc6 3x3 with 1024 channels, fc7 1x1 with 1024, fc8 the classes), summed by
    :class:`BranchSum`; 37,877,652 parameters for 21 classes.

    ``backbone="resnet101"`` (the paper's best model; any of
    :data:`~segtutor.models.resnet.RESNETS` is accepted): torchvision's ResNet at output
    stride 8 (layer3 dilated by 2, layer4 by 4) and four 3x3 convolutions from layer4 straight
    to the classes at rates 6, 12, 18 and 24, summed; 44,048,532 parameters for 21 classes with
    ResNet-101. Differences from the paper's Caffe ResNet-101: torchvision's puts the stride
    in the 3x3 convolution of a block (the original, in the first 1x1), and the paper also
    ran the net on three input scales (MSC) and a CRF, which are not part of the network.

    Args:
        num_classes: the classes (21 for Pascal VOC).
        in_channels: channels of the input images (3 for pretrained weights).
        backbone: ``"vgg16"`` or a ResNet name such as ``"resnet101"``.
        weights_backbone: ``None`` or ImageNet weights of that backbone (a string such as
            ``"IMAGENET1K_V1"`` or a torchvision weights enum member), downloaded by
            torchvision; the heads start random.
        width: VGG16 only: channels of VGG's first stage (64).
        fc_channels: VGG16 only: channels of fc6 and fc7 (1024).
        dropout: VGG16 only: dropout after fc6 and fc7 (0.5).
        progress: show a download progress bar.
        batch_norm: VGG16 only: batch norm after every backbone convolution (see
            :func:`deeplab_v1`).

    Raises:
        TypeError, ValueError: an argument of the wrong type or value, an unknown backbone,
            a VGG-only option changed for a ResNet backbone, or pretrained weights that do
            not fit.
        WeightsUnavailableError: the backbone weights cannot be downloaded.
    """
    _check_head_options(num_classes, fc_channels, dropout, progress)
    check_choice(backbone, "backbone", (_VGG, *RESNETS))
    if backbone == _VGG:
        features = _vgg_backbone(in_channels=in_channels, width=width, pool5a=False,
                                 weights_backbone=weights_backbone, progress=progress,
                                 batch_norm=batch_norm)
        channels = feature_channels(features)
        branches = [AtrousFCHead(channels, fc_channels, num_classes, rate, dropout)
                    for rate in V2_RATES]
        return DeepLab(features, BranchSum(branches, V2_RATES), num_classes, V2_RATES)
    changed = [f"{name}={value!r}" for name, value, default in (
        ("width", width, FULL_WIDTH), ("fc_channels", fc_channels, 1024), ("dropout", dropout, 0.5),
        ("batch_norm", batch_norm, False))
        if value != default]
    if changed:
        raise ValueError(f"{', '.join(changed)} apply to backbone='vgg16' only, "
                         f"got backbone={backbone!r}")
    resnet = resnet_backbone(backbone, output_stride=8, weights_backbone=weights_backbone,
                             in_channels=in_channels, progress=progress)
    convs = []
    for rate in V2_RATES:
        conv = nn.Conv2d(resnet.channels["out"], num_classes, 3, padding=rate, dilation=rate)
        nn.init.normal_(conv.weight, 0.0, 0.01)  # the prototxt's gaussian filler
        nn.init.zeros_(conv.bias)
        convs.append(conv)
    return DeepLab(resnet, BranchSum(convs, V2_RATES), num_classes, V2_RATES)


def _deeplabv3(*, default_backbone: str, enum: type[WeightsEnum], num_classes: int,
               weights: str | WeightsEnum | None, progress: bool, aux_loss: bool | None,
               weights_backbone: str | WeightsEnum | None, in_channels: int,
               output_stride: int, backbone: str) -> DeepLabV3:
    """The two v3 builders (torchvision's ``deeplabv3_resnet50``/``_resnet101`` and ours)."""
    check_positive_int(num_classes, "num_classes")
    check_optional_bool(aux_loss, "aux_loss")
    check_bool(progress, "progress")
    check_choice(output_stride, "output_stride", V3_OUTPUT_STRIDES)
    check_choice(backbone, "backbone", tuple(RESNETS))
    resolved = resolve_weights(weights, enum)
    state_dict = None
    if resolved is not None:
        if weights_backbone is not None:
            raise ValueError(f"give weights or weights_backbone, not both: {resolved!r} already "
                             f"holds the backbone; got weights_backbone={weights_backbone!r}")
        if backbone != default_backbone:
            raise ValueError(f"pretrained weights {resolved!r} need backbone="
                             f"{default_backbone!r}, got backbone={backbone!r}")
        if aux_loss is False:
            raise ValueError(f"pretrained weights {resolved!r} include the auxiliary head; "
                             "pass aux_loss=True or None (as torchvision, which refuses too)")
        check_pretrained_fits(resolved, num_classes=num_classes, in_channels=in_channels)
        aux_loss = True
        state_dict = load_weights(resolved, progress=progress)  # fails fast when offline
    aux = bool(aux_loss)
    return_layers = {"layer4": "out", **({"layer3": "aux"} if aux else {})}
    features = resnet_backbone(backbone, output_stride=output_stride,
                               weights_backbone=weights_backbone, in_channels=in_channels,
                               return_layers=return_layers, progress=progress)
    channels = layer_channels(backbone)
    model = DeepLabV3(
        features, DeepLabHead(channels["layer4"], num_classes, aspp_rates(output_stride)),
        AuxHead(channels["layer3"], num_classes) if aux else None)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


_TINY_RESNET = {"backbone": "resnet18"}


@register(tiny_kwargs=_TINY_RESNET)
def deeplabv3_resnet50(*, num_classes: int = 21,
                       weights: str | WeightsEnum | None = None, progress: bool = True,
                       aux_loss: bool | None = None,
                       weights_backbone: str | WeightsEnum | None = None, in_channels: int = 3,
                       output_stride: int = 8, backbone: str = "resnet50") -> DeepLabV3:
    """DeepLab v3 with a ResNet-50, torchvision's ``deeplabv3_resnet50`` (https://arxiv.org/abs/1706.05587).

    torchvision's ResNet-50 with ``replace_stride_with_dilation`` (output stride 8: layer3 at
    rate 2, layer4 at rate 4; or 16: layer4 at rate 2), then :class:`DeepLabHead` (ASPP at
    rates (12, 24, 36) at output stride 8 or (6, 12, 18) at 16, a 3x3 convolution, the
    classifier), and with ``aux_loss=True`` torchvision's FCN head on layer3
    (:class:`AuxHead`). The ``state_dict`` keys and shapes are torchvision's, so
    ``weights="COCO_WITH_VOC_LABELS_V1"`` loads torchvision's trained model unchanged.
    42,004,074 parameters with the auxiliary head (39,638,869 without) for 21 classes.

    Differences from torchvision, by design: ``model(x)`` returns one logits tensor, not a
    dict (the auxiliary logits come from :meth:`DeepLabV3.forward_with_aux`);
    ``weights_backbone`` defaults to ``None`` (torchvision's default downloads ImageNet
    weights); ``output_stride``, ``in_channels`` and ``backbone`` are ours; training on a
    batch of one image raises a ``ValueError`` that says why (see :class:`ASPPPooling`).

    Args:
        num_classes: the classes (21 for Pascal VOC; pretrained ``weights`` need 21).
        weights: ``None``, ``"COCO_WITH_VOC_LABELS_V1"``/``"DEFAULT"`` or
            ``torchvision.models.segmentation.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1``
            (or any torchvision ``WeightsEnum`` member), downloaded through torchvision's
            weights API. They include the auxiliary head, so ``aux_loss`` becomes ``True``.
            They were trained at output stride 8 (at 16 they load too, with the rates 6-18).
        progress: show a download progress bar.
        aux_loss: build the auxiliary head on layer3 (``None`` means ``False`` without
            ``weights``, ``True`` with them).
        weights_backbone: ``None`` or ImageNet weights for the ResNet (``"IMAGENET1K_V1"``
            or a torchvision ``ResNet50_Weights`` member); not together with ``weights``.
        in_channels: channels of the input images (3 for pretrained weights).
        output_stride: 8 (default, as torchvision) or 16.
        backbone: the ResNet (``"resnet50"``; a smaller one such as ``"resnet18"`` for CPU
            experiments; pretrained ``weights`` need ``"resnet50"``).

    Raises:
        TypeError, ValueError: an argument of the wrong type or value (an ``output_stride``
            other than 8 or 16, an unknown backbone), or pretrained weights with
            ``num_classes != 21``, ``in_channels != 3``, ``aux_loss=False``, another backbone,
            or together with ``weights_backbone``.
        WeightsUnavailableError: the weights cannot be downloaded.
    """
    return _deeplabv3(default_backbone="resnet50", enum=DeepLabV3_ResNet50_Weights,
                      num_classes=num_classes, weights=weights, progress=progress,
                      aux_loss=aux_loss, weights_backbone=weights_backbone,
                      in_channels=in_channels, output_stride=output_stride, backbone=backbone)


@register(tiny_kwargs=_TINY_RESNET)
def deeplabv3_resnet101(*, num_classes: int = 21,
                        weights: str | WeightsEnum | None = None, progress: bool = True,
                        aux_loss: bool | None = None,
                        weights_backbone: str | WeightsEnum | None = None, in_channels: int = 3,
                        output_stride: int = 8, backbone: str = "resnet101") -> DeepLabV3:
    """DeepLab v3 with a ResNet-101, torchvision's ``deeplabv3_resnet101`` (https://arxiv.org/abs/1706.05587).

    As :func:`deeplabv3_resnet50` with ResNet-101 (``DeepLabV3_ResNet101_Weights``);
    60,996,202 parameters with the auxiliary head (58,630,997 without) for 21 classes.
    """
    return _deeplabv3(default_backbone="resnet101", enum=DeepLabV3_ResNet101_Weights,
                      num_classes=num_classes, weights=weights, progress=progress,
                      aux_loss=aux_loss, weights_backbone=weights_backbone,
                      in_channels=in_channels, output_stride=output_stride, backbone=backbone)


@register(tiny_kwargs=_TINY_RESNET)
def deeplabv3plus_resnet50(*, num_classes: int = 21,
                           weights_backbone: str | WeightsEnum | None = None,
                           progress: bool = True, in_channels: int = 3, output_stride: int = 16,
                           backbone: str = "resnet50") -> DeepLabV3Plus:
    """DeepLab v3+ with a ResNet-50 encoder and the v3+ decoder (https://arxiv.org/abs/1802.02611).

    Encoder: torchvision's ResNet-50 at output stride 16 (default; 8 allowed) and
    :class:`ASPP` (rates (6, 12, 18) at 16, (12, 24, 36) at 8; dropout 0.1 after the
    projection, as the official TensorFlow code). Decoder (:class:`DeepLabV3PlusDecoder`):
    layer1's stride-4 features reduced to 48 channels (1x1 convolution, BN, ReLU),
    concatenated with the ASPP output upsampled x4, two 3x3 convolutions with 256 channels
    (BN, ReLU), a 1x1 classifier; the scores are upsampled x4 to the input. torchvision has
    no v3+; 40,352,181 parameters for 21 classes.

    Compared with segmentation_models_pytorch's ``DeepLabV3Plus(encoder_name="resnet50")``
    (same torchvision ResNet-50 encoder, layer1 as the low-level features, 48 reduced
    channels): smp's ASPP uses depthwise-separable 3x3 convolutions (``decoder_aspp_separable=
    True``, the paper's Xception choice) at rates (12, 24, 36) even at output stride 16 and
    dropout 0.5, adds a separable 3x3 convolution (BN, ReLU) after the ASPP, refines with
    *one* separable 3x3 convolution instead of two regular ones, upsamples with
    ``align_corners=True`` by fixed factors (so it needs ``H, W`` divisible by 16), and
    dilates every block of a dilated stage (torchvision, and this model, keep the previous
    dilation in a stage's first block). The parameter counts differ accordingly.

    Args:
        num_classes: the classes (21 for Pascal VOC).
        weights_backbone: ``None`` or ImageNet weights for the ResNet (``"IMAGENET1K_V1"``
            or a torchvision ``ResNet50_Weights`` member); the ASPP and decoder start random.
        progress: show a download progress bar.
        in_channels: channels of the input images (3 for pretrained weights).
        output_stride: 16 (default, as the paper trains) or 8.
        backbone: the ResNet (``"resnet50"``; ``"resnet18"`` for CPU experiments).

    Raises:
        TypeError, ValueError: an argument of the wrong type or value.
        WeightsUnavailableError: the backbone weights cannot be downloaded.
    """
    check_positive_int(num_classes, "num_classes")
    check_bool(progress, "progress")
    check_choice(output_stride, "output_stride", V3_OUTPUT_STRIDES)
    check_choice(backbone, "backbone", tuple(RESNETS))
    features = resnet_backbone(backbone, output_stride=output_stride,
                               weights_backbone=weights_backbone, in_channels=in_channels,
                               return_layers={"layer1": "low", "layer4": "out"},
                               progress=progress)
    aspp = ASPP(features.channels["out"], aspp_rates(output_stride), dropout=0.1)
    decoder = DeepLabV3PlusDecoder(features.channels["low"], num_classes)
    return DeepLabV3Plus(features, aspp, decoder)
