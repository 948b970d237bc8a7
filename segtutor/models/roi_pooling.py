"""Multi-scale RoI feature extraction with segtutor's RoIAlign or RoIPool, for torchvision's
detectors.

torchvision's Faster/Mask R-CNN read each region of interest's features through a
``box_roi_pool`` and a ``mask_roi_pool`` module and check that both are
:class:`torchvision.ops.MultiScaleRoIAlign` instances. :class:`MultiScaleRoIPooling` is one
(a subclass), with the same arguments and the same choice of feature level per box
(Lin et al., "Feature Pyramid Networks for Object Detection", eq. 1,
https://arxiv.org/abs/1612.03144; torchvision's ``LevelMapper``), but it pools with
:func:`segtutor.ops.roi_align` (``kind="align"``, Mask R-CNN's RoIAlign,
https://arxiv.org/abs/1703.06870) or :func:`segtutor.ops.roi_pool` (``kind="pool"``, Fast
R-CNN's RoIPool, https://arxiv.org/abs/1504.08083). So Chapter 11 can swap the operator
inside torchvision's detector, in training or at inference, and nothing else changes.

torchvision's detector samples with ``aligned=False`` (the half-pixel offset of the paper's
RoIAlign is not applied); detectron2 defaults to ``aligned=True``. ``aligned`` is an option
here, ``False`` by default, so that ``kind="align"`` equals torchvision's module.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales

from .._checks import check_bool, check_choice, check_int
from ..ops.roi import roi_align, roi_pool

__all__ = ["ROI_KINDS", "MultiScaleRoIPooling"]

#: The pooling operators :class:`MultiScaleRoIPooling` can use.
ROI_KINDS = ("align", "pool")


class MultiScaleRoIPooling(MultiScaleRoIAlign):
    """torchvision's ``MultiScaleRoIAlign`` with segtutor's RoIAlign or RoIPool inside.

    Args:
        featmap_names: the feature maps (keys of the backbone's output dict) to pool from.
        output_size: the pooled size, an int or ``(height, width)``.
        sampling_ratio: RoIAlign's samples per bin and axis (``<= 0``: adaptive); unused by
            RoIPool.
        kind: ``"align"`` or ``"pool"``.
        aligned: RoIAlign's half-pixel offset (``False`` as in torchvision's detector).
        canonical_scale, canonical_level: the level-mapping constants of FPN's eq. 1.

    Raises:
        TypeError, ValueError: a ``kind`` not in :data:`ROI_KINDS`, a non-int
            ``sampling_ratio``, a non-bool ``aligned``.
    """

    def __init__(self, featmap_names: list[str], output_size: int | tuple[int, int],
                 sampling_ratio: int, *, kind: str = "align", aligned: bool = False,
                 canonical_scale: int = 224, canonical_level: int = 4) -> None:
        super().__init__(featmap_names, output_size, check_int(sampling_ratio, "sampling_ratio"),
                         canonical_scale=canonical_scale, canonical_level=canonical_level)
        self.kind = check_choice(kind, "kind", ROI_KINDS)
        self.aligned = check_bool(aligned, "aligned")

    def _pool(self, features: Tensor, rois: Tensor, scale: float) -> Tensor:
        if self.kind == "pool":
            return roi_pool(features, rois, self.output_size, scale)
        return roi_align(features, rois, self.output_size, scale, self.sampling_ratio,
                         self.aligned)

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor],
                image_shapes: list[tuple[int, int]]) -> Tensor:
        """Pool every box of every image from its level: ``[K, C, *output_size]``, the
        boxes in order (image by image), as torchvision's module returns them."""
        features = _filter_input(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                features, image_shapes, self.canonical_scale, self.canonical_level)
        rois = _convert_to_roi_format(boxes)
        if len(features) == 1:
            return self._pool(features[0], rois, self.scales[0])
        levels = self.map_levels(boxes)
        result = rois.new_zeros((len(rois), features[0].shape[1], *self.output_size),
                                dtype=features[0].dtype)
        for level, (level_features, scale) in enumerate(zip(features, self.scales, strict=True)):
            chosen = torch.where(levels == level)[0]
            result[chosen] = self._pool(level_features, rois[chosen], scale).to(result.dtype)
        return result

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(featmap_names={self.featmap_names}, "
                f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio}, "
                f"kind={self.kind!r}, aligned={self.aligned})")
