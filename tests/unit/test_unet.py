"""U-Net: the paper's network (parameters, 572 → 388) and the practical variant.

References are PyTorch itself: the blocks are recomputed with ``F.conv2d``,
``F.conv_transpose2d`` and ``F.max_pool2d``; the parameter count is recomputed from the
paper's layer list; shapes of the full-size network come from running it on the meta
device (no arithmetic, no memory).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segtutor.bench import count_parameters
from segtutor.models import create, list_models
from segtutor.models.unet import DoubleConv, Down, UNet, Up, unet, unet_paper
from segtutor.ops.tiling import mirror_pad

PAPER_WIDTHS = [64, 128, 256, 512, 1024]


def conv_parameters(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return c_out * c_in * k * k + (c_out if bias else 0)


def paper_parameter_count(in_channels: int = 1, num_classes: int = 2) -> int:
    """Count the layers of the paper's Fig. 1, one by one."""
    total, c_in = 0, in_channels
    for width in PAPER_WIDTHS:  # contracting path and bottom: two 3x3 convs per level
        total += conv_parameters(c_in, width, 3) + conv_parameters(width, width, 3)
        c_in = width
    for width in reversed(PAPER_WIDTHS[:-1]):  # expanding path
        total += conv_parameters(2 * width, width, 2)  # 2x2 up-convolution halves channels
        total += conv_parameters(2 * width, width, 3) + conv_parameters(width, width, 3)
    return total + conv_parameters(64, num_classes, 1)


def test_paper_parameter_count_matches_the_paper() -> None:
    net = unet_paper()
    assert count_parameters(net) == 31_030_658
    assert count_parameters(net) == paper_parameter_count()
    assert count_parameters(unet_paper(in_channels=3, num_classes=5)) == paper_parameter_count(3, 5)


def test_paper_has_four_poolings_no_batch_norm_and_valid_convolutions() -> None:
    net = unet_paper()
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(pools) == 4
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert len(convs) == 18 and all(c.padding == (0, 0) for c in convs)
    assert [c.out_channels for c in convs[:10:2]] == PAPER_WIDTHS


def test_paper_network_maps_572_to_388() -> None:
    with torch.device("meta"):
        net = unet_paper()
        out = net.network(torch.empty(1, 1, 572, 572))
    assert out.shape == (1, 2, 388, 388)
    assert net.output_size(572) == 388 and net.input_size(388) == 572 and net.margin == 92


@pytest.mark.parametrize("size", [188, 204, 220, 300, 572, 573, 700])
def test_output_size_agrees_with_the_network(size: int) -> None:
    with torch.device("meta"):
        net = unet_paper(base_channels=2)
        try:
            predicted = net.output_size(size)
        except ValueError:
            with pytest.raises(ValueError, match="does not fit"):
                net.network(torch.empty(1, 1, size, size))
            return
        assert net.network(torch.empty(1, 1, size, size)).shape[-1] == predicted
        assert net.input_size(predicted) == size


def test_size_helpers_name_the_nearest_valid_sizes() -> None:
    net = unet_paper(base_channels=2)
    with pytest.raises(ValueError, match="573.*572 and 588"):
        net.output_size(573)
    with pytest.raises(ValueError, match="390.*388 and 404"):
        net.input_size(390)
    with pytest.raises(ValueError, match="100.*none and 188"):
        net.output_size(100)
    with pytest.raises(ValueError, match="cannot output size 390"):
        unet_paper(base_channels=2, tile=390)


def test_double_conv_equals_functional_convolutions() -> None:
    torch.manual_seed(0)
    block = DoubleConv(3, 5, padding=0, batch_norm=False)
    x = torch.randn(2, 3, 12, 10)
    first, second = block[0], block[2]
    expected = F.relu(F.conv2d(F.relu(F.conv2d(x, first.weight, first.bias)),
                               second.weight, second.bias))
    torch.testing.assert_close(block(x), expected)
    assert block(x).shape[-2:] == (8, 6)  # two valid 3x3 convolutions trim 4 pixels


def test_down_is_max_pool_then_double_conv() -> None:
    torch.manual_seed(0)
    block = Down(3, 4, padding=1, batch_norm=False)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(block(x), block[1](F.max_pool2d(x, 2)))


def test_up_crops_the_skip_and_concatenates_it_first() -> None:
    torch.manual_seed(0)
    block = Up(8, 4, padding=0, batch_norm=False, bilinear=False)
    x, skip = torch.randn(1, 8, 5, 5), torch.randn(1, 4, 16, 14)
    upsampled = F.conv_transpose2d(x, block.up.weight, block.up.bias, stride=2)
    cropped = skip[..., 3:13, 2:12]  # the central 10x10
    expected = block.conv(torch.cat([cropped, upsampled], dim=1))
    torch.testing.assert_close(block(x, skip), expected)
    assert block.up.out_channels == 4  # the up-convolution halves the channels


