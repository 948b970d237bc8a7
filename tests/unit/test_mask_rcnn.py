"""segtutor.models.mask_rcnn: torchvision's Mask R-CNN on a small backbone, its RoI poolers
and the multinomial (softmax) mask loss of the paper's Table 2b.

The detection contract (losses in training, detections in evaluation) on ShapesInstances;
``roi_pooler="align"`` equal to torchvision's compiled ``MultiScaleRoIAlign`` in the whole
detector (same weights, same seeds: losses, gradients, detections), ``"pool"`` not; the
softmax mask loss and inference against formulas written here (the targets from
``torchvision.ops.roi_align`` on the ground-truth masks, or a box whose samples fall on the
pixel centres), torchvision's own mask functions left alone; the parameter count from the
layer shapes; SmallBackbone; the options' errors.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tv
from network_helpers import bn_params, conv_params, count
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection import roi_heads as tv_roi_heads
from torchvision.models.detection.roi_heads import paste_masks_in_image

from segtutor import models
from segtutor.data import ShapesInstances, detection_collate
from segtutor.models import MultiScaleRoIPooling, SmallBackbone, mask_rcnn
from segtutor.models.mask_rcnn import (
    MASK_LOSSES,
    ROI_POOLERS,
    SoftmaxMaskRoIHeads,
    set_roi_pooler,
    softmax_mask_inference,
    softmax_mask_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# ``segtutor.models.mask_rcnn`` is the builder; the module is reached by its full name
mask_rcnn_module = importlib.import_module("segtutor.models.mask_rcnn")

TINY = dict(models.model_info("mask_rcnn").tiny_kwargs)
LOSSES = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
SIZE = 64
TORCHVISION_MASK_FUNCTIONS = (tv_roi_heads.maskrcnn_loss, tv_roi_heads.maskrcnn_inference)


def tiny(seed: int = 0, **kwargs) -> MaskRCNN:
    torch.manual_seed(seed)
    # a zero score threshold, so that even an untrained model returns detections to check
    return mask_rcnn(**{**TINY, "box_score_thresh": 0.0, **kwargs})


def batch(count_: int = 2, seed: int = 0) -> tuple[list[torch.Tensor], list[dict]]:
    data = ShapesInstances(length=count_, size=SIZE, seed=seed)
    return detection_collate([data[i] for i in range(count_)])


def losses_of(model: nn.Module, images, targets, seed: int = 1) -> dict[str, torch.Tensor]:
    model.train()
    torch.manual_seed(seed)  # the RPN's and the RoI heads' samplers draw at random
    return model(images, targets)


def detections_of(model: nn.Module, images) -> list[dict[str, torch.Tensor]]:
    model.eval()
    with torch.no_grad():
        return model(images)


def copy_of(model: nn.Module, **kwargs) -> MaskRCNN:
    """A model built with other options and ``model``'s weights."""
    other = tiny(seed=123, **kwargs)
    other.load_state_dict(model.state_dict())
    return other


def mask_logits_hook(model: MaskRCNN) -> list[torch.Tensor]:
    """Record the mask predictor's outputs (the mask logits) of the next calls."""
    recorded: list[torch.Tensor] = []
    model.roi_heads.mask_predictor.register_forward_hook(
        lambda module, args, output: recorded.append(output.detach()))
    return recorded


# --- the registry -------------------------------------------------------------------------


def test_registered_as_an_instance_model():
    info = models.model_info("mask_rcnn")
    assert info.task == "instance" and info.builder is mask_rcnn
    assert "mask_rcnn" in models.list_models(task="instance")
    assert "mask_rcnn" not in models.list_models(task="semantic")
    assert isinstance(models.create("mask_rcnn", **info.tiny_kwargs), MaskRCNN)
    assert models.SmallBackbone is SmallBackbone and models.MultiScaleRoIPooling is MultiScaleRoIPooling
    assert ROI_POOLERS == ("torchvision", "align", "pool") and MASK_LOSSES == ("sigmoid", "softmax")


# --- the detection contract ---------------------------------------------------------------


