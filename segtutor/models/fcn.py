"""FCN-32s, FCN-16s and FCN-8s on VGG16 (Long, Shelhamer & Darrell 2015).

Paper: "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015,
https://arxiv.org/abs/1411.4038 (journal version: https://arxiv.org/abs/1605.06211).

VGG16's fully connected layers become convolutions (fc6: 7x7, fc7: 1x1, see
:func:`segtutor.models.vgg.convolutionalize`) and a 1x1 ``score_fr`` convolution gives class
scores at stride 32. FCN-32s upsamples them 32x with a transposed convolution initialised to
bilinear interpolation. FCN-16s first upsamples 2x and *adds* the scores of a 1x1 convolution
on pool4 (stride 16), then upsamples 16x; FCN-8s does the same once more with pool3 (stride
8) and upsamples 8x. The score layers on pool3/pool4 start at zero (the paper's staged
training; its later "at-once" variant instead scales pool3 by 1e-4 and pool4 by 1e-2), so at
initialisation all three nets compute the same thing and the skips learn what to add.

**Sizes: the paper's 100-pixel padding vs pad-and-crop.** The Caffe reference pads the input
of conv1_1 by 100 pixels, so that the *unpadded* 7x7 fc6 still has an output for small
images, and then crops the upsampled scores back to the input with offsets that undo that
padding (19 pixels for FCN-32s, 27 for 16s, 31 for 8s; and 5 and 9 to align the pool4 and
pool3 scores). Every stride-32 cell then looks at an image shifted by the padding, and the
first layers of a 500x500 image work on 698x698 maps (1.95x the pixels). Here, instead, fc6 is
padded by 3 (a "same" 7x7 convolution), the input is padded symmetrically to the next
multiple of 32, every upsampling is a transposed convolution with kernel ``2f``, stride
``f`` and padding ``f/2`` whose output is exactly ``f`` times its input, and the final scores
are cropped by exactly the padding that was added: every map stays aligned by construction,
no offsets to compute, at most 31 extra pixels per side.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from torch import Tensor, nn
from torchvision.models import VGG16_Weights, WeightsEnum

from .._checks import check_bool, check_choice, check_positive_int, check_probability
from .._deprecated import renamed_keyword
from ..ops import BilinearConvTranspose2d
from ._contract import check_input, crop_padding, pad_to_multiple
from .registry import register
from .vgg import (
    FULL_WIDTH,
    check_pretrained_fits,
    feature_channels,
    init_vgg_weights,
    load_weights,
    make_features,
    pool_stages,
    resolve_weights,
)

__all__ = ["FCN", "FCNHead", "fcn", "fcn8s", "fcn16s", "fcn32s", "vgg16_state_to_fcn"]

#: Which entry of :func:`~segtutor.models.vgg.pool_stages`' list each skip reads.
POOL_INDEX = {"pool3": 2, "pool4": 3}
#: The skips of each variant, in the order they are fused (deepest first).
SKIPS = {32: (), 16: ("pool4",), 8: ("pool4", "pool3")}


def check_fcn_options(output_stride: object, freeze_upsampling: object) -> None:
    """Raise if ``output_stride`` is not 32, 16 or 8 or ``freeze_upsampling`` not a bool."""
    check_choice(output_stride, "output_stride", tuple(SKIPS))
    check_bool(freeze_upsampling, "freeze_upsampling")


class FCNHead(nn.Sequential):
    """fc6 (7x7 convolution), fc7 (1x1), each with ReLU and dropout, then ``score_fr`` (1x1).

    Args:
        in_channels: channels of pool5 (512 for VGG16).
        fc_channels: channels of fc6 and fc7 (4096 in the paper).
        num_classes: channels of ``score_fr``.
        dropout: dropout probability after fc6 and fc7 (0.5 in the paper).
    """

    def __init__(self, in_channels: int, fc_channels: int, num_classes: int,
                 dropout: float = 0.5) -> None:
        super().__init__(OrderedDict([
            ("fc6", nn.Conv2d(in_channels, fc_channels, kernel_size=7, padding=3)),
            ("relu6", nn.ReLU(inplace=True)),
            ("drop6", nn.Dropout(dropout)),
            ("fc7", nn.Conv2d(fc_channels, fc_channels, kernel_size=1)),
            ("relu7", nn.ReLU(inplace=True)),
            ("drop7", nn.Dropout(dropout)),
            ("score_fr", nn.Conv2d(fc_channels, num_classes, kernel_size=1)),
        ]))


def zero_conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 1x1 convolution whose weight and bias start at zero (FCN's skip score layers)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class FCN(nn.Module):
    """A fully convolutional network on a VGG backbone, with 0, 1 or 2 skip connections.

    ``forward`` accepts any ``H, W >= min_size`` (32): the input is padded symmetrically to
    a multiple of 32 and the scores are cropped back to ``H x W``.

    Args:
        backbone: VGG's convolutional part (:func:`~segtutor.models.vgg.make_features`).
        head: fc6, fc7 and ``score_fr`` (:class:`FCNHead`).
        output_stride: 32, 16 or 8 -- FCN-32s, FCN-16s or FCN-8s.
        freeze_upsampling: keep every transposed convolution fixed at bilinear interpolation
            (the reference Caffe models do); ``False`` lets training refine them (the
            CVPR paper learned the 2x ones).
    """

    multiple = 32
    min_size = 32

    def __init__(self, backbone: nn.Sequential, head: FCNHead, output_stride: int = 8,
                 freeze_upsampling: bool = True) -> None:
        super().__init__()
        check_fcn_options(output_stride, freeze_upsampling)
        self.backbone = backbone
        self.head = head
        self.skips = SKIPS[output_stride]
        self.in_channels = backbone[0].in_channels
        self.num_classes = head.score_fr.out_channels
        trainable = not freeze_upsampling
        pool_channels = stage_channels(backbone)
        self.score_pool = nn.ModuleDict({
            name: zero_conv1x1(pool_channels[POOL_INDEX[name]], self.num_classes)
            for name in self.skips})
        self.upscore2 = nn.ModuleDict({
            name: BilinearConvTranspose2d(self.num_classes, 2, trainable=trainable)
            for name in self.skips})
        self.upscore = BilinearConvTranspose2d(self.num_classes, output_stride, trainable=trainable)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes, H, W]`` for images ``[N, in_channels, H, W]``, ``H, W >= 32``."""
        check_input(x, self.in_channels, self.min_size, f"FCN-{self.upscore.factor}s")
        padded, pads = pad_to_multiple(x, self.multiple)
        return crop_padding(self.upscore(self.coarse_scores(padded)), pads)

    def coarse_scores(self, x: Tensor) -> Tensor:
        """Fused class scores before the last upsampling: stride 32, 16 or 8.

        ``x`` must have a height and width divisible by 32.
        """
        pools = pool_stages(self.backbone, x)
        scores = self.head(pools[-1])
        for name in self.skips:
            scores = self.upscore2[name](scores) + self.score_pool[name](pools[POOL_INDEX[name]])
        return scores