def test_bilinear_up_uses_interpolation_and_a_1x1_convolution() -> None:
    torch.manual_seed(0)
    block = Up(8, 4, padding=1, batch_norm=False, bilinear=True)
    x, skip = torch.randn(1, 8, 5, 5), torch.randn(1, 4, 10, 10)
    conv = block.up[1]
    upsampled = F.conv2d(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
                         conv.weight, conv.bias)
    torch.testing.assert_close(block(x, skip), block.conv(torch.cat([skip, upsampled], dim=1)))


def test_valid_network_of_depth_one_equals_its_functional_definition() -> None:
    torch.manual_seed(0)
    net = UNet(num_classes=3, in_channels=2, base_channels=4, depth=1, batch_norm=False,
               valid=True).eval()
    x = torch.randn(1, 2, 24, 24)

    def double_conv(block: nn.Sequential, t: torch.Tensor) -> torch.Tensor:
        t = F.relu(F.conv2d(t, block[0].weight, block[0].bias))
        return F.relu(F.conv2d(t, block[2].weight, block[2].bias))

    top = double_conv(net.stem, x)  # 20x20
    bottom = double_conv(net.down[0][1], F.max_pool2d(top, 2))  # 10 -> 6
    up = net.up[0]
    upsampled = F.conv_transpose2d(bottom, up.up.weight, up.up.bias, stride=2)  # 12
    fused = double_conv(up.conv, torch.cat([top[..., 4:16, 4:16], upsampled], dim=1))  # 8
    expected = F.conv2d(fused, net.head.weight, net.head.bias)
    torch.testing.assert_close(net.network(x), expected)
    assert net.margin == 8 and net.output_size(24) == 8


def test_practical_unet_has_batch_norm_and_the_papers_widths() -> None:
    net = unet(num_classes=2, in_channels=1)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert all(c.padding == (1, 1) and c.bias is None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == len(convs) == 18
    # batch norm replaces each 3x3 bias (C) by a weight and a bias (2C)
    assert count_parameters(net) == 31_030_658 + sum(c.out_channels for c in convs)
    narrow = unet(num_classes=2, in_channels=1, base_channels=16)
    assert count_parameters(narrow) < count_parameters(net) / 15


@pytest.mark.parametrize("size", [(97, 131), (1, 1), (16, 48), (33, 17)])
def test_practical_unet_returns_logits_at_the_input_size(size: tuple[int, int]) -> None:
    net = unet(num_classes=3, in_channels=1, base_channels=4, depth=3).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1, *size)).shape == (2, 3, *size)


def test_practical_unet_on_a_multiple_of_its_stride_is_just_the_network() -> None:
    net = unet(num_classes=2, in_channels=3, base_channels=4, depth=2).eval()
    x = torch.randn(1, 3, 20, 12)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.network(x))


def test_paper_forward_is_the_network_on_the_mirror_padded_image() -> None:
    torch.manual_seed(0)
    net = unet_paper(base_channels=2).eval()
    x = torch.randn(1, 1, 97, 131)
    # one tile covering the image: outputs 100 (>= 97) and 132 (>= 131), margin 92
    padded = mirror_pad(x, 92, 92 + 3, 92, 92 + 1)
    with torch.no_grad():
        expected = net.network(padded)[..., :97, :131]
        torch.testing.assert_close(net(x), expected)


def test_forward_and_backward_of_the_valid_net_give_gradients() -> None:
    net = unet_paper(base_channels=2, num_classes=3, in_channels=2)
    out = net(torch.randn(1, 2, 9, 7))
    assert out.shape == (1, 3, 9, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_both_builders_are_registered() -> None:
    assert {"unet", "unet_paper"} <= set(list_models())
    assert isinstance(create("unet", num_classes=4, base_channels=4, depth=2), UNet)
    assert create("unet_paper").valid


def test_bad_arguments_and_inputs_raise_clear_errors() -> None:
    net = unet(num_classes=2, in_channels=3, base_channels=4, depth=2)
    with pytest.raises(ValueError, match="in_channels=3.*1 channels"):
        net(torch.randn(1, 1, 16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        net(torch.zeros(1, 3, 16, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        unet(num_classes=0)
    with pytest.raises(TypeError, match="depth must be a positive int"):
        unet(num_classes=2, depth=2.0)
    with pytest.raises(TypeError, match="bilinear must be True or False, got 'yes'"):
        unet(num_classes=2, bilinear="yes")
    with pytest.raises(ValueError, match="does not fit the same-padding U-Net"):
        net.network(torch.randn(1, 3, 18, 16))