@pytest.mark.parametrize("roi_pooler", ROI_POOLERS)
@pytest.mark.parametrize("mask_loss", MASK_LOSSES)
def test_training_returns_the_five_losses_and_every_parameter_learns(roi_pooler, mask_loss):
    model = tiny(roi_pooler=roi_pooler, mask_loss=mask_loss)
    images, targets = batch()
    losses = losses_of(model, images, targets)
    assert set(losses) == LOSSES
    assert all(value.ndim == 0 and torch.isfinite(value) for value in losses.values())
    assert all(value > 0 for value in losses.values())
    sum(losses.values()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.any(), f"{name}'s gradient is zero"


@pytest.mark.parametrize("mask_loss", MASK_LOSSES)
def test_evaluation_returns_detections_in_torchvisions_format(mask_loss):
    model = tiny(mask_loss=mask_loss)
    images, _ = batch(3)
    images[2] = images[2][:, :, :48]  # not square: torchvision's transform keeps the size
    detections = detections_of(model, images)
    assert isinstance(detections, list) and len(detections) == 3
    for image, found in zip(images, detections, strict=True):
        height, width = image.shape[-2:]
        assert set(found) == {"boxes", "labels", "scores", "masks"}
        n = len(found["scores"])
        assert 0 < n <= 20  # box_detections_per_img
        assert found["boxes"].shape == (n, 4) and found["boxes"].dtype == torch.float32
        assert (found["boxes"][:, :2] <= found["boxes"][:, 2:]).all()
        assert (found["boxes"] >= 0).all()
        assert (found["boxes"][:, [0, 2]] <= width).all() and (found["boxes"][:, [1, 3]] <= height).all()
        assert found["labels"].dtype == torch.int64
        assert ((found["labels"] >= 1) & (found["labels"] <= 3)).all()
        assert ((found["scores"] >= 0) & (found["scores"] <= 1)).all()
        assert (found["scores"][:-1] >= found["scores"][1:]).all()
        masks = found["masks"]
        assert masks.dtype == torch.float32 and masks.shape == (n, 1, height, width)
        assert ((masks >= 0) & (masks <= 1)).all()


@pytest.mark.parametrize("mask_loss", MASK_LOSSES)
def test_an_image_with_no_instances_trains(mask_loss):
    model = tiny(mask_loss=mask_loss)
    images, targets = batch(2)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, SIZE, SIZE, dtype=torch.uint8)}
    losses = losses_of(model, images, [targets[0], empty])
    assert set(losses) == LOSSES and all(torch.isfinite(v) for v in losses.values())


def test_architecture_sizes():
    model = mask_rcnn(**TINY)
    heads = model.roi_heads
    assert model.backbone.out_channels == 16 and model.backbone.output_stride == 4
    assert heads.box_roi_pool.output_size == (7, 7) and heads.mask_roi_pool.output_size == (14, 14)
    assert heads.box_roi_pool.sampling_ratio == heads.mask_roi_pool.sampling_ratio == 2
    assert model.transform.min_size == (SIZE,) and model.transform.max_size == SIZE
    assert model.rpn.anchor_generator.sizes == ((12, 20, 32, 44),)
    assert model.rpn.anchor_generator.num_anchors_per_location() == [12]
    assert model.roi_heads.detections_per_img == 20
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 64
    assert model.rpn._pre_nms_top_n == {"training": 200, "testing": 200}
    assert model.rpn._post_nms_top_n == {"training": 50, "testing": 50}
    # the mask logits are 28 x 28 per class
    recorded = mask_logits_hook(model)
    detections_of(model, batch(1)[0])
    assert recorded[0].shape[1:] == (4, 28, 28)


def test_image_size_sets_the_transform():
    model = mask_rcnn(**TINY, image_size=96)
    assert model.transform.min_size == (96,) and model.transform.max_size == 96
    image = torch.rand(3, 96, 96)
    model.eval()
    with torch.no_grad():
        images, _ = model.transform([image])
    assert images.tensors.shape[-2:] == (96, 96)  # neither shrunk nor enlarged


# --- roi_pooler: segtutor's RoIAlign is torchvision's, RoIPool is not ------------------------


