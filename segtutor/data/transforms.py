"""Joint transforms for ``(image, mask)`` pairs, built on ``torchvision.transforms.v2``.

A geometric transform must move the image and its mask together, and a mask must
never be interpolated into values that are not classes. torchvision's v2 transforms
already do both when the pair is wrapped as ``tv_tensors.Image`` and
``tv_tensors.Mask``: they draw one set of random parameters per call, and resize masks
with nearest-neighbour interpolation. This module adds two missing pieces
(:class:`RandomScale`, a resize by a random *factor*, and :class:`ElasticGrid`, U-Net's
elastic deformation), a crop that pads masks with the ignore value, and presets that take
and return plain tensors.

Example::

    >>> from segtutor.data import Shapes, train_transforms
    >>> data = Shapes(length=8, size=64, transforms=train_transforms(48))
    >>> image, mask = data[0]          # float[3, 48, 48] normalised, int64[48, 48]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .._checks import (
    IGNORE_INDEX,
    check_int,
    check_int_pair,
    check_interval,
    check_number,
    check_positive_int,
)
from .common import check_pair_layout

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet, which torchvision's pretrained weights expect."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet."""


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly from ``scale_range`` (same factor for H and W).

    Images are resized bilinearly (antialiased when shrinking), masks with nearest
    neighbours, so a mask keeps exactly its original set of values. This is the
    "random scale 0.5 to 2.0" augmentation of DeepLab and PSPNet.

    Args:
        scale_range: ``(low, high)`` with ``0 < low <= high``.
    """

    def __init__(self, scale_range: tuple[float, float] = (0.5, 2.0)) -> None:
        super().__init__()
        self.scale_range = check_interval(scale_range, "scale_range", minimum=0,
                                          strict_minimum=True)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = F.get_size(flat_inputs[0])
        scale = torch.empty(()).uniform_(*self.scale_range).item()
        return {"size": [max(1, round(height * scale)), max(1, round(width * scale))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return F.resize(inpt, params["size"], antialias=True)

    # torchvision < 0.21 calls the two methods above by these names.
    _get_params = make_params
    _transform = transform


class ElasticGrid(v2.Transform):
    """U-Net's elastic deformation: random displacements on a coarse grid, interpolated bicubically.

    The U-Net paper (https://arxiv.org/abs/1505.04597, section 3.1) generates "smooth
    deformations using random displacement vectors on a coarse 3 by 3 grid. The
    displacements are sampled from a Gaussian distribution with 10 pixels standard
    deviation. Per-pixel displacements are then computed using bicubic interpolation."
    :meth:`make_params` draws exactly that field; the warping itself is torchvision's
    ``v2.functional.elastic`` (the kernel of ``v2.ElasticTransform``, whose own field is
    smoothed per-pixel noise instead): images are sampled bilinearly, masks with nearest
    neighbours, and pixels that come from outside the input get ``fill``.

    Args:
        grid: nodes per side of the coarse grid (3 in the paper), an int >= 2.
        sigma: standard deviation of each node's displacement in pixels (10 in the
            paper), >= 0; 0 is the identity.
        fill: like ``v2.ElasticTransform``'s; by default images get 0 and masks
            ``IGNORE_INDEX``, so pixels pulled in from outside are ignored by the loss.

    Raises:
        TypeError, ValueError: ``grid`` is not an int >= 2 or ``sigma`` not a number >= 0.
    """

    def __init__(self, grid: int = 3, sigma: float = 10.0,
                 fill: dict[type, float] | None = None) -> None:
        super().__init__()
        self.grid = check_int(grid, "grid", minimum=2)
        self.sigma = float(check_number(sigma, "sigma", minimum=0))
        self.fill = fill if fill is not None else {tv_tensors.Image: 0.0,
                                                   tv_tensors.Mask: IGNORE_INDEX}

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = F.get_size(flat_inputs[0])
        nodes = torch.randn(1, 2, self.grid, self.grid) * self.sigma  # pixels: (dx, dy)
        pixels = torch.nn.functional.interpolate(nodes, size=(height, width), mode="bicubic",
                                                 align_corners=True)
        # F.elastic samples the input at identity + displacement in grid_sample's
        # coordinates, where the image spans [-1, 1]: one pixel is 2 / size.
        scale = torch.tensor([2.0 / width, 2.0 / height]).view(1, 2, 1, 1)
        return {"displacement": (pixels * scale).permute(0, 2, 3, 1),  # [1, H, W, 2]
                "pixels": pixels[0]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.Mask):
            return inpt
        fill = self.fill[type(inpt)]
        interpolation = (v2.InterpolationMode.NEAREST if isinstance(inpt, tv_tensors.Mask)
                         else v2.InterpolationMode.BILINEAR)
        return F.elastic(inpt, params["displacement"], interpolation=interpolation,
                         fill=[fill])

    # torchvision < 0.21 calls the two methods above by these names.
    _get_params = make_params
    _transform = transform


def random_crop(size: int | tuple[int, int]) -> v2.RandomCrop:
    """A random ``size`` crop; a smaller input is padded, images with 0, masks with 255.

    Padded pixels are thus ignored by the loss and the metrics instead of being
    learned as background.
    """
    return v2.RandomCrop(
        check_int_pair(size, "crop size", minimum=1),
        pad_if_needed=True,
        fill={tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE_INDEX},
    )


class JointTransform:
    """Apply torchvision v2 transforms to an ``(image, mask)`` pair of plain tensors.

    Args:
        *transforms: v2 transforms, applied in order (as ``v2.Compose``); none = identity.

    Call with ``image: float[C, H, W]`` and ``mask: int64[H, W]``; returns the same types.
    A third tensor ``weights: float[H, W]`` (e.g. U-Net's weight map) is moved like the mask
    (nearest neighbours, same random parameters) and returned third; where a transform
    fills it from outside the input its value is the mask's fill, but those pixels' mask is
    ``IGNORE_INDEX``, so the loss never reads it.
    """

    def __init__(self, *transforms: v2.Transform) -> None:
        self.pipeline = v2.Compose(list(transforms)) if transforms else v2.Identity()

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        check_pair_layout(image, mask, source="JointTransform input")
        if weights is None:
            new_image, new_mask = self.pipeline(tv_tensors.Image(image), tv_tensors.Mask(mask))
            return new_image.as_subclass(torch.Tensor), new_mask.as_subclass(torch.Tensor)
        if not isinstance(weights, torch.Tensor) or not weights.is_floating_point():
            raise TypeError(f"weights must be a floating-point tensor, got {weights!r:.80}")
        if weights.shape != mask.shape:
            raise ValueError(f"weights must have the mask's shape {tuple(mask.shape)}, got "
                             f"{tuple(weights.shape)}")
        outputs = self.pipeline(tv_tensors.Image(image), tv_tensors.Mask(mask),
                                tv_tensors.Mask(weights))
        return tuple(output.as_subclass(torch.Tensor) for output in outputs)

    def __repr__(self) -> str:
        return f"JointTransform({self.pipeline})"


class AugmentedPairs(Dataset):
    """``length`` random draws from ``(image, mask)`` pairs held in memory, each transformed.

    The pairs may also be ``(image, mask, weights)`` triples (a :class:`JointTransform`
    moves the weights with the mask), for a loss that weights pixels.

    Item ``i`` is ``transforms(*pairs[i % len(pairs)])``: with random transforms (crops,
    flips, ...) every item is a new view, so a few large images held in memory give as many
    training crops as wanted without reading (and checking) a file per crop.

    Args:
        pairs: ``(image, mask)`` pairs, e.g. ``list(ISBI2012(root, split="train"))``.
        transforms: called as ``transforms(image, mask)``, e.g. a :class:`JointTransform`.
        length: number of items (the loader's epoch), a positive int.

    Raises:
        ValueError: ``pairs`` is empty or ``length`` is not positive.
        TypeError: ``length`` is not an int.
    """

    def __init__(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
                 transforms: JointTransform, length: int) -> None:
        if len(pairs) == 0:
            raise ValueError("pairs is empty; give at least one (image, mask) pair")
        check_positive_int(length, "length")
        self.pairs, self.transforms, self.length = pairs, transforms, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transforms(*self.pairs[index % len(self.pairs)])


def train_transforms(
    crop_size: int | tuple[int, int],
    scale_range: tuple[float, float] | None = (0.5, 2.0),
    hflip: bool = True,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
) -> JointTransform:
    """The usual training augmentation: random scale, random crop, flip, normalise.

    Args:
        crop_size: output size, int or ``(H, W)``; smaller inputs are padded (mask with 255).
        scale_range: range of the random resize factor; ``None`` skips scaling.
        hflip: flip left-right with probability 0.5.
        mean: per-channel mean to subtract; ``None`` (with ``std=None``) skips normalisation.
        std: per-channel standard deviation to divide by.
    """
    steps: list[v2.Transform] = []
    if scale_range is not None:
        steps.append(RandomScale(scale_range))
    steps.append(random_crop(crop_size))
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps.extend(_normalize(mean, std))
    return JointTransform(*steps)


def eval_transforms(
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
) -> JointTransform:
    """Evaluation: only normalisation (images keep their size; ``None`` = identity)."""
    return JointTransform(*_normalize(mean, std))


def _normalize(mean: Sequence[float] | None, std: Sequence[float] | None) -> list[v2.Transform]:
    if mean is None and std is None:
        return []
    if mean is None or std is None or len(mean) != len(std):
        raise ValueError(
            f"mean and std must both be None or sequences of equal length, got {mean!r} and {std!r}"
        )
    if any(not s > 0 for s in std):
        raise ValueError(f"std values must be > 0, got {std!r}")
    return [v2.Normalize(mean=list(mean), std=list(std))]
