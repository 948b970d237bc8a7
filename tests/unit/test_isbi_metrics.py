"""ISBI 2012's segmentation scores: scikit-image's, on the segments of a class map.

The references are direct NumPy formulas of the foreground-restricted Rand score (pairs of
true-cell pixels: together in both, in the prediction, in the truth) and of the two
conditional entropies, on small random label maps, and cases whose answer is known.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from segtutor.metrics import ISBI_SCORES, isbi_scores, label_segments


def pair_counts(true: np.ndarray, test: np.ndarray) -> tuple[float, float, float]:
    """Pairs of distinct true-cell pixels together in both / in the test / in the truth."""
    keep = true > 0
    t, p = true[keep], test[keep]
    same_true = t[:, None] == t[None, :]
    same_test = p[:, None] == p[None, :]
    off_diagonal = ~np.eye(t.size, dtype=bool)
    return ((same_true & same_test & off_diagonal).sum(), (same_test & off_diagonal).sum(),
            (same_true & off_diagonal).sum())


def conditional_entropy(a: np.ndarray, b: np.ndarray) -> float:
    """H(a | b) in bits, for two flat label arrays of the same pixels."""
    joint: dict[tuple[int, int], int] = {}
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        joint[x, y] = joint.get((x, y), 0) + 1
    n = a.size
    marginal_b: dict[int, int] = {}
    for (_, y), count in joint.items():
        marginal_b[y] = marginal_b.get(y, 0) + count
    return -sum(count / n * np.log2(count / marginal_b[y]) for (_, y), count in joint.items())


def random_maps(seed: int, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = (ndimage.gaussian_filter(rng.normal(size=(size, size)), 1.5) > -0.1).astype(np.int64)
    flip = rng.random((size, size)) < 0.1
    prediction = np.where(flip, 1 - target, target)
    return prediction, target


def scored(seed: int) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """``isbi_scores`` of a random case, with the true and the predicted segments it scores."""
    prediction, target = random_maps(seed)
    return (isbi_scores(prediction, target), label_segments(target),
            label_segments(prediction, fill_boundaries=True))


@pytest.mark.parametrize("seed", range(5))
def test_rand_scores_equal_the_pair_counting_formula(seed):
    scores, true, test = scored(seed)
    both, in_test, in_true = pair_counts(true, test)
    merge, split = both / in_test, both / in_true
    assert scores["rand_merge"] == pytest.approx(merge, rel=1e-12)
    assert scores["rand_split"] == pytest.approx(split, rel=1e-12)
    f_score = 2 * merge * split / (merge + split)
    assert scores["rand_error"] == pytest.approx(1 - f_score, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_vi_terms_equal_the_conditional_entropies(seed):
    scores, true, test = scored(seed)
    keep = true > 0
    assert scores["vi_split"] == pytest.approx(conditional_entropy(test[keep], true[keep]), abs=1e-9)
    assert scores["vi_merge"] == pytest.approx(conditional_entropy(true[keep], test[keep]), abs=1e-9)


def two_cells(gap: bool = False) -> np.ndarray:
    labels = np.ones((10, 21), dtype=np.int64)
    labels[:, 10] = 0  # a membrane between two cells
    if gap:
        labels[4, 10] = 1
    return labels


def test_a_perfect_prediction_scores_zero_errors():
    target = two_cells()
    scores = isbi_scores(torch.from_numpy(target), torch.from_numpy(target))
    assert set(scores) == set(ISBI_SCORES)
    assert scores["rand_error"] == pytest.approx(0.0, abs=1e-12)
    assert scores["vi_split"] == pytest.approx(0.0, abs=1e-12)
    assert scores["vi_merge"] == pytest.approx(0.0, abs=1e-12)


def test_a_one_pixel_gap_merges_two_cells():
    """Pixel accuracy 209/210, but the two cells become one: nothing split, half the pairs merged."""
    scores = isbi_scores(two_cells(gap=True), two_cells())
    assert scores["rand_split"] == pytest.approx(1.0)
    assert scores["rand_merge"] == pytest.approx((2 * 100 * 99) / (200 * 199))
    assert scores["vi_split"] == pytest.approx(0.0, abs=1e-12)
    assert scores["vi_merge"] == pytest.approx(1.0)  # one bit: which of two equal cells


def test_an_invented_membrane_splits_a_cell():
    prediction = two_cells()
    prediction[5, :10] = 0  # cuts the left cell in two
    scores = isbi_scores(prediction, two_cells())
    assert scores["rand_merge"] == pytest.approx(1.0)
    assert scores["rand_split"] < 1
    assert scores["vi_split"] > 0 and scores["vi_merge"] == pytest.approx(0.0, abs=1e-12)


def test_predicted_membranes_go_to_the_nearest_cell():
    labels = two_cells()
    filled = label_segments(labels, fill_boundaries=True)
    assert (filled > 0).all()
    assert filled.max() == 2
    assert (label_segments(labels) == 0).sum() == 10
    assert (label_segments(np.zeros((4, 4), dtype=np.int64), fill_boundaries=True) == 0).all()


def test_bad_inputs_name_the_value():
    with pytest.raises(TypeError, match="labels must be an integer"):
        isbi_scores(np.ones((4, 4)), two_cells()[:4, :4])
    with pytest.raises(TypeError, match="labels must be an integer"):
        label_segments(np.ones((2, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="same shape"):
        isbi_scores(two_cells()[:, :20], two_cells())
    with pytest.raises(ValueError, match="foreground class 1"):
        isbi_scores(two_cells(), np.zeros((10, 21), dtype=np.int64))