def test_roi_pooler_modules():
    plain = mask_rcnn(**TINY)
    assert type(plain.roi_heads.box_roi_pool) is tv.MultiScaleRoIAlign
    assert type(plain.roi_heads.mask_roi_pool) is tv.MultiScaleRoIAlign
    for kind in ("align", "pool"):
        heads = mask_rcnn(**TINY, roi_pooler=kind).roi_heads
        for pooler in (heads.box_roi_pool, heads.mask_roi_pool):
            assert isinstance(pooler, MultiScaleRoIPooling) and pooler.kind == kind
            assert pooler.aligned is False and pooler.sampling_ratio == 2
            assert pooler.featmap_names == ["0"]
    # no parameters in the poolers: the state dicts have the same keys and shapes
    keys = {k: v.shape for k, v in plain.state_dict().items()}
    assert {k: v.shape for k, v in mask_rcnn(**TINY, roi_pooler="pool").state_dict().items()} == keys


@pytest.mark.parametrize("mask_loss", MASK_LOSSES)
def test_align_equals_torchvision_in_the_whole_detector(mask_loss):
    reference = tiny(mask_loss=mask_loss)
    ours = copy_of(reference, roi_pooler="align", mask_loss=mask_loss)
    images, targets = batch(2)

    reference_losses = losses_of(reference, images, targets)
    our_losses = losses_of(ours, images, targets)
    for name in LOSSES:
        torch.testing.assert_close(our_losses[name], reference_losses[name], atol=1e-5, rtol=1e-5)
    sum(reference_losses.values()).backward()
    sum(our_losses.values()).backward()
    reference_grads = dict(reference.named_parameters())
    for name, parameter in ours.named_parameters():
        expected = reference_grads[name].grad
        torch.testing.assert_close(parameter.grad, expected, atol=1e-5 * float(expected.abs().max()),
                                   rtol=1e-4, msg=name)

    found, expected = detections_of(ours, images), detections_of(reference, images)
    for mine, theirs in zip(found, expected, strict=True):
        assert torch.equal(mine["labels"], theirs["labels"])
        for key in ("boxes", "scores", "masks"):
            torch.testing.assert_close(mine[key], theirs[key], atol=1e-5, rtol=1e-5, msg=key)


@pytest.mark.parametrize("built_with", ["torchvision", "align"])
def test_set_roi_pooler_swaps_both_poolers_in_place(built_with):
    model = tiny(roi_pooler=built_with)
    images, _ = batch(2)
    before = detections_of(model, images)
    assert set_roi_pooler(model, "pool") is model
    for name, size in (("box_roi_pool", 7), ("mask_roi_pool", 14)):
        pooler = getattr(model.roi_heads, name)
        assert isinstance(pooler, MultiScaleRoIPooling) and pooler.kind == "pool"
        assert pooler.output_size == (size, size) and pooler.sampling_ratio == 2
    pooled = detections_of(model, images)
    assert any(not torch.equal(a["scores"], b["scores"]) or a["scores"].shape != b["scores"].shape
               for a, b in zip(before, pooled, strict=True))
    # and back: the same weights through torchvision's RoIAlign give the first detections
    set_roi_pooler(model, "torchvision")
    assert type(model.roi_heads.mask_roi_pool) is tv.MultiScaleRoIAlign
    for mine, theirs in zip(detections_of(model, images), before, strict=True):
        assert torch.equal(mine["labels"], theirs["labels"])
        for key in ("boxes", "scores", "masks"):
            torch.testing.assert_close(mine[key], theirs[key], atol=1e-5, rtol=1e-5, msg=key)


def test_set_roi_pooler_refuses_bad_input():
    with pytest.raises(TypeError, match="MaskRCNN, got Linear"):
        set_roi_pooler(nn.Linear(2, 2), "pool")
    with pytest.raises(ValueError, match="roi_pooler"):
        set_roi_pooler(tiny(), "warp")


def test_pool_differs_from_align():
    reference = tiny()
    pooled = copy_of(reference, roi_pooler="pool")
    images, targets = batch(2)
    reference_losses = losses_of(reference, images, targets)
    pooled_losses = losses_of(pooled, images, targets)
    assert all(torch.isfinite(v) for v in pooled_losses.values())
    # the RPN does not pool: its losses are the same; the heads' differ
    for name in ("loss_objectness", "loss_rpn_box_reg"):
        torch.testing.assert_close(pooled_losses[name], reference_losses[name])
    for name in ("loss_classifier", "loss_box_reg", "loss_mask"):  # (untrained: a little)
        assert abs(float((pooled_losses[name] - reference_losses[name]).detach())) > 1e-6, name
    # at inference: the same proposals, other RoI features
    features = []
    for model in (reference, pooled):
        model.roi_heads.box_roi_pool.register_forward_hook(
            lambda module, args, output: features.append(output))
        detections_of(model, images)
    assert features[0].shape == features[1].shape
    assert not torch.allclose(features[0], features[1], atol=1e-3)


