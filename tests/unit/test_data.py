"""segtutor.data: the Shapes data set and the pair checks shared by every loader."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import measure
from torch.utils.data import DataLoader

from segtutor.data import IGNORE_INDEX, Shapes, check_pair, train_transforms
from segtutor.data.shapes import MIN_SIZE

FAST = settings(max_examples=25, deadline=None)


def assert_contract(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> None:
    assert image.dtype == torch.float32 and image.shape == (3, *size)
    assert mask.dtype == torch.int64 and mask.shape == size
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert set(mask.unique().tolist()) <= set(range(Shapes.num_classes))


def test_classes_and_contract_on_a_non_square_image():
    assert Shapes.classes == ("background", "circle", "square", "triangle")
    assert Shapes.num_classes == 4
    data = Shapes(length=5, size=(40, 72), seed=3)
    assert len(data) == 5
    for image, mask in data:
        assert_contract(image, mask, (40, 72))


@FAST
@given(
    height=st.integers(MIN_SIZE, 72),
    width=st.integers(MIN_SIZE, 72),
    seed=st.integers(0, 2**32),
    index=st.integers(0, 50),
)
def test_item_depends_only_on_seed_and_index(height, width, seed, index):
    first = Shapes(length=51, size=(height, width), seed=seed)
    second = Shapes(length=1000, size=(height, width), seed=seed)
    second[(index + 1) % 51]  # reading another item first changes nothing
    image, mask = first[index]
    assert_contract(image, mask, (height, width))
    again_image, again_mask = second[index]
    assert torch.equal(image, again_image) and torch.equal(mask, again_mask)


@FAST
@given(seed=st.integers(0, 2**31), index=st.integers(0, 100))
def test_different_seeds_and_indices_give_different_images(seed, index):
    image, _ = Shapes(length=102, size=32, seed=seed)[index]
    assert not torch.equal(image, Shapes(length=102, size=32, seed=seed + 1)[index][0])
    assert not torch.equal(image, Shapes(length=102, size=32, seed=seed)[index + 1][0])


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_every_class_appears_over_a_batch(seed):
    data = Shapes(length=32, size=32, seed=seed)
    masks = torch.stack([mask for _, mask in data])
    assert masks.unique().tolist() == list(range(Shapes.num_classes))


@pytest.mark.parametrize(
    ("class_id", "fill_ratio"),
    [
        (1, 1.0),  # circle: fills its circumscribed circle
        (2, 2 / math.pi),  # square: side^2 / (pi * side^2 / 2)
        (3, 3 * math.sqrt(3) / (4 * math.pi)),  # equilateral triangle in its circumcircle
    ],
)
def test_each_class_has_its_shape_and_the_promised_area(class_id, fill_ratio):
    """One object of size s covers the area of a circle of diameter s, and fills its
    circumscribed circle (radius = farthest pixel from the centroid) as geometry says."""
    size, fraction = 96, 0.4
    data = Shapes(
        length=60, size=size, seed=1, num_objects=(1, 1), object_size=(fraction, fraction)
    )
    expected_area = math.pi * (fraction * size / 2) ** 2
    checked = 0
    for _, mask in data:
        region = (mask == class_id).numpy()
        if not region.any():
            continue
        (props,) = measure.regionprops(region.astype(np.uint8))
        rows, cols = np.nonzero(region)
        radius = np.hypot(rows - props.centroid[0], cols - props.centroid[1]).max() + 0.5
        assert props.area == pytest.approx(expected_area, rel=0.06)
        assert props.area / (math.pi * radius**2) == pytest.approx(fill_ratio, abs=0.07)
        checked += 1
    assert checked >= 10


def test_colour_does_not_give_the_class_away():
    """Objects take random colours whatever their class: the mean colour of each class
    over many objects is the same grey, up to sampling noise."""
    data = Shapes(length=256, size=32, seed=5, noise=0.0)
    sums = np.zeros((Shapes.num_classes, 3))
    counts = np.zeros(Shapes.num_classes)
    for image, mask in data:
        labels = mask.flatten().numpy()
        counts += np.bincount(labels, minlength=Shapes.num_classes)
        for channel in range(3):
            weights = image[channel].flatten().numpy()
            sums[:, channel] += np.bincount(labels, weights, minlength=Shapes.num_classes)
    object_means = sums[1:] / counts[1:, None]
    spread = np.abs(object_means - object_means.mean(axis=0)).max()
    assert spread < 0.06, object_means


def test_noise_option_changes_only_the_pixel_noise():
    clean_image, clean_mask = Shapes(length=1, size=32, seed=2, noise=0.0)[0]
    noisy_image, noisy_mask = Shapes(length=1, size=32, seed=2, noise=0.2)[0]
    assert torch.equal(clean_mask, noisy_mask)
    difference = noisy_image - clean_image
    interior = (clean_image > 0.3) & (clean_image < 0.7)  # away from clipping at 0 and 1
    assert difference[interior].std().item() == pytest.approx(0.2, rel=0.15)


def test_num_objects_range_is_respected():
    empty = Shapes(length=4, size=32, num_objects=(0, 0))
    assert all(mask.eq(0).all() for _, mask in empty)
    busy = Shapes(length=16, size=32, num_objects=(6, 6), object_size=(0.2, 0.2))
    assert all(len(mask.unique()) >= 2 for _, mask in busy)


def test_transforms_are_applied_to_each_item():
    data = Shapes(length=3, size=40, transforms=train_transforms(24, mean=None, std=None))
    image, mask = data[0]
    assert image.shape == (3, 24, 24) and mask.shape == (24, 24)
    assert set(mask.unique().tolist()) <= {0, 1, 2, 3, IGNORE_INDEX}


def test_dataloader_workers_reproduce_the_items():
    data = Shapes(length=8, size=24, seed=9)
    loader = DataLoader(data, batch_size=4, num_workers=2)
    images, masks = zip(*loader, strict=True)
    assert torch.equal(torch.cat(images), torch.stack([data[i][0] for i in range(8)]))
    assert torch.equal(torch.cat(masks), torch.stack([data[i][1] for i in range(8)]))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"size": MIN_SIZE - 1}, ValueError,
         r"size must be an int >= 16 or a pair \(height, width\) of them, got 15"),
        ({"size": (32, 8)}, ValueError, r"got \(32, 8\)"),
        ({"size": 32.0}, TypeError, r"got 32.0 \(float\)"),
        ({"length": -1}, ValueError, "length must be a non-negative int, got -1"),
        ({"seed": -5}, ValueError, "seed must be a non-negative int, got -5"),
        ({"num_objects": (3, 1)}, ValueError, r"num_objects .* got \(3, 1\)"),
        ({"object_size": (0.0, 0.5)}, ValueError, r"object_size .* got \(0.0, 0.5\)"),
        ({"object_size": (0.2, 1.5)}, ValueError, r"0 < low, low <= high, high <= 1, got \(0.2, 1.5\)"),
        ({"noise": -0.1}, ValueError, "noise must be a finite number >= 0, got -0.1"),
        ({"noise": "0.1"}, TypeError, r"noise must be a finite number >= 0, got '0.1' \(str\)"),
    ],
)
def test_bad_options_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        Shapes(**kwargs)


def test_index_out_of_range_raises():
    data = Shapes(length=3, size=16)
    with pytest.raises(IndexError, match="index 3 out of range for Shapes of length 3"):
        data[3]
    with pytest.raises(IndexError, match="index -1 out of range"):
        data[-1]
    with pytest.raises(TypeError):
        data[1.5]


def test_check_pair_accepts_classes_and_ignore_and_rejects_the_rest():
    image = torch.rand(3, 4, 5)
    mask = torch.tensor([[0, 1, 2, 255, 0]] * 4)
    check_pair(image, mask, num_classes=3)  # valid: raises nothing
    with pytest.raises(
        ValueError, match=r"a.png: mask contains labels \[3, 7\]; valid labels are \[0, 3\) or ignore_index=255"
    ):
        check_pair(image, mask + (mask == 1) * 2 + (mask == 2) * 5, num_classes=3, source="a.png")
    with pytest.raises(ValueError, match=r"mask contains labels \[-1\]"):
        check_pair(image, mask - (mask == 1) * 2, num_classes=3)


@pytest.mark.parametrize(
    ("image", "mask", "error", "message"),
    [
        (torch.rand(3, 4, 5), torch.zeros(4, 6, dtype=torch.long), ValueError,
         r"x.jpg: image size \(4, 5\) \(H, W\) differs from mask size \(4, 6\)"),
        (np.zeros((3, 4, 5)), torch.zeros(4, 5, dtype=torch.long), TypeError, "got ndarray"),
        (torch.zeros(3, 4, 5, dtype=torch.uint8), torch.zeros(4, 5, dtype=torch.long), TypeError,
         "image dtype is torch.uint8"),
        (torch.rand(3, 4, 5), torch.zeros(4, 5, dtype=torch.int32), TypeError,
         "mask dtype is torch.int32; expected torch.int64"),
        (torch.rand(4, 5), torch.zeros(4, 5, dtype=torch.long), ValueError,
         r"image shape \(4, 5\); expected \[C, H, W\]"),
        (torch.rand(3, 4, 5), torch.zeros(1, 4, 5, dtype=torch.long), ValueError,
         r"mask shape \(1, 4, 5\); expected \[H, W\]"),
    ],
)  # fmt: skip
def test_check_pair_errors_name_the_problem(image, mask, error, message):
    with pytest.raises(error, match=message):
        check_pair(image, mask, num_classes=2, source="x.jpg")


def test_check_pair_rejects_a_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        check_pair(torch.rand(3, 2, 2), torch.zeros(2, 2, dtype=torch.long), num_classes=0)
