"""Tests for segtutor.metrics: a hand-computed example, an independent NumPy
reference written with explicit set operations, and property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from segtutor import metrics
from segtutor._checks import IGNORE_INDEX
from segtutor.metrics import ConfusionMatrix

IGNORE = 255


def hand_example() -> tuple[torch.Tensor, torch.Tensor]:
    """A 3x3 image with 3 classes and one ignored pixel (bottom right)."""
    target = torch.tensor([[[0, 0, 1], [1, 1, 2], [2, 2, IGNORE]]])
    pred = torch.tensor([[[0, 1, 1], [1, 2, 2], [0, 2, 1]]])
    return pred, target


def test_hand_computed_example():
    pred, target = hand_example()
    cm = ConfusionMatrix(num_classes=3)
    cm.update(pred, target)
    # The 8 counted (truth, prediction) pairs, row by row, skipping the ignored pixel:
    # (0,0) (0,1) (1,1) | (1,1) (1,2) (2,2) | (2,0) (2,2)
    # rows = truth:  class 0 -> predicted 0 once, 1 once
    #                class 1 -> predicted 1 twice, 2 once
    #                class 2 -> predicted 0 once, 2 twice
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert cm.matrix.dtype == torch.int64
    # TP = (1, 2, 2); every row and column sums to (2, 3, 3), so FP = FN = (1, 1, 1).
    # pixel accuracy = 5 correct / 8 counted
    assert cm.pixel_accuracy() == pytest.approx(5 / 8)
    # IoU = TP / (TP + FP + FN) = 1/3, 2/4, 2/4 ; mean = (1/3 + 1/2 + 1/2) / 3 = 4/9
    assert cm.per_class_iou().tolist() == pytest.approx([1 / 3, 1 / 2, 1 / 2])
    assert cm.mean_iou() == pytest.approx(4 / 9)
    # Dice = 2TP / (2TP + FP + FN) = 2/4, 4/6, 4/6 ; mean = (1/2 + 2/3 + 2/3) / 3 = 11/18
    assert cm.per_class_dice().tolist() == pytest.approx([1 / 2, 2 / 3, 2 / 3])
    assert cm.mean_dice() == pytest.approx(11 / 18)
    # per-class accuracy = TP / (TP + FN) = 1/2, 2/3, 2/3 ; mean = 11/18
    assert cm.per_class_accuracy().tolist() == pytest.approx([1 / 2, 2 / 3, 2 / 3])
    assert cm.mean_accuracy() == pytest.approx(11 / 18)


def test_logits_are_reduced_by_argmax():
    pred, target = hand_example()
    logits = torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float() * 5.0
    logits += 0.1 * torch.randn_like(logits)
    cm = ConfusionMatrix(3)
    cm.update(logits, target)
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 1], [1, 0, 2]]


def test_absent_class_is_nan_and_left_out_of_the_mean():
    pred, target = hand_example()
    cm = ConfusionMatrix(num_classes=4)  # class 3 occurs nowhere
    cm.update(pred, target)
    iou = cm.per_class_iou()
    assert math.isnan(iou[3]) and math.isnan(cm.per_class_dice()[3])
    assert cm.mean_iou() == pytest.approx(4 / 9)
    result = cm.compute()
    assert result["mean_iou"] == pytest.approx(4 / 9)
    assert result["pixel_accuracy"] == pytest.approx(5 / 8)
    assert len(result["per_class_iou"]) == 4 and math.isnan(result["per_class_iou"][3])


def test_predicted_but_absent_class_has_iou_zero():
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    pred = torch.tensor([[[0, 0], [0, 1]]])
    iou = metrics.per_class_iou(pred, target, num_classes=2)
    # class 1: TP 0, FP 1, FN 0 -> IoU 0 (defined), class 0: 3 / 4
    assert iou.tolist() == pytest.approx([3 / 4, 0.0])


def test_reset_and_functional_shortcuts():
    pred, target = hand_example()
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    cm.reset()
    assert int(cm.matrix.sum()) == 0
    assert metrics.pixel_accuracy(pred, target, 3) == pytest.approx(5 / 8)
    assert metrics.mean_iou(pred, target, 3) == pytest.approx(4 / 9)
    assert metrics.mean_dice(pred, target, 3) == pytest.approx(11 / 18)
    assert metrics.per_class_dice(pred, target, 3).tolist() == pytest.approx([1 / 2, 2 / 3, 2 / 3])


def test_ignore_index_none_counts_everything():
    target = torch.tensor([[0, 1, 1]])
    pred = torch.tensor([[0, 1, 0]])
    assert metrics.pixel_accuracy(pred, target, 2, ignore_index=None) == pytest.approx(2 / 3)


def test_uint8_targets_do_not_overflow():
    target = torch.tensor([[[2, 2], [IGNORE, 1]]], dtype=torch.uint8)
    pred = torch.tensor([[[2, 1], [0, 1]]], dtype=torch.uint8)
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[0, 0, 0], [0, 1, 0], [0, 1, 1]]


# -- an independent reference: set operations per class, in NumPy -----------------------


def numpy_reference(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int):
    counted = target != ignore
    correct = 0
    total = 0
    for t, p in zip(target[counted].tolist(), pred[counted].tolist(), strict=True):
        correct += int(t == p)
        total += 1
    ious, dices = [], []
    for c in range(num_classes):
        truth_c = (target == c) & counted
        pred_c = (pred == c) & counted
        inter = int(np.logical_and(truth_c, pred_c).sum())
        union = int(np.logical_or(truth_c, pred_c).sum())
        size_sum = int(truth_c.sum()) + int(pred_c.sum())
        ious.append(inter / union if union else math.nan)
        dices.append(2 * inter / size_sum if size_sum else math.nan)
    return correct / total, ious, dices


@st.composite
def batches(draw, max_classes: int = 5):
    num_classes = draw(st.integers(2, max_classes))
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    size = n * h * w
    labels = st.integers(0, num_classes - 1)
    target = draw(st.lists(st.one_of(labels, st.just(IGNORE)), min_size=size, max_size=size))
    pred = draw(st.lists(labels, min_size=size, max_size=size))
    shape = (n, h, w)
    return num_classes, torch.tensor(pred).reshape(shape), torch.tensor(target).reshape(shape)


def nan_equal(a, b) -> bool:
    return all(
        (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-12)
        for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=60, deadline=None)
@given(batches())
def test_matches_numpy_set_reference(batch):
    num_classes, pred, target = batch
    assume(not bool((target == IGNORE).all()))  # empty: see test_empty_matrix_raises
    cm = ConfusionMatrix(num_classes)
    cm.update(pred, target)
    acc, ious, dices = numpy_reference(pred.numpy(), target.numpy(), num_classes, IGNORE)
    assert cm.pixel_accuracy() == pytest.approx(acc)
    assert nan_equal(cm.per_class_iou().tolist(), ious)
    assert nan_equal(cm.per_class_dice().tolist(), dices)


@settings(max_examples=60, deadline=None)
@given(batches())
def test_properties(batch):
    num_classes, pred, target = batch
    assume(not bool((target == IGNORE).all()))
    cm = ConfusionMatrix(num_classes)
    cm.update(pred, target)
    iou, dice = cm.per_class_iou(), cm.per_class_dice()
    defined = ~torch.isnan(iou)
    assert bool(((iou[defined] >= 0) & (iou[defined] <= 1)).all())
    assert torch.allclose(dice[defined], 2 * iou[defined] / (1 + iou[defined]))
    assert torch.equal(torch.isnan(dice), ~defined)
    # ignored pixels do not count: changing the prediction under them changes nothing
    repainted = torch.where(target == IGNORE, (pred + 1) % num_classes, pred)
    other = ConfusionMatrix(num_classes)
    other.update(repainted, target)
    assert torch.equal(cm.matrix, other.matrix)
    assert int(cm.matrix.sum()) == int((target != IGNORE).sum())


@settings(max_examples=40, deadline=None)
@given(batches())
def test_perfect_prediction_scores_one(batch):
    num_classes, _, target = batch
    assume(not bool((target == IGNORE).all()))
    perfect = torch.where(target == IGNORE, 0, target)
    cm = ConfusionMatrix(num_classes)
    cm.update(perfect, target)
    assert cm.pixel_accuracy() == 1.0
    assert cm.mean_iou() == 1.0
    assert cm.mean_dice() == 1.0


@settings(max_examples=40, deadline=None)
@given(batches())
def test_streaming_equals_one_shot(batch):
    num_classes, pred, target = batch
    one_shot = ConfusionMatrix(num_classes)
    one_shot.update(pred, target)
    streamed = ConfusionMatrix(num_classes)
    for i in range(pred.shape[0]):
        streamed.update(pred[i : i + 1], target[i : i + 1])
    assert torch.equal(one_shot.matrix, streamed.matrix)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_counts_on_cuda_match_cpu():
    pred, target = hand_example()
    cpu = ConfusionMatrix(3)
    cpu.update(pred, target)
    gpu = ConfusionMatrix(3)
    gpu.update(pred.cuda(), target.cuda())
    assert gpu.matrix.device.type == "cuda"
    assert torch.equal(gpu.matrix.cpu(), cpu.matrix)
    assert gpu.mean_iou() == cpu.mean_iou()


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1, 0])
def test_bad_num_classes(bad):
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        ConfusionMatrix(bad)


@pytest.mark.parametrize("bad", [2.0, 1.5, True, "3"])
def test_num_classes_of_the_wrong_type(bad):
    with pytest.raises(TypeError, match="num_classes must be an int >= 2"):
        ConfusionMatrix(bad)


def test_bad_ignore_index_type():
    with pytest.raises(TypeError, match=r"ignore_index must be None or an int, got 2.5 \(float\)"):
        ConfusionMatrix(3, ignore_index=2.5)


def test_package_layout():
    """The one-batch functions and the boundary measures are importable from the package."""
    from segtutor.metrics import boundary, coco, confusion, isbi

    assert metrics.ConfusionMatrix is confusion.ConfusionMatrix
    assert metrics.mean_iou is confusion.mean_iou
    assert metrics.boundary_band is boundary.boundary_band
    assert metrics.trimap_iou is boundary.trimap_iou
    assert metrics.boundary_iou is boundary.boundary_iou
    assert metrics.coco_ap is coco.coco_ap
    assert metrics.isbi_scores is isbi.isbi_scores
    assert set(metrics.__all__) == (set(confusion.__all__) | set(boundary.__all__) | set(coco.__all__)
                                    | set(isbi.__all__))
    assert all(hasattr(metrics, name) for name in metrics.__all__)
    assert metrics.ConfusionMatrix(3).ignore_index == IGNORE_INDEX == 255


def test_target_out_of_range_names_the_value():
    target = torch.tensor([[0, 7, 1, IGNORE]])
    pred = torch.zeros_like(target)
    with pytest.raises(ValueError, match=r"target contains labels \[7\]; valid labels are "
                       r"\[0, 3\) or ignore_index=255"):
        metrics.mean_iou(pred, target, 3)
    with pytest.raises(ValueError, match=r"target contains labels \[-1\]"):
        metrics.mean_iou(pred, torch.tensor([[0, -1, 1, 2]]), 3)


def test_pred_out_of_range_names_the_value():
    target = torch.tensor([[0, 1, 1]])
    with pytest.raises(ValueError, match=r"pred contains labels \[5\]; valid labels are \[0, 3\)"):
        metrics.mean_iou(torch.tensor([[0, 5, 1]]), target, 3)


def test_shape_mismatches():
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"logits of shape \(2, 2, 4, 4\).*expected logits of "
                       r"shape \(2, 3, 4, 4\)"):
        metrics.mean_iou(torch.zeros(2, 2, 4, 4), target, 3)
    with pytest.raises(ValueError, match=r"predicted labels of shape \(2, 4, 5\) do not match"):
        metrics.mean_iou(torch.zeros(2, 4, 5, dtype=torch.long), target, 3)


def test_bad_dtypes():
    with pytest.raises(TypeError, match="target must be an integer tensor, got dtype torch.float32"):
        metrics.mean_iou(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2), 3)
    with pytest.raises(TypeError, match="pred must be float logits or integer labels"):
        metrics.mean_iou(torch.zeros(1, 2, 2, dtype=torch.bool),
                         torch.zeros(1, 2, 2, dtype=torch.long), 3)
    with pytest.raises(TypeError, match="pred and target must be tensors, got list"):
        metrics.mean_iou([0, 1], torch.tensor([0, 1]), 3)


def test_empty_matrix_raises():
    cm = ConfusionMatrix(3)
    cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), IGNORE))
    with pytest.raises(ValueError, match="the confusion matrix is empty"):
        cm.mean_iou()