# --- mask_loss="softmax" -------------------------------------------------------------------


def softmax_targets_by_hand(proposals, gt_masks, gt_labels, matched, size):
    """Per RoI the class of each of its ``size x size`` cells: the RoI's class where the
    ground-truth mask, sampled into the RoI with torchvision's roi_align (as
    ``project_masks_on_boxes``), is at least 0.5, else the background."""
    classes = []
    for boxes, masks, labels, idxs in zip(proposals, gt_masks, gt_labels, matched, strict=True):
        rois = torch.cat([idxs[:, None].to(boxes), boxes], dim=1)
        sampled = tv.roi_align(masks[:, None].float(), rois, (size, size), spatial_scale=1.0,
                               sampling_ratio=-1, aligned=False)[:, 0]
        classes.append(torch.where(sampled >= 0.5, labels[idxs][:, None, None], 0))
    return torch.cat(classes)


def random_mask_problem(generator: torch.Generator, num_classes: int = 4, size: int = 28):
    """Two images of ground-truth masks (rectangles and random blobs) with positive RoIs
    (jittered ground-truth boxes) and random mask logits."""
    proposals, gt_masks, gt_labels, matched = [], [], [], []
    for count_ in (3, 2):
        masks = torch.zeros(count_, 40, 48, dtype=torch.uint8)
        boxes = []
        for k in range(count_):
            x1, y1 = torch.randint(0, 24, (2,), generator=generator).tolist()
            w, h = torch.randint(6, 20, (2,), generator=generator).tolist()
            masks[k, y1:y1 + h, x1:x1 + w] = (torch.rand(h, w, generator=generator) < 0.8).to(torch.uint8)
            boxes.append([x1, y1, x1 + w, y1 + h])
        gt_masks.append(masks)
        gt_labels.append(torch.randint(1, num_classes, (count_,), generator=generator))
        idxs = torch.randint(0, count_, (5,), generator=generator)
        jitter = torch.rand(5, 4, generator=generator) * 6 - 3
        proposals.append(torch.tensor(boxes, dtype=torch.float32)[idxs] + jitter)
        matched.append(idxs)
    logits = torch.randn(10, num_classes, size, size, generator=generator, requires_grad=True)
    return logits, proposals, gt_masks, gt_labels, matched


def test_softmax_mask_loss_is_cross_entropy_over_classes_inside_the_box():
    torch.manual_seed(0)
    m, classes = 6, 4
    mask = (torch.rand(1, m, m) > 0.5).to(torch.uint8)
    # a box whose RoIAlign samples (aligned=False) fall on pixel centres 0..m-1: the
    # projected target is the mask itself
    box = torch.tensor([[-0.5, -0.5, m - 0.5, m - 0.5]])
    logits = torch.randn(1, classes, m, m)
    loss = softmax_mask_loss(logits, [box], [mask], [torch.tensor([2])], [torch.tensor([0])])
    target = torch.where(mask.bool(), 2, 0)  # the RoI's class inside its mask, background out
    torch.testing.assert_close(loss, F.cross_entropy(logits, target))


def test_softmax_mask_loss_over_several_images():
    torch.manual_seed(1)
    m = 4
    masks = [(torch.rand(2, m, m) > 0.5).to(torch.uint8), (torch.rand(1, m, m) > 0.5).to(torch.uint8)]
    box = torch.tensor([[-0.5, -0.5, m - 0.5, m - 0.5]])
    logits = torch.randn(3, 4, m, m)
    loss = softmax_mask_loss(logits, [box.repeat(2, 1), box], masks,
                             [torch.tensor([1, 3]), torch.tensor([2])],
                             [torch.tensor([1, 0]), torch.tensor([0])])
    targets = torch.stack([torch.where(masks[0][1].bool(), 3, 0),
                           torch.where(masks[0][0].bool(), 1, 0),
                           torch.where(masks[1][0].bool(), 2, 0)])
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets))


