"""segtutor.metrics.coco: COCO mask/box AP by pycocotools, checked against a direct formula.

The reference below is COCO's average precision written out in NumPy from its definition
(Lin et al. 2014, and cocoapi's ``COCOeval.evaluateImg``/``accumulate``): detections ranked
by score, each matched greedily to the unmatched ground truth of its class it overlaps most
(IoU at least the threshold), precision made monotone, read at 101 recall points, averaged
over the ten IoU thresholds and the classes. It covers the "all areas, 100 detections"
numbers (AP, AP50, AP75) on random scenes with misses, duplicates, false positives and two
classes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segtutor.metrics import COCO_STATS, coco_ap

THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALLS = np.linspace(0.0, 1.0, 101)


def rectangle(size: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def box_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def reference_ap(predictions, targets, threshold: float, label: int) -> float | None:
    """AP of one class at one IoU threshold, straight from the definition."""
    matched, scores, positives = [], [], 0
    for prediction, target in zip(predictions, targets, strict=True):
        truths = [m for m, lab in zip(target["masks"].numpy(), target["labels"].tolist(), strict=True) if lab == label]
        positives += len(truths)
        order = np.argsort(-prediction["scores"].numpy(), kind="mergesort")
        taken = [False] * len(truths)
        for index in order:
            if int(prediction["labels"][index]) != label:
                continue
            guess = prediction["masks"][index, 0].numpy() >= 0.5
            best, best_iou = None, min(threshold, 1 - 1e-10)
            for truth_index, truth in enumerate(truths):
                iou = mask_iou(guess, truth)
                if not taken[truth_index] and iou >= best_iou:
                    best, best_iou = truth_index, iou
            if best is not None:
                taken[best] = True
            matched.append(best is not None)
            scores.append(float(prediction["scores"][index]))
    if positives == 0:
        return None
    ranked = np.array(matched, dtype=bool)[np.argsort(-np.array(scores), kind="mergesort")]
    tp, fp = np.cumsum(ranked), np.cumsum(~ranked)
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope
    at = np.searchsorted(recall, RECALLS, side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in at]))


def reference(predictions, targets) -> dict[str, float]:
    labels = sorted({lab for t in targets for lab in t["labels"].tolist()})
    table = np.array([[reference_ap(predictions, targets, t, lab) for lab in labels]
                      for t in THRESHOLDS], dtype=float)
    return {"AP": float(table.mean()), "AP50": float(table[0].mean()), "AP75": float(table[5].mean())}


def random_scene(rng: np.random.Generator, size: int = 32):
    """A target with 1-4 rectangles of classes 1-2 and predictions that shift, miss,
    duplicate and invent some of them."""
    masks, labels = [], []
    for _ in range(rng.integers(1, 5)):
        y0, x0 = rng.integers(0, size - 8, 2)
        h, w = rng.integers(4, 9, 2)
        masks.append(rectangle(size, y0, x0, y0 + h, x0 + w))
        labels.append(int(rng.integers(1, 3)))
    pred_masks, pred_labels = [], []
    for mask, label in zip(masks, labels, strict=True):
        if rng.random() < 0.2:
            continue  # missed
        for _ in range(1 + (rng.random() < 0.3)):  # sometimes a duplicate
            ys, xs = np.nonzero(mask)
            dy, dx = rng.integers(-1, 2, 2)
            y0, x0 = max(ys.min() + dy, 0), max(xs.min() + dx, 0)
            pred_masks.append(rectangle(size, y0, x0, ys.max() + 1 + dy + rng.integers(-1, 2),
                                        xs.max() + 1 + dx + rng.integers(-1, 2)))
            pred_labels.append(label if rng.random() < 0.9 else 3 - label)
    for _ in range(rng.integers(0, 3)):  # false positives
        y0, x0 = rng.integers(0, size - 6, 2)
        pred_masks.append(rectangle(size, y0, x0, y0 + 5, x0 + 5))
        pred_labels.append(int(rng.integers(1, 3)))
    kept = [(m, lab) for m, lab in zip(pred_masks, pred_labels, strict=True) if m.any()]
    pred_masks, pred_labels = [m for m, _ in kept], [lab for _, lab in kept]
    target = {"boxes": torch.tensor([box_of(m) for m in masks]),
              "labels": torch.tensor(labels), "masks": torch.from_numpy(np.stack(masks))}
    probabilities = np.stack(pred_masks)[:, None].astype(np.float32) * rng.uniform(0.5, 1.0)
    prediction = {"boxes": torch.tensor([box_of(m) for m in pred_masks]).reshape(-1, 4),
                  "labels": torch.tensor(pred_labels, dtype=torch.int64),
                  "scores": torch.from_numpy(rng.permutation(len(pred_masks)) / len(pred_masks)
                                             + 0.01).float(),
                  "masks": torch.from_numpy(probabilities)}
    return prediction, target


@pytest.mark.parametrize("seed", range(8))
def test_mask_ap_equals_the_definition_on_random_scenes(seed):
    rng = np.random.default_rng(seed)
    scenes = [random_scene(rng) for _ in range(4)]
    predictions, targets = [s[0] for s in scenes], [s[1] for s in scenes]
    expected = reference(predictions, targets)
    got = coco_ap(predictions, targets)
    assert set(got) == set(COCO_STATS)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_perfect_predictions_score_one_for_masks_and_boxes():
    rng = np.random.default_rng(0)
    targets = [random_scene(rng)[1] for _ in range(3)]
    predictions = [{"boxes": t["boxes"], "labels": t["labels"],
                    "scores": torch.linspace(1, 0.5, len(t["labels"])),
                    "masks": t["masks"][:, None].float()} for t in targets]
    for iou_type in ("segm", "bbox"):
        scores = coco_ap(predictions, targets, iou_type=iou_type)
        for name in ("AP", "AP50", "AP75", "AR100"):
            assert scores[name] == pytest.approx(1.0, abs=1e-12), (iou_type, name)
        assert scores["AP_large"] == -1.0  # no object larger than 96² on a 32² image


def test_box_ap_sees_boxes_not_masks():
    """A prediction with the right box but the wrong mask: perfect box AP, zero mask AP."""
    size = 32
    truth = rectangle(size, 4, 4, 20, 20)
    wrong = rectangle(size, 4, 4, 6, 6)
    target = {"boxes": torch.tensor([box_of(truth)]), "labels": torch.tensor([1]),
              "masks": torch.from_numpy(truth[None])}
    prediction = {"boxes": target["boxes"], "labels": torch.tensor([1]), "scores": torch.tensor([0.9]),
                  "masks": torch.from_numpy(wrong[None, None]).float()}
    assert coco_ap([prediction], [target], iou_type="bbox")["AP"] == pytest.approx(1.0)
    assert coco_ap([prediction], [target])["AP"] == 0.0


def test_threshold_decides_what_a_probability_mask_covers():
    size = 16
    truth = rectangle(size, 0, 0, 8, 8)
    probabilities = truth.astype(np.float32) * 0.4
    target = {"boxes": torch.tensor([box_of(truth)]), "labels": torch.tensor([1]),
              "masks": torch.from_numpy(truth[None])}
    prediction = {"boxes": target["boxes"], "labels": torch.tensor([1]), "scores": torch.tensor([0.9]),
                  "masks": torch.from_numpy(probabilities[None, None])}
    assert coco_ap([prediction], [target])["AP"] == 0.0
    assert coco_ap([prediction], [target], mask_threshold=0.3)["AP"] == pytest.approx(1.0)


def test_no_detections_score_zero():
    rng = np.random.default_rng(1)
    target = random_scene(rng)[1]
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "scores": torch.zeros(0), "masks": torch.zeros(0, 1, 32, 32)}
    assert coco_ap([empty], [target]) == dict.fromkeys(COCO_STATS, 0.0)


def test_bad_inputs_are_refused():
    rng = np.random.default_rng(2)
    prediction, target = random_scene(rng)
    with pytest.raises(TypeError, match="predictions must be a sequence of dicts"):
        coco_ap(prediction, [target])
    with pytest.raises(TypeError, match=r"targets\[0\] must be a dict"):
        coco_ap([prediction], [1])
    with pytest.raises(ValueError, match="one dict per image each, got 2 and 1"):
        coco_ap([prediction, prediction], [target])
    with pytest.raises(ValueError, match=r"predictions\[0\] must have the keys"):
        coco_ap([{k: v for k, v in prediction.items() if k != "scores"}], [target])
    with pytest.raises(ValueError, match=r"\['masks'\] must have one entry per label"):
        coco_ap([dict(prediction, masks=prediction["masks"][:0])], [target])
    with pytest.raises(ValueError, match=r"\['boxes'\] must have shape \[N, 4\]"):
        coco_ap([prediction], [dict(target, boxes=target["boxes"][:, :3])])
    with pytest.raises(ValueError, match=r"must be 32x32 like the target's, got 16x16"):
        coco_ap([dict(prediction, masks=prediction["masks"][..., :16, :16])], [target])
    with pytest.raises(ValueError, match="iou_type must be one of"):
        coco_ap([prediction], [target], iou_type="keypoints")
    with pytest.raises(ValueError, match="mask_threshold must be"):
        coco_ap([prediction], [target], mask_threshold=0)
    with pytest.raises(TypeError, match=r"\['labels'\] must be a tensor"):
        coco_ap([dict(prediction, labels=[1])], [target])
