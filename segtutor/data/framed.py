"""``FramedShapes``: shapes whose class depends on a coloured frame far away from them.

Chapter 10's experiment on global context needs labels that a small receptive field cannot
give. Each image holds circles, squares and triangles (as in :class:`~segtutor.data.Shapes`)
on a textured background, set inside a frame of ``frame_width`` pixels along the border,
painted in one of a few colours (:data:`FRAME_COLOURS`, red and blue by default). A
shape's class is *its kind x the frame's colour*: a circle in a red frame is
``"circle/red"``, the same circle in a blue frame ``"circle/blue"``. The frame colour is
drawn independently of everything inside it, so the pixels of a shape and its
neighbourhood say which kind it is but not which class: a pixel in the middle of the
image can only be labelled from evidence at the border, up to ``size / 2`` pixels away.

Like ``Shapes``, every item is drawn on the fly from ``(seed, index)`` alone.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from .._checks import (
    check_choice,
    check_int,
    check_int_pair,
    check_interval,
    check_non_negative_int,
    check_number,
    describe,
)
from .common import PairTransformFn
from .shapes import MIN_SIZE, Shapes, _colour, _pixel_centres, _random_object, _texture

__all__ = ["FRAME_COLOURS", "FramedShapes"]

#: The frame colours ``FramedShapes`` can paint, by name: RGB in ``[0, 1]``. Each image's
#: frame is one of them with its brightness jittered by up to 0.1.
FRAME_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.15, 0.15),
    "blue": (0.15, 0.3, 0.85),
    "green": (0.15, 0.7, 0.2),
    "yellow": (0.9, 0.8, 0.1),
}

# Objects keep at least this many pixels between them; an object that finds no such place
# in this many draws is left out.
_GAP = 2
_TRIES = 20

# Largest change of a frame's brightness (added to all three channels), so that two frames
# of one colour are not the same pixels.
_JITTER = 0.1



class FramedShapes(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``Shapes`` images inside a coloured frame; a shape's class is its kind x the frame colour.

    Item ``i`` depends only on ``(seed, i)``. The frame is one colour of ``frame_colours``,
    drawn at random (uniformly), with a random brightness jitter. The interior (the image
    without its ``frame_width``-pixel border) has ``Shapes``' background -- a random colour
    gradient with stripes -- and 1-3 objects of ``Shapes``' kinds and sizes, each of one
    flat random colour, placed at least two pixels apart (an object that finds no free
    place in twenty draws is left out): what a shape *is* is easy to see from close by, so
    the experiment measures only whether a network sees the frame. Gaussian noise is added
    to the whole image last. Neither the objects' nor the background's colours depend on the
    frame colour, so only the frame tells ``"circle/red"`` from ``"circle/blue"``.

    **Classes.** 0 is the background, *and the frame is background too*: the frame is
    there as evidence, not as something to segment (its own class would add an easy class
    that every network gets right and dilute the mIoU). Then one class per (frame colour,
    kind), colour-major: with the default ``("red", "blue")``, ``classes`` is
    ``("background", "circle/red", "square/red", "triangle/red", "circle/blue",
    "square/blue", "triangle/blue")``, i.e. ``class = 1 + colour * 3 + (kind - 1)`` for
    ``Shapes``' kinds 1 (circle), 2 (square), 3 (triangle). :meth:`frame_colour` gives an
    item's frame colour and :meth:`class_id` the class of a kind in it.

    Args:
        length: number of items.
        size: image size, an int (square) or ``(H, W)``, frame included.
        seed: selects the data set; two seeds give independent data (e.g. train and val).
        frame_width: the frame's width in pixels; the interior must keep at least
            :data:`~segtutor.data.shapes.MIN_SIZE` pixels per side.
        frame_colours: names from :data:`FRAME_COLOURS` (at least one, no repeats).
        num_objects: ``(low, high)``, inclusive range of the number of objects per image.
        object_size: ``(low, high)``, object sizes as fractions of the interior's shorter side.
        noise: standard deviation of the Gaussian pixel noise added last.
        transforms: optional callable ``(image, mask) -> (image, mask)`` applied to each item.

    Attributes:
        classes: the class names, index = class id.
        num_classes: ``1 + 3 * len(frame_colours)``.

    Returns (per item):
        ``(image, mask)``: ``float32[3, H, W]`` in ``[0, 1]`` and ``int64[H, W]``.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.

    Example::

        >>> data = FramedShapes(length=10, size=64, frame_width=4)
        >>> image, mask = data[0]
        >>> data.num_classes, data.classes[data.class_id(1, data.frame_colour(0))]
        (7, 'circle/red')
    """

    def __init__(
        self,
        length: int = 1000,
        size: int | tuple[int, int] = 128,
        seed: int = 0,
        *,
        frame_width: int = 6,
        frame_colours: Sequence[str] = ("red", "blue"),
        num_objects: tuple[int, int] = (1, 3),
        object_size: tuple[float, float] = (0.25, 0.5),
        noise: float = 0.05,
        transforms: PairTransformFn | None = None,
    ) -> None:
        self.length = check_non_negative_int(length, "length")
        self.size = check_int_pair(size, "size", minimum=MIN_SIZE + 2)
        self.seed = check_non_negative_int(seed, "seed")
        widest = (min(self.size) - MIN_SIZE) // 2
        self.frame_width = check_int(frame_width, "frame_width", minimum=1, maximum=widest)
        self.frame_colours = _check_colours(frame_colours)
        self.noise = check_number(noise, "noise", minimum=0)
        self.transforms = transforms
        self.num_objects = check_interval(num_objects, "num_objects", minimum=0, integer=True)
        self.object_size = check_interval(object_size, "object_size", minimum=0,
                                          strict_minimum=True, maximum=1)
        height, width = self.size
        self._interior = (height - 2 * self.frame_width, width - 2 * self.frame_width)
        self._yx = _pixel_centres(self._interior)
        self.kinds: tuple[str, ...] = Shapes.classes[1:]
        self.classes: tuple[str, ...] = ("background",) + tuple(
            f"{kind}/{colour}" for colour in self.frame_colours for kind in self.kinds)
        self.num_classes: int = len(self.classes)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = operator.index(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for FramedShapes of length "
                             f"{self.length}")
        image, mask = self.render(index)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def class_id(self, kind: int, colour: int) -> int:
        """The class of ``Shapes`` kind ``kind`` (1-3) in a frame of colour ``colour``."""
        kind = check_int(kind, "kind", minimum=1, maximum=len(self.kinds))
        colour = check_int(colour, "colour", minimum=0, maximum=len(self.frame_colours) - 1)
        return 1 + colour * len(self.kinds) + (kind - 1)

    def frame_colour(self, index: int) -> int:
        """Item ``index``'s frame colour, an index into ``frame_colours`` (any ``index >= 0``)."""
        return int(self._rng(index).integers(len(self.frame_colours)))

    def _rng(self, index: int) -> np.random.Generator:
        # (seed, index, 1): not the stream of Shapes' item (seed, index)
        return np.random.default_rng([self.seed, operator.index(index), 1])

    def render(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw item ``index`` (without ``transforms``); any non-negative ``index`` works."""
        rng = self._rng(index)
        colour = int(rng.integers(len(self.frame_colours)))  # first, as frame_colour(index)
        paint = np.asarray(FRAME_COLOURS[self.frame_colours[colour]], dtype=np.float32)
        image = np.empty((3, *self.size), dtype=np.float32)
        image[:] = (paint + np.float32(rng.uniform(-_JITTER, _JITTER)))[:, None, None]
        interior = _texture(rng, self._yx, self._interior)
        kinds = np.zeros(self._interior, dtype=np.int64)
        background_colour = interior.mean(axis=(1, 2))
        for _ in range(rng.integers(self.num_objects[0], self.num_objects[1] + 1)):
            kind = int(rng.integers(1, len(self.kinds) + 1))
            inside = self._place(rng, kind, kinds > 0)
            if inside is not None:
                interior[:, inside] = _colour(rng, background_colour)[:, None]
                kinds[inside] = kind
        w = self.frame_width
        image[:, w:-w, w:-w] = interior
        mask = np.zeros(self.size, dtype=np.int64)
        mask[w:-w, w:-w] = np.where(kinds > 0, kinds + colour * len(self.kinds), 0)
        if self.noise > 0:
            image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(self.noise)
        np.clip(image, 0.0, 1.0, out=image)
        return torch.from_numpy(image), torch.from_numpy(mask)

    def _place(self, rng: np.random.Generator, kind: int,
               occupied: np.ndarray) -> np.ndarray | None:
        """A footprint of ``kind`` at least ``_GAP`` pixels from ``occupied``, or ``None``."""
        near = ndimage.binary_dilation(occupied, iterations=_GAP) if occupied.any() else occupied
        for _ in range(_TRIES):
            inside = _random_object(rng, self._yx, self._interior, self.kinds[kind - 1],
                                    self.object_size)
            if not (inside & near).any():
                return inside
        return None

    def __repr__(self) -> str:
        return (
            f"FramedShapes(length={self.length}, size={self.size}, seed={self.seed}, "
            f"frame_width={self.frame_width}, frame_colours={self.frame_colours}, "
            f"num_objects={self.num_objects}, object_size={self.object_size}, "
            f"noise={self.noise})"
        )


def _check_colours(value: object) -> tuple[str, ...]:
    what = f"a non-empty tuple or list of distinct names from {tuple(FRAME_COLOURS)}"
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"frame_colours must be {what}, got {describe(value)} "
                        f"({type(value).__name__})")
    if not value or len(set(value)) != len(value):
        raise ValueError(f"frame_colours must be {what}, got {describe(value)}")
    for name in value:
        check_choice(name, "frame_colours entry", tuple(FRAME_COLOURS))
    return tuple(value)