def stage_channels(backbone: nn.Sequential) -> list[int]:
    """Output channels of each pooling stage of a VGG ``backbone`` (64, 128, 256, 512, 512)."""
    channels, current = [], None
    for layer in backbone:
        if isinstance(layer, nn.Conv2d):
            current = layer.out_channels
        elif isinstance(layer, nn.MaxPool2d):
            channels.append(current)
    return channels


def vgg16_state_to_fcn(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map a torchvision VGG16 ``state_dict`` onto an FCN's backbone, fc6 and fc7.

    ``features.*`` becomes ``backbone.*``; the fully connected ``classifier.0`` (fc6) and
    ``classifier.3`` (fc7) are reshaped into 7x7 and 1x1 convolutions (``head.fc6``,
    ``head.fc7``). fc8 (the 1000 ImageNet classes) is dropped: ``score_fr`` is new.
    """
    mapped = {}
    for key, value in state_dict.items():
        if key.startswith("features."):
            mapped["backbone." + key.removeprefix("features.")] = value
    for layer, name, kernel in (("classifier.0", "head.fc6", 7), ("classifier.3", "head.fc7", 1)):
        weight = state_dict[f"{layer}.weight"]
        in_channels = weight.shape[1] // (kernel * kernel)
        mapped[f"{name}.weight"] = weight.reshape(weight.shape[0], in_channels, kernel, kernel)
        mapped[f"{name}.bias"] = state_dict[f"{layer}.bias"]
    return mapped


@renamed_keyword("backbone_weights", "weights_backbone")
def fcn(*, output_stride: int, num_classes: int, in_channels: int = 3,
        weights_backbone: str | WeightsEnum | None = None, width: int = FULL_WIDTH,
        fc_channels: int = 4096, dropout: float = 0.5, freeze_upsampling: bool = True,
        batch_norm: bool = False, progress: bool = True) -> FCN:
    """FCN-32s, FCN-16s or FCN-8s on VGG16, as in the paper (https://arxiv.org/abs/1411.4038).

    Args:
        output_stride: 32, 16 or 8: the stride of the finest scores before the last
            upsampling (FCN-32s: no skip; 16s: pool4; 8s: pool4 and pool3).
        num_classes: number of classes (21 for Pascal VOC: 20 and background).
        in_channels: channels of the input images (3 for pretrained weights).
        weights_backbone: ``None`` (random initialisation), or ImageNet VGG16 weights for
            the backbone, fc6 and fc7: ``"IMAGENET1K_V1"`` or
            ``torchvision.models.VGG16_Weights.IMAGENET1K_V1`` (downloaded by torchvision;
            raises :class:`~segtutor.models.vgg.WeightsUnavailableError` offline). The name
            is torchvision's (``fcn_resnet50(weights_backbone=...)``); the old name
            ``backbone_weights`` still works for one release, with a ``DeprecationWarning``.
        width: channels of VGG's first stage (64); every stage scales by ``width / 64``.
            Small widths (4--16) make CPU experiments possible; pretrained weights need 64.
        fc_channels: channels of fc6 and fc7 (4096 in the paper, where fc6 alone holds
            7*7*512*4096 = 102.8 M weights). Small values (32--128) suit CPU experiments;
            pretrained weights need 4096.
        dropout: dropout probability after fc6 and fc7 (0.5 in the paper).
        freeze_upsampling: keep the bilinear transposed convolutions fixed (the default, as
            in the reference models) or let them learn.
        batch_norm: batch norm after every backbone convolution (VGG16-BN). Not in the paper,
            whose VGG16 has none, but it lets a small FCN train from scratch in seconds on a
            CPU. Pretrained weights need ``False``.
        progress: show a download progress bar.

    Raises:
        TypeError, ValueError: an argument of the wrong type or value; pretrained weights
            with an ``in_channels``, ``width``, ``fc_channels`` or ``batch_norm`` they do not
            fit.
        WeightsUnavailableError: the backbone weights cannot be downloaded.
    """
    check_positive_int(num_classes, "num_classes")
    check_positive_int(fc_channels, "fc_channels")
    check_probability(dropout, "dropout")
    check_bool(batch_norm, "batch_norm")
    check_fcn_options(output_stride, freeze_upsampling)
    weights = resolve_weights(weights_backbone, VGG16_Weights)
    state_dict = None
    if weights is not None:
        if batch_norm:
            raise ValueError(f"pretrained backbone weights {weights!r} are for VGG16 without "
                             "batch norm; got batch_norm=True")
        check_pretrained_fits(weights, in_channels=in_channels, width=width,
                              fc_channels=fc_channels)
        state_dict = vgg16_state_to_fcn(load_weights(weights, progress=progress))
    backbone = make_features(in_channels=in_channels, width=width, batch_norm=batch_norm)
    head = FCNHead(feature_channels(backbone), fc_channels, num_classes, dropout)
    init_vgg_weights(head)
    nn.init.zeros_(head.score_fr.weight)  # the paper starts every score layer at zero
    nn.init.zeros_(head.score_fr.bias)
    model = FCN(backbone, head, output_stride, freeze_upsampling)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=False)
    return model


_TINY = {"width": 4, "fc_channels": 16}


@register(tiny_kwargs=_TINY)
def fcn32s(*, num_classes: int, **kwargs: Any) -> FCN:
    """FCN-32s: VGG16 with fc6/fc7 as convolutions, scores upsampled 32x.

    Keyword arguments as for :func:`fcn`. Paper: https://arxiv.org/abs/1411.4038.
    """
    return fcn(output_stride=32, num_classes=num_classes, **kwargs)


@register(tiny_kwargs=_TINY)
def fcn16s(*, num_classes: int, **kwargs: Any) -> FCN:
    """FCN-16s: FCN-32s plus the scores of pool4, fused by addition at stride 16.

    Keyword arguments as for :func:`fcn`. Paper: https://arxiv.org/abs/1411.4038.
    """
    return fcn(output_stride=16, num_classes=num_classes, **kwargs)


@register(tiny_kwargs=_TINY)
def fcn8s(*, num_classes: int, **kwargs: Any) -> FCN:
    """FCN-8s: FCN-16s plus the scores of pool3, fused by addition at stride 8.

    Keyword arguments as for :func:`fcn`. Paper: https://arxiv.org/abs/1411.4038.
    """
    return fcn(output_stride=8, num_classes=num_classes, **kwargs)
