"""COCO-style average precision for instance segmentation, computed by pycocotools.

Semantic segmentation is scored per pixel (:mod:`segtutor.metrics.confusion`); instance
segmentation is scored per *object*: each predicted mask, taken in order of its score, is
matched to the unmatched ground-truth instance of its class it overlaps most, and counts as
a true positive when that mask IoU reaches a threshold. Precision against recall over the
ranked list gives an average precision per class and threshold; COCO averages it over the
classes and over the ten thresholds 0.50, 0.55, …, 0.95 (``"AP"``), and also reports it at
0.50 (``"AP50"``, the PASCAL VOC criterion) and 0.75 (``"AP75"``). Lin et al., "Microsoft
COCO: Common Objects in Context", ECCV 2014, https://arxiv.org/abs/1405.0312; the evaluation
is defined by its code, https://github.com/cocodataset/cocoapi.

:func:`coco_ap` hands torchvision's detection outputs to that code (``pycocotools``, the
field's reference evaluator) instead of re-implementing it: predictions are the dicts a
torchvision detector returns in evaluation mode, targets the dicts of
:class:`segtutor.data.ShapesInstances` (torchvision's detection format).

    >>> scores = coco_ap(predictions, targets)              # doctest: +SKIP
    >>> scores["AP"], scores["AP50"], scores["AP75"]        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .._checks import check_choice, check_number, describe

__all__ = ["COCO_STATS", "coco_ap"]

#: The twelve numbers :meth:`pycocotools.cocoeval.COCOeval.summarize` prints, in its order:
#: AP over IoU 0.50:0.95, at 0.50 and 0.75, AP for small/medium/large objects (area below
#: 32², up to 96², above), and the average recall with at most 1, 10 and 100 detections per
#: image, then by size.
COCO_STATS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")

_IOU_TYPES = ("segm", "bbox")


def _check_detections(items: object, name: str, keys: tuple[str, ...]) -> list[Mapping]:
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of dicts (one per image), got {describe(items)}")
    checked = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise TypeError(f"{name}[{index}] must be a dict, got {describe(item)}")
        missing = [key for key in keys if key not in item]
        if missing:
            raise ValueError(f"{name}[{index}] must have the keys {keys}, got {sorted(item)!r}")
        for key in keys:
            if not isinstance(item[key], torch.Tensor):
                raise TypeError(f"{name}[{index}][{key!r}] must be a tensor, got {describe(item[key])}")
        count = len(item["labels"])
        for key in keys:
            value = item[key]
            if len(value) != count:
                raise ValueError(f"{name}[{index}][{key!r}] must have one entry per label "
                                 f"({count}), got shape {tuple(value.shape)}")
        boxes = item["boxes"]
        if boxes.ndim != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"{name}[{index}]['boxes'] must have shape [N, 4], got "
                             f"{tuple(boxes.shape)}")
        checked.append(item)
    return checked


def _binary_masks(masks: torch.Tensor, threshold: float, name: str) -> np.ndarray:
    """``uint8[N, H, W]`` from ``[N, H, W]`` masks or ``[N, 1, H, W]`` probabilities."""
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f"{name} must have shape [N, H, W] or [N, 1, H, W], got "
                         f"{tuple(masks.shape)}")
    if masks.is_floating_point():
        masks = masks >= threshold
    return masks.detach().cpu().numpy().astype(np.uint8)


def _encode(masks: np.ndarray) -> list[dict]:
    encoded = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    return encoded if isinstance(encoded, list) else [encoded]


def _xywh(boxes: torch.Tensor) -> np.ndarray:
    boxes = boxes.detach().cpu().double().numpy().reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def coco_ap(predictions: Sequence[Mapping[str, torch.Tensor]],
            targets: Sequence[Mapping[str, torch.Tensor]], *,
            iou_type: str = "segm", mask_threshold: float = 0.5) -> dict[str, float]:
    """COCO average precision and recall of instance predictions, by pycocotools.

    Args:
        predictions: one dict per image as torchvision's detectors return them in
            evaluation mode: ``boxes`` float[N, 4] (x1, y1, x2, y2), ``labels`` int64[N],
            ``scores`` float[N] and, for ``iou_type="segm"``, ``masks`` float[N, 1, H, W]
            probabilities (or ``[N, H, W]`` binary masks).
        targets: one dict per image, in the same order: ``boxes``, ``labels`` (``0`` is
            the background and never appears) and, for ``"segm"``, ``masks``
            uint8[N, H, W].
        iou_type: ``"segm"`` scores the masks (mask IoU), ``"bbox"`` the boxes.
        mask_threshold: a probability at or above it is inside the mask (0.5, as in
            torchvision's references).

    Returns:
        the twelve numbers of :data:`COCO_STATS`, each in ``[0, 1]``, with ``-1.0`` where
        pycocotools has nothing to average (e.g. no large objects). With no detection at
        all every number is ``0.0``.

    Raises:
        TypeError, ValueError: the inputs are not lists of such dicts, of equal length.
    """
    check_choice(iou_type, "iou_type", _IOU_TYPES)
    check_number(mask_threshold, "mask_threshold", minimum=0, maximum=1, strict_minimum=True)
    keys = ("boxes", "labels", "masks") if iou_type == "segm" else ("boxes", "labels")
    predictions = _check_detections(predictions, "predictions", keys + ("scores",))
    targets = _check_detections(targets, "targets", keys)
    if len(predictions) != len(targets):
        raise ValueError(f"predictions and targets must have one dict per image each, got "
                         f"{len(predictions)} and {len(targets)}")

    images, annotations, results, categories = [], [], [], set()
    for image_id, (prediction, target) in enumerate(zip(predictions, targets, strict=True), start=1):
        if iou_type == "segm":
            truth = _binary_masks(target["masks"], mask_threshold, f"targets[{image_id - 1}]['masks']")
            guess = _binary_masks(prediction["masks"], mask_threshold,
                                  f"predictions[{image_id - 1}]['masks']")
            height, width = truth.shape[1:]
            if guess.shape[1:] != truth.shape[1:]:
                raise ValueError(f"predictions[{image_id - 1}]['masks'] must be {height}x{width} "
                                 f"like the target's, got {guess.shape[1]}x{guess.shape[2]}")
            truth_rles, guess_rles = _encode(truth), _encode(guess)
        else:
            height = width = 0
            truth_rles = guess_rles = None
        images.append({"id": image_id, "height": int(height), "width": int(width)})
        labels = target["labels"].tolist()
        categories.update(labels)
        for index, (label, box) in enumerate(zip(labels, _xywh(target["boxes"]), strict=True)):
            annotation = {"id": len(annotations) + 1, "image_id": image_id, "category_id": label,
                          "iscrowd": 0, "bbox": box.tolist()}
            if truth_rles is not None:
                annotation["segmentation"] = truth_rles[index]
                annotation["area"] = float(mask_utils.area(truth_rles[index]))
            else:
                annotation["area"] = float(box[2] * box[3])
            annotations.append(annotation)
        for index, (label, score, box) in enumerate(zip(prediction["labels"].tolist(),
                                                        prediction["scores"].tolist(),
                                                        _xywh(prediction["boxes"]), strict=True)):
            result = {"image_id": image_id, "category_id": label, "score": float(score),
                      "bbox": box.tolist()}
            if guess_rles is not None:
                result["segmentation"] = guess_rles[index]
            results.append(result)
            categories.add(label)

    if not results:
        return dict.fromkeys(COCO_STATS, 0.0)
    truth_api = COCO()
    truth_api.dataset = {"images": images, "annotations": annotations,
                         "categories": [{"id": label} for label in sorted(categories)]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        truth_api.createIndex()
        evaluation = COCOeval(truth_api, truth_api.loadRes(results), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: float(value) for name, value in zip(COCO_STATS, evaluation.stats, strict=True)}
