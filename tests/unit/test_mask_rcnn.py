"""segtutor.models.mask_rcnn: torchvision's Mask R-CNN on a small backbone, its RoI poolers
and the multinomial (softmax) mask loss of the paper's Table 2b."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import MultiScaleRoIAlign

from segtutor import models
from segtutor.bench import count_parameters
from segtutor.data import ShapesInstances
from segtutor.models.mask_rcnn import (
    SmallBackbone,
    SoftmaxMaskRoIHeads,
    mask_rcnn,
    softmax_mask_inference,
    softmax_mask_loss,
)
from segtutor.models.roi_pooling import MultiScaleRoIPooling

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(models.model_info("mask_rcnn").tiny_kwargs)
SIZE = 48
LOSSES = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}


@pytest.fixture(scope="module")
def batch():
    data = ShapesInstances(length=2, size=SIZE, seed=0)
    items = [data[0], data[1]]
    return [image for image, _ in items], [target for _, target in items]


def tiny(**overrides) -> MaskRCNN:
    torch.manual_seed(0)
    return mask_rcnn(num_classes=4, image_size=SIZE, **{**TINY, **overrides})


# -- the detection contract --------------------------------------------------------------


@pytest.mark.parametrize("mask_loss", ["sigmoid", "softmax"])
def test_training_returns_finite_losses_that_reach_every_parameter(batch, mask_loss):
    images, targets = batch
    model = tiny(mask_loss=mask_loss).train()
    losses = model(images, targets)
    assert set(losses) == LOSSES
    assert all(loss.ndim == 0 and torch.isfinite(loss) for loss in losses.values())
    sum(losses.values()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached {missing}"


@pytest.mark.parametrize("mask_loss", ["sigmoid", "softmax"])
def test_evaluation_returns_torchvisions_detections(batch, mask_loss):
    images, _ = batch
    model = tiny(mask_loss=mask_loss, box_score_thresh=0.0).eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2
    for found in detections:
        assert set(found) == {"boxes", "labels", "scores", "masks"}
        n = len(found["labels"])
        assert 0 < n <= 20  # box_detections_per_img
        assert found["boxes"].shape == (n, 4) and found["scores"].shape == (n,)
        assert found["labels"].dtype == torch.int64
        assert set(found["labels"].tolist()) <= {1, 2, 3}
        assert found["masks"].shape == (n, 1, SIZE, SIZE)
        assert 0 <= found["masks"].min() and found["masks"].max() <= 1


def test_images_are_neither_shrunk_nor_enlarged():
    model = tiny()
    transform = model.transform
    assert transform.min_size == (SIZE,) and transform.max_size == SIZE
    image = torch.rand(3, SIZE, SIZE)
    batched, _ = transform.eval()([image])
    assert batched.image_sizes == [(SIZE, SIZE)]


def test_registered_as_an_instance_model_outside_the_semantic_battery():
    assert "mask_rcnn" in models.list_models(task="instance")
    assert "mask_rcnn" not in models.list_models(task="semantic")
    assert isinstance(models.create("mask_rcnn", num_classes=4, **TINY), MaskRCNN)


# -- sizes -------------------------------------------------------------------------------


def conv_bn(c_in: int, c_out: int) -> int:
    return 9 * c_in * c_out + 2 * c_out  # 3x3 convolution without bias, batch norm


def expected_parameters(widths, representation, mask_channels, anchors, classes) -> int:
    """The parameter count from the architecture, written out layer by layer."""
    backbone, previous = 0, 3
    for width in widths:
        backbone += conv_bn(previous, width) + conv_bn(width, width)
        previous = width
    c = widths[-1]
    rpn = (9 * c * c + c) + (c * anchors + anchors) + (c * 4 * anchors + 4 * anchors)
    box_head = (c * 7 * 7 * representation + representation) + (representation ** 2
                                                                 + representation)
    box_predictor = (representation * classes + classes) + (representation * 4 * classes
                                                           + 4 * classes)
    mask_head = (9 * c * mask_channels + mask_channels) + (9 * mask_channels ** 2
                                                           + mask_channels)
    mask_predictor = (4 * mask_channels ** 2 + mask_channels) + (mask_channels * classes
                                                                 + classes)
    return backbone + rpn + box_head + box_predictor + mask_head + mask_predictor


@pytest.mark.parametrize("kwargs", [
    {},
    {"widths": (16, 32, 64), "representation_size": 256, "mask_channels": 32},
    {"widths": (8, 16), "representation_size": 64, "mask_channels": 16,
     "anchor_sizes": (16,)},
])
def test_parameter_count(kwargs):
    model = mask_rcnn(num_classes=4, **kwargs)
    widths = kwargs.get("widths", (32, 64, 128))
    anchors = 3 * len(kwargs.get("anchor_sizes", (12, 20, 32, 44)))  # three aspect ratios
    assert count_parameters(model) == expected_parameters(
        widths, kwargs.get("representation_size", 256), kwargs.get("mask_channels", 64),
        anchors, 4)


def test_backbone_stride_and_channels():
    backbone = SmallBackbone((8, 16, 24))
    assert backbone.out_channels == 24 and backbone.output_stride == 4
    assert backbone(torch.rand(1, 3, 40, 56)).shape == (1, 24, 10, 14)


# -- the RoI poolers ---------------------------------------------------------------------


def test_poolers_are_the_requested_operators():
    assert type(tiny().roi_heads.box_roi_pool) is MultiScaleRoIAlign
    for kind in ("align", "pool"):
        heads = tiny(roi_pooler=kind).roi_heads
        for pooler in (heads.box_roi_pool, heads.mask_roi_pool):
            assert isinstance(pooler, MultiScaleRoIPooling) and pooler.kind == kind
    heads = tiny().roi_heads
    assert heads.box_roi_pool.output_size == (7, 7) and heads.mask_roi_pool.output_size == (14, 14)


def test_segtutors_roi_align_gives_torchvisions_detections(batch):
    images, targets = batch
    reference, ours = tiny(box_score_thresh=0.0), tiny(roi_pooler="align", box_score_thresh=0.0)
    ours.load_state_dict(reference.state_dict())
    with torch.no_grad():
        expected, found = reference.eval()(images), ours.eval()(images)
    for a, b in zip(expected, found, strict=True):
        assert torch.equal(a["labels"], b["labels"])
        for key in ("boxes", "scores", "masks"):
            torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=1e-4)
    reference.train(), ours.train()
    torch.manual_seed(1)
    expected_losses = reference(images, targets)
    torch.manual_seed(1)
    found_losses = ours(images, targets)
    for key in LOSSES:
        torch.testing.assert_close(found_losses[key], expected_losses[key], atol=1e-5, rtol=1e-5)


def test_roi_pool_changes_the_features_but_not_the_weights(batch):
    images, _ = batch
    reference, pooled = tiny(box_score_thresh=0.0), tiny(roi_pooler="pool", box_score_thresh=0.0)
    pooled.load_state_dict(reference.state_dict())  # no parameters of its own
    with torch.no_grad():
        a, b = reference.eval()(images)[0], pooled.eval()(images)[0]
    assert a["scores"].shape != b["scores"].shape or not torch.allclose(a["scores"], b["scores"])


# -- the softmax mask loss ---------------------------------------------------------------


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


def test_softmax_mask_loss_over_several_images_and_no_rois():
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
    empty = torch.zeros(0, 4, m, m, requires_grad=True)
    none = softmax_mask_loss(empty, [torch.zeros(0, 4)], [masks[1]], [torch.tensor([2])],
                             [torch.zeros(0, dtype=torch.int64)])
    assert none.item() == 0 and none.requires_grad


def test_softmax_inference_is_the_predicted_classs_probability():
    logits = torch.randn(3, 4, 5, 5)
    labels = [torch.tensor([1, 3]), torch.tensor([2])]
    first, second = softmax_mask_inference(logits, labels)
    probabilities = logits.softmax(1)
    assert torch.equal(first, probabilities[[0, 1], [1, 3]][:, None])
    assert torch.equal(second, probabilities[[2], [2]][:, None])


def test_softmax_heads_change_only_the_mask_branch(batch):
    images, targets = batch
    sigmoid, softmax = tiny(box_score_thresh=0.0), tiny(mask_loss="softmax", box_score_thresh=0.0)
    assert type(sigmoid.roi_heads) is RoIHeads
    assert isinstance(softmax.roi_heads, SoftmaxMaskRoIHeads)
    softmax.load_state_dict(sigmoid.state_dict())  # the same weights
    sigmoid.train(), softmax.train()
    torch.manual_seed(2)
    a = sigmoid(images, targets)
    torch.manual_seed(2)
    b = softmax(images, targets)
    for key in LOSSES - {"loss_mask"}:
        torch.testing.assert_close(b[key], a[key])
    assert not torch.allclose(a["loss_mask"], b["loss_mask"])
    with torch.no_grad():
        found_a, found_b = sigmoid.eval()(images), softmax.eval()(images)
    for x, y in zip(found_a, found_b, strict=True):
        assert torch.equal(x["boxes"], y["boxes"]) and torch.equal(x["labels"], y["labels"])


def test_softmax_heads_in_evaluation_use_softmax_probabilities(batch):
    images, _ = batch
    model = tiny(mask_loss="softmax", box_score_thresh=0.0).eval()
    captured = []
    model.roi_heads.mask_predictor.register_forward_hook(
        lambda module, args, output: captured.append(output))
    with torch.no_grad():
        batched, _ = model.transform(images)
        features = {"0": model.backbone(batched.tensors)}
        proposals, _ = model.rpn(batched, features)
        found, losses = model.roi_heads(features, proposals, batched.image_sizes)
    assert losses == {}
    labels = torch.cat([r["labels"] for r in found])
    masks = torch.cat([r["masks"] for r in found])
    expected = captured[0].softmax(1)[torch.arange(len(labels)), labels][:, None]
    torch.testing.assert_close(masks, expected)


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"roi_pooler": "max"}, ValueError, "roi_pooler must be one of"),
    ({"mask_loss": "dice"}, ValueError, "mask_loss must be one of"),
    ({"num_classes": 1}, ValueError, "num_classes must be"),
    ({"num_classes": 4.0}, TypeError, "num_classes must be"),
    ({"image_size": 8}, ValueError, "image_size must be"),
    ({"image_size": True}, TypeError, "image_size must be"),
    ({"widths": ()}, TypeError, "widths must be"),
    ({"widths": (8, 0)}, ValueError, r"widths\[1\] must be"),
    ({"anchor_sizes": 16}, TypeError, "anchor_sizes must be"),
    ({"anchor_sizes": (16, -1)}, ValueError, r"anchor_sizes\[1\] must be"),
    ({"mask_channels": 0}, ValueError, "mask_channels must be"),
    ({"rpn_post_nms_top_n": 0}, ValueError, "rpn_post_nms_top_n must be"),
    ({"box_batch_size_per_image": 1.5}, TypeError, "box_batch_size_per_image must be"),
])
def test_bad_options_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        mask_rcnn(**{"num_classes": 4, **TINY, **kwargs})
