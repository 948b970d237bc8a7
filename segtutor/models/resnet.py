"""Dilated ResNet backbones for segmentation (DeepLab, later PSPNet), on torchvision's ResNets.

Paper: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
https://arxiv.org/abs/1512.03385. Dilation instead of striding ("atrous" convolution): Chen
et al., https://arxiv.org/abs/1606.00915 (DeepLab v2) and Yu & Koltun,
https://arxiv.org/abs/1511.07122.

:func:`resnet_backbone` builds torchvision's ResNet and wraps it in torchvision's
``IntermediateLayerGetter``, exactly as ``torchvision.models.segmentation`` does, so the
``state_dict`` keys are torchvision's (``conv1.weight``, ``layer1.0.conv1.weight``, ...) and
ImageNet weights (``weights_backbone="IMAGENET1K_V1"``) load unchanged.

**Output stride.** A ResNet halves the resolution five times (conv1, the max pool and the
first block of layer2, layer3 and layer4): output stride 32. For dense prediction the
strides of the last one or two stages are replaced by dilation (torchvision's
``replace_stride_with_dilation``): output stride 16 (layer4 dilated by 2) or 8 (layer3 by 2,
layer4 by 4). As in torchvision, the first block of a dilated stage keeps the previous
dilation and the later blocks get the new one. torchvision's ``BasicBlock`` (ResNet-18/34)
refuses dilation; here those blocks are dilated after construction by the same rule, which
changes no weight shape (the CPU-sized backbones of the book's tests use it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import nn
from torchvision.models import (
    ResNet,
    ResNet18_Weights,
    ResNet34_Weights,
    ResNet50_Weights,
    ResNet101_Weights,
    ResNet152_Weights,
    WeightsEnum,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)
from torchvision.models._utils import IntermediateLayerGetter

from .._checks import check_bool, check_choice, check_positive_int
from .vgg import check_pretrained_fits, load_weights, resolve_weights

__all__ = [
    "OUTPUT_STRIDES",
    "RESNETS",
    "ResNetBackbone",
    "dilation_for",
    "layer_channels",
    "resnet_backbone",
]

#: The ResNets a backbone can be: name -> (torchvision builder, torchvision weights enum).
RESNETS: dict[str, tuple[Callable[..., ResNet], type[WeightsEnum]]] = {
    "resnet18": (resnet18, ResNet18_Weights),
    "resnet34": (resnet34, ResNet34_Weights),
    "resnet50": (resnet50, ResNet50_Weights),
    "resnet101": (resnet101, ResNet101_Weights),
    "resnet152": (resnet152, ResNet152_Weights),
}

#: Output strides a backbone can have -> torchvision's ``replace_stride_with_dilation``
#: (for layer2, layer3, layer4).
OUTPUT_STRIDES: dict[int, tuple[bool, bool, bool]] = {
    8: (False, True, True),
    16: (False, False, True),
    32: (False, False, False),
}

_LAYERS = ("layer1", "layer2", "layer3", "layer4")


def dilation_for(output_stride: int) -> list[bool]:
    """torchvision's ``replace_stride_with_dilation`` for an output stride of 8, 16 or 32.

    Raises:
        ValueError: ``output_stride`` is not one of :data:`OUTPUT_STRIDES`.
    """
    check_choice(output_stride, "output_stride", tuple(OUTPUT_STRIDES))
    return list(OUTPUT_STRIDES[output_stride])


def layer_channels(name: str) -> dict[str, int]:
    """Output channels of ``layer1`` ... ``layer4`` of the ResNet ``name``.

    ``{"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}`` for ResNet-50 and
    deeper (bottleneck blocks, expansion 4); 64 ... 512 for ResNet-18/34.

    Raises:
        ValueError: ``name`` is not one of :data:`RESNETS`.
    """
    check_choice(name, "backbone", tuple(RESNETS))
    expansion = 1 if name in ("resnet18", "resnet34") else 4
    return {layer: 64 * 2**i * expansion for i, layer in enumerate(_LAYERS)}


def _dilate_basic_blocks(model: ResNet, replace_stride_with_dilation: list[bool]) -> None:
    """Give a BasicBlock ResNet torchvision's dilation rule (which its BasicBlock refuses).

    For each dilated stage: the first block's stride becomes 1 (its 3x3 ``conv1`` and the
    1x1 ``downsample`` convolution), its 3x3 convolutions keep the previous dilation, and
    every later block's 3x3 convolutions get the stage's dilation, with padding equal to
    the dilation so that sizes are kept -- what ``ResNet._make_layer`` does for Bottleneck.
    """
    dilation = 1
    for name, dilate in zip(_LAYERS[1:], replace_stride_with_dilation, strict=True):
        if not dilate:
            continue
        layer = getattr(model, name)
        previous, dilation = dilation, dilation * 2
        layer[0].conv1.stride = (1, 1)
        layer[0].downsample[0].stride = (1, 1)
        for index, block in enumerate(layer):
            rate = previous if index == 0 else dilation
            for conv in (block.conv1, block.conv2):
                conv.dilation, conv.padding = (rate, rate), (rate, rate)


class ResNetBackbone(IntermediateLayerGetter):
    """torchvision's ``IntermediateLayerGetter`` over a ResNet, knowing its output stride.

    ``backbone(x)`` returns an ``OrderedDict`` of the requested layers' outputs (e.g.
    ``{"out": layer4}``), as in torchvision's segmentation models; the keys of its
    ``state_dict`` are the ResNet's. The layers after the last requested one (``avgpool``,
    ``fc``, ...) are dropped.

    Attributes:
        name: the ResNet, e.g. ``"resnet50"``.
        output_stride: 8, 16 or 32: the stride of layer4's (and, at 8, layer3's) output.
        channels: output channels of each returned feature, by its returned name.
    """

    def __init__(self, model: ResNet, return_layers: Mapping[str, str], *, name: str,
                 output_stride: int) -> None:
        super().__init__(model, dict(return_layers))
        self.name = name
        self.output_stride = output_stride
        width = layer_channels(name)
        self.channels = {new: width[old] for old, new in return_layers.items()}

    def receptive_field_layers(self) -> list[nn.Module]:
        """The main path for :func:`segtutor.arithmetic.receptive_field`: every kept layer."""
        return list(self.children())


def resnet_backbone(name: str, *, output_stride: int = 8,
                    weights_backbone: str | WeightsEnum | None = None, in_channels: int = 3,
                    return_layers: Mapping[str, str] | None = None,
                    progress: bool = True) -> ResNetBackbone:
    """A torchvision ResNet with dilated last stages, returning intermediate features.

    Args:
        name: one of :data:`RESNETS` (``"resnet18"`` ... ``"resnet152"``).
        output_stride: 8, 16 or 32 (see the module docstring).
        weights_backbone: ``None`` (torchvision's random initialisation), or ImageNet
            weights as a string (``"IMAGENET1K_V1"``, ``"DEFAULT"``) or a member of the
            ResNet's torchvision weights enum, downloaded through torchvision's weights API
            (:class:`~segtutor.models.vgg.WeightsUnavailableError` offline).
        in_channels: input channels; other than 3, ``conv1`` is a new 7x7 convolution
            (same key, same initialisation as torchvision's); pretrained weights need 3.
        return_layers: ``{layer name: returned name}``, e.g. ``{"layer1": "low",
            "layer4": "out"}``; default ``{"layer4": "out"}``.
        progress: show a download progress bar.

    Raises:
        TypeError, ValueError: an unknown ``name`` or ``output_stride``, a bad
            ``in_channels``, return layers that are not ``layer1`` ... ``layer4``, or
            pretrained weights with ``in_channels != 3``.
        WeightsUnavailableError: the weights cannot be downloaded.
    """
    check_choice(name, "backbone", tuple(RESNETS))
    replace = dilation_for(output_stride)
    check_positive_int(in_channels, "in_channels")
    check_bool(progress, "progress")
    return_layers = {"layer4": "out"} if return_layers is None else dict(return_layers)
    for layer in return_layers:
        check_choice(layer, "return_layers key", _LAYERS)
    builder, enum = RESNETS[name]
    weights = resolve_weights(weights_backbone, enum)
    state_dict = None
    if weights is not None:
        check_pretrained_fits(weights, in_channels=in_channels)
        state_dict = load_weights(weights, progress=progress)  # fails fast when offline
    basic = name in ("resnet18", "resnet34")
    model = builder(weights=None, replace_stride_with_dilation=None if basic else replace)
    if basic:
        _dilate_basic_blocks(model, replace)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return ResNetBackbone(model, return_layers, name=name, output_stride=output_stride)
