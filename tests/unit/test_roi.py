"""segtutor.ops.roi: roi_align and roi_pool equal to torchvision's compiled operators.

Forward (1e-5 in float32, 1e-10 in float64) and gradients to the input (against
torchvision's backward, and ``gradcheck`` in float64) on random cases: both box formats,
several images, every ``aligned``/``sampling_ratio``/``spatial_scale`` the issue lists,
boxes partly or wholly outside the map, zero-size and reversed boxes, empty box lists,
non-contiguous and channels_last inputs; then the module wrappers and the errors.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torchvision.ops as tv

from segtutor.ops import RoIAlign, RoIPool, roi_align, roi_pool

SCALES = (1.0, 0.5, 0.25, 1 / 16)
OUTPUTS = (1, (7, 7), (14, 14), (3, 5))


def random_rois(generator: torch.Generator, count: int, images: int, size: float,
                dtype: torch.dtype, reversed_box: bool = True) -> torch.Tensor:
    """Boxes in image pixels around a map of ``size`` pixels: inside, across the border,
    wholly outside, degenerate (zero width or height) and reversed (x2 < x1)."""
    corners = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 1.4 * size - 0.2 * size
    sides = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 0.8 * size
    boxes = torch.cat([corners, corners + sides], 1)
    boxes[0, 2] = boxes[0, 0]                        # zero width
    boxes[1, 3] = boxes[1, 1]                        # zero height
    boxes[2] = torch.tensor([2.0 * size, 2.0 * size, 3.0 * size, 3.0 * size])  # outside
    if reversed_box:  # torchvision's kernel itself fails on one with aligned and an adaptive grid
        boxes[3, [0, 2]] = boxes[3, [2, 0]]
    batch = torch.randint(images, (count, 1), generator=generator).double()
    return torch.cat([batch, boxes], 1).to(dtype)


CASES = list(itertools.product((False, True), (-1, 1, 2, 4), SCALES))


@pytest.mark.parametrize(("aligned", "sampling_ratio", "scale"), CASES)
def test_roi_align_equals_torchvision(aligned, sampling_ratio, scale):
    generator = torch.Generator().manual_seed(hash((aligned, sampling_ratio, scale)) % 2**31)
    height, width = 12, 17
    for dtype, tolerance in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        x = torch.randn(3, 4, height, width, generator=generator, dtype=dtype)
        rois = random_rois(generator, 12, 3, width / scale, dtype,
                           reversed_box=not (aligned and sampling_ratio <= 0))
        for output in OUTPUTS:
            ours_in = x.clone().requires_grad_(True)
            theirs_in = x.clone().requires_grad_(True)
            ours = roi_align(ours_in, rois, output, scale, sampling_ratio, aligned)
            theirs = tv.roi_align(theirs_in, rois, output, scale, sampling_ratio, aligned)
            torch.testing.assert_close(ours, theirs, atol=tolerance, rtol=0)
            weights = torch.randn(theirs.shape, generator=generator, dtype=dtype)
            (ours * weights).sum().backward()
            (theirs * weights).sum().backward()
            torch.testing.assert_close(ours_in.grad, theirs_in.grad, atol=tolerance * 10, rtol=0)


@pytest.mark.parametrize("scale", SCALES)
def test_roi_pool_equals_torchvision(scale):
    generator = torch.Generator().manual_seed(int(scale * 1000))
    height, width = 11, 14
    for dtype, tolerance in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        # distinct values: no ties, so the argmax (and so the gradient) is unique
        x = torch.randperm(2 * 3 * height * width, generator=generator).to(dtype)
        x = x.view(2, 3, height, width) / x.numel()
        rois = random_rois(generator, 12, 2, width / scale, dtype)
        for output in OUTPUTS:
            ours_in = x.clone().requires_grad_(True)
            theirs_in = x.clone().requires_grad_(True)
            ours = roi_pool(ours_in, rois, output, scale)
            theirs = tv.roi_pool(theirs_in, rois, output, scale)
            torch.testing.assert_close(ours, theirs, atol=tolerance, rtol=0)
            weights = torch.randn(theirs.shape, generator=generator, dtype=dtype)
            (ours * weights).sum().backward()
            (theirs * weights).sum().backward()
            torch.testing.assert_close(ours_in.grad, theirs_in.grad, atol=tolerance, rtol=0)


def test_list_format_non_contiguous_channels_last_and_empty():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 9, 13, generator=generator)
    rois = random_rois(generator, 10, 2, 13, torch.float32)
    per_image = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    ordered = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1)
                         for i, b in enumerate(per_image)])
    for variant in (x, x.contiguous(memory_format=torch.channels_last),
                    x.transpose(2, 3).contiguous().transpose(2, 3)):
        for ours_fn, theirs_fn in ((roi_align, tv.roi_align), (roi_pool, tv.roi_pool)):
            torch.testing.assert_close(ours_fn(variant, per_image, 4), theirs_fn(x, ordered, 4),
                                       atol=1e-5, rtol=0)
            torch.testing.assert_close(ours_fn(variant, rois, 4), theirs_fn(x, rois, 4),
                                       atol=1e-5, rtol=0)
        empty = roi_align(variant, torch.zeros(0, 5), 3)
        assert empty.shape == (0, 5, 3, 3)
        assert roi_pool(variant, [torch.zeros(0, 4), torch.zeros(0, 4)], 3).shape == (0, 5, 3, 3)


def test_gradcheck_in_float64():
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(1, 2, 6, 7, generator=generator, dtype=torch.float64).requires_grad_(True)
    rois = torch.tensor([[0, 0.3, 0.7, 5.2, 4.9], [0, 2.5, 1.5, 6.5, 5.5]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: roi_align(t, rois, 3, 1.0, 2, True), (x,))
    assert torch.autograd.gradcheck(lambda t: roi_align(t, rois, (2, 3), 0.5, -1, False), (x,))
    distinct = (torch.randperm(84, generator=generator).double().view(1, 2, 6, 7) / 84
                ).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: roi_pool(t, rois, 2, 1.0), (distinct,))


def test_the_four_by_four_example():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    box = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]])
    for ours, theirs in ((roi_align(x, box, 1), tv.roi_align(x, box, 1)),
                         (roi_align(x, box, 1, aligned=True), tv.roi_align(x, box, 1, aligned=True)),
                         (roi_pool(x, box, 1), tv.roi_pool(x, box, 1))):
        assert ours.item() == theirs.item()
    assert (roi_align(x, box, 1).item(), roi_align(x, box, 1, aligned=True).item(),
            roi_pool(x, box, 1).item()) == (5.0, 2.5, 10.0)


def test_module_wrappers_equal_torchvision_modules():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 10, 10, generator=generator)
    rois = random_rois(generator, 8, 2, 20, torch.float32)
    torch.testing.assert_close(RoIAlign(5, 0.5, 2, True)(x, rois),
                               tv.RoIAlign(5, 0.5, 2, True)(x, rois), atol=1e-5, rtol=0)
    torch.testing.assert_close(RoIPool((2, 3), 0.5)(x, rois), tv.RoIPool((2, 3), 0.5)(x, rois),
                               atol=1e-5, rtol=0)
    assert "spatial_scale=0.5, sampling_ratio=2, aligned=True" in repr(RoIAlign(5, 0.5, 2, True))
    assert "spatial_scale=0.5" in repr(RoIPool(2, 0.5))


def test_bad_inputs_are_refused():
    x = torch.randn(2, 3, 8, 8)
    good = torch.tensor([[0.0, 1, 1, 4, 4]])
    for fn in (roi_align, roi_pool):
        with pytest.raises((TypeError, ValueError), match="input"):
            fn(torch.randn(3, 8, 8), good, 2)
        with pytest.raises(ValueError, match=r"\[K, 5\]"):
            fn(x, torch.zeros(3, 4), 2)
        with pytest.raises(ValueError, match=r"\[L, 4\]"):
            fn(x, [torch.zeros(3, 5)], 2)
        with pytest.raises(ValueError, match="batch ind"):
            fn(x, torch.tensor([[2.0, 1, 1, 4, 4]]), 2)
        with pytest.raises(ValueError, match="batch ind"):
            fn(x, torch.tensor([[0.5, 1, 1, 4, 4]]), 2)
        with pytest.raises(ValueError, match="output_size"):
            fn(x, good, 0)
        with pytest.raises(ValueError, match="spatial_scale"):
            fn(x, good, 2, -1.0)
    with pytest.raises(TypeError, match="sampling_ratio"):
        roi_align(x, good, 2, 1.0, 1.5)
    with pytest.raises(TypeError, match="aligned"):
        roi_align(x, good, 2, 1.0, 2, 1)


# ------------------------------------------------------------------ ties, NaN, size classes


@pytest.mark.parametrize("grad", [True, False])
def test_roi_pool_ties_nan_and_inf_as_the_kernel(grad):
    # integer values: many equal maxima; the kernel keeps the first in row-major order and
    # sends the gradient there; it never picks NaN and starts from -FLT_MAX. Without a
    # gradient segtutor takes the maxima alone (no argmax), so both paths are compared.
    generator = torch.Generator().manual_seed(3)
    x = torch.randint(-2, 3, (2, 4, 9, 11), generator=generator).float()
    x[:, 1, :3] = float("nan")
    x[:, 2] = float("-inf")
    x[:, 3, 4:] = -0.0
    rois = random_rois(generator, 24, 2, 11, torch.float32)
    for output in OUTPUTS:
        ours_in = x.clone().requires_grad_(grad)
        theirs_in = x.clone().requires_grad_(grad)
        ours = roi_pool(ours_in, rois, output)
        theirs = tv.roi_pool(theirs_in, rois, output)
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
        if grad:
            weights = torch.randn(theirs.shape, generator=generator)
            (ours * weights).sum().backward()
            (theirs * weights).sum().backward()
            torch.testing.assert_close(ours_in.grad, theirs_in.grad, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_many_box_sizes_on_a_larger_map(dtype):
    # boxes from one cell to the whole map, on three images in mixed order: every patch
    # size class of roi_align and its whole-map products, and several table levels of
    # roi_pool
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(3, 6, 40, 48, generator=generator, dtype=dtype)
    sides = torch.exp(torch.rand(60, 2, generator=generator, dtype=torch.float64) * 5) - 0.5
    corners = torch.rand(60, 2, generator=generator, dtype=torch.float64) * 50 - 5
    batch = torch.randint(3, (60, 1), generator=generator).double()
    rois = torch.cat([batch, corners, corners + sides], 1).to(dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-10
    for output, ratio in (((7, 7), 2), ((14, 14), -1), ((3, 5), 1)):
        for ours_fn, theirs_fn, options in ((roi_align, tv.roi_align, (1.0, ratio, False)),
                                            (roi_pool, tv.roi_pool, (1.0,))):
            ours_in = x.clone().requires_grad_(True)
            theirs_in = x.clone().requires_grad_(True)
            ours = ours_fn(ours_in, rois, output, *options)
            theirs = theirs_fn(theirs_in, rois, output, *options)
            torch.testing.assert_close(ours, theirs, atol=tolerance, rtol=0)
            weights = torch.randn(theirs.shape, generator=generator, dtype=dtype)
            (ours * weights).sum().backward()
            (theirs * weights).sum().backward()
            torch.testing.assert_close(ours_in.grad, theirs_in.grad, atol=10 * tolerance, rtol=0)


def test_reversed_box_aligned_adaptive_gives_zeros_where_torchvision_raises():
    # aligned=True keeps a negative size; with sampling_ratio <= 0 the grid is
    # ceil(negative) <= 0 samples: zeros here, a failed allocation in torchvision's kernel
    x = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0.0, 6.0, 1.0, 1.0, 7.0]])  # x2 < x1 by 5 cells
    assert torch.equal(roi_align(x, rois, 2, 1.0, -1, True), torch.zeros(1, 2, 2, 2))
    with pytest.raises((RuntimeError, ValueError)):
        tv.roi_align(x, rois, 2, 1.0, -1, True)
    # with a fixed grid the bins run backwards from x1, as in torchvision
    torch.testing.assert_close(roi_align(x, rois, 2, 1.0, 2, True),
                               tv.roi_align(x, rois, 2, 1.0, 2, True), atol=1e-6, rtol=0)


def test_more_bad_inputs_are_refused():
    x = torch.randn(1, 3, 8, 8)
    good = torch.tensor([[0.0, 1, 1, 4, 4]])
    for fn in (roi_align, roi_pool):
        with pytest.raises(TypeError, match="floating-point"):
            fn(torch.zeros(1, 3, 8, 8, dtype=torch.long), good, 2)
        with pytest.raises(ValueError, match="non-empty map"):
            fn(torch.randn(1, 3, 0, 8), good, 2)
        with pytest.raises(TypeError, match="boxes must be a Tensor"):
            fn(x, "boxes", 2)
        with pytest.raises(TypeError, match="boxes must have input's dtype"):
            fn(x, good.double(), 2)
        with pytest.raises(ValueError, match="boxes must be on input's device"):
            fn(x, good.to("meta"), 2)
        with pytest.raises(ValueError, match=r"boxes\[0\] must be 2-D"):
            fn(x, [torch.zeros(4)], 2)
        with pytest.raises(ValueError, match="finite"):
            fn(x, torch.tensor([[0.0, 1, float("nan"), 4, 4]]), 2)
        with pytest.raises(TypeError, match="output_size"):
            fn(x, good, 2.0)
        with pytest.raises(TypeError, match="spatial_scale"):
            fn(x, good, 2, "1")
    with pytest.raises(ValueError, match="spatial_scale"):
        RoIAlign(2, 0.0, 2)
    with pytest.raises(TypeError, match="sampling_ratio"):
        RoIAlign(2, 1.0, None)
    with pytest.raises(ValueError, match="output_size"):
        RoIPool((2, 0), 1.0)
