"""segtutor.ops upsampling against PyTorch's own operators: F.interpolate, nn.MaxUnpool2d,
F.max_pool2d, F.conv_transpose2d and F.conv2d."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segtutor.ops import (
    BilinearConvTranspose2d,
    MaxPoolWithIndices,
    ResizeConv2d,
    TransposedConvUpsample,
    bed_of_nails,
    bilinear_kernel,
    max_unpool,
    upsample_bilinear,
    upsample_nearest,
)
from segtutor.ops.upsample import SubPixelConv2d, icnr_


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.randn(2, 3, 5, 7)


# --------------------------------------------------------------------------- fixed


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_nearest_repeats_every_pixel(x, scale):
    expected = x.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    torch.testing.assert_close(upsample_nearest(x, scale), expected)
    torch.testing.assert_close(upsample_nearest(x, scale), nn.Upsample(scale_factor=scale)(x))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bilinear_equals_interpolate_align_corners_false(x, scale):
    expected = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(upsample_bilinear(x, scale), expected)
    torch.testing.assert_close(upsample_bilinear(x, size=(5 * scale, 7 * scale)), expected)


def test_bilinear_samples_at_half_pixel_centres():
    # align_corners=False: output j samples (j + 0.5)/2 - 0.5, i.e. -0.25, 0.25, 0.75, 1.25
    # for [0, 1]; the first and last are clamped to the border pixel.
    row = upsample_bilinear(torch.tensor([[[[0.0, 1.0]]]]), size=(1, 4))
    torch.testing.assert_close(row.flatten(), torch.tensor([0.0, 0.25, 0.75, 1.0]))


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_bed_of_nails_is_a_transposed_conv_with_a_corner_kernel(x, scale):
    kernel = torch.zeros(3, 1, scale, scale)
    kernel[:, :, 0, 0] = 1
    expected = F.conv_transpose2d(x, kernel, stride=scale, groups=3)
    torch.testing.assert_close(bed_of_nails(x, scale), expected)


def test_bed_of_nails_is_max_unpooling_with_top_left_indices(x):
    rows, cols = torch.meshgrid(torch.arange(5) * 2, torch.arange(7) * 2, indexing="ij")
    indices = (rows * 14 + cols).expand_as(x).contiguous()
    torch.testing.assert_close(bed_of_nails(x, 2), nn.MaxUnpool2d(2)(x, indices, output_size=(10, 14)))


POOLS = [
    # kernel, stride, padding, ceil_mode, input size
    (2, 2, 0, False, (8, 8)),
    (2, 2, 0, False, (9, 7)),   # odd sizes: the pooled map forgets the last row/column
    (2, 2, 0, True, (9, 7)),
    (3, 2, 1, False, (10, 11)),  # overlapping windows
    (3, 3, 1, True, (8, 10)),
]


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode, size", POOLS)
def test_max_pool_with_indices_and_max_unpool_equal_pytorch(kernel, stride, padding, ceil_mode, size):
    torch.manual_seed(1)
    image = torch.randn(2, 3, *size)
    pooled = MaxPoolWithIndices(kernel, stride, padding, ceil_mode)(image)
    values, indices = F.max_pool2d(image, kernel, stride, padding, ceil_mode=ceil_mode,
                                   return_indices=True)
    torch.testing.assert_close(pooled.values, values)
    assert torch.equal(pooled.indices, indices) and pooled.input_size == size

    unpool = nn.MaxUnpool2d(kernel, stride, padding)
    expected = unpool(values, indices, output_size=size)
    torch.testing.assert_close(max_unpool(pooled.values, pooled.indices, pooled.input_size), expected)


def test_max_unpool_puts_the_maxima_back_and_zeros_elsewhere():
    image = torch.rand(1, 1, 6, 6)
    pooled = MaxPoolWithIndices(2)(image)
    restored = max_unpool(*pooled)
    kept = restored != 0
    assert kept.sum() == 9  # one value per 2x2 window
    torch.testing.assert_close(restored[kept], image[kept])
    torch.testing.assert_close(F.max_pool2d(restored, 2), pooled.values)


def test_max_unpool_passes_gradients_to_the_pooled_values():
    values = torch.randn(1, 2, 3, 3, requires_grad=True)
    indices = F.max_pool2d(torch.randn(1, 2, 6, 6), 2, return_indices=True)[1]
    max_unpool(values, indices, (6, 6)).sum().backward()
    torch.testing.assert_close(values.grad, torch.ones_like(values))


# --------------------------------------------------------------------------- learnable


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("kernel_size", [None, 1, 2, 3, 5, 8])
def test_transposed_conv_upsample_enlarges_exactly_factor_times(x, factor, kernel_size):
    if kernel_size is not None and kernel_size < factor:
        with pytest.raises(ValueError, match=f"kernel_size must be an int >= {factor}"):
            TransposedConvUpsample(3, 4, factor, kernel_size)
        return
    layer = TransposedConvUpsample(3, 4, factor, kernel_size)
    out = layer(x)
    assert out.shape == (2, 4, 5 * factor, 7 * factor)
    expected = F.conv_transpose2d(x, layer.weight, layer.bias, stride=factor,
                                  padding=layer.padding, output_padding=layer.output_padding)
    torch.testing.assert_close(out, expected)


def fcn_upsample_filt(size):
    """FCN's surgery.upsample_filt (github.com/shelhamer/fcn.berkeleyvision.org), in NumPy."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 8, 32])