@pytest.mark.parametrize("size", [28, 14])
def test_softmax_mask_loss_equals_the_formula(size):
    generator = torch.Generator().manual_seed(size)
    logits, proposals, gt_masks, gt_labels, matched = random_mask_problem(generator, size=size)
    loss = softmax_mask_loss(logits, proposals, gt_masks, gt_labels, matched)
    classes = softmax_targets_by_hand(proposals, gt_masks, gt_labels, matched, size)
    assert classes.shape == (10, size, size)
    assert (classes == 0).any() and (classes > 0).any()
    log_probabilities = logits.log_softmax(dim=1)
    expected = -log_probabilities.gather(1, classes[:, None]).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(loss, F.cross_entropy(logits, classes))
    (gradient,) = torch.autograd.grad(loss, logits)
    (expected_gradient,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(gradient, expected_gradient)


def test_softmax_mask_loss_without_rois_is_zero_with_a_gradient():
    logits = torch.randn(0, 4, 28, 28, requires_grad=True)
    empty = [torch.zeros(0, 4)]
    loss = softmax_mask_loss(logits, empty, [torch.zeros(2, 16, 16, dtype=torch.uint8)],
                             [torch.tensor([1, 2])], [torch.zeros(0, dtype=torch.int64)])
    assert loss.shape == () and float(loss.detach()) == 0
    loss.backward()
    assert logits.grad.shape == logits.shape


def test_softmax_mask_inference_is_softmax_gathered_at_the_labels():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 4, 28, 28, generator=generator)
    labels = [torch.tensor([1, 3, 3]), torch.zeros(0, dtype=torch.int64), torch.tensor([2, 1, 1, 3])]
    masks = softmax_mask_inference(logits, labels)
    assert isinstance(masks, (list, tuple)) and len(masks) == 3
    probabilities = torch.exp(logits - logits.logsumexp(dim=1, keepdim=True))
    flat = torch.cat(labels)
    start = 0
    for mask, label in zip(masks, labels, strict=True):
        assert mask.shape == (len(label), 1, 28, 28)
        for k, c in enumerate(label.tolist()):
            torch.testing.assert_close(mask[k, 0], probabilities[start + k, c])
        start += len(label)
    assert start == len(flat)
    # torchvision's sigmoid inference picks the same class from other probabilities
    sigmoid = tv_roi_heads.maskrcnn_inference(logits, labels)
    assert [m.shape for m in sigmoid] == [m.shape for m in masks]
    assert not torch.allclose(sigmoid[0], masks[0])
    assert softmax_mask_inference(torch.zeros(0, 4, 28, 28), [torch.zeros(0, dtype=torch.int64)])[0].shape == (0, 1, 28, 28)


def test_softmax_model_has_the_softmax_heads_and_the_same_weights():
    sigmoid = tiny()
    softmax = copy_of(sigmoid, mask_loss="softmax")
    assert type(softmax.roi_heads) is SoftmaxMaskRoIHeads
    assert type(sigmoid.roi_heads) is tv_roi_heads.RoIHeads
    assert isinstance(softmax.roi_heads, tv_roi_heads.RoIHeads)
    assert count(softmax) == count(sigmoid)
    images, targets = batch(2)
    sigmoid_losses, softmax_losses = losses_of(sigmoid, images, targets), losses_of(softmax, images, targets)
    assert set(softmax_losses) == LOSSES and all(torch.isfinite(v) for v in softmax_losses.values())
    for name in LOSSES - {"loss_mask"}:  # only the mask loss changes
        torch.testing.assert_close(softmax_losses[name], sigmoid_losses[name])
    assert abs(float((softmax_losses["loss_mask"] - sigmoid_losses["loss_mask"]).detach())) > 1e-3


def test_softmax_training_loss_is_the_formula_on_the_sampled_rois(monkeypatch):
    model = tiny(mask_loss="softmax")
    images, targets = batch(2)
    seen = {}

    def spy(mask_logits, proposals, gt_masks, gt_labels, mask_matched_idxs):
        seen.update(logits=mask_logits, proposals=proposals, gt_masks=gt_masks,
                    gt_labels=gt_labels, matched=mask_matched_idxs)
        return softmax_mask_loss(mask_logits, proposals, gt_masks, gt_labels, mask_matched_idxs)

    monkeypatch.setattr(mask_rcnn_module, "softmax_mask_loss", spy)
    losses = losses_of(model, images, targets)
    classes = softmax_targets_by_hand(seen["proposals"], seen["gt_masks"], seen["gt_labels"],
                                      seen["matched"], 28)
    expected = -seen["logits"].log_softmax(1).gather(1, classes[:, None]).mean()
    torch.testing.assert_close(losses["loss_mask"], expected)
    assert seen["gt_masks"][0].shape[-2:] == (SIZE, SIZE)


