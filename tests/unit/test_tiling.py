"""Overlap-tile prediction: mirror padding against numpy.pad, tiles against one whole pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segtutor.models.unet import UNet, unet
from segtutor.ops.tiling import (
    SymmetryAverage,
    center_crop,
    mirror_indices,
    mirror_pad,
    predict_tiled,
)


@pytest.mark.parametrize("size", [1, 2, 3, 7])
@pytest.mark.parametrize("before, after", [(0, 0), (1, 2), (5, 0), (13, 9)])
def test_mirror_indices_match_numpy_reflect(size: int, before: int, after: int) -> None:
    expected = np.pad(np.arange(size), (before, after), mode="reflect")
    np.testing.assert_array_equal(mirror_indices(size, before, after).numpy(), expected)


def test_mirror_pad_matches_numpy_on_images_smaller_than_the_padding() -> None:
    x = torch.randn(2, 3, 5, 4)
    padded = mirror_pad(x, 7, 1, 0, 9)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (7, 1), (0, 9)), mode="reflect")
    np.testing.assert_array_equal(padded.numpy(), expected)


def test_mirror_pad_agrees_with_torch_reflect_where_torch_allows_it() -> None:
    x = torch.randn(1, 2, 6, 5)
    torch.testing.assert_close(mirror_pad(x, 2, 3, 4, 1),
                               torch.nn.functional.pad(x, (4, 1, 2, 3), mode="reflect"))


def small_same_net() -> UNet:
    torch.manual_seed(0)
    return unet(num_classes=3, in_channels=2, base_channels=4, depth=2).double().eval()


def test_tiles_with_enough_margin_equal_one_pass_over_the_padded_image() -> None:
    net = small_same_net()
    image = torch.randn(1, 2, 40, 56, dtype=torch.float64)
    tile, margin = 16, 32  # multiples of 2**depth; margin > receptive-field radius (23)
    with torch.no_grad():
        tiled = predict_tiled(net, image, tile=tile, margin=margin)
        # whole image in one pass: 3 x 4 tiles cover 48 x 64, plus the same mirrored margin
        whole = net(mirror_pad(image, margin, margin + 8, margin, margin + 8))
    assert tiled.shape == (1, 3, 40, 56)
    torch.testing.assert_close(tiled, whole[..., margin:margin + 40, margin:margin + 56])


def test_without_margin_the_tiles_show_seams() -> None:
    net = small_same_net()
    image = torch.randn(1, 2, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        tiled = predict_tiled(net, image, tile=16, margin=0)
        whole = net(image)
    assert not torch.allclose(tiled, whole)
    torch.testing.assert_close(tiled[..., :16, :16], net(image[..., :16, :16]))


def test_valid_network_tiles_equal_the_valid_network_on_the_padded_image() -> None:
    torch.manual_seed(0)
    net = UNet(num_classes=2, in_channels=1, base_channels=4, depth=2, batch_norm=False,
               valid=True).double()
    assert net.margin == 20 and net.output_size(48) == 8
    image = torch.randn(2, 1, 20, 28, dtype=torch.float64)
    with torch.no_grad():
        tiled = predict_tiled(net.network, image, tile=8, margin=net.margin)
        # 3 x 4 tiles of 8 cover 24 x 32; the valid network maps 64 x 72 to 24 x 32
        whole = net.network(mirror_pad(image, 20, 24, 20, 24))
    torch.testing.assert_close(tiled, whole[..., :20, :28])


def test_rectangular_tiles_and_margins() -> None:
    net = small_same_net()
    image = torch.randn(1, 2, 12, 20, dtype=torch.float64)
    with torch.no_grad():
        tiled = predict_tiled(net, image, tile=(4, 8), margin=(32, 28))
        whole = net(mirror_pad(image, 32, 32, 28, 28 + 4))
    torch.testing.assert_close(tiled, whole[..., 32:44, 28:48])


def test_center_crop_takes_the_middle() -> None:
    x = torch.arange(36).view(1, 6, 6)
    torch.testing.assert_close(center_crop(x, (2, 4)), x[:, 2:4, 1:5])


def test_symmetry_average_of_a_pointwise_network_is_its_log_softmax() -> None:
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(2, 3, kernel_size=1).double()
    x = torch.randn(2, 2, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(SymmetryAverage(pointwise)(x), pointwise(x).log_softmax(1))


def test_symmetry_average_is_invariant_to_rotations_and_flips() -> None:
    averaged = SymmetryAverage(small_same_net())
    x = torch.randn(1, 2, 12, 20, dtype=torch.float64)
    with torch.no_grad():
        out = averaged(x)
        torch.testing.assert_close(averaged(torch.rot90(x, 1, (2, 3))), torch.rot90(out, 1, (2, 3)))
        torch.testing.assert_close(averaged(x.flip(-2)), out.flip(-2))
        assert not torch.allclose(out, averaged.network(x).log_softmax(1))
    torch.testing.assert_close(out.exp().sum(1), torch.ones(1, 12, 20, dtype=torch.float64))


def test_bad_arguments_raise_clear_errors() -> None:
    image = torch.randn(1, 1, 8, 8)
    with pytest.raises(ValueError, match="tile must be a positive int or a pair"):
        predict_tiled(lambda t: t, image, tile=0, margin=0)
    with pytest.raises(ValueError, match="margin must be a non-negative int or a pair"):
        predict_tiled(lambda t: t, image, tile=4, margin=-1)
    with pytest.raises(ValueError, match=r"tile must be a positive int or a pair .* \(3 entries\)"):
        predict_tiled(lambda t: t, image, tile=(4, 4, 4), margin=0)
    with pytest.raises(TypeError, match="tile must be a positive int or a pair"):
        predict_tiled(lambda t: t, image, tile=4.0, margin=0)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        predict_tiled(lambda t: t, image[0], tile=4, margin=0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        predict_tiled(lambda t: t, image.numpy(), tile=4, margin=0)
    with pytest.raises(ValueError, match="cannot centre-crop 9x10 to 4x4"):
        predict_tiled(lambda t: t[..., 1:, :], image, tile=4, margin=3)
    with pytest.raises(ValueError, match="size must be a positive int, got 0"):
        mirror_indices(0, 1, 1)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        mirror_pad(torch.zeros(3), 1, 1, 1, 1)


def test_old_import_path_warns_and_serves_the_same_functions() -> None:
    import importlib
    import sys

    sys.modules.pop("segtutor.tiling", None)
    with pytest.warns(DeprecationWarning, match="segtutor.tiling moved to segtutor.ops.tiling"):
        old = importlib.import_module("segtutor.tiling")
    assert old.predict_tiled is predict_tiled and old.mirror_indices is mirror_indices
