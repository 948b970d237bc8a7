"""segtutor.data.framed: FramedShapes, whose labels need the frame at the image's border."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import measure

from segtutor.data import FRAME_COLOURS, FramedShapes


def frame_ring(size: int, width: int) -> np.ndarray:
    """Boolean ``[size, size]``: the pixels of a frame ``width`` pixels wide."""
    ring = np.ones((size, size), dtype=bool)
    ring[width:-width, width:-width] = False
    return ring


def colour_from_border(image: torch.Tensor, data: FramedShapes) -> int:
    """The frame colour read off the pixels: the palette entry nearest the ring's median colour."""
    ring = frame_ring(data.size[0], data.frame_width)
    median = np.median(image.numpy()[:, ring], axis=1)
    palette = np.array([FRAME_COLOURS[name] for name in data.frame_colours])
    # the brightness jitter shifts all channels alike: compare the colours without their mean
    centred = palette - palette.mean(axis=1, keepdims=True)
    return int(np.argmin(np.linalg.norm(centred - (median - median.mean()), axis=1)))


def kind_from_shape(region) -> int:
    """Shapes' kind (1 circle, 2 square, 3 triangle) from the isoperimetric quotient 4 pi A / P^2.

    1 for a disc, pi / 4 = 0.785 for a square, pi sqrt(3) / 9 = 0.605 for an equilateral
    triangle (skimage's perimeter of a digital shape runs a little long).
    """
    quotient = 4 * np.pi * region.area / region.perimeter ** 2
    return 1 if quotient > 0.875 else 2 if quotient > 0.66 else 3


# -- what an item is -------------------------------------------------------------------


def test_items_classes_and_types():
    data = FramedShapes(length=6, size=(48, 64), seed=2, frame_width=4)
    assert len(data) == 6
    assert data.classes == ("background", "circle/red", "square/red", "triangle/red",
                            "circle/blue", "square/blue", "triangle/blue")
    assert data.num_classes == 7
    for image, mask in data:
        assert image.shape == (3, 48, 64) and image.dtype == torch.float32
        assert mask.shape == (48, 64) and mask.dtype == torch.int64
        assert 0 <= image.min() and image.max() <= 1
        assert set(mask.unique().tolist()) <= set(range(7))
    three = FramedShapes(length=1, size=32, frame_colours=("green", "red", "yellow"))
    assert three.num_classes == 10 and three.classes[4:7] == ("circle/red", "square/red",
                                                               "triangle/red")
    assert three.class_id(3, 2) == 9 and three.classes[9] == "triangle/yellow"


def test_the_frame_is_background_and_painted_in_one_colour():
    data = FramedShapes(length=20, size=40, seed=1, frame_width=5, noise=0.0)
    ring = frame_ring(40, 5)
    for index in range(len(data)):
        image, mask = data[index]
        assert (mask.numpy()[ring] == 0).all()
        pixels = image.numpy()[:, ring]
        assert np.ptp(pixels, axis=1).max() == 0  # one colour, no noise
        base = np.array(FRAME_COLOURS[data.frame_colours[data.frame_colour(index)]])
        shift = pixels[:, 0] - base  # the brightness jitter: the same on every channel
        assert np.ptp(shift) < 1e-6 and abs(shift[0]) <= 0.1 + 1e-6


def test_objects_are_flat_coloured_and_apart():
    """Each object one colour (no noise), objects at least two pixels apart, one label each."""
    data = FramedShapes(length=30, size=64, seed=4, frame_width=4, num_objects=(2, 3),
                        noise=0.0)
    counted = 0
    for index in range(len(data)):
        image, mask = data[index]
        components, count = ndimage.label(mask.numpy() > 0, structure=np.ones((3, 3)))
        counted += count
        for label in range(1, count + 1):
            inside = components == label
            assert np.ptp(image.numpy()[:, inside], axis=1).max() == 0
            assert len(np.unique(mask.numpy()[inside])) == 1
            # two background pixels at least between objects (city-block distance > 2)
            others = (components > 0) & ~inside
            if others.any():
                distance = ndimage.distance_transform_cdt(~inside, metric="taxicab")
                assert distance[others].min() > 2
    assert counted >= 60  # most objects found a place


# -- determinism -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7])
def test_deterministic_per_index(seed):
    first = FramedShapes(length=30, size=48, seed=seed)
    second = FramedShapes(length=500, size=48, seed=seed)
    for index in (0, 3, 29):
        image, mask = first[index]
        again, again_mask = first[index]
        other, other_mask = second[index]
        assert torch.equal(image, again) and torch.equal(mask, again_mask)
        assert torch.equal(image, other) and torch.equal(mask, other_mask)
    assert not torch.equal(first[0][0], first[1][0])
    different = FramedShapes(length=30, size=48, seed=seed + 1)
    assert not torch.equal(first[0][0], different[0][0])
    colours = [first.frame_colour(i) for i in range(30)]
    assert colours != [different.frame_colour(i) for i in range(30)]


def test_frame_colours_are_balanced():
    data = FramedShapes(length=0, size=32)
    colours = np.array([data.frame_colour(i) for i in range(2000)])
    assert abs(colours.mean() - 0.5) < 0.04  # 4 standard deviations of the mean


# -- the label rule ------------------------------------------------------------------------