@pytest.mark.parametrize("mask_loss", MASK_LOSSES)
def test_eval_masks_are_the_mask_probabilities_pasted(mask_loss):
    model = tiny(mask_loss=mask_loss)
    recorded = mask_logits_hook(model)
    images, _ = batch(2)
    detections = detections_of(model, images)
    logits = recorded[-1]
    labels = torch.cat([d["labels"] for d in detections])
    index = torch.arange(len(labels))
    if mask_loss == "softmax":
        probabilities = logits.softmax(dim=1)[index, labels]
    else:
        probabilities = logits.sigmoid()[index, labels]
    start = 0
    for found in detections:
        n = len(found["labels"])
        pasted = paste_masks_in_image(probabilities[start:start + n, None], found["boxes"], (SIZE, SIZE))
        torch.testing.assert_close(found["masks"], pasted)
        start += n


def test_softmax_eval_masks_differ_from_sigmoid_on_the_same_detections():
    sigmoid = tiny()
    softmax = copy_of(sigmoid, mask_loss="softmax")
    images, _ = batch(1)
    (mine,), (theirs,) = detections_of(softmax, images), detections_of(sigmoid, images)
    for key in ("boxes", "labels", "scores"):
        assert torch.equal(mine[key], theirs[key]), key
    assert not torch.allclose(mine["masks"], theirs["masks"], atol=1e-3)


def test_softmax_heads_never_touch_torchvisions_mask_functions(monkeypatch):
    model = tiny(mask_loss="softmax")
    images, targets = batch(2)
    seen = []
    model.roi_heads.mask_predictor.register_forward_hook(
        lambda *args: seen.append((tv_roi_heads.maskrcnn_loss, tv_roi_heads.maskrcnn_inference)))
    losses_of(model, images, targets)
    detections_of(model, images)
    assert seen == [TORCHVISION_MASK_FUNCTIONS] * 2  # nothing swapped, even while it runs

    def refuse(*args):
        raise AssertionError("torchvision's sigmoid mask function was called")

    monkeypatch.setattr(tv_roi_heads, "maskrcnn_loss", refuse)
    monkeypatch.setattr(tv_roi_heads, "maskrcnn_inference", refuse)
    assert set(losses_of(model, images, targets)) == LOSSES
    assert len(detections_of(model, images)) == 2
    assert (tv_roi_heads.maskrcnn_loss, tv_roi_heads.maskrcnn_inference) == (refuse, refuse)
    with pytest.raises(AssertionError, match="sigmoid mask function"):  # the sigmoid model uses them
        losses_of(copy_of(model), images, targets)


@pytest.mark.parametrize("training", [True, False])
def test_an_exception_inside_forward_leaves_nothing_behind(training):
    model = tiny(mask_loss="softmax")
    fresh = copy_of(model, mask_loss="softmax")
    images, targets = batch(2)
    failing = [True]

    def fail(*args):
        if failing[0]:
            raise RuntimeError("inside the mask head")

    model.roi_heads.mask_head.register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="inside the mask head"):
        if training:
            losses_of(model, images, targets)
        else:
            detections_of(model, images)
    assert (tv_roi_heads.maskrcnn_loss, tv_roi_heads.maskrcnn_inference) == TORCHVISION_MASK_FUNCTIONS
    failing[0] = False  # the same model works again, as a fresh copy does
    if training:  # (the failed call has updated batch norm's running statistics)
        expected, found = losses_of(fresh, images, targets), losses_of(model, images, targets)
        for name in LOSSES:
            torch.testing.assert_close(found[name], expected[name])
    else:
        found, expected = detections_of(model, images), detections_of(fresh, images)
        for mine, theirs in zip(found, expected, strict=True):
            torch.testing.assert_close(mine["masks"], theirs["masks"])


