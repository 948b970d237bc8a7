"""segtutor.metrics.boundary_band and trimap_iou against scikit-image's find_boundaries,
SciPy's dilation and NumPy counting (the Boundary IoU: test_boundary_iou.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage
from skimage.segmentation import find_boundaries

from segtutor.metrics import boundary_band, trimap_iou


def reference_band(labels: np.ndarray, width: int) -> np.ndarray:
    """Both sides of every label change (8-connected), grown by ``width - 1`` pixels."""
    edges = find_boundaries(labels, mode="thick", connectivity=2)
    if width == 1:
        return edges
    return ndimage.binary_dilation(edges, structure=np.ones((3, 3)), iterations=width - 1)


def reference_iou(pred: np.ndarray, target: np.ndarray, band: np.ndarray, classes: int,
                  ignore: int) -> float:
    keep = band & (target != ignore)
    p, t = pred[keep], target[keep]
    ious = []
    for c in range(classes):
        union = np.sum((p == c) | (t == c))
        if union:
            ious.append(np.sum((p == c) & (t == c)) / union)
    return float(np.mean(ious)) if ious else math.nan


label_maps = arrays(np.int64, st.tuples(st.integers(2, 14), st.integers(2, 14)),
                    elements=st.sampled_from([0, 1, 2, 255]))


@settings(max_examples=60, deadline=None)
@given(labels=label_maps, width=st.integers(1, 4))
def test_band_matches_skimage_and_scipy(labels, width):
    band = boundary_band(torch.from_numpy(labels)[None], width)[0].numpy()
    np.testing.assert_array_equal(band, reference_band(labels, width))


@settings(max_examples=60, deadline=None)
@given(target=label_maps, seed=st.integers(0, 2**16), width=st.integers(1, 3))
def test_iou_matches_numpy_counting(target, seed, width):
    pred = np.random.default_rng(seed).integers(0, 3, size=target.shape)
    expected = reference_iou(pred, target, reference_band(target, width), 3, 255)
    arguments = (torch.from_numpy(pred)[None], torch.from_numpy(target)[None], 3, width)
    if math.isnan(expected):  # no counted pixel near a boundary
        with pytest.raises(ValueError, match=f"no counted pixel within width={width}"):
            trimap_iou(*arguments)
    else:
        assert trimap_iou(*arguments) == pytest.approx(expected, abs=1e-12)


def test_a_square_band_by_hand():
    target = torch.zeros(1, 9, 9, dtype=torch.long)
    target[0, 3:6, 3:6] = 1
    band = boundary_band(target, 1)[0]
    # the 3x3 square and its one-pixel ring: a 5x5 block minus the square's centre
    expected = torch.zeros(9, 9, dtype=torch.bool)
    expected[2:7, 2:7] = True
    expected[4, 4] = False
    assert torch.equal(band, expected)


def test_logits_and_labels_agree_and_interior_errors_do_not_count():
    target = torch.zeros(1, 12, 12, dtype=torch.long)
    target[0, 2:10, 2:10] = 1
    pred = target.clone()
    pred[0, 5:7, 5:7] = 0  # wrong, but 3 pixels inside the edge: outside a width-2 band
    assert trimap_iou(pred, target, 2, width=2) == 1.0
    assert trimap_iou(pred, target, 2, width=4) < 1.0
    logits = torch.nn.functional.one_hot(pred, 2).permute(0, 3, 1, 2).float()
    assert trimap_iou(logits, target, 2, width=4) == trimap_iou(pred, target, 2, width=4)


def test_errors_name_the_value():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="width must be a positive int, got 0"):
        boundary_band(target, 0)
    with pytest.raises(TypeError, match="width must be a positive int, got 1.5"):
        boundary_band(target, 1.5)
    with pytest.raises(TypeError, match="target must be an integer tensor .*torch.float32"):
        boundary_band(target.float(), 1)
    with pytest.raises(ValueError, match=r"target must be 3-D \[N, H, W\], got shape \(4, 4\)"):
        boundary_band(target[0], 1)
    with pytest.raises(ValueError, match=r"pred of shape \(1, 3, 4, 4\) does not fit target"):
        trimap_iou(torch.zeros(1, 3, 4, 4), target, 2)
    with pytest.raises(TypeError, match=r"pred must be a torch.Tensor of logits .* or "
                       r"labels .*got \[0\] \(list\)"):
        trimap_iou([0], target, 2)
    with pytest.raises(ValueError, match=r"no counted pixel within width=3 .*labels present: \[0\]"):
        trimap_iou(target, target, 2)


def test_old_module_warns_and_keeps_the_trimap_meaning(monkeypatch):
    """segtutor.boundary is a deprecated shim: its boundary_iou is still the trimap IoU."""
    import importlib
    import sys

    from segtutor import metrics

    monkeypatch.delitem(sys.modules, "segtutor.boundary", raising=False)
    with pytest.warns(DeprecationWarning, match="segtutor.boundary moved to segtutor.metrics"):
        old = importlib.import_module("segtutor.boundary")
    assert old.boundary_band is boundary_band
    with pytest.warns(DeprecationWarning, match="segtutor.boundary.boundary_iou moved to "
                      "segtutor.metrics.trimap_iou"):
        old_iou = old.boundary_iou
    assert old_iou is trimap_iou and old_iou is not metrics.boundary_iou
    with pytest.raises(AttributeError, match="has no attribute 'per_class_boundary_iou'"):
        old.per_class_boundary_iou  # noqa: B018