def test_bilinear_kernel_is_fcns_upsample_filt_on_the_diagonal(factor):
    weight = bilinear_kernel(3, factor)
    size = 2 * factor - factor % 2
    assert weight.shape == (3, 3, size, size)
    expected = torch.from_numpy(fcn_upsample_filt(size)).float()
    for c in range(3):
        torch.testing.assert_close(weight[c, c], expected)
    off_diagonal = weight.clone()
    off_diagonal[range(3), range(3)] = 0
    assert not off_diagonal.any()


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_bilinear_conv_transpose_reproduces_interpolate_in_the_interior(x, factor):
    layer = BilinearConvTranspose2d(3, factor)
    border = layer.padding[0]  # ceil((factor - 1) / 2) pixels on every side
    assert border == (factor - 1 + 1) // 2
    got = layer(x)
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert got.shape == expected.shape
    inner = (..., slice(border, -border), slice(border, -border))
    torch.testing.assert_close(got[inner], expected[inner])


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_bilinear_conv_transpose_border_is_interpolation_of_the_zero_padded_input(factor):
    """Where it differs from F.interpolate: the border ``padding`` pixels see zeros outside
    the input, where F.interpolate repeats the edge pixel. Interpolating the zero-padded
    input and cropping reproduces it everywhere."""
    image = torch.rand(1, 2, 4, 6) + 1  # positive, so that the zeros make a difference
    layer = BilinearConvTranspose2d(2, factor)
    got = layer(image)
    padded = F.interpolate(F.pad(image, (1, 1, 1, 1)), scale_factor=factor, mode="bilinear",
                           align_corners=False)
    torch.testing.assert_close(got, padded[..., factor:-factor, factor:-factor])

    clamped = F.interpolate(image, scale_factor=factor, mode="bilinear", align_corners=False)
    differs = (got - clamped).abs() > 1e-6
    border = layer.padding[0]
    expected = torch.ones_like(differs)
    expected[..., border:-border, border:-border] = False
    assert torch.equal(differs, expected)