@pytest.mark.parametrize("mask_loss", [
    "sigmoid",
    "softmax",
])
def test_targets_without_masks_are_refused_clearly(mask_loss):
    model = tiny(mask_loss=mask_loss)
    images, targets = batch(2)
    targets = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    with pytest.raises(ValueError, match="masks"):
        losses_of(model, images, targets)


# --- the parameter count from the layer shapes ----------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, TINY, {"widths": (16, 24), "num_classes": 3,
                                              "anchor_sizes": (16, 32), "mask_channels": 5}])
def test_parameter_count_from_the_layer_shapes(kwargs):
    options = {"num_classes": 4, "widths": (32, 64, 128), "representation_size": 256,
               "mask_channels": 64, "anchor_sizes": (12, 20, 32, 44), **kwargs}
    classes, widths = options["num_classes"], options["widths"]
    r, m, c = options["representation_size"], options["mask_channels"], widths[-1]
    anchors = 3 * len(options["anchor_sizes"])  # three aspect ratios per size
    backbone = 0
    previous = 3
    for width in widths:  # two 3x3 convolutions (no bias) with batch norm per stage
        backbone += conv_params(previous, width, 3, bias=False) + bn_params(width)
        backbone += conv_params(width, width, 3, bias=False) + bn_params(width)
        previous = width
    rpn = conv_params(c, c, 3) + conv_params(c, anchors, 1) + conv_params(c, 4 * anchors, 1)
    box_head = (c * 7 * 7 * r + r) + (r * r + r)           # TwoMLPHead: fc6, fc7
    box_predictor = (r * classes + classes) + (r * 4 * classes + 4 * classes)
    mask_head = conv_params(c, m, 3) + conv_params(m, m, 3)
    mask_predictor = (m * m * 2 * 2 + m) + conv_params(m, classes, 1)  # 2x2 transposed, 1x1

    model = mask_rcnn(**kwargs)
    heads = model.roi_heads
    assert count(model.backbone) == backbone
    assert count(model.rpn) == rpn
    assert count(heads.box_head) == box_head
    assert count(heads.box_predictor) == box_predictor
    assert count(heads.mask_head) == mask_head
    assert count(heads.mask_predictor) == mask_predictor
    total = backbone + rpn + box_head + box_predictor + mask_head + mask_predictor
    assert count(model) == total
    if not kwargs:
        assert total == 2_247_028


# --- SmallBackbone --------------------------------------------------------------------------


@pytest.mark.parametrize(("widths", "stride"), [((8,), 1), ((8, 16), 2), ((4, 8, 16), 4),
                                                 ((4, 4, 4, 6), 8)])
def test_small_backbone_stride_and_channels(widths, stride):
    backbone = SmallBackbone(widths)
    assert backbone.out_channels == widths[-1] and backbone.output_stride == stride
    for height, width in ((64, 48), (40, 72)):
        out = backbone(torch.randn(2, 3, height, width))
        assert out.shape == (2, widths[-1], height // stride, width // stride)
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [w for w in widths for _ in range(2)]
    assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in backbone.modules()) == len(widths) - 1
    assert sum(isinstance(m, nn.BatchNorm2d) for m in backbone.modules()) == 2 * len(widths)


def test_small_backbone_in_channels_and_default():
    assert SmallBackbone().out_channels == 128 and SmallBackbone().output_stride == 4
    backbone = SmallBackbone([4, 8], in_channels=1)
    assert backbone(torch.randn(1, 1, 16, 16)).shape == (1, 8, 8, 8)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"widths": 8}, TypeError, r"widths must be a non-empty sequence of positive ints, got 8"),
    ({"widths": None}, TypeError, r"widths must be a non-empty sequence"),
    ({"widths": (8, 0)}, ValueError, r"widths\[1\] must be a positive int, got 0"),
    ({"widths": (8, 2.0)}, TypeError, r"widths\[1\] must be a positive int, got 2.0 \(float\)"),
    ({"widths": (True, 8)}, TypeError, r"widths\[0\] must be a positive int, got True \(bool\)"),
    ({"widths": "ab"}, TypeError, r"widths must be a non-empty sequence .* got 'ab' \(str\)"),
    ({"in_channels": 0}, ValueError, r"in_channels must be a positive int, got 0"),
    ({"in_channels": 3.0}, TypeError, r"in_channels must be a positive int, got 3.0"),
])
def test_small_backbone_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        SmallBackbone(**kwargs)


