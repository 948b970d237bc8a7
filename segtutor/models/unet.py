"""U-Net: the paper's network and the practical same-padding variant.

Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015, https://arxiv.org/abs/1505.04597.

A contracting path (two 3×3 convolutions and a 2×2 max-pool per level) is mirrored by
an expanding path (a 2×2 up-convolution that halves the channels, then the skip from
the same level *concatenated* on the channel axis, then two 3×3 convolutions). The
paper's network has **four** pooling steps (64 → 128 → 256 → 512 → 1024 channels); the
book's source material says five.

Two builders, both registered, both following the book's model contract
(``net(x)`` returns logits at the input's resolution for any ``H, W >= 1``):

* :func:`unet_paper` — the paper's network exactly: *valid* (unpadded) convolutions, no
  batch norm, 31,030,658 parameters for 1 input channel and 2 classes. The U itself,
  :meth:`UNet.network`, shrinks its input: 572×572 in → 388×388 out, and only sizes
  ``188 + 16·k`` fit. ``net(x)`` meets the contract the way the paper predicts large
  images: it mirror-pads the image by 92 pixels and predicts it by overlap-tile
  (:func:`segtutor.ops.tiling.predict_tiled`).
* :func:`unet` — the variant people train today: *same* (padded) convolutions with batch
  norm, a width (``base_channels``) and ``depth`` option; ``net(x)`` pads the input to a
  multiple of ``2**depth`` and crops the logits back.

Batch norm needs more than one value per channel in training mode, so a *batch of one*
image no larger than ``2**depth`` cannot be trained on (evaluation works at any size).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_positive_int
from ..ops import center_crop, conv_bn_relu, predict_tiled
from ._contract import check_input, pad_and_crop
from .registry import register

__all__ = ["DoubleConv", "Down", "Up", "UNet", "unet", "unet_paper"]


class DoubleConv(nn.Sequential):
    """Two 3×3 convolutions, each followed by (optional batch norm and) ReLU.

    Args:
        in_channels: channels coming in.
        out_channels: channels of both convolutions' outputs.
        padding: 0 for the paper's valid convolutions (each one trims a pixel from every
            side), 1 for same-size convolutions.
        batch_norm: insert ``BatchNorm2d`` after each convolution (then the convolution
            has no bias, which the norm would cancel).
    """

    def __init__(self, in_channels: int, out_channels: int, *, padding: int,
                 batch_norm: bool) -> None:
        super().__init__(
            *conv_bn_relu(in_channels, out_channels, padding=padding, batch_norm=batch_norm),
            *conv_bn_relu(out_channels, out_channels, padding=padding, batch_norm=batch_norm))


class Down(nn.Sequential):
    """One step down the contracting path: 2×2 max-pool (stride 2), then :class:`DoubleConv`."""

    def __init__(self, in_channels: int, out_channels: int, *, padding: int,
                 batch_norm: bool) -> None:
        super().__init__(nn.MaxPool2d(kernel_size=2, stride=2),
                         DoubleConv(in_channels, out_channels, padding=padding,
                                    batch_norm=batch_norm))


class Up(nn.Module):
    """One step up the expanding path: upsample ×2, crop-and-concatenate the skip, convolve.

    Args:
        in_channels: channels of the coarser feature map coming up; the skip from the
            contracting path has half as many.
        out_channels: channels after the two 3×3 convolutions.
        padding: 0 (valid, the paper) or 1 (same).
        batch_norm: batch norm in the convolutions.
        bilinear: upsample by bilinear interpolation followed by a 1×1 convolution
            (no checkerboard artefacts) instead of the paper's learned 2×2 up-convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, *, padding: int, batch_norm: bool,
                 bilinear: bool) -> None:
        super().__init__()
        half = in_channels // 2
        if bilinear:
            self.up: nn.Module = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, half, kernel_size=1))
        else:
            self.up = nn.ConvTranspose2d(in_channels, half, kernel_size=2, stride=2)
        self.conv = DoubleConv(half + half, out_channels, padding=padding,
                               batch_norm=batch_norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)
        skip = center_crop(skip, x.shape[-2:])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """U-Net with a configurable depth and width, with valid or same convolutions.

    ``forward`` always follows the book's model contract (logits at the input's
    resolution, any ``H, W >= min_size``); :meth:`network` is the U itself.

    * ``valid=False``: :meth:`network` keeps sizes that are multiples of ``2**depth``;
      ``forward`` pads the input to such a multiple and crops the logits back.
    * ``valid=True`` (the paper): :meth:`network` shrinks its input (572 → 388; see
      :meth:`output_size` and :meth:`input_size`); ``forward`` mirror-pads the image by
      :attr:`margin` pixels and predicts it by overlap-tile
      (:func:`segtutor.ops.tiling.predict_tiled`), by default with one tile just large
      enough for the whole image.

    Args:
        num_classes: output channels (one logit per class).
        in_channels: image channels.
        base_channels: channels at the first level; level ``l`` has ``base_channels * 2**l``.
        depth: number of pooling steps (the paper: 4).
        batch_norm: batch norm after every 3×3 convolution.
        bilinear: bilinear upsampling + 1×1 convolution instead of 2×2 up-convolutions.
        valid: the paper's unpadded convolutions.
        tile: output tile size ``forward`` uses for the valid network (``None``: one tile
            covering the image; it must be a size :meth:`input_size` accepts).
    """

    def __init__(self, *, num_classes: int, in_channels: int, base_channels: int = 64,
                 depth: int = 4, batch_norm: bool = True, bilinear: bool = False,
                 valid: bool = False, tile: int | None = None) -> None:
        super().__init__()
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.depth = check_positive_int(depth, "depth")
        check_positive_int(base_channels, "base_channels")
        for name, flag in (("batch_norm", batch_norm), ("bilinear", bilinear), ("valid", valid)):
            check_bool(flag, name)
        self.valid = valid
        self.min_size = 1
        padding = 0 if valid else 1
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.stem = DoubleConv(in_channels, widths[0], padding=padding, batch_norm=batch_norm)
        self.down = nn.ModuleList(
            Down(widths[level], widths[level + 1], padding=padding, batch_norm=batch_norm)
            for level in range(depth))
        self.up = nn.ModuleList(
            Up(widths[level + 1], widths[level], padding=padding, batch_norm=batch_norm,
               bilinear=bilinear)
            for level in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        if tile is not None:
            self.input_size(tile)  # raises if the valid network cannot output this size
        self.tile = tile

    @property
    def multiple(self) -> int:
        """Total down-sampling factor ``2**depth``."""
        return 2**self.depth

    @property
    def margin(self) -> int:
        """Pixels the valid network loses on each side (92 for the paper's); 0 if same."""
        if not self.valid:
            return 0
        # Each level trims 4 pixels going down and 4 coming up, at scale 2**level;
        # the bottom trims 4 at scale 2**depth. Half of it on each side.
        trimmed = sum(2 * 4 * 2**level for level in range(self.depth)) + 4 * self.multiple
        return trimmed // 2

    def output_size(self, input_size: int) -> int:
        """The size :meth:`network` returns for an input height or width of ``input_size``.

        For same convolutions and multiples of ``2**depth`` this is ``input_size``; for
        valid convolutions every 3×3 convolution trims 2 pixels and every pooling halves,
        e.g. 572 → 388.

        Raises:
            ValueError: :meth:`network` cannot take ``input_size`` (a pooling step would
                meet an odd size, or the output would be empty); the message names the
                nearest sizes that fit.
        """
        size = input_size - 2 * self.margin
        if not self._fits_output(size):
            smaller = self._fitting_output(size, step=-1)
            below = "none" if smaller is None else smaller + 2 * self.margin
            above = self._fitting_output(size, step=1) + 2 * self.margin
            raise ValueError(f"input size {input_size} does not fit {self._describe()}; "
                             f"the nearest sizes that fit are {below} and {above}")
        return size

    def input_size(self, output_size: int) -> int:
        """The input height or width that makes :meth:`network` return ``output_size``.

        This is the paper's overlap-tile arithmetic: to predict an ``output_size``
        square, feed the ``output_size + 2 * margin`` square around it (388 → 572).

        Raises:
            ValueError: no input gives exactly ``output_size``; the message names the
                nearest output sizes that can be produced.
        """
        if not self._fits_output(output_size):
            below = self._fitting_output(output_size, step=-1)
            above = self._fitting_output(output_size, step=1)
            raise ValueError(f"{self._describe()} cannot output size {output_size}; "
                             f"the nearest sizes it can output are {below} and {above}")
        return output_size + 2 * self.margin

    def _fits_output(self, output_size: int) -> bool:
        # Going up, every level doubles the size and (valid) trims 4, so an output size
        # fits when undoing those steps lands on a whole size of at least 1 at the bottom.
        if output_size < 1:
            return False
        size = output_size
        for _ in range(self.depth):
            size += 4 if self.valid else 0
            if size % 2:
                return False
            size //= 2
        return size >= 1

    def _fitting_output(self, output_size: int, step: int) -> int | None:
        """The next output size that fits, going up (``step=1``) or down (``step=-1``)."""
        size = max(output_size + step, 1) if step > 0 else output_size + step
        while size >= 1:
            if self._fits_output(size):
                return size
            size += step
        return None

    def _describe(self) -> str:
        kind = "valid" if self.valid else "same-padding"
        return f"the {kind} U-Net of depth {self.depth}"

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes, H, W]`` at the input's resolution.

        Raises:
            TypeError: ``x`` is not a floating-point tensor.
            ValueError: ``x`` is not ``[N, in_channels, H, W]``.
        """
        check_input(x, self.in_channels, self.min_size, self._describe())
        if not self.valid:
            return pad_and_crop(self.network, x, self.multiple)
        height, width = x.shape[-2:]
        tile = self.tile or (self._covering(height), self._covering(width))
        return predict_tiled(self.network, x, tile=tile, margin=self.margin)

    def _covering(self, size: int) -> int:
        return size if self._fits_output(size) else self._fitting_output(size, step=1)

    def network(self, x: Tensor) -> Tensor:
        """The U itself: contracting path, expanding path with concatenated skips, 1×1 head.

        With valid convolutions the output is smaller than ``x`` (see :meth:`output_size`).

        Raises:
            ValueError: ``x``'s height or width does not fit (see :meth:`output_size`).
        """
        for size in x.shape[-2:]:
            self.output_size(size)
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)


@register(tiny_kwargs={"base_channels": 4})
def unet_paper(*, num_classes: int = 2, in_channels: int = 1, base_channels: int = 64,
               tile: int | None = None) -> UNet:
    """The paper's U-Net: valid convolutions, no batch norm, 64 → 1024 channels, 4 poolings.

    ``net.network`` maps 572×572 to 388×388; 31,030,658 parameters with ``in_channels=1,
    num_classes=2``. ``net(x)`` returns logits at the input's resolution by mirror-padded
    overlap-tile (see :class:`UNet`); ``tile`` fixes the output tile size (e.g. 388).
    ``base_channels`` other than the paper's 64 gives a narrower copy for quick tests.
    `Ronneberger et al. 2015 <https://arxiv.org/abs/1505.04597>`_.
    """
    return UNet(num_classes=num_classes, in_channels=in_channels, base_channels=base_channels,
                depth=4, batch_norm=False, bilinear=False, valid=True, tile=tile)


@register(tiny_kwargs={"base_channels": 4, "depth": 2})
def unet(*, num_classes: int, in_channels: int = 3, base_channels: int = 64, depth: int = 4,
         batch_norm: bool = True, bilinear: bool = False) -> UNet:
    """The practical U-Net: same convolutions with batch norm, logits at the input's size.

    Any ``H, W >= 1`` works: the input is zero-padded (evenly on both sides) to a multiple
    of ``2**depth`` and the logits are cropped back. ``base_channels=64, depth=4`` is the
    paper's width (about 31 M parameters); ``base_channels=16`` has 16× fewer.
    `Ronneberger et al. 2015 <https://arxiv.org/abs/1505.04597>`_.
    """
    return UNet(num_classes=num_classes, in_channels=in_channels, base_channels=base_channels,
                depth=depth, batch_norm=batch_norm, bilinear=bilinear, valid=False)