def test_bilinear_conv_transpose_trainable_or_frozen(x):
    frozen = BilinearConvTranspose2d(3, 2, trainable=False)
    assert not frozen.weight.requires_grad and frozen.bias is None
    trainable = BilinearConvTranspose2d(3, 2)
    trainable(x).sum().backward()
    assert trainable.weight.grad is not None and trainable.weight.grad.abs().sum() > 0
    torch.testing.assert_close(frozen(x), trainable(x))


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("scale, kernel_size", [(1, 3), (2, 3), (2, 1), (3, 5)])
def test_resize_conv_is_interpolate_then_conv2d(x, mode, scale, kernel_size):
    layer = ResizeConv2d(3, 4, scale, kernel_size, mode=mode)
    resized = F.interpolate(x, scale_factor=scale, mode=mode,
                            align_corners=False if mode == "bilinear" else None)
    expected = F.conv2d(resized, layer.conv.weight, layer.conv.bias, padding=kernel_size // 2)
    out = layer(x)
    assert out.shape == (2, 4, 5 * scale, 7 * scale)
    torch.testing.assert_close(out, expected)


def test_resize_conv_has_no_checkerboard_where_a_transposed_conv_does():
    """Constant weights on a constant input: a 3x3, stride-2 transposed convolution
    overlaps unevenly (1, 2 or 4 contributions per pixel), resize-conv evenly."""
    image = torch.ones(1, 1, 8, 8)
    transposed = TransposedConvUpsample(1, 1, 2, kernel_size=3, bias=False)
    resize = ResizeConv2d(1, 1, 2, kernel_size=3, bias=False)
    with torch.no_grad():
        transposed.weight.fill_(1.0)
        resize.conv.weight.fill_(1.0)
        inner = (0, 0, slice(2, -2), slice(2, -2))
        assert set(transposed(image)[inner].unique().tolist()) == {1.0, 2.0, 4.0}
        assert set(resize(image)[inner].unique().tolist()) == {9.0}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_ops_run_on_cuda_like_on_cpu(x):
    cuda = x.cuda()
    torch.testing.assert_close(bed_of_nails(cuda, 2).cpu(), bed_of_nails(x, 2))
    pooled = MaxPoolWithIndices(2)(cuda)
    torch.testing.assert_close(max_unpool(*pooled).cpu(), max_unpool(*MaxPoolWithIndices(2)(x)))
    layer = BilinearConvTranspose2d(3, 2)
    torch.testing.assert_close(layer.cuda()(cuda).cpu(), layer.cpu()(x), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- bad arguments


def test_bad_arguments_are_refused_with_the_value(x):
    with pytest.raises(ValueError, match="scale must be a positive int, got 0"):
        upsample_nearest(x, 0)
    with pytest.raises(TypeError, match=r"scale must be a positive int, got 2.0 \(float\)"):
        bed_of_nails(x, 2.0)
    with pytest.raises(ValueError, match=r"x must be 4-D \[N, C, H, W\], got shape \(3, 5, 7\)"):
        upsample_bilinear(x[0], 2)
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor \[N, C, H, W\], got dtype torch.int64"):
        upsample_nearest(torch.ones(1, 1, 2, 2, dtype=torch.int64), 2)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        upsample_nearest(np.ones((1, 1, 2, 2)), 2)
    with pytest.raises(ValueError, match="exactly one of scale and size"):
        upsample_bilinear(x, 2, size=10)
    with pytest.raises(ValueError, match="exactly one of scale and size"):
        upsample_bilinear(x)


def test_max_unpool_refuses_inconsistent_indices(x):
    pooled = MaxPoolWithIndices(2)(x)
    with pytest.raises(TypeError, match="indices must be an int64 tensor, got torch.int32"):
        max_unpool(pooled.values, pooled.indices.int(), (5, 7))
    with pytest.raises(ValueError, match=r"indices shape \(2, 3, 2, 3\) must equal x's shape"):
        max_unpool(pooled.values[..., :2], pooled.indices, (5, 7))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\) for output_size \(2, 2\)"):
        max_unpool(pooled.values, pooled.indices, (2, 2))
    with pytest.raises(ValueError, match=r"output_size must be a positive int or a pair \(height, width\) of them, got \(0, 7\)"):
        max_unpool(pooled.values, pooled.indices, (0, 7))


def test_modules_refuse_bad_configuration():
    with pytest.raises(ValueError, match="factor must be an int >= 2, got 1"):
        TransposedConvUpsample(3, 3, 1)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ResizeConv2d(3, 3, 2, kernel_size=4)
    with pytest.raises(ValueError, match="mode must be one of .*got 'bicubic'"):
        ResizeConv2d(3, 3, 2, mode="bicubic")
    with pytest.raises(TypeError, match="trainable must be True or False"):
        BilinearConvTranspose2d(3, 2, trainable="no")
    with pytest.raises(ValueError, match="padding=2 must be at most kernel_size // 2 = 1"):
        MaxPoolWithIndices(2, padding=2)
    with pytest.raises(ValueError, match="channels must be a positive int, got 0"):
        bilinear_kernel(0, 2)


# --------------------------------------------------------------------------- sub-pixel convolution and ICNR

@pytest.mark.parametrize("scale", [1, 2, 3])
@pytest.mark.parametrize("kernel_size", [1, 3])
def test_icnr_sub_pixel_conv_is_conv2d_then_nearest_interpolation(x, scale, kernel_size):
    """With ICNR, conv + PixelShuffle equals F.conv2d with the sub-kernel, then
    F.interpolate(mode="nearest"): every r x r block starts constant."""
    torch.manual_seed(1)
    layer = SubPixelConv2d(3, 4, scale, kernel_size=kernel_size)
    groups = scale * scale
    sub_weight, sub_bias = layer.conv.weight[::groups], layer.conv.bias[::groups]
    expected = F.interpolate(F.conv2d(x, sub_weight, sub_bias, padding=kernel_size // 2),
                             scale_factor=scale, mode="nearest")
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("icnr", [True, False])
def test_sub_pixel_conv_is_a_transposed_conv_with_kernel_scale_times_larger(x, scale, icnr):
    """Shi et al.'s equivalence, against F.conv_transpose2d: conv k (padding h = k // 2)
    + PixelShuffle(r) is a stride-r transposed conv with a kernel r * k and padding r * h,
    whose tap (i + r(h - dy), j + r(h - dx)) is the conv's tap (dy + h, dx + h) of channel
    c r^2 + i r + j."""
    torch.manual_seed(2)
    k, h = 3, 1
    layer = SubPixelConv2d(3, 2, scale, kernel_size=k, icnr=icnr, bias=False)
    w = layer.conv.weight.detach()  # [2 r^2, 3, k, k]
    transposed = torch.zeros(3, 2, scale * k, scale * k)
    for c in range(2):
        for i in range(scale):
            for j in range(scale):
                for dy in range(-h, h + 1):
                    for dx in range(-h, h + 1):
                        transposed[:, c, i + scale * (h - dy), j + scale * (h - dx)] = \
                            w[c * scale * scale + i * scale + j, :, dy + h, dx + h]
    expected = F.conv_transpose2d(x, transposed, stride=scale, padding=scale * h)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_icnr_fills_in_place_with_the_given_initializer_and_keeps_the_scale():
    weight = torch.empty(16 * 4, 8, 3, 3)
    assert icnr_(weight, 2, nn.init.ones_) is weight
    assert torch.equal(weight, torch.ones_like(weight))
    torch.manual_seed(3)
    icnr_(weight, 2)
    for g in range(16):
        group = weight[4 * g:4 * g + 4]
        assert torch.equal(group, group[:1].expand_as(group))
    bound = 1 / (8 * 9) ** 0.5  # nn.Conv2d's default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
    reference = nn.Conv2d(8, 64, 3).weight
    assert weight.abs().max() <= bound and reference.abs().max() <= bound
    assert weight.abs().max() > 0.9 * bound


def test_sub_pixel_conv_random_initialisation_is_left_alone_without_icnr(x):
    torch.manual_seed(4)
    layer = SubPixelConv2d(3, 2, 2, icnr=False)
    assert not torch.equal(layer.conv.weight[0], layer.conv.weight[1])
    assert layer(x).shape == (2, 2, 10, 14)
    assert "scale=2, icnr=False" in repr(layer)


def test_icnr_and_sub_pixel_conv_refuse_bad_arguments(x):
    with pytest.raises(ValueError, match=r"weight.shape\[0\] must be a multiple of scale\*\*2 = 4, got 6"):
        icnr_(torch.empty(6, 3, 3, 3), 2)
    with pytest.raises(TypeError, match="weight must be a floating-point tensor"):
        icnr_(torch.empty(4, 3, 3, 3, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match=r"weight must be 4-D"):
        icnr_(torch.empty(4, 3, 3), 2)
    with pytest.raises(ValueError, match="scale must be a positive int, got 0"):
        icnr_(torch.empty(4, 3, 3, 3), 0)
    with pytest.raises(TypeError, match="initializer must be callable"):
        icnr_(torch.empty(4, 3, 3, 3), 2, initializer="kaiming")
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        SubPixelConv2d(3, 3, 2, kernel_size=4)
    with pytest.raises(TypeError, match="icnr must be True or False"):
        SubPixelConv2d(3, 3, 2, icnr=1)
    with pytest.raises(ValueError, match=r"x must be 4-D \[N, C, H, W\]"):
        SubPixelConv2d(3, 3, 2)(x[0])
