"""SegNet (Badrinarayanan, Kendall & Cipolla 2017): upsampling with max-pooling indices.

Paper: "SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation",
IEEE TPAMI 39(12), 2017, https://arxiv.org/abs/1511.00561.

The encoder is VGG16's 13 convolutions, each followed by batch norm and ReLU, with five
2x2 max poolings that *remember where each maximum came from*. The decoder mirrors it:
each stage max-unpools with the indices of the matching encoder pooling (the maximum goes
back to its position, the other three of the 2x2 window get zeros; nothing is learned),
then convolutions fill in the sparse map. What the decoder needs from the encoder is only
the indices -- not the feature maps that U-Net copies across.

``segnet(upsampling=...)`` swaps only the upsampling step of every decoder stage, for the
paper's decoder-variant study (its Section 4 and Table 1) in miniature: ``"indices"``
(SegNet), ``"nearest"`` and ``"bilinear"`` (the same decoder, no indices) and ``"skip"``
(bilinear, plus a learned 1x1 projection of the encoder's pooled map at that scale added, as
FCN fuses its skips and as the paper's FCN-Basic decoder does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_positive_int
from ..ops import conv_bn_relu
from ._contract import check_input, crop_padding, pad_to_multiple
from .registry import register
from .vgg import (
    FULL_WIDTH,
    VGG16_CONFIG,
    feature_channels,
    init_vgg_weights,
    make_features,
    pool_stages,
)

__all__ = ["SEGNET_DECODER_CONFIG", "SEGNET_UPSAMPLINGS", "SegNet", "segnet"]

#: The decoder's convolutions, deepest stage first (mirroring VGG16's encoder): each stage
#: starts with a max-unpooling and lists the output channels of its 3x3 convolutions
#: (each followed by batch norm and ReLU). The last stage is followed by the classifier.
SEGNET_DECODER_CONFIG: tuple[tuple[int, ...], ...] = (
    (512, 512, 512),
    (512, 512, 256),
    (256, 256, 128),
    (128, 64),
    (64,),
)

#: How a decoder stage doubles its input: max unpooling with the encoder's indices
#: (SegNet), nearest or bilinear interpolation (no indices), or bilinear interpolation plus
#: a 1x1 projection of the encoder's pooled map at the new scale (FCN's fusion).
SEGNET_UPSAMPLINGS: tuple[str, ...] = ("indices", "nearest", "bilinear", "skip")


def make_decoder(config: Sequence[Sequence[int]], in_channels: int,
                 width: int = FULL_WIDTH) -> nn.ModuleList:
    """One ``nn.Sequential`` of convolutions per decoder stage, channels scaled by ``width / 64``."""
    stages = nn.ModuleList()
    channels = in_channels
    for stage in config:
        layers: list[nn.Module] = []
        for out_channels in stage:
            scaled = out_channels * width // FULL_WIDTH
            layers += conv_bn_relu(channels, scaled, bias=True)  # VGG16-BN keeps the bias
            channels = scaled
        stages.append(nn.Sequential(*layers))
    return stages


class SegNet(nn.Module):
    """Encoder (VGG16 convolutions with batch norm) and an unpooling decoder.

    ``forward`` accepts any ``H, W >= min_size`` (32): the input is padded to a multiple
    of 32, so that the five poolings divide it exactly and every unpooling restores the
    exact size, and the logits are cropped back to ``H x W``.

    Args:
        encoder: VGG16's convolutional part with batch norm (``make_features(batch_norm=True)``),
            so its keys match ``torchvision.models.vgg16_bn().features``.
        decoder: one stage per encoder pooling, deepest first (:func:`make_decoder`).
        classifier: the last 3x3 convolution producing class scores.
        upsampling: one of :data:`SEGNET_UPSAMPLINGS`.
        skips: with ``upsampling="skip"``, one 1x1 convolution per decoder stage but the
            last (pool4's map first, pool1's last: the last upsampling, to the input's
            resolution, has no encoder map to add); ``None`` otherwise.
    """

    multiple = 32
    min_size = 32

    def __init__(self, encoder: nn.Sequential, decoder: nn.ModuleList,
                 classifier: nn.Conv2d, upsampling: str = "indices",
                 skips: nn.ModuleList | None = None) -> None:
        super().__init__()
        check_choice(upsampling, "upsampling", SEGNET_UPSAMPLINGS)
        if (skips is not None) != (upsampling == "skip"):
            raise ValueError(f"skips are needed exactly when upsampling='skip'; got "
                             f"upsampling={upsampling!r} and skips={skips!r}")
        if skips is not None and len(skips) != len(decoder) - 1:
            raise ValueError(f"need one skip per decoder stage but the last "
                             f"({len(decoder) - 1}), got {len(skips)}")
        self.encoder = encoder
        self.decoder = decoder
        self.classifier = classifier
        self.upsampling = upsampling
        self.skips = skips
        self.in_channels = encoder[0].in_channels
        self.num_classes = classifier.out_channels

    def encode(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Run the encoder; return ``(pooled, indices)`` for each of the 5 poolings, shallowest first.

        ``x`` must already have a height and width divisible by 32.
        """
        return pool_stages(self.encoder, x, return_indices=True)

    def decode(self, stages: list[tuple[Tensor, Tensor]]) -> Tensor:
        """Decode the deepest pooled map, doubling it at every stage; return logits.

        Besides the deepest ``pooled`` tensor the decoder reads :meth:`from_encoder`: the
        ``indices`` of every stage (``"indices"``), nothing (``"nearest"``, ``"bilinear"``)
        or the pooled maps of the four shallower stages (``"skip"``).
        """
        y = stages[-1][0]
        for depth, ((_, indices), convolutions) in enumerate(
                zip(reversed(stages), self.decoder, strict=True)):
            if self.upsampling == "indices":
                y = F.max_unpool2d(y, indices, kernel_size=2, stride=2)
            else:
                mode = "nearest" if self.upsampling == "nearest" else "bilinear"
                y = F.interpolate(y, scale_factor=2, mode=mode)
                if self.skips is not None and depth < len(self.skips):
                    y = y + self.skips[depth](stages[-2 - depth][0])
            y = convolutions(y)
        return self.classifier(y)

    def from_encoder(self, stages: list[tuple[Tensor, Tensor]]) -> list[Tensor]:
        """The tensors the decoder reads from the encoder besides the deepest pooled map.

        They are what a network has to keep from the encoder until its decoder runs: at
        inference, their bytes are this decoder's memory cost over the plain upsampling.
        """
        if self.upsampling == "indices":
            return [indices for _, indices in stages]
        if self.upsampling == "skip":
            return [pooled for pooled, _ in stages[:-1]]
        return []

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes, H, W]`` for images ``[N, in_channels, H, W]``, ``H, W >= 32``."""
        check_input(x, self.in_channels, self.min_size, "SegNet")
        padded, pads = pad_to_multiple(x, self.multiple)
        return crop_padding(self.decode(self.encode(padded)), pads)


@register(tiny_kwargs={"width": 4})
def segnet(*, num_classes: int, in_channels: int = 3, width: int = FULL_WIDTH,
           upsampling: str = "indices") -> SegNet:
    """SegNet as in the paper: 13 encoder and 13 decoder convolutions (the last one classifies).

    Paper: https://arxiv.org/abs/1511.00561. With ``width=64`` and 11 classes (CamVid) it has
    29.45 M parameters; the encoder alone (14.7 M) is VGG16 without its fully connected
    layers, whose 123.6 M parameters SegNet drops.

    Args:
        num_classes: number of classes (output channels).
        in_channels: channels of the input images.
        width: channels of the first stage (64 as in the paper); every stage scales by
            ``width / 64``. Use 8 or 16 for experiments on a CPU.
        upsampling: how each decoder stage doubles its input, one of
            :data:`SEGNET_UPSAMPLINGS`: ``"indices"`` (SegNet's max unpooling), ``"nearest"``
            or ``"bilinear"`` (interpolation, the same parameters), ``"skip"`` (bilinear plus
            a 1x1 projection of the encoder's pooled map at that scale, FCN's fusion; adds
            one 1x1 convolution per stage but the last).

    Raises:
        TypeError, ValueError: an argument is not a positive int, or ``upsampling`` is not
            one of :data:`SEGNET_UPSAMPLINGS`.
    """
    check_positive_int(num_classes, "num_classes")
    check_choice(upsampling, "upsampling", SEGNET_UPSAMPLINGS)
    encoder = make_features(VGG16_CONFIG, in_channels=in_channels, batch_norm=True, width=width)
    decoder = make_decoder(SEGNET_DECODER_CONFIG, feature_channels(encoder), width=width)
    classifier = nn.Conv2d(feature_channels(decoder), num_classes, kernel_size=3, padding=1)
    skips = None
    if upsampling == "skip":
        # the channels of pool1 ... pool5's maps: those of the convolution before each pooling
        layers = list(encoder)
        pooled_channels = [feature_channels(nn.Sequential(*layers[:i]))
                           for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
        # pool4's map is added after the first upsampling (to the first decoder stage's
        # input channels, which are pool5's), pool1's after the fourth
        stage_inputs = [feature_channels(encoder)] + [feature_channels(stage)
                                                      for stage in decoder[:-1]]
        skips = nn.ModuleList(
            nn.Conv2d(channels, stage_in, kernel_size=1)
            for channels, stage_in in zip(reversed(pooled_channels[:-1]), stage_inputs,
                                          strict=False))
    model = SegNet(encoder, decoder, classifier, upsampling, skips)
    init_vgg_weights(model)
    return model
