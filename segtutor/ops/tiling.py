"""Prediction as in the U-Net paper: overlap-tiles, and averaging over rotations and flips.

Ronneberger et al. (2015, https://arxiv.org/abs/1505.04597, Fig. 2) predict a large image
tile by tile. Each output tile of ``tile`` pixels is computed from an input window that
is ``margin`` pixels larger on every side, so every prediction sees its full context;
at the image border the missing context is filled by *mirroring* the image. The output
tiles sit side by side and cover the image exactly.

This works for

* a network with *valid* convolutions (the paper's U-Net), which maps a
  ``tile + 2 * margin`` window to a ``tile`` output by itself; and
* a same-padding network, which returns the whole window; the central ``tile`` part is
  kept and the ``margin`` ring, whose predictions were disturbed by the window's zero
  padding, is thrown away. With a margin at least the network's receptive-field radius
  the tiles agree exactly with a single pass over the (mirror-padded) image, provided
  the tile size and margin keep the pooling grid aligned (multiples of ``2**depth``).

For its ISBI 2012 submission the paper also averaged the predictions for rotated versions
of the input; :class:`SymmetryAverage` averages over all eight rotations and flips of
the square (the dihedral group), which membranes, cells and most microscopy share.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .._checks import check_int, check_int_pair, check_tensor

__all__ = ["SymmetryAverage", "center_crop", "mirror_indices", "mirror_pad", "predict_tiled"]


def mirror_indices(size: int, before: int, after: int, device: torch.device | None = None
                   ) -> Tensor:
    """Indices ``0..size-1`` extended by mirroring: ``before`` in front, ``after`` behind.

    The mirror does not repeat the edge pixel (``numpy.pad(mode="reflect")``), and it is
    applied again and again when the padding is longer than the image, e.g. for
    ``size=3, before=4``: ``[0, 1, 2, 1, | 0, 1, 2]``. A single pixel mirrors to itself.

    Raises:
        TypeError: a size that is not an int.
        ValueError: ``size < 1`` or a negative padding.
    """
    check_int(size, "size", minimum=1)
    check_int(before, "before", minimum=0)
    check_int(after, "after", minimum=0)
    positions = torch.arange(-before, size + after, device=device)
    if size == 1:
        return torch.zeros_like(positions)
    period = 2 * (size - 1)
    folded = positions.remainder(period)
    return torch.where(folded < size, folded, period - folded)


def mirror_pad(x: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    """Pad the last two dimensions of ``x`` by mirroring, for any padding length.

    Unlike ``F.pad(mode="reflect")`` the padding may exceed the image size (the image is
    mirrored repeatedly) and a 1-pixel dimension is allowed.

    Raises:
        ValueError: a negative padding, or ``x`` has fewer than two dimensions.
    """
    check_tensor(x, "x", dims=range(2, 9), layout="[..., H, W]")
    rows = mirror_indices(x.shape[-2], top, bottom, device=x.device)
    cols = mirror_indices(x.shape[-1], left, right, device=x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def predict_tiled(network: Callable[[Tensor], Tensor], image: Tensor, *,
                  tile: int | tuple[int, int], margin: int | tuple[int, int]) -> Tensor:
    """Predict ``image`` by mirror-padded overlap-tiles.

    The image is mirror-padded by ``margin`` on every side (plus enough at the bottom and
    right to make whole tiles). Output tile ``(i, j)`` covers rows ``i*tile_h ...`` and
    columns ``j*tile_w ...`` of the image and is computed from the window that is
    ``margin`` larger on each side. If the network returns more than ``tile`` pixels
    (same padding), the centre ``tile`` is kept.

    Args:
        network: maps ``[N, C, tile_h + 2*margin_h, tile_w + 2*margin_w]`` to
            ``[N, K, h, w]`` with ``h - tile_h`` and ``w - tile_w`` even and
            non-negative, e.g. ``UNet.network`` of a valid U-Net (with its ``margin``) or
            any same-padding model.
        image: ``[N, C, H, W]``; any ``H, W >= 1``.
        tile: output tile height and width (one int for square tiles).
        margin: context added on each side (one int, or ``(margin_h, margin_w)``).

    Returns:
        ``[N, K, H, W]``: the tiles' outputs, stitched and cropped to the image.

    Raises:
        TypeError: ``image`` is not a tensor.
        ValueError: ``image`` is not 4-D, ``tile`` is not positive, ``margin`` is
            negative, or the network's output does not contain a centred ``tile``.
    """
    check_tensor(image, "image", dims=4, layout="[N, C, H, W]")
    tile_h, tile_w = check_int_pair(tile, "tile", minimum=1)
    margin_h, margin_w = check_int_pair(margin, "margin", minimum=0)
    height, width = image.shape[-2:]
    rows, cols = -(-height // tile_h), -(-width // tile_w)  # tiles needed, rounded up
    padded = mirror_pad(image, margin_h, margin_h + rows * tile_h - height,
                        margin_w, margin_w + cols * tile_w - width)
    row_outputs = []
    for i in range(rows):
        tiles = []
        for j in range(cols):
            top, left = i * tile_h, j * tile_w
            window = padded[..., top:top + tile_h + 2 * margin_h,
                            left:left + tile_w + 2 * margin_w]
            tiles.append(center_crop(network(window), (tile_h, tile_w)))
        row_outputs.append(torch.cat(tiles, dim=-1))
    return torch.cat(row_outputs, dim=-2)[..., :height, :width]


def center_crop(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """The central ``size`` window of ``x`` (``[..., H, W]``), as U-Net crops its skips.

    Raises:
        ValueError: ``size`` is larger than ``x``, or smaller by an odd number of pixels
            (the window could not be centred).
    """
    height, width = x.shape[-2:]
    target_h, target_w = size
    extra_h, extra_w = height - target_h, width - target_w
    if extra_h < 0 or extra_w < 0 or extra_h % 2 or extra_w % 2:
        raise ValueError(f"cannot centre-crop {height}x{width} to {target_h}x{target_w}; "
                         "the target must be smaller by an even number of pixels "
                         "(for tiles: check tile and margin)")
    top, left = extra_h // 2, extra_w // 2
    return x[..., top:top + target_h, left:left + target_w]


class SymmetryAverage(nn.Module):
    """Average a network's class probabilities over the 8 rotations and flips of the input.

    Each of the eight transformed copies of the batch is predicted, its softmax is
    transformed back, and the eight are averaged. ``forward`` returns the *log* of the
    averaged probabilities, which serve as logits: their softmax is the average and their
    ``argmax`` the predicted class, so the wrapped model can go wherever logits are
    expected (e.g. ``segtutor.train.evaluate``). It costs eight forward passes.

    Args:
        network: maps ``[N, C, H, W]`` to logits ``[N, K, H, W]`` for the rotated size
            ``[N, C, W, H]`` too.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        copies = []
        for quarter_turns in range(4):
            for flip in (False, True):
                copies.append(self._probabilities(x, quarter_turns, flip))
        return torch.stack(copies).mean(dim=0).log()

    def _probabilities(self, x: Tensor, quarter_turns: int, flip: bool) -> Tensor:
        """Softmax of the network on the transformed ``x``, transformed back."""
        view = torch.rot90(x, quarter_turns, dims=(-2, -1))
        logits = self.network(view.flip(-1) if flip else view)
        # at least float32, also for bfloat16 or float16 logits
        probabilities = logits.softmax(1, dtype=torch.promote_types(logits.dtype, torch.float32))
        probabilities = probabilities.flip(-1) if flip else probabilities
        return torch.rot90(probabilities, -quarter_turns, dims=(-2, -1))

