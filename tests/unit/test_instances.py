"""segtutor.data.instances: ShapesInstances, semantic_mask, count_regions, detection_collate.

The targets are checked against torchvision (``masks_to_boxes``) and the region counts
against ``scipy.ndimage`` computed here, never against the module's own helpers.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch.utils.data import DataLoader
from torchvision.ops import masks_to_boxes

from segtutor.data import ShapesInstances, count_regions, detection_collate, semantic_mask
from segtutor.data.shapes import MIN_SIZE

pytestmark = pytest.mark.usefixtures("one_thread")

FIELDS = {"boxes", "labels", "masks", "area", "iscrowd", "image_id"}


def union_of_masks(target: dict[str, torch.Tensor], size: tuple[int, int]) -> np.ndarray:
    """``int64[H, W]``: each pixel the label of the instance whose mask covers it (masks are
    disjoint, so the sum of label x mask is that label)."""
    masks = target["masks"].numpy().astype(np.int64)
    labels = target["labels"].numpy()
    if len(labels) == 0:
        return np.zeros(size, dtype=np.int64)
    return np.tensordot(labels, masks, axes=1)


def regions_by_scipy(target: dict[str, torch.Tensor], size: tuple[int, int]) -> tuple[int, int, int]:
    """``(instances, regions, merged)`` with scipy: regions are 4-connected components per
    class; an instance is merged if growing its mask within its class's pixels
    (``binary_propagation``) reaches a pixel of another instance of its class."""
    semantic = union_of_masks(target, size)
    masks = target["masks"].numpy().astype(bool)
    labels = target["labels"].numpy()
    cross = ndimage.generate_binary_structure(2, 1)
    regions = sum(ndimage.label(semantic == c, structure=cross)[1] for c in (1, 2, 3))
    merged = 0
    for i, (mask, label) in enumerate(zip(masks, labels, strict=True)):
        grown = ndimage.binary_propagation(mask, structure=cross, mask=semantic == label)
        others = [masks[j] for j in range(len(labels)) if j != i and labels[j] == label]
        merged += any((grown & other).any() for other in others)
    return len(labels), int(regions), merged


def hand_target(masks: list[np.ndarray], labels: list[int]) -> dict[str, torch.Tensor]:
    return {"masks": torch.from_numpy(np.stack(masks).astype(np.uint8)),
            "labels": torch.tensor(labels, dtype=torch.int64)}


# --- items: formats, determinism ------------------------------------------------------------


@pytest.mark.parametrize("size", [64, (48, 80), (MIN_SIZE, 40)])
def test_item_formats_and_dtypes(size):
    data = ShapesInstances(length=12, size=size, seed=3)
    height, width = (size, size) if isinstance(size, int) else size
    assert data.size == (height, width) and len(data) == 12
    for index in range(len(data)):
        image, target = data[index]
        assert image.dtype == torch.float32 and image.shape == (3, height, width)
        assert 0 <= image.min() and image.max() <= 1
        assert set(target) == FIELDS
        n = len(target["labels"])
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (n, 4)
        assert target["labels"].dtype == torch.int64
        assert ((target["labels"] >= 1) & (target["labels"] <= 3)).all()
        masks = target["masks"]
        assert masks.dtype == torch.uint8 and masks.shape == (n, height, width)
        assert set(masks.unique().tolist()) <= {0, 1}
        assert masks.sum(0).max() <= 1, "masks overlap"
        assert target["area"].dtype == torch.float32
        assert torch.equal(target["area"], masks.sum((1, 2)).float())
        assert (target["area"] >= data.min_area).all()
        assert target["iscrowd"].dtype == torch.int64 and torch.equal(
            target["iscrowd"], torch.zeros(n, dtype=torch.int64))
        assert target["image_id"].dtype == torch.int64 and target["image_id"].shape == ()
        assert int(target["image_id"]) == index


def test_boxes_are_masks_to_boxes_with_exclusive_ends():
    data = ShapesInstances(length=30, size=(56, 72), seed=1)
    total = 0
    for index in range(len(data)):
        _, target = data[index]
        if len(target["labels"]) == 0:
            continue
        expected = masks_to_boxes(target["masks"]) + torch.tensor([0.0, 0.0, 1.0, 1.0])
        assert torch.equal(target["boxes"], expected)
        total += len(target["labels"])
        # the box is tight: every side of it touches the mask
        for box, mask in zip(target["boxes"].long(), target["masks"], strict=True):
            x1, y1, x2, y2 = box.tolist()
            assert mask[:, x1].any() and mask[:, x2 - 1].any()
            assert mask[y1].any() and mask[y2 - 1].any()
            assert mask[y1:y2, x1:x2].sum() == mask.sum()
    assert total > 60


def test_deterministic_per_seed_and_index_and_independent_across_seeds():
    a, b = ShapesInstances(length=6, seed=5), ShapesInstances(length=6, seed=5)
    other = ShapesInstances(length=6, seed=6)
    for index in (0, 3, 5):
        image_a, target_a = a[index]
        image_b, target_b = b[index]
        assert torch.equal(image_a, image_b)
        assert target_a.keys() == target_b.keys()
        assert all(torch.equal(target_a[k], target_b[k]) for k in target_a)
        # the same item twice from one data set (no state carried between calls)
        again = a[index]
        assert torch.equal(again[0], image_a) and torch.equal(again[1]["masks"], target_a["masks"])
        assert not torch.equal(other[index][0], image_a)
    # items of one data set differ from each other; the length does not change an item
    assert not torch.equal(a[0][0], a[1][0])
    assert torch.equal(ShapesInstances(length=100, seed=5)[3][0], a[3][0])
    # render() is item i for any non-negative i, also past the length
    assert torch.equal(a.render(2)[0], a[2][0])
    assert a.render(10)[0].shape == (3, 64, 64)


def test_numpy_integer_indices_work():
    data = ShapesInstances(length=4, seed=0)
    assert torch.equal(data[np.int64(2)][0], data[2][0])


def test_indices_out_of_range_raise():
    data = ShapesInstances(length=3, size=32)
    with pytest.raises(IndexError, match="index 3 out of range for ShapesInstances of length 3"):
        data[3]
    with pytest.raises(IndexError, match="index -1 out of range"):
        data[-1]
    with pytest.raises(TypeError):
        data[1.5]
    with pytest.raises(IndexError):
        ShapesInstances(length=0)[0]


def test_every_object_hidden_gives_an_empty_target():
    data = ShapesInstances(length=2, size=32, min_area=32 * 32 + 1)
    image, target = data[0]
    assert image.shape == (3, 32, 32)
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
    assert target["labels"].shape == (0,) and target["masks"].shape == (0, 32, 32)
    assert target["area"].shape == (0,) and target["iscrowd"].shape == (0,)
    assert torch.equal(data.semantic(0), torch.zeros(32, 32, dtype=torch.int64))
    assert data.regions(0) == (0, 0, 0)


def test_num_instances_bounds_the_count():
    data = ShapesInstances(length=20, seed=2, num_instances=(3, 3), touch=0.0)
    counts = [len(data[i][1]["labels"]) for i in range(len(data))]
    assert max(counts) <= 3 and counts.count(3) >= 10  # hidden ones dropped, most survive
    one = ShapesInstances(length=10, seed=2, num_instances=(1, 1))
    assert all(len(one[i][1]["labels"]) == 1 for i in range(len(one)))  # nothing can hide it


def test_min_area_drops_small_visible_parts():
    for min_area in (1, 30, 200):
        data = ShapesInstances(length=15, seed=4, min_area=min_area)
        for index in range(len(data)):
            assert (data[index][1]["masks"].sum((1, 2)) >= min_area).all()


def test_noise_is_added_gaussian_noise_and_changes_no_target():
    noisy_image, noisy = ShapesInstances(length=1, seed=0, noise=0.02)[0]
    clean_image, clean = ShapesInstances(length=1, seed=0, noise=0.0)[0]
    assert all(torch.equal(noisy[k], clean[k]) for k in FIELDS)
    # where the clean pixel is 5 standard deviations from 0 and 1, clipping does not matter
    unclipped = (clean_image > 0.1) & (clean_image < 0.9)
    assert unclipped.float().mean() > 0.5
    difference = (noisy_image - clean_image)[unclipped]
    assert abs(float(difference.std()) - 0.02) < 0.001 and abs(float(difference.mean())) < 0.001


# --- the semantic mask and its regions -------------------------------------------------------


def test_semantic_is_the_union_of_the_instances():
    data = ShapesInstances(length=20, size=(40, 56), seed=7)
    for index in range(len(data)):
        _, target = data[index]
        expected = torch.from_numpy(union_of_masks(target, data.size))
        semantic = data.semantic(index)
        assert semantic.dtype == torch.int64 and semantic.shape == (40, 56)
        assert torch.equal(semantic, expected)
        assert torch.equal(semantic_mask(target, data.size), expected)


def test_semantic_mask_later_instance_wins_where_masks_overlap():
    # not a ShapesInstances target (those are disjoint): the rule for overlapping masks
    first, second = np.zeros((6, 6), dtype=bool), np.zeros((6, 6), dtype=bool)
    first[1:4, 1:4] = True
    second[2:5, 2:5] = True
    semantic = semantic_mask(hand_target([first, second], [1, 3]), (6, 6))
    expected = np.zeros((6, 6), dtype=np.int64)
    expected[1:4, 1:4] = 1
    expected[2:5, 2:5] = 3
    assert torch.equal(semantic, torch.from_numpy(expected))


def test_regions_match_scipy():
    data = ShapesInstances(length=40, seed=11)
    for index in range(len(data)):
        _, target = data[index]
        expected = regions_by_scipy(target, data.size)
        assert data.regions(index) == expected
        assert count_regions(target, data.size) == expected


def test_count_regions_on_a_hand_built_scene():
    size = (12, 16)

    def box(y1, y2, x1, x2):
        mask = np.zeros(size, dtype=bool)
        mask[y1:y2, x1:x2] = True
        return mask

    # two class-1 squares sharing an edge: one region, both merged
    a, b = box(0, 3, 0, 3), box(0, 3, 3, 6)
    assert count_regions(hand_target([a, b], [1, 1]), size) == (2, 1, 2)
    # the same squares in different classes: two regions, nothing merged
    assert count_regions(hand_target([a, b], [1, 2]), size) == (2, 2, 0)
    # touching only at a corner: 4-connectivity keeps them apart
    c = box(3, 6, 3, 6)
    assert count_regions(hand_target([a, c], [1, 1]), size) == (2, 2, 0)
    # a class-1 bar cut in two by a class-2 bar: three regions, nothing merged
    left, cut, right = box(8, 10, 0, 5), box(6, 12, 5, 7), box(8, 10, 7, 12)
    bar = left | right
    assert count_regions(hand_target([bar, cut], [1, 2]), size) == (2, 3, 0)
    # a class-1 square against the right piece of the cut bar: merged, the region count hides it
    square = box(8, 10, 12, 16)
    target = hand_target([bar, cut, square], [1, 2, 1])
    assert count_regions(target, size) == (3, 3, 2)
    assert regions_by_scipy(target, size) == (3, 3, 2)
    # three class-3 instances in a chain: all merged into one region
    chain = [box(0, 2, 8, 10), box(0, 2, 10, 12), box(2, 4, 10, 12)]
    assert count_regions(hand_target(chain, [3, 3, 3]), size) == (3, 1, 3)


def test_touching_same_class_instances_are_common_and_come_from_touch():
    def touching(touch: float) -> tuple[int, int]:
        data = ShapesInstances(length=100, seed=0, touch=touch)
        counts = [regions_by_scipy(data[i][1], data.size) for i in range(len(data))]
        fewer = sum(regions < instances for instances, regions, _ in counts)
        merged = sum(merged > 0 for _, _, merged in counts)
        return fewer, merged

    fewer, merged = touching(0.5)
    assert fewer >= 30 and merged >= fewer
    fewer_apart, merged_apart = touching(0.0)
    assert fewer_apart < fewer and merged_apart < merged
    fewer_always, _ = touching(1.0)
    assert fewer_always > fewer


def test_overlap_limits_how_much_later_objects_hide():
    def kept(overlap: float) -> int:
        data = ShapesInstances(length=40, size=48, seed=0, num_instances=(6, 6), touch=0.5,
                               overlap=overlap, min_area=60)
        return sum(len(data[i][1]["labels"]) for i in range(len(data)))

    free, limited = kept(1.0), kept(0.0)
    assert free < limited <= 40 * 6  # fewer objects hidden below min_area
    touching = ShapesInstances(length=40, size=64, seed=0, touch=1.0, overlap=0.0)
    assert sum(touching.regions(i)[2] > 0 for i in range(40)) >= 20  # pushing still works


def test_flat_objects_are_one_colour_each():
    flat = ShapesInstances(length=6, size=48, seed=4, textured=False, noise=0.0)
    textured = ShapesInstances(length=6, size=48, seed=4, noise=0.0)
    for index in range(6):
        for data, single in ((flat, True), (textured, False)):
            image, target = data[index]
            spreads = [float(image[:, mask.bool()].std(dim=1).max()) for mask in target["masks"]]
            assert all(spread < 1e-6 for spread in spreads) == single or not spreads


# --- options, repr, collate ------------------------------------------------------------------


def test_repr_names_every_option():
    data = ShapesInstances(length=7, size=(32, 48), seed=2, num_instances=(1, 4),
                           object_size=(0.2, 0.4), touch=0.25, min_area=10, noise=0.1)
    text = repr(data)
    assert text.startswith("ShapesInstances(length=7, size=(32, 48), seed=2, num_instances=(1, 4), "
                           "object_size=(0.2, 0.4), touch=0.25, ")
    assert text.endswith("min_area=10, noise=0.1)")
    # every constructor option, in the signature's order, with the value the data set holds
    names = list(inspect.signature(ShapesInstances).parameters)
    expected = ", ".join(f"{name}={getattr(data, name)!r}" for name in names)
    assert text == f"ShapesInstances({expected})"
    assert ShapesInstances.classes == ("background", "circle", "square", "triangle")
    assert ShapesInstances.num_classes == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"length": -1}, ValueError, "length must be a non-negative int, got -1"),
        ({"length": 2.0}, TypeError, r"length must be a non-negative int, got 2.0 \(float\)"),
        ({"length": True}, TypeError, r"length must be .* got True \(bool\)"),
        ({"size": MIN_SIZE - 1}, ValueError, rf"size must be an int >= {MIN_SIZE} or a pair"),
        ({"size": (64, 8)}, ValueError, r"size must be an int >= 16 .* got \(64, 8\)"),
        ({"size": (64,)}, ValueError, r"size must be .* \(1 entries\)"),
        ({"size": 64.0}, TypeError, r"size must be .* got 64.0 \(float\)"),
        ({"seed": -1}, ValueError, "seed must be a non-negative int, got -1"),
        ({"seed": "0"}, TypeError, r"seed must be a non-negative int, got '0' \(str\)"),
        ({"num_instances": (0, 2)}, ValueError, r"num_instances must be \(low, high\) of ints"),
        ({"num_instances": (3, 1)}, ValueError, r"num_instances .* got \(3, 1\)"),
        ({"num_instances": (1, 2, 3)}, ValueError, r"num_instances .* \(3 entries\)"),
        ({"num_instances": (1.0, 2)}, TypeError, r"num_instances must be .* got \(1.0, 2\)"),
        ({"num_instances": 3}, TypeError, r"num_instances must be .* got 3 \(int\)"),
        ({"object_size": (0, 0.5)}, ValueError, r"object_size must be .* 0 < low"),
        ({"object_size": (0.2, 1.5)}, ValueError, r"object_size .* got \(0.2, 1.5\)"),
        ({"object_size": (0.5, 0.2)}, ValueError, r"object_size .* got \(0.5, 0.2\)"),
        ({"object_size": "small"}, TypeError, r"object_size must be .* \(str\)"),
        ({"touch": -0.1}, ValueError, r"touch must be a finite number >= 0 and <= 1, got -0.1"),
        ({"touch": 1.5}, ValueError, r"touch must be .* got 1.5"),
        ({"touch": math.nan}, ValueError, r"touch must be .* got nan"),
        ({"touch": True}, TypeError, r"touch must be .* got True \(bool\)"),
        ({"touch": None}, TypeError, r"touch must be .* got None \(NoneType\)"),
        ({"overlap": 1.5}, ValueError, r"overlap must be a finite number >= 0 and <= 1, got 1.5"),
        ({"overlap": "some"}, TypeError, r"overlap must be .* got 'some' \(str\)"),
        ({"textured": 1}, TypeError, r"textured must be True or False, got 1 \(int\)"),
        ({"min_area": 0}, ValueError, "min_area must be a positive int, got 0"),
        ({"min_area": 3.0}, TypeError, r"min_area must be a positive int, got 3.0 \(float\)"),
        ({"noise": -0.1}, ValueError, "noise must be a finite number >= 0, got -0.1"),
        ({"noise": math.inf}, ValueError, "noise must be a finite number >= 0, got inf"),
        ({"noise": "none"}, TypeError, r"noise must be .* got 'none' \(str\)"),
    ],
)
def test_bad_options_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        ShapesInstances(**kwargs)


@pytest.mark.skipif("overlap" not in inspect.signature(ShapesInstances).parameters,
                    reason="ShapesInstances has no overlap option in this version")
@pytest.mark.parametrize(("value", "error"), [(-0.1, ValueError), (1.5, ValueError),
                                               (True, TypeError), ("0.2", TypeError)])
def test_bad_overlap_raises(value, error):
    with pytest.raises(error, match=r"overlap must be a finite number >= 0 and <= 1"):
        ShapesInstances(overlap=value)


def test_detection_collate_gives_lists():
    data = ShapesInstances(length=5, size=32, seed=0)
    images, targets = detection_collate([data[0], data[1], data[2]])
    assert isinstance(images, list) and isinstance(targets, list)
    assert len(images) == len(targets) == 3
    for index, (image, target) in enumerate(zip(images, targets, strict=True)):
        assert torch.equal(image, data[index][0])
        assert torch.equal(target["masks"], data[index][1]["masks"])
    assert detection_collate([]) == ([], [])
    # through a DataLoader: instances of different counts do not need stacking
    counts = {len(data[i][1]["labels"]) for i in range(len(data))}
    assert len(counts) > 1
    loader = DataLoader(data, batch_size=5, collate_fn=detection_collate)
    images, targets = next(iter(loader))
    assert [len(t["labels"]) for t in targets] == [len(data[i][1]["labels"]) for i in range(5)]
    assert all(image.shape == (3, 32, 32) for image in images)