def test_every_shape_pixel_is_some_kind_in_the_frames_colour():
    """Frame colour read off the border pixels; every object's class has that colour."""
    data = FramedShapes(length=40, size=64, seed=3, frame_width=5)
    seen = set()
    for index in range(len(data)):
        image, mask = data[index]
        colour = colour_from_border(image, data)
        assert colour == data.frame_colour(index)
        shape = mask > 0
        assert torch.equal((mask[shape] - 1) // 3, torch.full_like(mask[shape], colour))
        seen.update(mask[shape].unique().tolist())
    assert seen == set(range(1, 7))


def test_the_label_rule_from_connected_components():
    """Each single object, measured: its kind from its outline, its colour from the border."""
    data = FramedShapes(length=36, size=96, seed=5, frame_width=6, num_objects=(1, 1),
                        object_size=(0.4, 0.5))
    checked = 0
    for index in range(len(data)):
        image, mask = data[index]
        colour = colour_from_border(image, data)
        components = measure.label(mask.numpy() > 0, connectivity=2)
        regions = measure.regionprops(components, intensity_image=mask.numpy())
        assert len(regions) == 1
        region = regions[0]
        labels = np.unique(mask.numpy()[components == region.label])
        assert labels.tolist() == [data.class_id(kind_from_shape(region), colour)]
        checked += 1
    assert checked == 36


# -- the frame colour is not in the interior -----------------------------------------------


def colour_statistics(data: FramedShapes, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per item: mean and standard deviation of each channel over ``pixels``; and the frame colour."""
    features, labels = [], []
    for index in range(len(data)):
        image = data[index][0].numpy()[:, pixels]
        features.append(np.concatenate([image.mean(axis=1), image.std(axis=1)]))
        labels.append(data.frame_colour(index))
    return np.array(features), np.array(labels)


def held_out_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """A linear classifier (least squares on +-1 targets) fitted on half, scored on the rest."""
    x = np.hstack([features, np.ones((len(features), 1))])
    half = len(x) // 2
    weights, *_ = np.linalg.lstsq(x[:half], 2.0 * labels[:half] - 1, rcond=None)
    return float(((x[half:] @ weights > 0) == labels[half:]).mean())


def test_interior_colours_do_not_predict_the_frame():
    data = FramedShapes(length=600, size=32, seed=11, frame_width=2)
    ring = frame_ring(32, 2)
    interior, labels = colour_statistics(data, ~ring)
    border, _ = colour_statistics(data, ring)
    # 300 held-out items: chance is 0.5 with a standard deviation of 0.029
    assert abs(held_out_accuracy(interior, labels) - 0.5) < 0.1
    assert held_out_accuracy(border, labels) > 0.99  # the same classifier on the frame
    # and no single channel's mean differs between the two frame colours
    for channel in range(3):
        red, blue = interior[labels == 0, channel], interior[labels == 1, channel]
        error = np.sqrt(red.var() / len(red) + blue.var() / len(blue))
        assert abs(red.mean() - blue.mean()) < 4 * error


# -- options -----------------------------------------------------------------------------


def test_transforms_and_repr():
    def flip(image, mask):
        return image.flip(-1), mask.flip(-1)

    plain = FramedShapes(length=2, size=32)
    flipped = FramedShapes(length=2, size=32, transforms=flip)
    assert torch.equal(flipped[1][0], plain[1][0].flip(-1))
    assert torch.equal(flipped[1][1], plain[1][1].flip(-1))
    assert repr(plain) == ("FramedShapes(length=2, size=(32, 32), seed=0, frame_width=6, "
                           "frame_colours=('red', 'blue'), num_objects=(1, 3), "
                           "object_size=(0.25, 0.5), noise=0.05)")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"size": 17}, ValueError, r"size must be an int >= 18 or a pair"),
        ({"size": 32.0}, TypeError, r"got 32.0 \(float\)"),
        ({"length": -1}, ValueError, "length must be a non-negative int, got -1"),
        ({"seed": -1}, ValueError, "seed must be a non-negative int, got -1"),
        ({"frame_width": 0}, ValueError, r"frame_width must be an int in \[1, 8\], got 0"),
        ({"frame_width": 9}, ValueError, r"frame_width must be an int in \[1, 8\], got 9"),
        ({"frame_width": 2.0}, TypeError, r"frame_width must be .* got 2.0 \(float\)"),
        ({"frame_width": True}, TypeError, r"got True \(bool\)"),
        ({"frame_colours": "red"}, TypeError, r"frame_colours must be .* got 'red' \(str\)"),
        ({"frame_colours": (1, 2)}, TypeError, r"frame_colours must be .* got \(1, 2\)"),
        ({"frame_colours": ()}, ValueError, r"frame_colours must be a non-empty .* got \(\)"),
        ({"frame_colours": ("red", "red")}, ValueError, r"distinct .* got \('red', 'red'\)"),
        ({"frame_colours": ("red", "purple")}, ValueError,
         r"frame_colours entry must be one of \('red', 'blue', 'green', 'yellow'\), got 'purple'"),
        ({"num_objects": (3, 1)}, ValueError, r"num_objects .* got \(3, 1\)"),
        ({"object_size": (0.2, 1.5)}, ValueError, r"object_size .* got \(0.2, 1.5\)"),
        ({"noise": -0.1}, ValueError, "noise must be a finite number >= 0, got -0.1"),
    ],
)
def test_bad_options_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        FramedShapes(**{"size": 32, **kwargs})


def test_bad_indices_and_lookups_raise():
    data = FramedShapes(length=3, size=32)
    with pytest.raises(IndexError, match="index 3 out of range for FramedShapes of length 3"):
        data[3]
    with pytest.raises(IndexError, match="index -1 out of range"):
        data[-1]
    with pytest.raises(TypeError):
        data[1.5]
    with pytest.raises(ValueError, match=r"kind must be an int in \[1, 3\], got 0"):
        data.class_id(0, 0)
    with pytest.raises(ValueError, match=r"colour must be an int in \[0, 1\], got 2"):
        data.class_id(1, 2)
