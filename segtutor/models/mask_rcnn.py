"""Mask R-CNN sized for a CPU: torchvision's detector on a small convolutional backbone.

He, Gkioxari, Dollár & Girshick, "Mask R-CNN", ICCV 2017, https://arxiv.org/abs/1703.06870.
Mask R-CNN is Faster R-CNN (Ren et al. 2015, https://arxiv.org/abs/1506.01497) — a
backbone, a region proposal network (RPN) and, per region of interest (RoI), a box
regressor and a classifier — with a third head beside those two: a small fully
convolutional network that predicts, inside each RoI, a 28 x 28 *binary* mask for every
class. Only the mask of the class the box branch predicts is used (the paper's
"decoupling" of masks and classes), and the RoI features are read with RoIAlign (bilinear
sampling, no rounding) instead of Fast R-CNN's RoIPool.

:func:`mask_rcnn` builds torchvision's own :class:`~torchvision.models.detection.MaskRCNN`
(its RPN, sampling, losses and post-processing) on a three-stage backbone of
``conv_bn_relu`` blocks at output stride 4, with one feature level, anchors sized to the
objects of :class:`segtutor.data.ShapesInstances` and heads a fraction of the paper's size,
so it trains in a minute on one CPU thread. Two options swap the parts Chapter 11 studies:

* ``roi_pooler``: ``"torchvision"`` (torchvision's compiled ``MultiScaleRoIAlign``),
  ``"align"`` or ``"pool"`` (segtutor's pure-PyTorch operators through
  :class:`~segtutor.models.roi_pooling.MultiScaleRoIPooling`), for both the box and the
  mask head;
* ``mask_loss``: ``"sigmoid"`` (the paper's per-class binary masks, torchvision's
  ``maskrcnn_loss``) or ``"softmax"`` (a per-pixel softmax over the classes, the
  multinomial alternative of the paper's Table 2b), see :class:`SoftmaxMaskRoIHeads`.

The detection contract is torchvision's: ``model(images)`` with a list of ``float[3, H, W]``
images in ``[0, 1]``; in training ``model(images, targets)`` returns a dict of losses, in
evaluation a list of dicts with ``boxes``, ``labels``, ``scores`` and ``masks``
(``float[N, 1, H, W]`` probabilities, pasted into the image).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, project_masks_on_boxes
from torchvision.ops import MultiScaleRoIAlign

from .._checks import check_choice, check_int, check_positive_int, describe
from ..ops import conv_bn_relu
from .registry import register
from .roi_pooling import MultiScaleRoIPooling

__all__ = ["MASK_LOSSES", "ROI_POOLERS", "SmallBackbone", "SoftmaxMaskRoIHeads", "mask_rcnn",
           "set_roi_pooler", "softmax_mask_inference", "softmax_mask_loss"]

#: The RoI feature extractors :func:`mask_rcnn` can use.
ROI_POOLERS = ("torchvision", "align", "pool")
#: The mask losses :func:`mask_rcnn` can use.
MASK_LOSSES = ("sigmoid", "softmax")


def _check_sizes(value: object, name: str) -> None:
    """A non-empty sequence of positive ints (``TypeError`` for another type, ``ValueError``
    for an empty one; each entry checked as ``name[i]``)."""
    what = "a non-empty sequence of positive ints"
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(f"{name} must be {what}, got {describe(value)} ({type(value).__name__})")
    if not value:
        raise ValueError(f"{name} must be {what}, got {describe(value)}")
    for index, entry in enumerate(value):
        check_positive_int(entry, f"{name}[{index}]")


class SmallBackbone(nn.Sequential):
    """Stages of two 3 x 3 ``conv_bn_relu`` blocks, a 2 x 2 max pooling between stages.

    Output stride ``2 ** (len(widths) - 1)``; ``out_channels`` (``widths[-1]``) is the
    attribute torchvision's detectors read.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128), in_channels: int = 3) -> None:
        _check_sizes(widths, "widths")
        layers: list[nn.Module] = []
        previous = check_positive_int(in_channels, "in_channels")
        for stage, width in enumerate(widths):
            check_positive_int(width, f"widths[{stage}]")
            if stage:
                layers.append(nn.MaxPool2d(2))
            layers += [conv_bn_relu(previous, width), conv_bn_relu(width, width)]
            previous = width
        super().__init__(*layers)
        self.out_channels = previous
        self.output_stride = 2 ** (len(widths) - 1)


