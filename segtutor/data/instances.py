"""``ShapesInstances``: circles, squares and triangles as *instances*, in torchvision's format.

Semantic segmentation labels pixels with classes; two circles that touch become one
circle-coloured region, and nothing in the label says there were two. Instance
segmentation labels *objects*: one binary mask per object, with its class and box. This
data set draws images like :class:`~segtutor.data.Shapes` (each object with its own
texture, on a textured background) with several instances of the same three classes,
and places many of them against an earlier instance of the same class, so that same-class
objects touch or overlap often. Later objects occlude earlier ones; every mask is what is
*visible* of its object, and an object left with fewer than ``min_area`` visible pixels is
dropped.

Targets follow torchvision's detection models (and its ``references/detection``):

* ``boxes``: ``float32[N, 4]``, ``(x1, y1, x2, y2)`` in pixels, the tight box of the
  visible mask with exclusive ends — pixel column ``j`` spans ``[j, j + 1)``, so a mask
  whose columns run from 3 to 9 has ``x1 = 3`` and ``x2 = 10`` (one more than
  :func:`torchvision.ops.masks_to_boxes`, which gives the last pixel's index);
* ``labels``: ``int64[N]`` in ``1..3`` (``0`` is the background, never a label);
* ``masks``: ``uint8[N, H, W]``, disjoint;
* ``area`` (visible pixels, ``float32[N]``), ``iscrowd`` (zeros) and ``image_id`` (the
  index), the fields COCO's evaluator reads.

Like ``Shapes``, item ``i`` is drawn from ``(seed, i)`` alone, with no files.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from .._checks import (
    check_bool,
    check_int,
    check_int_pair,
    check_interval,
    check_non_negative_int,
    check_number,
    check_probability,
)
from .shapes import (
    _FOOTPRINTS,
    MIN_SIZE,
    Shapes,
    _colour,
    _pixel_centres,
    _random_object,
    _texture,
)

__all__ = ["ShapesInstances", "count_regions", "detection_collate", "semantic_mask"]

Target = dict[str, torch.Tensor]

# Draws of a placement (a free object's position, a pushed object's direction) before giving up.
_TRIES = 8


class ShapesInstances(Dataset[tuple[torch.Tensor, Target]]):
    """Images of several circles, squares and triangles, with one mask per instance.

    Args:
        length: number of items.
        size: image size, an int (square) or ``(H, W)``; each side at least
            :data:`~segtutor.data.shapes.MIN_SIZE`.
        seed: selects the data set (train and test use different seeds).
        num_instances: ``(low, high)``, inclusive range of objects drawn per image (before
            dropping the hidden ones).
        object_size: ``(low, high)``: object sizes as fractions of the shorter side (the
            diameter of the circle of equal area, as in ``Shapes``).
        touch: probability that an object after the first takes an earlier object's
            class and is pushed against it from a random side, so that the two visible
            masks touch (they form one region of the semantic mask). It is pushed from up
            to eight random sides until it lands inside the image (and obeys ``overlap``);
            else it is placed as the others are.
        overlap: an object is redrawn (up to eight times; a pushed one from another side)
            while it covers more than this fraction of its area of earlier objects; so
            occlusion happens (later objects hide parts of earlier ones) but rarely leaves
            an object a thin crescent. ``1.0``: no redrawing, as in ``Shapes``.
        textured: draw each object with ``Shapes``' random gradient and stripes; ``False``:
            one flat random colour per object (as ``FramedShapes``), easier to learn.
        min_area: objects with fewer visible pixels are dropped.
        noise: standard deviation of the Gaussian pixel noise.

    Returns (per item):
        ``(image, target)``: ``float32[3, H, W]`` in ``[0, 1]`` and the target dict
        described in the module docstring.

    Example::

        >>> data = ShapesInstances(length=10, size=64, seed=0)
        >>> image, target = data[0]
        >>> target["masks"].shape[1:], target["labels"].dtype
        (torch.Size([64, 64]), torch.int64)
    """

    classes: tuple[str, ...] = Shapes.classes
    num_classes: int = len(classes)

    def __init__(self, length: int = 1000, size: int | tuple[int, int] = 64, seed: int = 0, *,
                 num_instances: tuple[int, int] = (2, 5),
                 object_size: tuple[float, float] = (0.25, 0.45),
                 touch: float = 0.5, overlap: float = 0.2, textured: bool = True,
                 min_area: int = 30, noise: float = 0.05) -> None:
        self.length = check_non_negative_int(length, "length")
        self.size = check_int_pair(size, "size", minimum=MIN_SIZE)
        self.seed = check_non_negative_int(seed, "seed")
        self.num_instances = check_interval(num_instances, "num_instances", minimum=1,
                                            integer=True)
        self.object_size = check_interval(object_size, "object_size", minimum=0,
                                          strict_minimum=True, maximum=1)
        self.touch = check_probability(touch, "touch")
        self.overlap = check_probability(overlap, "overlap")
        self.textured = check_bool(textured, "textured")
        self.min_area = check_int(min_area, "min_area", minimum=1)
        self.noise = check_number(noise, "noise", minimum=0)
        self._yx = _pixel_centres(self.size)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        index = operator.index(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for ShapesInstances of length "
                             f"{self.length}")
        return self.render(index)

    def render(self, index: int) -> tuple[torch.Tensor, Target]:
        """Draw item ``index``; any non-negative ``index`` works."""
        index = operator.index(index)
        rng = np.random.default_rng([self.seed, index, 2])  # not Shapes' stream (seed, index)
        background = _texture(rng, self._yx, self.size)
        avoid = background.mean(axis=(1, 2))
        objects: list[tuple[int, np.ndarray, np.ndarray]] = []  # label, footprint, texture
        occupied = np.zeros(self.size, dtype=bool)
        for number in range(rng.integers(self.num_instances[0], self.num_instances[1] + 1)):
            footprint = None
            if number > 0 and rng.random() < self.touch:
                label, other = objects[int(rng.integers(number))][:2]
                footprint = self._against(rng, self.classes[label], other, occupied)
            else:
                label = int(rng.integers(1, self.num_classes))
            if footprint is None:
                footprint = self._free(rng, self.classes[label], occupied)
            occupied = occupied | footprint
            paint = (_texture(rng, self._yx, self.size, avoid=avoid) if self.textured
                     else _colour(rng, avoid)[:, None, None])
            objects.append((label, footprint, paint))
        # An object that later ones hide (all but min_area pixels) is left out of the image
        # too, not only out of the targets; leaving it out only uncovers the others.
        visible = _owners([footprint for _, footprint, _ in objects], self.size)
        objects = [item for number, item in enumerate(objects)
                   if (visible == number).sum() >= self.min_area]
        owner = _owners([footprint for _, footprint, _ in objects], self.size)
        image = background
        for _, footprint, texture in objects:
            np.copyto(image, texture, where=footprint)
        if self.noise > 0:
            image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(self.noise)
        np.clip(image, 0.0, 1.0, out=image)
        masks = owner[None] == np.arange(len(objects))[:, None, None]
        labels = np.array([label for label, _, _ in objects], dtype=np.int64)
        return torch.from_numpy(image), _target(masks, labels, index)

    def _free(self, rng: np.random.Generator, kind: str, occupied: np.ndarray) -> np.ndarray:
        """A footprint of ``kind`` anywhere (``Shapes``' placement), redrawn up to
        ``_TRIES`` times while it covers more than ``overlap`` of its area of ``occupied``."""
        for _ in range(_TRIES):
            footprint = _random_object(rng, self._yx, self.size, kind, self.object_size)
            if (footprint & occupied).sum() <= self.overlap * footprint.sum():
                break
        return footprint

    def _against(self, rng: np.random.Generator, kind: str, other: np.ndarray,
                 occupied: np.ndarray) -> np.ndarray | None:
        """A footprint of ``kind`` pushed against the footprint ``other``, or ``None``.

        Along a random direction from ``other``'s centre, the farthest position (found by
        bisection, to a tenth of a pixel) at which the new footprint still overlaps
        ``other``: the two overlap by a sliver, and the later object, drawn on top, leaves
        the two visible masks touching. (Two convex shapes moved apart along a line overlap
        up to one distance and never after, so the bisection finds it.) A direction that
        leaves part of the object outside the image, or covers more than ``overlap`` of
        its area of the ``occupied`` pixels (other than ``other``'s), is redrawn, up to ``_TRIES`` times; ``None``
        if none fits.
        """
        footprint_of, extent = _FOOTPRINTS[kind]
        radius = rng.uniform(*self.object_size) * min(self.size) / 2
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.nonzero(other)
        if len(ys) == 0:  # a footprint too small to cover a pixel centre
            return None
        centre_y, centre_x = ys.mean() + 0.5, xs.mean() + 0.5
        other_radius = math.sqrt(len(ys) / math.pi)
        margin = extent * radius
        height, width = self.size

        def inside(distance: float, sin: float, cos: float, slack: float = 0.0) -> bool:
            y, x = centre_y + distance * sin, centre_x + distance * cos
            return (margin - slack <= y <= height - margin + slack
                    and margin - slack <= x <= width - margin + slack)

        for direction in rng.uniform(0, 2 * math.pi, _TRIES):
            sin, cos = math.sin(direction), math.cos(direction)
            # two discs of these areas touch at the sum of their radii; other shapes near it
            if not inside(radius + other_radius, sin, cos, slack=(extent - 1) * radius + 2):
                continue

            def at(distance: float, sin: float = sin, cos: float = cos) -> np.ndarray:
                dy = self._yx[0] - np.float32(centre_y + distance * sin)
                dx = self._yx[1] - np.float32(centre_x + distance * cos)
                return footprint_of(dy, dx, radius, angle)

            near, far, footprint = 0.0, extent * (radius + other_radius) + 2.0, at(0.0)
            while far - near > 0.1:
                middle = (near + far) / 2
                moved = at(middle)
                if (moved & other).any():
                    near, footprint = middle, moved
                else:
                    far = middle
            hidden = footprint & occupied & ~other  # the sliver over ``other`` is the point
            if inside(near, sin, cos) and hidden.sum() <= self.overlap * footprint.sum():
                return footprint
        return None

    def semantic(self, index: int) -> torch.Tensor:
        """The semantic mask of item ``index``: ``int64[H, W]``, each pixel its object's class.

        Instances of one class that touch merge into one region: the semantic mask no
        longer says how many objects there are (:meth:`regions` counts them).
        """
        _, target = self.render(index)
        return semantic_mask(target, self.size)

    def regions(self, index: int) -> tuple[int, int, int]:
        """``(instances, regions, merged)`` of item ``index``, see :func:`count_regions`."""
        return count_regions(self.render(index)[1], self.size)

    def __repr__(self) -> str:
        return (f"ShapesInstances(length={self.length}, size={self.size}, seed={self.seed}, "
                f"num_instances={self.num_instances}, object_size={self.object_size}, "
                f"touch={self.touch}, overlap={self.overlap}, textured={self.textured}, "
                f"min_area={self.min_area}, "
                f"noise={self.noise})")


def semantic_mask(target: Target, size: tuple[int, int]) -> torch.Tensor:
    """``int64[H, W]``: the class of each pixel's instance (0 where there is none)."""
    semantic = torch.zeros(size, dtype=torch.int64)
    for mask, label in zip(target["masks"], target["labels"], strict=True):
        semantic[mask.bool()] = label
    return semantic


def count_regions(target: Target, size: tuple[int, int]) -> tuple[int, int, int]:
    """What the semantic mask of ``target`` keeps of its instances.

    The semantic mask (:func:`semantic_mask`) is cut into connected regions per class
    (4-connected: pixels sharing an edge, ``scipy.ndimage.label``'s default). Two instances
    of one class whose visible masks share an edge fall into one region.

    Returns:
        ``(instances, regions, merged)``: the number of instances, of regions, and of
        instances that share a region with another instance of their class (an instance
        that a later object cuts in two has two regions, so ``regions`` alone can hide a
        merge).
    """
    semantic = semantic_mask(target, size).numpy()
    masks = target["masks"].numpy().astype(bool)
    labels = target["labels"].numpy()
    regions = merged = 0
    for label in range(1, int(semantic.max(initial=0)) + 1):
        region_of, count = ndimage.label(semantic == label)
        regions += count
        members = [set(np.unique(region_of[mask]).tolist()) for mask in masks[labels == label]]
        for number, own in enumerate(members):
            merged += any(own & other for k, other in enumerate(members) if k != number)
    return len(labels), regions, merged


def _owners(footprints: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """``int64[H, W]``: the index of the last footprint covering each pixel, ``-1`` for none."""
    owner = np.full(size, -1, dtype=np.int64)
    for number, footprint in enumerate(footprints):
        owner[footprint] = number
    return owner


def _target(masks: np.ndarray, labels: np.ndarray, index: int) -> Target:
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for number, mask in enumerate(masks):
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        boxes[number] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return {"boxes": torch.from_numpy(boxes),
            "labels": torch.from_numpy(labels.astype(np.int64)),
            "masks": torch.from_numpy(masks.astype(np.uint8)),
            "area": torch.from_numpy(masks.sum((1, 2)).astype(np.float32)),
            "iscrowd": torch.zeros(len(masks), dtype=torch.int64),
            "image_id": torch.tensor(index)}


def detection_collate(batch: Sequence[tuple[torch.Tensor, Target]]
                      ) -> tuple[list[torch.Tensor], list[Target]]:
    """Collate ``(image, target)`` items into a list of images and a list of targets, the
    form torchvision's detectors take (``DataLoader(..., collate_fn=detection_collate)``)."""
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return list(images), list(targets)
