"""The two networks of chapter 1: a patch classifier and a tiny fully convolutional net.

Before fully convolutional networks, a segmentation network labelled an image one pixel
at a time: it cut out the patch around the pixel and classified the patch (Ciresan et
al., 2012, "Deep Neural Networks Segment Neuronal Membranes in Electron Microscopy
Images", https://papers.nips.cc/paper/4741). Neighbouring patches overlap almost
entirely, so almost all of that work is repeated. A fully convolutional network
(Long et al., 2015, https://arxiv.org/abs/1411.4038) computes the features of every
position once and labels all pixels in one forward pass.

To make the chapter's comparison fair, both networks here use the *same* convolutional
layers (:class:`ConvFeatures`: pairs of 3x3 conv-BN-ReLU blocks at three resolutions,
with 2x2 max pooling in between) and see the same amount of context:
:class:`PatchClassifier` ends in a fully connected layer over the whole pooled patch;
:class:`TinyFCN` ends in a 1x1 convolution and bilinear upsampling, and each of its
output pixels depends on an input window of 36 x 36 pixels, matched by the default
35 x 35 patch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from .._checks import IGNORE_INDEX, check_int, check_positive_int
from ..ops import conv_bn_relu
from ..utils import eval_mode
from ._contract import check_input, crop_padding, pad_to_multiple
from .registry import register

__all__ = [
    "ConvFeatures",
    "PatchClassifier",
    "TinyFCN",
    "patch_classifier",
    "sample_patches",
    "segment_by_patches",
    "tiny_fcn",
]


class ConvFeatures(nn.Sequential):
    """The feature extractor both chapter-1 networks share.

    ``[N, in_channels, H, W] -> [N, 4 * width, H // 4, W // 4]``: two 3x3 blocks with
    ``width`` channels at full resolution, two with ``2 * width`` at half resolution and two
    with ``4 * width`` at quarter resolution, with 2x2 max pooling in between. One output
    cell sees 32 x 32 input pixels (its receptive field).
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__(
            conv_bn_relu(in_channels, width),
            conv_bn_relu(width, width),
            nn.MaxPool2d(2),
            conv_bn_relu(width, 2 * width),
            conv_bn_relu(2 * width, 2 * width),
            nn.MaxPool2d(2),
            conv_bn_relu(2 * width, 4 * width),
            conv_bn_relu(4 * width, 4 * width),
        )
        self.out_channels = 4 * width
        self.downsampling = 4


class TinyFCN(nn.Module):
    """A small fully convolutional network: features, a 1x1 classifier, bilinear upsampling.

    Args:
        num_classes: number of output classes.
        in_channels: channels of the input images.
        width: channels of the first blocks (then ``2 * width`` and ``4 * width``).

    ``forward`` takes ``float[N, in_channels, H, W]`` with ``H, W >= min_size`` (8, so that
    the quarter-resolution map has at least 2 x 2 cells, which batch norm needs when
    training on one image) and returns logits ``float[N, num_classes, H, W]``. Sizes that
    are not multiples of 4 are zero-padded up to one and the output is cropped back.
    """

    min_size = 8

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.features = ConvFeatures(in_channels, check_positive_int(width, "width"))
        self.classifier = nn.Conv2d(self.features.out_channels, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.in_channels, self.min_size, "tiny_fcn")
        padded, pads = pad_to_multiple(x, self.features.downsampling)
        logits = self.classifier(self.features(padded))
        logits = F.interpolate(logits, size=padded.shape[-2:], mode="bilinear",
                               align_corners=False)
        return crop_padding(logits, pads)


class PatchClassifier(nn.Module):
    """Classifies the centre pixel of a ``patch_size x patch_size`` patch (the pre-FCN way).

    Args:
        num_classes: number of output classes.
        in_channels: channels of the input patches.
        patch_size: odd side of the square patch, at least 5; the label belongs to the
            patch's centre pixel. The default, 35, matches :class:`TinyFCN`'s receptive field.
        width: channels of the first blocks, as in :class:`TinyFCN`.

    ``forward`` takes ``float[N, in_channels, patch_size, patch_size]`` and returns logits
    ``float[N, num_classes]``. :func:`segment_by_patches` uses it to label whole images.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, patch_size: int = 35,
                 width: int = 32) -> None:
        super().__init__()
        check_positive_int(patch_size, "patch_size")
        if patch_size < 5 or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be odd (so that a centre pixel exists) and >= 5 "
                             f"(so that two poolings leave a cell), got {patch_size}")
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.patch_size = patch_size
        self.features = ConvFeatures(in_channels, check_positive_int(width, "width"))
        pooled = patch_size // self.features.downsampling
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(self.features.out_channels * pooled * pooled, num_classes)
        )

    def forward(self, patches: Tensor) -> Tensor:
        check_input(patches, self.in_channels, self.patch_size, "patch_classifier")
        if tuple(patches.shape[-2:]) != (self.patch_size, self.patch_size):
            raise ValueError(f"patch_classifier was built for {self.patch_size}x{self.patch_size} "
                             f"patches, got shape {tuple(patches.shape)}")
        return self.classifier(self.features(patches))


@register(tiny_kwargs={"width": 4})
def tiny_fcn(*, num_classes: int, in_channels: int = 3, width: int = 32) -> TinyFCN:
    """A small fully convolutional network for chapter 1; see :class:`TinyFCN`."""
    return TinyFCN(num_classes, in_channels, width)


@register(task="classification", tiny_kwargs={"width": 4})
def patch_classifier(*, num_classes: int, in_channels: int = 3, patch_size: int = 35,
                     width: int = 32) -> PatchClassifier:
    """A centre-pixel patch classifier for chapter 1; see :class:`PatchClassifier`."""
    return PatchClassifier(num_classes, in_channels, patch_size, width)


def patch_windows(image: Tensor, patch_size: int) -> Tensor:
    """Every ``patch_size`` window of ``image``, centred on each pixel, without copying.

    The image is reflect-padded by ``patch_size // 2`` so that border pixels get a full
    patch.

    Args:
        image: ``float[C, H, W]`` with ``H, W > patch_size // 2`` (reflect padding's limit).

    Returns:
        a strided view ``[H, W, C, patch_size, patch_size]``: ``windows[y, x]`` is the patch
        centred on pixel ``(y, x)``.

    Raises:
        ValueError: the image is not 3-D or too small for the padding.
    """
    if image.ndim != 3:
        raise ValueError(f"expected one image [C, H, W], got shape {tuple(image.shape)}")
    radius = patch_size // 2
    height, width = image.shape[-2:]
    if min(height, width) <= radius:
        raise ValueError(f"a {height}x{width} image is too small for {patch_size}x{patch_size} "
                         f"patches: reflect padding by {radius} needs height and width > {radius}")
    padded = F.pad(image.unsqueeze(0), (radius,) * 4, mode="reflect").squeeze(0)
    windows = padded.unfold(1, patch_size, 1).unfold(2, patch_size, 1)  # [C, H, W, p, p]
    return windows.permute(1, 2, 0, 3, 4)


@torch.inference_mode()
def segment_by_patches(model: PatchClassifier, images: Tensor, *, batch_size: int = 4096
                       ) -> Tensor:
    """Label every pixel by classifying the patch around it, ``batch_size`` patches at a time.

    This is how segmentation worked before fully convolutional networks, and why it was
    slow: an ``H x W`` image costs ``H * W`` forward passes of the patch classifier. The
    model runs in eval mode (its previous mode is restored afterwards) on its own device.

    Args:
        model: a :class:`PatchClassifier` (anything with ``patch_size`` and ``in_channels``
            attributes that maps ``[B, C, p, p]`` to ``[B, num_classes]``).
        images: ``float[N, C, H, W]``.
        batch_size: how many patches go through the model at once.

    Returns:
        logits ``float[N, num_classes, H, W]`` on the device of ``images``.

    Raises:
        TypeError, ValueError: bad images (see :func:`patch_windows`) or batch size.
    """
    check_positive_int(batch_size, "batch_size")
    check_input(images, model.in_channels, 1, "segment_by_patches")
    device = next(model.parameters()).device
    height, width = images.shape[-2:]
    labelled = []
    with eval_mode(model):
        for image in images:
            windows = patch_windows(image, model.patch_size)
            pixels = torch.arange(height * width, device=images.device)
            logits = torch.cat([  # indexing copies only this chunk's patches
                model(windows[chunk // width, chunk % width].to(device))
                for chunk in pixels.split(batch_size)
            ])
            labelled.append(logits.T.reshape(-1, height, width))
    return torch.stack(labelled).to(images.device)


def sample_patches(dataset: Dataset, *, patch_size: int, patches_per_image: int,
                   seed: int = 0, ignore_index: int = IGNORE_INDEX) -> TensorDataset:
    """Training pairs (patch, label of its centre pixel) for a :class:`PatchClassifier`.

    From each ``(image, mask)`` of ``dataset``, ``patches_per_image`` pixels are drawn
    uniformly (with replacement) among those whose label is not ``ignore_index``; the
    patches are cut exactly as :func:`segment_by_patches` cuts them (reflect padding).

    Args:
        dataset: yields ``(image float[C, H, W], mask int64[H, W])``.
        patch_size: odd side of the patches.
        patches_per_image: pixels drawn per image.
        seed: seeds the draw, so the same call gives the same patches.
        ignore_index: mask value of pixels that are never drawn.

    Returns:
        a ``TensorDataset`` of ``(patches float[M, C, p, p], labels int64[M])`` with
        ``M = len(dataset) * patches_per_image``.

    Raises:
        ValueError: image and mask sizes differ, or a mask has no labelled pixel.
    """
    check_positive_int(patch_size, "patch_size")
    check_positive_int(patches_per_image, "patches_per_image")
    check_int(seed, "seed", minimum=0)
    check_int(ignore_index, "ignore_index")
    generator = torch.Generator().manual_seed(seed)
    patches, labels = [], []
    for index in range(len(dataset)):
        image, mask = dataset[index]
        if mask.ndim != 2 or tuple(image.shape[-2:]) != tuple(mask.shape):
            raise ValueError(f"item {index}: image of shape {tuple(image.shape)} and mask of "
                             f"shape {tuple(mask.shape)} do not match; expected [C, H, W] "
                             f"and [H, W]")
        candidates = (mask.reshape(-1) != ignore_index).nonzero().squeeze(1)
        if candidates.numel() == 0:
            raise ValueError(f"item {index}: every pixel of the mask is ignore_index="
                             f"{ignore_index}, so no patch can be drawn from it")
        chosen = candidates[torch.randint(len(candidates), (patches_per_image,),
                                          generator=generator)]
        rows, cols = chosen // mask.shape[1], chosen % mask.shape[1]
        patches.append(patch_windows(image, patch_size)[rows, cols])
        labels.append(mask.reshape(-1)[chosen].long())
    return TensorDataset(torch.cat(patches), torch.cat(labels))