def softmax_mask_loss(mask_logits: Tensor, proposals: list[Tensor], gt_masks: list[Tensor],
                      gt_labels: list[Tensor], mask_matched_idxs: list[Tensor]) -> Tensor:
    """The multinomial mask loss: per pixel, a softmax over all classes.

    Same arguments as torchvision's ``maskrcnn_loss`` (which applies a binary cross-entropy
    to the logit of the RoI's own class only). Here every pixel of a positive RoI is a
    ``num_classes``-way classification: the RoI's class where its ground-truth mask
    (projected into the RoI with RoIAlign, as torchvision does, and thresholded at 0.5)
    covers the pixel, the background (0) elsewhere — classes compete for each pixel, as in
    an FCN.
    """
    size = mask_logits.shape[-1]
    labels = [gt[idxs] for gt, idxs in zip(gt_labels, mask_matched_idxs, strict=True)]
    targets = [project_masks_on_boxes(m, p, i, size)
               for m, p, i in zip(gt_masks, proposals, mask_matched_idxs, strict=True)]
    if not labels or mask_logits.numel() == 0:
        return mask_logits.sum() * 0
    labels = torch.cat(labels)
    inside = torch.cat(targets) >= 0.5
    pixel_classes = torch.where(inside, labels[:, None, None], torch.zeros_like(labels)[:, None, None])
    return F.cross_entropy(mask_logits, pixel_classes)


def softmax_mask_inference(mask_logits: Tensor, labels: list[Tensor]) -> list[Tensor]:
    """Each detection's mask: the softmax probability of its predicted class, per pixel
    (torchvision's ``maskrcnn_inference`` takes the sigmoid of that class's logit)."""
    probabilities = mask_logits.softmax(1)
    chosen = torch.cat(labels)
    index = torch.arange(len(chosen), device=chosen.device)
    picked = probabilities[index, chosen][:, None]
    return list(picked.split([len(label) for label in labels], dim=0))


class SoftmaxMaskRoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` with the multinomial mask loss and inference.

    Sampling, box losses and post-processing are torchvision's ``RoIHeads.forward``; its
    own (sigmoid) mask branch is switched off (:meth:`has_mask` is ``False``) and this
    class runs the same branch after it -- the same RoIs (the positive samples in training,
    the detections at inference), pooler, head and predictor -- with
    :func:`softmax_mask_loss` and :func:`softmax_mask_inference` in place of torchvision's
    ``maskrcnn_loss`` and ``maskrcnn_inference``.
    """

    def has_mask(self) -> bool:
        """``False``: torchvision's sigmoid mask branch never runs (``forward`` runs this one)."""
        return False

    def select_training_samples(self, proposals: list[Tensor], targets: list[dict[str, Tensor]]
                                ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """torchvision's sampling, kept for the mask branch (which trains on the positives)."""
        self._samples = super().select_training_samples(proposals, targets)
        return self._samples

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor],
                image_shapes: list[tuple[int, int]],
                targets: list[dict[str, Tensor]] | None = None
                ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """torchvision's box branch, then the multinomial mask branch."""
        if self.training and targets is not None and not all("masks" in t for t in targets):
            # torchvision's own check, which it skips since has_mask() is False
            raise ValueError("Every element of targets should have a masks key")
        result, losses = super().forward(features, proposals, image_shapes, targets)
        if self.training:
            sampled, matched, labels, _ = self._samples
            del self._samples
            positive = [torch.where(label > 0)[0] for label in labels]
            boxes = [rois[keep] for rois, keep in zip(sampled, positive, strict=True)]
        else:
            boxes = [detections["boxes"] for detections in result]
        logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, boxes,
                                                                       image_shapes)))
        if self.training:
            assert targets is not None  # torchvision's sampling has refused None already
            losses["loss_mask"] = softmax_mask_loss(
                logits, boxes, [target["masks"] for target in targets],
                [target["labels"] for target in targets],
                [match[keep] for match, keep in zip(matched, positive, strict=True)])
        else:
            labels = [detections["labels"] for detections in result]
            for detections, masks in zip(result, softmax_mask_inference(logits, labels),
                                         strict=True):
                detections["masks"] = masks
        return result, losses


def _pooler(kind: str, output_size: int, sampling_ratio: int = 2) -> MultiScaleRoIAlign:
    if kind == "torchvision":
        return MultiScaleRoIAlign(["0"], output_size=output_size, sampling_ratio=sampling_ratio)
    return MultiScaleRoIPooling(["0"], output_size=output_size, sampling_ratio=sampling_ratio,
                                kind=kind)


def set_roi_pooler(model: MaskRCNN, roi_pooler: str) -> MaskRCNN:
    """Swap ``model``'s box and mask RoI poolers for ``roi_pooler`` (one of
    :data:`ROI_POOLERS`), in place, keeping their output sizes and sampling ratio.

    The poolers have no weights, so a network trained with one can be *evaluated* with
    another: Chapter 11 scores a detector trained with RoIAlign through RoIPool.

    Returns:
        ``model``.

    Raises:
        TypeError: ``model`` is not a torchvision ``MaskRCNN``.
        ValueError: ``roi_pooler`` is not one of :data:`ROI_POOLERS`.
    """
    if not isinstance(model, MaskRCNN):
        raise TypeError(f"model must be a torchvision MaskRCNN, got {type(model).__name__}")
    check_choice(roi_pooler, "roi_pooler", ROI_POOLERS)
    heads = model.roi_heads
    for name in ("box_roi_pool", "mask_roi_pool"):
        old = getattr(heads, name)
        setattr(heads, name, _pooler(roi_pooler, old.output_size[0], old.sampling_ratio))
    return model


@register(task="instance", tiny_kwargs={"widths": (8, 8, 16), "representation_size": 32,
                                         "mask_channels": 8})
def mask_rcnn(*, num_classes: int = 4, image_size: int = 64,
              widths: Sequence[int] = (32, 64, 128), representation_size: int = 256,
              mask_channels: int = 64, anchor_sizes: Sequence[int] = (12, 20, 32, 44),
              roi_pooler: str = "torchvision", mask_loss: str = "sigmoid",
              rpn_pre_nms_top_n: int = 200, rpn_post_nms_top_n: int = 50,
              box_batch_size_per_image: int = 64, box_detections_per_img: int = 20,
              **kwargs) -> MaskRCNN:
    """A CPU-sized Mask R-CNN (torchvision's detector) for ``image_size`` square images.

    Args:
        num_classes: classes including the background (``ShapesInstances``: 4).
        image_size: the side of the (square) images; torchvision's transform is set to
            neither shrink nor enlarge them.
        widths: channels of the backbone's stages (output stride ``2 ** (len - 1)``).
        representation_size: width of the box head's two fully connected layers
            (torchvision's default: 1024).
        mask_channels: channels of the mask head's two 3 x 3 convolutions and its 2x
            transposed convolution (torchvision: four convolutions of 256).
        anchor_sizes: anchor sides in pixels, each at aspect ratios 0.5, 1 and 2.
        roi_pooler: one of :data:`ROI_POOLERS`, for the box (7 x 7) and mask (14 x 14) RoIs.
        mask_loss: one of :data:`MASK_LOSSES`.
        rpn_pre_nms_top_n, rpn_post_nms_top_n: proposals per image before and after the
            RPN's non-maximum suppression (the same in training and testing).
        box_batch_size_per_image: RoIs sampled per image to train the box and mask heads.
        box_detections_per_img: most detections returned per image.
        **kwargs: passed on to :class:`~torchvision.models.detection.MaskRCNN`.

    Returns:
        a :class:`~torchvision.models.detection.MaskRCNN`.

    Raises:
        TypeError, ValueError: an option of the wrong type or out of range.
    """
    check_int(num_classes, "num_classes", minimum=2)
    check_int(image_size, "image_size", minimum=16)
    check_positive_int(representation_size, "representation_size")
    check_positive_int(mask_channels, "mask_channels")
    check_choice(roi_pooler, "roi_pooler", ROI_POOLERS)
    check_choice(mask_loss, "mask_loss", MASK_LOSSES)
    for name, value in (("rpn_pre_nms_top_n", rpn_pre_nms_top_n),
                        ("rpn_post_nms_top_n", rpn_post_nms_top_n),
                        ("box_batch_size_per_image", box_batch_size_per_image),
                        ("box_detections_per_img", box_detections_per_img)):
        check_positive_int(value, name)
    _check_sizes(anchor_sizes, "anchor_sizes")

    backbone = SmallBackbone(widths)
    channels = backbone.out_channels
    anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=((0.5, 1.0, 2.0),))
    model = MaskRCNN(
        backbone, num_classes=None,
        min_size=image_size, max_size=image_size,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n, rpn_pre_nms_top_n_test=rpn_pre_nms_top_n,
        rpn_post_nms_top_n_train=rpn_post_nms_top_n, rpn_post_nms_top_n_test=rpn_post_nms_top_n,
        rpn_batch_size_per_image=64,
        box_roi_pool=_pooler(roi_pooler, 7),
        box_head=TwoMLPHead(channels * 7 * 7, representation_size),
        box_predictor=FastRCNNPredictor(representation_size, num_classes),
        box_batch_size_per_image=box_batch_size_per_image,
        box_detections_per_img=box_detections_per_img,
        mask_roi_pool=_pooler(roi_pooler, 14),
        mask_head=MaskRCNNHeads(channels, [mask_channels, mask_channels], 1),
        mask_predictor=MaskRCNNPredictor(mask_channels, mask_channels, num_classes),
        **kwargs,
    )
    if mask_loss == "softmax":  # the same heads and weights, the multinomial mask loss
        model.roi_heads.__class__ = SoftmaxMaskRoIHeads
    return model