def test_small_backbone_empty_widths_is_a_value_error():
    with pytest.raises(ValueError, match=r"widths must be a non-empty sequence"):
        SmallBackbone(())


# --- the builder's options ------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"roi_pooler": "roi_align"}, ValueError,
     r"roi_pooler must be one of \('torchvision', 'align', 'pool'\), got 'roi_align'"),
    ({"roi_pooler": None}, ValueError, r"roi_pooler must be one of .* got None"),
    ({"mask_loss": "bce"}, ValueError, r"mask_loss must be one of \('sigmoid', 'softmax'\), got 'bce'"),
    ({"mask_loss": "Softmax"}, ValueError, r"mask_loss must be one of .* got 'Softmax'"),
    ({"num_classes": 1}, ValueError, r"num_classes must be an int >= 2, got 1"),
    ({"num_classes": 4.0}, TypeError, r"num_classes must be an int >= 2, got 4.0 \(float\)"),
    ({"num_classes": True}, TypeError, r"num_classes must be .* got True \(bool\)"),
    ({"image_size": 15}, ValueError, r"image_size must be an int >= 16, got 15"),
    ({"image_size": (64, 64)}, TypeError, r"image_size must be an int >= 16, got \(64, 64\)"),
    ({"image_size": True}, TypeError, r"image_size must be an int >= 16, got True \(bool\)"),
    ({"widths": (8, -1)}, ValueError, r"widths\[1\] must be a positive int, got -1"),
    ({"widths": 8}, TypeError, r"widths must be a non-empty sequence of positive ints"),
    ({"representation_size": 0}, ValueError, r"representation_size must be a positive int, got 0"),
    ({"representation_size": 32.0}, TypeError, r"representation_size must be a positive int"),
    ({"mask_channels": 0}, ValueError, r"mask_channels must be a positive int, got 0"),
    ({"mask_channels": True}, TypeError, r"mask_channels must be a positive int, got True"),
    ({"anchor_sizes": 12}, TypeError, r"anchor_sizes must be a non-empty sequence of positive ints"),
    ({"anchor_sizes": (12, 0)}, ValueError, r"anchor_sizes\[1\] must be a positive int, got 0"),
    ({"anchor_sizes": (12, 20.0)}, TypeError, r"anchor_sizes\[1\] must be a positive int, got 20.0"),
    ({"rpn_pre_nms_top_n": 0}, ValueError, r"rpn_pre_nms_top_n must be a positive int, got 0"),
    ({"rpn_post_nms_top_n": 1.5}, TypeError, r"rpn_post_nms_top_n must be a positive int"),
    ({"box_batch_size_per_image": -4}, ValueError, r"box_batch_size_per_image must be a positive int"),
    ({"box_detections_per_img": None}, TypeError, r"box_detections_per_img must be a positive int"),
])
def test_bad_options_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        mask_rcnn(**{**TINY, **kwargs})


def test_empty_anchor_sizes_is_a_value_error():
    with pytest.raises(ValueError, match=r"anchor_sizes must be a non-empty sequence"):
        mask_rcnn(**TINY, anchor_sizes=())


def test_builder_is_keyword_only_and_passes_kwargs_to_torchvision():
    with pytest.raises(TypeError):
        mask_rcnn(4)  # builders are keyword-only
    model = mask_rcnn(**TINY, box_score_thresh=0.3, box_nms_thresh=0.4)
    assert model.roi_heads.score_thresh == 0.3 and model.roi_heads.nms_thresh == 0.4
    other = mask_rcnn(**TINY, num_classes=3, rpn_pre_nms_top_n=10, rpn_post_nms_top_n=5,
                      box_batch_size_per_image=16, box_detections_per_img=7)
    assert other.roi_heads.box_predictor.cls_score.out_features == 3
    assert other.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 3
    assert other.rpn._pre_nms_top_n == {"training": 10, "testing": 10}
    assert other.rpn._post_nms_top_n == {"training": 5, "testing": 5}
    assert other.roi_heads.fg_bg_sampler.batch_size_per_image == 16
    assert other.roi_heads.detections_per_img == 7
