"""The paper's weight map, against brute-force distances computed with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segtutor.data.weightmap import (
    border_weights,
    class_balance_weights,
    label_cells,
    unet_weight_map,
)

ISBI_LABEL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "isbi2012" / \
    "train" / "label" / "3.png"


def two_touching_squares() -> np.ndarray:
    """Two 8x8 squares of class 1, separated by a 2-pixel gap of class 0, on a 24x32 image."""
    mask = np.zeros((24, 32), dtype=np.int64)
    mask[8:16, 6:14] = 1
    mask[8:16, 16:24] = 1
    return mask


def brute_force_border_weights(cells: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """d1, d2 by measuring every background pixel's distance to every cell pixel."""
    rows, cols = np.indices(cells.shape)
    per_cell = []
    for label in range(1, cells.max() + 1):
        cell_rows, cell_cols = np.nonzero(cells == label)
        distance = np.hypot(rows[..., None] - cell_rows, cols[..., None] - cell_cols)
        per_cell.append(distance.min(axis=-1))
    nearest_two = np.sort(np.stack(per_cell), axis=0)[:2]
    weights = w0 * np.exp(-(nearest_two.sum(axis=0) ** 2) / (2 * sigma**2))
    return np.where(cells == 0, weights, 0.0)


def test_border_weights_equal_brute_force_distances() -> None:
    rng = np.random.default_rng(0)
    mask = (rng.random((20, 24)) < 0.35).astype(np.int64)
    cells = label_cells(mask)
    assert cells.max() > 5
    expected = brute_force_border_weights(cells, w0=10.0, sigma=3.0)
    exact = border_weights(cells, w0=10.0, sigma=3.0, truncate=None)
    np.testing.assert_allclose(exact.numpy(), expected, rtol=1e-5, atol=1e-6)
    truncated = border_weights(cells, w0=10.0, sigma=3.0, truncate=2.0)
    assert np.abs(truncated.numpy() - expected).max() <= 10.0 * np.exp(-2.0**2 / 2) + 1e-6


def test_weight_peaks_in_the_gap_between_touching_squares() -> None:
    mask = two_touching_squares()
    weights = unet_weight_map(mask, w0=10.0, sigma=5.0).numpy()
    gap = weights[8:16, 14:16]
    row, col = np.unravel_index(weights.argmax(), weights.shape)
    assert 8 <= row < 16 and 14 <= col < 16
    # in the gap d1 = 1 and d2 = 2 (or the reverse): the border term is w0 exp(-9 / 50)
    balance = class_balance_weights(mask, num_classes=2).numpy()
    np.testing.assert_allclose(gap - balance[8:16, 14:16], 10 * np.exp(-9 / 50), rtol=1e-6)
    # far from both squares (and inside them) only class balancing is left
    assert weights[0, 0] == pytest.approx(balance[0, 0], abs=1e-3)
    np.testing.assert_array_equal(weights[mask == 1], balance[mask == 1])


def test_class_balance_gives_every_class_the_same_total_weight() -> None:
    mask = two_touching_squares()
    mask[0, :4] = 255
    weights = class_balance_weights(mask, num_classes=2).numpy()
    labelled = mask != 255
    totals = [weights[mask == c].sum() for c in (0, 1)]
    assert totals[0] == pytest.approx(totals[1]) == pytest.approx(labelled.sum() / 2)
    assert weights[labelled].mean() == pytest.approx(1.0)
    assert (weights[~labelled] == 0).all()
    counts = np.bincount(mask[labelled])
    assert weights[mask == 1][0] == pytest.approx(labelled.sum() / (2 * counts[1]))


def test_absent_class_and_single_cell() -> None:
    mask = np.zeros((6, 6), dtype=np.int64)
    mask[1:3, 1:3] = 2
    weights = class_balance_weights(mask, num_classes=3).numpy()
    assert weights[mask == 2].sum() == pytest.approx(weights[mask == 0].sum())
    # one cell has no second-nearest cell, so there is no border term
    assert border_weights(label_cells(mask, foreground=2)).abs().max() == 0


def test_accepts_tensors_and_returns_float32_tensors() -> None:
    mask = torch.from_numpy(two_touching_squares())
    weights = unet_weight_map(mask)
    assert weights.dtype == torch.float32 and weights.shape == mask.shape
    torch.testing.assert_close(weights, unet_weight_map(mask.numpy()))


@pytest.mark.skipif(not ISBI_LABEL.exists(), reason="the shared ISBI 2012 copy is not here")
def test_on_an_isbi_label_membranes_between_cells_weigh_most() -> None:
    from PIL import Image

    mask = (np.array(Image.open(ISBI_LABEL)) > 127).astype(np.int64)  # 1 = cell interior
    weights = unet_weight_map(mask).numpy()
    balance = class_balance_weights(mask, num_classes=2).numpy()
    membrane = mask == 0
    assert (weights[membrane] >= balance[membrane]).all()
    assert weights[membrane].mean() > 2 * weights[~membrane].mean()


def test_bad_inputs_raise_clear_errors() -> None:
    mask = two_touching_squares()
    with pytest.raises(ValueError, match=r"labels \[3\].*0\.\.1 and ignore_index=255"):
        class_balance_weights(np.where(mask == 1, 3, 0), num_classes=2)
    with pytest.raises(ValueError, match="2-D integer array"):
        class_balance_weights(mask.astype(np.float32), num_classes=2)
    with pytest.raises(ValueError, match="2-D integer array"):
        unet_weight_map(mask[None])
    with pytest.raises(TypeError, match="numpy array or a torch.Tensor, got list"):
        unet_weight_map(mask.tolist())
    with pytest.raises(ValueError, match="sigma must be a finite number > 0, got 0"):
        border_weights(label_cells(mask), sigma=0)
    with pytest.raises(ValueError, match="truncate must be a finite number > 0, got -1"):
        border_weights(label_cells(mask), truncate=-1)


def test_old_import_path_warns_and_serves_the_same_functions() -> None:
    import importlib
    import sys

    from segtutor.data import weightmap

    sys.modules.pop("segtutor.weightmap", None)
    with pytest.warns(DeprecationWarning, match="segtutor.weightmap moved to segtutor.data.weightmap"):
        old = importlib.import_module("segtutor.weightmap")
    assert old.unet_weight_map is weightmap.unet_weight_map
