"""``Shapes``: a procedural data set of circles, squares and triangles on textured backgrounds.

Every image is drawn on the fly from ``(seed, index)`` alone, so the data set needs no
files, is identical on every machine and in every DataLoader worker, and costs well
under a millisecond per 64 x 64 image: data never dominates training time on a CPU.

Colour does not give the class away: the background and every object get their own
random colour gradient, stripes and noise, so a network has to learn *shape*.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .._checks import check_int_pair, check_interval, check_non_negative_int, check_number
from .common import PairTransformFn

MIN_SIZE = 16
"""Smallest image side, in pixels, for which every shape stays recognisable."""

_Coordinates = tuple[np.ndarray, np.ndarray]  # pixel centres: y [H, 1], x [1, W]


class Shapes(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Images of overlapping circles, squares and triangles with per-pixel class masks.

    Item ``i`` depends only on ``(seed, i)``. Objects are drawn one after the other, so
    later objects occlude earlier ones and the mask shows what is visible. Each object
    of size ``s`` (a fraction of the shorter image side) covers the area of a circle of
    diameter ``s``, so area does not give the class away either; squares and triangles
    are rotated at random.

    Args:
        length: number of items.
        size: image size, an int (square) or ``(H, W)``; each side at least :data:`MIN_SIZE`.
        seed: selects the data set; two seeds give independent data (e.g. train and val).
        num_objects: ``(low, high)``, inclusive range of the number of objects per image.
        object_size: ``(low, high)``, range of object sizes as fractions of the shorter side.
        noise: standard deviation of the Gaussian pixel noise added last.
        transforms: optional callable ``(image, mask) -> (image, mask)`` applied to each item.

    Returns (per item):
        ``(image, mask)``: ``float32[3, H, W]`` in ``[0, 1]`` and ``int64[H, W]`` with
        0 = background, 1 = circle, 2 = square, 3 = triangle.

    Example::

        >>> data = Shapes(length=100, size=(48, 64), seed=0)
        >>> image, mask = data[0]
        >>> image.shape, mask.shape, Shapes.classes[1]
        (torch.Size([3, 48, 64]), torch.Size([48, 64]), 'circle')
    """

    classes: tuple[str, ...] = ("background", "circle", "square", "triangle")
    num_classes: int = len(classes)

    def __init__(
        self,
        length: int = 1000,
        size: int | tuple[int, int] = 64,
        seed: int = 0,
        *,
        num_objects: tuple[int, int] = (1, 4),
        object_size: tuple[float, float] = (0.25, 0.5),
        noise: float = 0.05,
        transforms: PairTransformFn | None = None,
    ) -> None:
        self.length = check_non_negative_int(length, "length")
        self.size = check_int_pair(size, "size", minimum=MIN_SIZE)
        self.seed = check_non_negative_int(seed, "seed")
        self.num_objects = check_interval(num_objects, "num_objects", minimum=0, integer=True)
        self.object_size = check_interval(object_size, "object_size", minimum=0,
                                          strict_minimum=True, maximum=1)
        self.noise = check_number(noise, "noise", minimum=0)
        self.transforms = transforms
        self._yx = _pixel_centres(self.size)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = operator.index(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for Shapes of length {self.length}")
        image, mask = self.render(index)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def render(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw item ``index`` (without ``transforms``); any non-negative ``index`` works."""
        rng = np.random.default_rng([self.seed, operator.index(index)])
        image = _texture(rng, self._yx, self.size)
        mask = np.zeros(self.size, dtype=np.int64)
        background_colour = image.mean(axis=(1, 2))
        for _ in range(rng.integers(self.num_objects[0], self.num_objects[1] + 1)):
            class_id = int(rng.integers(1, self.num_classes))
            inside = self._object(rng, class_id)
            texture = _texture(rng, self._yx, self.size, avoid=background_colour)
            np.copyto(image, texture, where=inside)
            mask[inside] = class_id
        if self.noise > 0:
            image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(self.noise)
        np.clip(image, 0.0, 1.0, out=image)
        return torch.from_numpy(image), torch.from_numpy(mask)

    def _object(self, rng: np.random.Generator, class_id: int) -> np.ndarray:
        """Boolean ``[H, W]`` footprint of one random object of class ``class_id``."""
        return _random_object(rng, self._yx, self.size, self.classes[class_id], self.object_size)

    def __repr__(self) -> str:
        return (
            f"Shapes(length={self.length}, size={self.size}, seed={self.seed}, "
            f"num_objects={self.num_objects}, object_size={self.object_size}, noise={self.noise})"
        )


def _pixel_centres(size: tuple[int, int]) -> _Coordinates:
    """The pixel centres of an ``(H, W)`` image: ``y`` as ``[H, 1]``, ``x`` as ``[1, W]``."""
    height, width = size
    return (np.arange(height, dtype=np.float32)[:, None] + 0.5,
            np.arange(width, dtype=np.float32)[None, :] + 0.5)


def _random_object(rng: np.random.Generator, yx: _Coordinates, size: tuple[int, int],
                   kind: str, object_size: tuple[float, float]) -> np.ndarray:
    """Boolean ``[H, W]`` footprint of one object of ``kind`` (a key of ``_FOOTPRINTS``).

    Four draws from ``rng``, in this order: the size (a fraction in ``object_size`` of the
    shorter side: the diameter of the circle of equal area), the centre's ``y`` and ``x``
    (the whole object inside if it fits) and the rotation.
    """
    height, width = size
    footprint, extent = _FOOTPRINTS[kind]
    radius = rng.uniform(*object_size) * min(height, width) / 2
    margin = min(extent * radius, height / 2, width / 2)  # whole object inside if it fits
    centre_y = rng.uniform(margin, height - margin)
    centre_x = rng.uniform(margin, width - margin)
    angle = rng.uniform(0, 2 * math.pi)
    dy = yx[0] - np.float32(centre_y)
    dx = yx[1] - np.float32(centre_x)
    return footprint(dy, dx, radius, angle)


def _circle(dy: np.ndarray, dx: np.ndarray, radius: float, angle: float) -> np.ndarray:
    return dy * dy + dx * dx <= radius * radius


def _square(dy: np.ndarray, dx: np.ndarray, radius: float, angle: float) -> np.ndarray:
    half_side = radius * math.sqrt(math.pi) / 2  # same area as the circle
    cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    along = np.abs(dx * cos + dy * sin)
    across = np.abs(dy * cos - dx * sin)
    return np.maximum(along, across) <= half_side


def _triangle(dy: np.ndarray, dx: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Equilateral triangle: inside all three edges, each at the inradius from the centre."""
    inradius = radius * math.sqrt(math.pi / (3 * math.sqrt(3)))  # same area as the circle
    inside = np.ones(np.broadcast_shapes(dy.shape, dx.shape), dtype=bool)
    for k in range(3):
        normal = angle + 2 * math.pi * k / 3
        distance = dx * np.float32(math.cos(normal)) + dy * np.float32(math.sin(normal))
        inside &= distance <= inradius
    return inside


_Footprint = Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]

# name -> (footprint, circumradius / radius of the circle of equal area)
_FOOTPRINTS: dict[str, tuple[_Footprint, float]] = {
    "circle": (_circle, 1.0),
    "square": (_square, math.sqrt(math.pi / 2)),
    "triangle": (_triangle, 2 * math.sqrt(math.pi / (3 * math.sqrt(3)))),
}


def _texture(
    rng: np.random.Generator,
    yx: _Coordinates,
    size: tuple[int, int],
    avoid: np.ndarray | None = None,
) -> np.ndarray:
    """``float32[3, H, W]``: a random two-colour gradient plus stripes.

    Args:
        avoid: a mean colour the texture's first colour should stay away from (at least
            0.3 apart, redrawn up to a few times), so objects are visible on their background.
    """
    height, width = size
    start = _colour(rng, avoid)
    end = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    gradient_angle, stripe_angle = rng.uniform(0, 2 * math.pi, 2)
    ramp = _projection(yx, size, gradient_angle)  # in [0, 1]
    image = start[:, None, None] + (0.6 * (end - start))[:, None, None] * ramp
    stripe_period = rng.uniform(0.15, 0.5) * min(height, width)
    stripe_amplitude = np.float32(rng.uniform(0.0, 0.15))
    phase = _projection(yx, size, stripe_angle) * (max(height, width) / stripe_period)
    stripes = np.sin(np.float32(2 * math.pi) * phase + np.float32(rng.uniform(0, 2 * math.pi)))
    image += stripe_amplitude * stripes
    return image


def _colour(rng: np.random.Generator, avoid: np.ndarray | None) -> np.ndarray:
    colour = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    for _ in range(4):
        if avoid is None or np.linalg.norm(colour - avoid) >= 0.3:
            break
        colour = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    return colour


def _projection(yx: _Coordinates, size: tuple[int, int], angle: float) -> np.ndarray:
    """Pixel positions projected on a direction, scaled to ``[0, 1]`` over the image."""
    height, width = size
    cos, sin = math.cos(angle), math.sin(angle)
    y, x = yx
    projected = x * np.float32(cos / width) + y * np.float32(sin / height)
    low = min(0.0, cos) + min(0.0, sin)
    return (projected - np.float32(low)) * np.float32(1 / (abs(cos) + abs(sin)))

