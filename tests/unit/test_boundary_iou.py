"""segtutor.metrics.boundary_iou (Cheng et al. 2021) against a direct NumPy/SciPy transcription
of the paper's definition and its reference code, and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from segtutor.metrics import (
    boundary_dilation,
    boundary_iou,
    mask_boundary,
    mean_iou,
    per_class_boundary_iou,
)

IGNORE = 255
RATIOS = [0.005, 0.02, 0.05, 0.1, 0.2, 0.5]


# -- the reference: boundary_utils.mask_to_boundary of bowenc0221/boundary-iou-api, with
# SciPy standing in for OpenCV, and the paper's |G_d ∩ P_d| / |G_d ∪ P_d| per class ----------


def reference_mask_to_boundary(mask: np.ndarray, dilation_ratio: float) -> np.ndarray:
    """``G_d ∩ G``: ``mask - erode(mask)``, the mask padded by one zero pixel first."""
    h, w = mask.shape
    img_diag = np.sqrt(h**2 + w**2)
    dilation = int(round(dilation_ratio * img_diag))
    if dilation < 1:
        dilation = 1
    mask = mask.astype(np.uint8)
    # cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    new_mask = np.pad(mask, 1, mode="constant", constant_values=0)
    # cv2.erode(new_mask, np.ones((3, 3)), iterations=dilation); OpenCV's default border
    # for erosion is the largest value, so nothing erodes in from beyond the padded frame
    new_mask_erode = ndimage.binary_erosion(new_mask, structure=np.ones((3, 3)),
                                            iterations=dilation, border_value=1)
    mask_erode = new_mask_erode[1:h + 1, 1:w + 1].astype(np.uint8)
    return mask - mask_erode


def reference_per_class(pred: np.ndarray, target: np.ndarray, num_classes: int,
                        dilation_ratio: float, ignore: int | None) -> list[float]:
    """Per class: intersections and unions of the two bands, summed over the images."""
    intersection, union = np.zeros(num_classes), np.zeros(num_classes)
    for p, t in zip(pred, target, strict=True):
        counted = np.ones(t.shape, bool) if ignore is None else t != ignore
        for c in range(num_classes):
            g_d = reference_mask_to_boundary(t == c, dilation_ratio).astype(bool) & counted
            p_d = reference_mask_to_boundary(p == c, dilation_ratio).astype(bool) & counted
            intersection[c] += np.sum(g_d & p_d)
            union[c] += np.sum(g_d | p_d)
    return [i / u if u else math.nan for i, u in zip(intersection, union, strict=True)]


def nan_equal(a, b) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-12)
               for x, y in zip(a, b, strict=True))


def blocky_labels(rng: np.random.Generator, n: int, h: int, w: int, classes: int,
                  block: int) -> np.ndarray:
    """Random labels in ``block``-pixel squares, so that masks have interiors and edges."""
    grid = rng.integers(0, classes, size=(n, -(-h // block), -(-w // block)))
    return np.kron(grid, np.ones((1, block, block), np.int64))[:, :h, :w]


@st.composite
def batches(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    num_classes = draw(st.integers(2, 4))
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 23)), draw(st.integers(1, 23))
    # present_classes < num_classes leaves classes empty in target and prediction
    present_classes = draw(st.integers(1, num_classes))
    target = blocky_labels(rng, n, h, w, present_classes, draw(st.integers(1, 6)))
    pred = target.copy()
    noise = rng.random(target.shape) < draw(st.sampled_from([0.0, 0.05, 0.3]))
    pred[noise] = rng.integers(0, num_classes, size=int(noise.sum()))
    if draw(st.booleans()):  # shift the prediction by a pixel or two
        pred = np.roll(pred, draw(st.integers(-2, 2)), axis=draw(st.integers(1, 2)))
    ignored = rng.random(target.shape) < draw(st.sampled_from([0.0, 0.1, 0.5]))
    target[ignored] = IGNORE
    return num_classes, pred, target


# -- the reference, on random and hand-made masks ------------------------------------------


@settings(max_examples=80, deadline=None)
@given(mask=st.integers(0, 2**32 - 1), h=st.integers(1, 31), w=st.integers(1, 31),
       block=st.integers(1, 8), ratio=st.sampled_from(RATIOS))
def test_mask_boundary_matches_the_reference_code(mask, h, w, block, ratio):
    labels = blocky_labels(np.random.default_rng(mask), 1, h, w, 2, block)[0]
    d = boundary_dilation(h, w, ratio)
    got = mask_boundary(torch.from_numpy(labels == 1), d).numpy()
    np.testing.assert_array_equal(got, reference_mask_to_boundary(labels == 1, ratio) == 1)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (500, 375), (375, 500), (53, 53),
                                   (54, 54), (1024, 2048), (17, 33)])
@pytest.mark.parametrize("ratio", [*RATIOS, 0.001, 1.0, 3.0])
def test_dilation_matches_the_reference_code(shape, ratio):
    h, w = shape
    assert boundary_dilation(h, w, ratio) == max(1, int(round(ratio * np.sqrt(h**2 + w**2))))


def test_hand_made_masks():
    square = torch.zeros(9, 11, dtype=torch.bool)
    square[2:7, 3:8] = True  # a 5x5 square away from the border
    ring = square.clone()
    ring[3:6, 4:7] = False
    assert torch.equal(mask_boundary(square, 1), ring)  # its one-pixel inner ring
    centre = torch.zeros_like(square)
    centre[4, 5] = True  # 3 pixels from the nearest pixel outside
    assert torch.equal(mask_boundary(square, 2), square & ~centre)
    assert torch.equal(mask_boundary(square, 3), square)
    full = torch.ones(5, 6, dtype=torch.bool)  # cut by the image border on every side
    frame = full.clone()
    frame[1:4, 1:5] = False
    assert torch.equal(mask_boundary(full, 1), frame)
    assert not mask_boundary(torch.zeros(4, 4, dtype=torch.bool), 3).any()
    # leading dimensions are kept, and each mask is treated alone
    stacked = torch.stack([square, ~square])[None]
    bands = mask_boundary(stacked, 1)
    assert bands.shape == (1, 2, 9, 11) and torch.equal(bands[0, 0], ring)
    np.testing.assert_array_equal(bands[0, 1].numpy(),
                                  reference_mask_to_boundary((~square).numpy(), 0.01) == 1)


@settings(max_examples=80, deadline=None)
@given(batch=batches(), ratio=st.sampled_from(RATIOS), ignore=st.sampled_from([IGNORE, None]))
def test_matches_the_reference_on_random_batches(batch, ratio, ignore):
    num_classes, pred, target = batch
    if ignore is None:
        target = np.where(target == IGNORE, 0, target)
    expected = reference_per_class(pred, target, num_classes, ratio, ignore)
    arguments = (torch.from_numpy(pred), torch.from_numpy(target), num_classes)
    options = dict(dilation_ratio=ratio, ignore_index=ignore)
    if all(math.isnan(v) for v in expected):  # every band pixel ignored
        with pytest.raises(ValueError, match="no counted pixel lies in a boundary band"):
            per_class_boundary_iou(*arguments, **options)
        return
    got = per_class_boundary_iou(*arguments, **options)
    assert got.dtype == torch.float64 and got.shape == (num_classes,)
    assert nan_equal(got.tolist(), expected)
    assert boundary_iou(*arguments, **options) == pytest.approx(np.nanmean(expected), abs=1e-12)


def test_two_squares_shifted_by_one_pixel():
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    pred = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, 4:12, 4:12] = 1  # an 8x8 square, rows and columns 4..11
    pred[0, 4:12, 5:13] = 1  # the same square one column to the right, columns 5..12
    # The diagonal is sqrt(16^2 + 16^2) = 22.6, and 0.02 * 22.6 rounds to 0, so d = 1:
    # each band is the mask's outermost ring of pixels.
    # Class 1: each ring has 4 * 8 - 4 = 28 pixels. Both rings hold rows 4 and 11 at
    # columns 5..11 (7 + 7 = 14 pixels); their other columns (4 and 11 of the target,
    # 5 and 12 of the prediction, rows 5..10) lie inside the other square. IoU = 14 / 42.
    # Class 0: the ring of background just around the square (a 10x10 ring, 36 pixels)
    # plus the image's border (4 * 16 - 4 = 60 pixels): 96 pixels in each band. They share
    # the image border (60) and, of the two 10x10 rings shifted by a column, rows 3 and 12
    # at columns 4..12 (9 + 9 = 18): 78. IoU = 78 / (96 + 96 - 78) = 78 / 114 = 13 / 19.
    per_class = per_class_boundary_iou(pred, target, 2)
    assert per_class.tolist() == pytest.approx([13 / 19, 1 / 3])
    assert boundary_iou(pred, target, 2) == pytest.approx((13 / 19 + 1 / 3) / 2)
    # mIoU is kinder: class 1 overlaps in 8 x 7 = 56 of 72 pixels
    assert mean_iou(pred, target, 2) == pytest.approx((56 / 72 + (256 - 72) / (256 - 56)) / 2)
    # With ratio 0.1, d = round(2.26) = 2. Class 1: each band is the square less its central
    # 4x4 (8^2 - 4^2 = 48 pixels): rows/columns 6..9 of the target, rows 6..9 and columns
    # 7..10 of the prediction. Shared: rows 4, 5, 10, 11 at columns 5..11 (4 * 7 = 28) and,
    # on rows 6..9, columns 5 and 11 (4 * 2 = 8): 36. IoU = 36 / (96 - 36) = 3 / 5.
    # Class 0: the image's 2-pixel frame (256 - 12^2 = 112 pixels) and a 2-pixel ring
    # around the square (rows and columns 2..13 less the square: 144 - 64 = 80), 192 pixels
    # for the target; for the prediction the ring (rows 2..13, columns 3..14) meets the
    # frame in column 14 (12 pixels): 112 + 80 - 12 = 180. Shared: the frame (112) and the
    # block rows 2..13, columns 3..13 less the union of the squares (132 - 8 * 9 = 60): 172.
    # IoU = 172 / (192 + 180 - 172) = 172 / 200.
    per_class = per_class_boundary_iou(pred, target, 2, dilation_ratio=0.1)
    assert per_class.tolist() == pytest.approx([172 / 200, 3 / 5])


def test_large_objects_are_not_scored_by_their_interiors():
    """The paper's point: a one-pixel shift costs little mIoU on a big object, and much
    Boundary IoU."""
    target = torch.zeros(1, 200, 200, dtype=torch.long)
    target[0, 20:180, 20:180] = 1
    pred = torch.roll(target, 1, dims=2)
    assert mean_iou(pred, target, 2) > 0.98
    assert boundary_iou(pred, target, 2) < 0.9


def test_empty_classes_are_nan_and_left_out_of_the_mean():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:6, 2:6] = 1
    per_class = per_class_boundary_iou(target, target, 4)
    assert per_class[:2].tolist() == [1.0, 1.0]
    assert math.isnan(per_class[2]) and math.isnan(per_class[3])
    assert boundary_iou(target, target, 4) == 1.0
    # a class only predicted has a band of its own and none in the target: IoU 0
    pred = target.clone()
    pred[0, 0, 0] = 3
    assert per_class_boundary_iou(pred, target, 4)[3] == 0.0


def test_ignored_pixels_leave_both_bands():
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[0, 3:7, 3:7] = 1
    pred = target.clone()
    pred[0, 3, 3:7] = 0  # wrong only on the square's top row ...
    assert boundary_iou(pred, target, 2) < 1.0
    target[0, 3, :] = IGNORE  # ... which is now ignored
    # the true square's band is its remaining edge (ignore pixels are not class 1); the
    # predicted square has the same rows 4..6, so the two bands agree wherever counted
    assert per_class_boundary_iou(pred, target, 2)[1] == 1.0


def test_logits_and_labels_agree():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 13, 9, generator=gen)
    target = torch.randint(0, 3, (2, 13, 9), generator=gen)
    assert torch.equal(per_class_boundary_iou(logits, target, 3),
                       per_class_boundary_iou(logits.argmax(1), target, 3))


def test_batch_sums_counts_over_images():
    """Per class, intersections and unions are summed over the batch (not IoUs averaged)."""
    small = torch.zeros(1, 12, 12, dtype=torch.long)
    small[0, 5:7, 5:7] = 1
    big = torch.zeros(1, 12, 12, dtype=torch.long)
    big[0, 1:11, 1:11] = 1
    target = torch.cat([small, big])
    pred = torch.cat([torch.zeros_like(small), big])  # misses the small square
    # class 1: image 1 intersection 0, union 4; image 2 intersection = union = 36
    assert per_class_boundary_iou(pred, target, 2)[1] == pytest.approx(36 / 40)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(1)
    target = torch.randint(0, 4, (2, 37, 29), generator=gen)
    pred = torch.randint(0, 4, (2, 37, 29), generator=gen)
    assert torch.equal(per_class_boundary_iou(pred.cuda(), target.cuda(), 4),
                       per_class_boundary_iou(pred, target, 4))


# -- bad input --------------------------------------------------------------------------


def test_errors_name_the_value():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 0] = 1
    with pytest.raises(TypeError, match="num_classes must be an int >= 2, got True"):
        boundary_iou(target, target, True)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 1"):
        boundary_iou(target, target, 1)
    with pytest.raises(ValueError, match="dilation_ratio must be a finite number > 0, got 0"):
        boundary_iou(target, target, 2, dilation_ratio=0)
    with pytest.raises(TypeError, match="dilation_ratio must be a finite number > 0"):
        boundary_iou(target, target, 2, dilation_ratio="0.02")
    with pytest.raises(TypeError, match="ignore_index must be None or an int"):
        boundary_iou(target, target, 2, ignore_index=2.5)
    with pytest.raises(ValueError, match=r"target must be 3-D \[N, H, W\], got shape \(4, 4\)"):
        boundary_iou(target[0], target[0], 2)
    with pytest.raises(TypeError, match="target must be an integer tensor"):
        boundary_iou(target, target.float(), 2)
    with pytest.raises(ValueError, match=r"logits of shape \(1, 3, 4, 4\) do not match"):
        boundary_iou(torch.zeros(1, 3, 4, 4), target, 2)
    with pytest.raises(ValueError, match=r"target contains labels \[7\]; valid labels are "
                       r"\[0, 2\) or ignore_index=255"):
        boundary_iou(target, torch.where(target == 1, 7, 0), 2)
    with pytest.raises(ValueError, match=r"pred contains labels \[5\]"):
        boundary_iou(target * 5, target, 2)
    with pytest.raises(ValueError, match="no counted pixel lies in a boundary band"):
        boundary_iou(target, torch.full_like(target, IGNORE), 2)
    with pytest.raises(ValueError, match="target must hold at least one pixel"):
        boundary_iou(target[:0], target[:0], 2)


def test_mask_boundary_errors():
    with pytest.raises(TypeError, match="mask must be a bool tensor .*torch.int64"):
        mask_boundary(torch.zeros(3, 3, dtype=torch.long), 1)
    with pytest.raises(ValueError, match=r"mask must be at least 2-D .*got shape \(3,\)"):
        mask_boundary(torch.zeros(3, dtype=torch.bool), 1)
    with pytest.raises(ValueError, match="dilation must be a positive int, got 0"):
        mask_boundary(torch.zeros(3, 3, dtype=torch.bool), 0)
    with pytest.raises(TypeError, match="height must be a positive int"):
        boundary_dilation(2.0, 3)
