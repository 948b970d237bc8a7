"""Tests for segtutor.models.simple: tiny_fcn, patch_classifier and patch-wise segmentation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from segtutor import models
from segtutor.models.simple import (
    PatchClassifier,
    TinyFCN,
    patch_windows,
    sample_patches,
    segment_by_patches,
)


def test_registered():
    assert "tiny_fcn" in models.list_models(task="semantic")
    assert "patch_classifier" in models.list_models(task="classification")
    assert isinstance(models.create("tiny_fcn", num_classes=3), TinyFCN)
    assert isinstance(models.create("patch_classifier", num_classes=3), PatchClassifier)


@pytest.mark.parametrize("size", [(8, 8), (9, 13), (17, 30), (33, 10)])
def test_tiny_fcn_output_matches_input_size(size):
    model = models.create("tiny_fcn", num_classes=5, in_channels=2, width=4)
    x = torch.randn(2, 2, *size)
    assert model(x).shape == (2, 5, *size)
    model.eval()
    assert model(x[:1]).shape == (1, 5, *size)


def test_tiny_fcn_gradients_reach_every_parameter():
    model = models.create("tiny_fcn", num_classes=3, width=4)
    x = torch.randn(2, 3, 9, 10, requires_grad=True)
    model(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_tiny_fcn_receptive_field_matches_the_default_patch():
    # Features: 3x3, 3x3 (5 px), pool (6, stride 2), 3x3, 3x3 (14), pool (16, stride 4),
    # 3x3, 3x3 (32 px per quarter-resolution cell); bilinear upsampling mixes two cells
    # 4 px apart: 36 x 36, matched by the 35 x 35 default patch.
    torch.manual_seed(0)
    model = models.create("tiny_fcn", num_classes=2, width=4).eval()
    with torch.no_grad():  # positive weights: no influence cancels out by chance
        for parameter in model.parameters():
            parameter.abs_()
    x = torch.randn(1, 3, 80, 80, requires_grad=True)
    model(x)[0, :, 40, 40].sum().backward()
    influenced = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero()
    low, high = influenced.min(dim=0).values, influenced.max(dim=0).values
    assert (high - low + 1).tolist() == [36, 36]
    assert (low <= 40).all() and (high >= 40).all()
    assert PatchClassifier(num_classes=2).patch_size == 35


def test_patch_classifier_shapes_and_gradients():
    model = models.create("patch_classifier", num_classes=4, patch_size=7, width=4)
    patches = torch.randn(6, 3, 7, 7)
    logits = model(patches)
    assert logits.shape == (6, 4)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_segment_by_patches_equals_classifying_hand_cut_patches():
    torch.manual_seed(0)
    model = models.create("patch_classifier", num_classes=3, patch_size=5, width=4)
    model.train()  # segment_by_patches must switch to eval and back
    images = torch.randn(2, 3, 6, 7)
    logits = segment_by_patches(model, images, batch_size=4)  # several batches per image
    assert logits.shape == (2, 3, 6, 7)
    assert model.training
    model.eval()
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
    for n, y, x in [(0, 0, 0), (0, 3, 4), (1, 5, 6), (1, 0, 6), (1, 2, 1)]:
        patch = padded[n : n + 1, :, y : y + 5, x : x + 5]  # centred on pixel (y, x)
        with torch.no_grad():
            expected = model(patch)[0]
        torch.testing.assert_close(logits[n, :, y, x], expected)


def test_patch_windows_centre_is_the_pixel():
    image = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(2, 5, 6)
    windows = patch_windows(image, 3)
    assert windows.shape == (5, 6, 2, 3, 3)
    assert torch.equal(windows[:, :, :, 1, 1].permute(2, 0, 1), image)


def test_sample_patches_labels_are_centre_labels_and_skip_ignored():
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 8, 9, generator=gen)
    masks = torch.randint(0, 4, (3, 8, 9), generator=gen)
    masks[:, :, :4] = 255
    data = sample_patches(TensorDataset(images, masks), patch_size=5, patches_per_image=20,
                          seed=3)
    patches, labels = data.tensors
    assert patches.shape == (60, 3, 5, 5) and labels.shape == (60,)
    assert labels.dtype == torch.int64 and not bool((labels == 255).any())
    # every patch is the reflect-padded window around a pixel with that label
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
    for k in range(0, 60, 7):
        n = k // 20
        matches = [
            (y, x) for y in range(8) for x in range(9)
            if torch.equal(padded[n, :, y : y + 5, x : x + 5], patches[k])
        ]
        assert len(matches) == 1
        y, x = matches[0]
        assert masks[n, y, x] == labels[k]
    again = sample_patches(TensorDataset(images, masks), patch_size=5, patches_per_image=20,
                           seed=3)
    assert torch.equal(again.tensors[0], patches)


# -- bad input --------------------------------------------------------------------------


def test_tiny_fcn_bad_input():
    model = models.create("tiny_fcn", num_classes=2, width=4)
    with pytest.raises(ValueError, match="tiny_fcn was built for in_channels=3, got a batch with 1"):
        model(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="tiny_fcn needs height and width >= 8, got 7x8"):
        model(torch.randn(1, 3, 7, 8))
    with pytest.raises(ValueError, match="4-D batch"):
        model(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        models.create("tiny_fcn", num_classes=0)


def test_patch_classifier_bad_input():
    for bad in (4, 3):
        with pytest.raises(ValueError, match=f"patch_size must be odd .* and >= 5 .*got {bad}"):
            models.create("patch_classifier", num_classes=2, patch_size=bad)
    model = models.create("patch_classifier", num_classes=2, patch_size=5, width=4)
    with pytest.raises(ValueError, match=r"built for 5x5 patches, got shape \(1, 3, 5, 6\)"):
        model(torch.randn(1, 3, 5, 6))
    with pytest.raises(ValueError, match="built for in_channels=3, got a batch with 2"):
        model(torch.randn(1, 2, 5, 5))


def test_segment_by_patches_bad_input():
    model = models.create("patch_classifier", num_classes=2, patch_size=7, width=4)
    with pytest.raises(ValueError, match="a 3x8 image is too small for 7x7 patches: reflect "
                       "padding by 3 needs height and width > 3"):
        segment_by_patches(model, torch.randn(1, 3, 3, 8))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        segment_by_patches(model, torch.randn(1, 3, 8, 8), batch_size=0)
    with pytest.raises(ValueError, match="built for in_channels=3, got a batch with 1"):
        segment_by_patches(model, torch.randn(1, 1, 8, 8))


def test_sample_patches_bad_input():
    images = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"item 0: image of shape \(3, 8, 8\) and mask of shape "
                       r"\(8, 7\) do not match"):
        sample_patches(TensorDataset(images, torch.zeros(2, 8, 7, dtype=torch.long)),
                       patch_size=3, patches_per_image=2)
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[1] = 255
    with pytest.raises(ValueError, match="item 1: every pixel of the mask is ignore_index=255"):
        sample_patches(TensorDataset(images, masks), patch_size=3, patches_per_image=2)
