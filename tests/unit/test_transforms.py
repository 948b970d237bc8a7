"""segtutor.data.transforms: joint image + mask augmentation, checked against torch itself."""

import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from segtutor.data import (
    IGNORE_INDEX,
    AugmentedPairs,
    JointTransform,
    RandomScale,
    eval_transforms,
    random_crop,
    train_transforms,
)

NUM_LABELS = 5


def block_labels(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """A mask of 4 x 4 blocks, label = f(row, col), so a pixel's label names its position."""
    return ((rows // 4) * 3 + (cols // 4)) % NUM_LABELS


def coordinate_pair(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An image whose channels encode each pixel's (row, col), and the block mask.

    Channel 0 = (row + 1) / (H + 1), channel 1 = (col + 1) / (W + 1), channel 2 = 1: bilinear
    interpolation of these ramps is exact, so after any resize, crop or flip, a pixel of the
    image still says which source position it shows, and padding shows as 0 in channel 2.
    """
    rows = torch.arange(height).view(-1, 1).expand(height, width)
    cols = torch.arange(width).view(1, -1).expand(height, width)
    image = torch.stack(
        [(rows + 1) / (height + 1), (cols + 1) / (width + 1), torch.ones(height, width)]
    ).float()
    return image, block_labels(rows, cols)


def labels_near_source(image: torch.Tensor, height: int, width: int, reach: int = 2):
    """For each output pixel, the labels of the source pixels within ``reach`` of the
    position its image channels decode to: ``int64[(2 reach + 1)^2, H', W']``."""
    row = (image[0] * (height + 1) - 1).round().long()
    col = (image[1] * (width + 1) - 1).round().long()
    offsets = range(-reach, reach + 1)
    return torch.stack(
        [
            block_labels((row + dr).clamp(0, height - 1), (col + dc).clamp(0, width - 1))
            for dr in offsets
            for dc in offsets
        ]
    )


@pytest.mark.parametrize("seed", range(12))
def test_image_and_mask_get_the_same_random_geometry(seed):
    height, width = 30, 50
    image, mask = coordinate_pair(height, width)
    torch.manual_seed(seed)
    transform = train_transforms((40, 36), scale_range=(0.5, 2.0), hflip=True, mean=None, std=None)
    new_image, new_mask = transform(image, mask)
    assert new_image.shape == (3, 40, 36) and new_mask.shape == (40, 36)
    padded = new_mask == IGNORE_INDEX
    assert torch.equal(padded, new_image[2] == 0)
    candidates = labels_near_source(new_image, height, width)
    agrees = (candidates == new_mask).any(dim=0)
    assert agrees[~padded].all(), f"{(~agrees[~padded]).sum()} pixels disagree"
    assert set(new_mask.unique().tolist()) <= set(range(NUM_LABELS)) | {IGNORE_INDEX}


def test_crop_pads_the_mask_with_255_and_keeps_the_whole_small_image():
    image, mask = torch.rand(3, 10, 12), torch.randint(0, 3, (10, 12))
    torch.manual_seed(0)
    new_image, new_mask = JointTransform(random_crop(32))(image, mask)
    inside = new_mask != IGNORE_INDEX
    rows, cols = inside.nonzero().unbind(1)
    top, left = rows.min().item(), cols.min().item()
    assert inside.sum().item() == 10 * 12
    assert torch.equal(new_mask[top : top + 10, left : left + 12], mask)
    assert torch.equal(new_image[:, top : top + 10, left : left + 12], image)
    assert new_image[:, ~inside].eq(0).all()


@pytest.mark.parametrize("scale", [0.5, 0.7, 1.6])
def test_random_scale_matches_torch_interpolate(scale):
    image, mask = torch.rand(3, 21, 30), torch.randint(0, 4, (21, 30))
    size = (round(21 * scale), round(30 * scale))
    new_image, new_mask = JointTransform(RandomScale((scale, scale)))(image, mask)
    expected_image = F.interpolate(
        image[None], size=size, mode="bilinear", align_corners=False, antialias=True
    )[0]
    expected_mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0]
    torch.testing.assert_close(new_image, expected_image)
    assert new_mask.dtype == torch.int64 and torch.equal(new_mask, expected_mask.long())


def test_random_scale_draws_factors_within_the_range():
    image, mask = torch.rand(3, 20, 20), torch.zeros(20, 20, dtype=torch.long)
    transform = JointTransform(RandomScale((0.5, 2.0)))
    torch.manual_seed(0)
    heights = {transform(image, mask)[0].shape[-2] for _ in range(30)}
    assert min(heights) >= 10 and max(heights) <= 40 and len(heights) > 5


def test_flip_matches_torch_flip():
    image, mask = torch.rand(3, 6, 7), torch.randint(0, 4, (6, 7))
    new_image, new_mask = JointTransform(v2.RandomHorizontalFlip(p=1.0))(image, mask)
    assert torch.equal(new_image, image.flip(-1)) and torch.equal(new_mask, mask.flip(-1))


def test_normalisation_touches_only_the_image():
    image, mask = torch.rand(3, 5, 4), torch.randint(0, 4, (5, 4))
    mean, std = (0.2, 0.4, 0.6), (0.1, 0.2, 0.3)
    new_image, new_mask = eval_transforms(mean, std)(image, mask)
    expected = (image - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(new_image, expected)
    assert torch.equal(new_mask, mask)
    same_image, same_mask = eval_transforms(None, None)(image, mask)
    assert torch.equal(same_image, image) and torch.equal(same_mask, mask)


def test_presets_return_plain_tensors_and_repeat_under_a_seed():
    image, mask = torch.rand(3, 33, 41), torch.randint(0, 4, (33, 41))
    transform = train_transforms(24)
    torch.manual_seed(3)
    first = transform(image, mask)
    torch.manual_seed(3)
    second = transform(image, mask)
    assert all(type(t) is torch.Tensor for t in first)
    assert first[0].dtype == torch.float32 and first[1].dtype == torch.int64
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RandomScale((2.0, 1.0)), r"scale_range must be \(low, high\) .* got \(2.0, 1.0\)"),
        (lambda: RandomScale((0.0, 1.0)), r"0 < low, low <= high, got \(0.0, 1.0\)"),
        (lambda: random_crop(0), r"crop size must be a positive int or a pair \(height, width\) of them, got 0"),
        (lambda: train_transforms((32, 32, 3)), r"got \(32, 32, 3\)"),
        (lambda: train_transforms(32, mean=(0.5,), std=None), "mean and std must both be None"),
        (lambda: eval_transforms((0.5, 0.5), (0.2,)), r"got \(0.5, 0.5\) and \(0.2,\)"),
        (lambda: eval_transforms((0.5,), (0.0,)), r"std values must be > 0, got \(0.0,\)"),
    ],
)
def test_bad_settings_raise(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_pairs_raise():
    transform = eval_transforms()
    with pytest.raises(
        ValueError, match=r"image size \(8, 8\) \(H, W\) differs from mask size \(8, 9\)"
    ):
        transform(torch.rand(3, 8, 8), torch.zeros(8, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="mask dtype is torch.float32; expected torch.int64"):
        transform(torch.rand(3, 8, 8), torch.zeros(8, 8))


def test_augmented_pairs_cycle_through_the_pairs_with_the_transforms_of_a_joint_transform():
    pairs = [(torch.rand(1, 8, 8), torch.randint(0, 2, (8, 8))) for _ in range(3)]
    crops = AugmentedPairs(pairs, JointTransform(v2.RandomCrop(4)), length=7)
    assert len(crops) == 7
    for index in range(7):
        torch.manual_seed(index)
        image, mask = crops[index]
        torch.manual_seed(index)
        expected = v2.RandomCrop(4)(tv_tensors.Image(pairs[index % 3][0]),
                                    tv_tensors.Mask(pairs[index % 3][1]))
        torch.testing.assert_close(image, expected[0].as_subclass(torch.Tensor))
        torch.testing.assert_close(mask, expected[1].as_subclass(torch.Tensor))
    loader = torch.utils.data.DataLoader(crops, batch_size=7)
    images, masks = next(iter(loader))
    assert images.shape == (7, 1, 4, 4) and masks.shape == (7, 4, 4)


@pytest.mark.parametrize("pairs, length, error, message", [
    ([], 4, ValueError, "pairs is empty; give at least one"),
    ([(torch.rand(1, 4, 4), torch.zeros(4, 4, dtype=torch.long))], 0, ValueError,
     "length must be a positive int, got 0"),
    ([(torch.rand(1, 4, 4), torch.zeros(4, 4, dtype=torch.long))], 2.0, TypeError,
     r"length must be a positive int, got 2.0 \(float\)"),
])
def test_augmented_pairs_bad_arguments(pairs, length, error, message):
    with pytest.raises(error, match=message):
        AugmentedPairs(pairs, JointTransform(), length=length)
