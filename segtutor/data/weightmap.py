"""The U-Net paper's pixel-wise loss weight map w(x).

Ronneberger et al. (2015, https://arxiv.org/abs/1505.04597, Eq. 2) weight the
cross-entropy of every pixel ``x`` by

    w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²)),

where ``w_c`` balances the class frequencies and ``d1``, ``d2`` are the distances to
the border of the nearest and the second-nearest cell. The second term is large only in
the thin gaps *between two touching cells*, which forces the network to learn those
separating borders. The paper uses ``w0 = 10`` and ``σ ≈ 5`` pixels.

On ISBI 2012 the cells are the connected components of the "cell interior" label and
the gaps are the membranes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from .._checks import (
    IGNORE_INDEX,
    check_int,
    check_number,
    check_positive_int,
    check_positive_number,
)

__all__ = ["border_weights", "class_balance_weights", "label_cells", "unet_weight_map"]


def _as_numpy_labels(labels: np.ndarray | Tensor, name: str) -> np.ndarray:
    if isinstance(labels, Tensor):
        labels = labels.detach().cpu().numpy()
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a torch.Tensor, "
                        f"got {type(labels).__name__}")
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be a 2-D integer array [H, W], got shape "
                         f"{labels.shape} and dtype {labels.dtype}")
    return labels


def class_balance_weights(mask: np.ndarray | Tensor, *, num_classes: int,
                          ignore_index: int = IGNORE_INDEX) -> Tensor:
    """The class-balancing term ``w_c(x) = N / (K · n_c(x))``.

    ``N`` is the number of labelled pixels, ``K`` the number of classes present and
    ``n_c`` the pixel count of class ``c``, so every present class carries the same
    total weight ``N / K`` and the weights average to 1. Pixels equal to
    ``ignore_index`` get weight 0 (the loss ignores them anyway).

    Args:
        mask: ``int[H, W]`` class labels in ``0..num_classes-1`` or ``ignore_index``.
        num_classes: number of classes.
        ignore_index: the label of unlabelled pixels.

    Returns:
        ``float32[H, W]``.

    Raises:
        TypeError: ``mask`` is not an array or tensor.
        ValueError: ``mask`` is not a 2-D integer array, or holds a label outside
            ``0..num_classes-1`` other than ``ignore_index``.
    """
    mask = _as_numpy_labels(mask, "mask")
    check_positive_int(num_classes, "num_classes")
    check_int(ignore_index, "ignore_index")
    labelled = mask != ignore_index
    bad = labelled & ((mask < 0) | (mask >= num_classes))
    if bad.any():
        raise ValueError(f"mask holds labels {sorted(np.unique(mask[bad]).tolist())}; valid "
                         f"labels are 0..{num_classes - 1} and ignore_index={ignore_index}")
    counts = np.bincount(mask[labelled], minlength=num_classes).astype(np.float64)
    present = np.count_nonzero(counts)
    per_class = np.divide(labelled.sum(), present * counts, out=np.zeros_like(counts),
                          where=counts > 0)
    weights = np.zeros(mask.shape, dtype=np.float32)
    weights[labelled] = per_class[mask[labelled]]
    return torch.from_numpy(weights)


def label_cells(mask: np.ndarray | Tensor, *, foreground: int = 1) -> np.ndarray:
    """Number the cells: 4-connected components of ``mask == foreground`` are 1, 2, ...

    Returns:
        ``int32[H, W]``, 0 outside the cells.
    """
    mask = _as_numpy_labels(mask, "mask")
    cells, _ = ndimage.label(mask == foreground)
    return cells


def border_weights(cells: np.ndarray | Tensor, *, w0: float = 10.0, sigma: float = 5.0,
                   truncate: float | None = 6.0) -> Tensor:
    """The separation term ``w0 · exp(−(d1 + d2)² / (2σ²))`` on the pixels between cells.

    ``d1(x)`` and ``d2(x)`` are the Euclidean distances from pixel ``x`` to the nearest
    and second-nearest cell (``scipy.ndimage.distance_transform_edt`` of every cell's
    complement). The term is evaluated on background pixels (``cells == 0``) and is 0
    inside cells; with fewer than two cells ``d2`` is infinite and the term is 0.

    Args:
        cells: ``int[H, W]``, 0 for background and ``1, 2, ...`` for the cells (e.g.
            from :func:`label_cells`).
        w0: peak weight (the paper: 10).
        sigma: width in pixels (the paper: about 5).
        truncate: like ``scipy.ndimage.gaussian_filter``'s: distances are computed only
            within ``truncate * sigma`` pixels of each cell (much faster on images with
            many cells); farther cells count as infinitely far. This changes the result
            by at most ``w0 * exp(-truncate**2 / 2)`` (1.5e-7 for the defaults).
            ``None`` computes every distance over the whole image.

    Returns:
        ``float32[H, W]``.

    Raises:
        TypeError: ``cells`` is not an array or tensor, or ``w0``, ``sigma`` or
            ``truncate`` is not a number.
        ValueError: ``cells`` is not a 2-D integer array, ``w0`` is negative, or
            ``sigma``/``truncate`` are not positive.
    """
    cells = _as_numpy_labels(cells, "cells")
    check_number(w0, "w0", minimum=0)
    check_positive_number(sigma, "sigma")
    if truncate is not None:
        check_positive_number(truncate, "truncate")
    reach = None if truncate is None else math.ceil(truncate * sigma)
    nearest = np.full(cells.shape, np.inf)
    second = np.full(cells.shape, np.inf)
    for window, cell in _cell_windows(cells, reach):
        distance = ndimage.distance_transform_edt(~cell)
        d1, d2 = nearest[window], second[window]
        second[window] = np.minimum(d2, np.maximum(d1, distance))
        nearest[window] = np.minimum(d1, distance)
    weights = w0 * np.exp(-((nearest + second) ** 2) / (2 * sigma**2))
    weights[cells != 0] = 0.0
    return torch.from_numpy(weights.astype(np.float32))


def _cell_windows(cells: np.ndarray, reach: int | None):
    """Yield ``(window, cell_mask)``: each cell and the part of the image within ``reach``."""
    for label, box in enumerate(ndimage.find_objects(cells), start=1):
        if box is None:
            continue
        if reach is None:
            window = (slice(None), slice(None))
        else:
            window = tuple(slice(max(s.start - reach, 0), min(s.stop + reach, size))
                           for s, size in zip(box, cells.shape, strict=True))
        yield window, cells[window] == label


def unet_weight_map(mask: np.ndarray | Tensor, *, num_classes: int = 2, foreground: int = 1,
                    w0: float = 10.0, sigma: float = 5.0, ignore_index: int = IGNORE_INDEX,
                    truncate: float | None = 6.0) -> Tensor:
    """The paper's weight map ``w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²))``.

    Args:
        mask: ``int[H, W]`` class labels; the cells are the 4-connected components of
            ``mask == foreground`` (ISBI 2012: the cell interiors).
        num_classes: number of classes in ``mask``.
        foreground: the class whose connected components are the cells.
        w0, sigma, truncate: see :func:`border_weights`.
        ignore_index: unlabelled pixels; their weight is 0.

    Returns:
        ``float32[H, W]``, to multiply the per-pixel cross-entropy with.

    Raises:
        TypeError, ValueError: see :func:`class_balance_weights` and :func:`border_weights`.
    """
    balance = class_balance_weights(mask, num_classes=num_classes, ignore_index=ignore_index)
    border = border_weights(label_cells(mask, foreground=foreground), w0=w0, sigma=sigma,
                            truncate=truncate)
    return torch.where(balance > 0, balance + border, balance)
