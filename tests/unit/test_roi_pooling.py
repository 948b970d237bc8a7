"""segtutor.models.roi_pooling: MultiScaleRoIPooling against torchvision.

``kind="align"`` against ``torchvision.ops.MultiScaleRoIAlign`` (forward and gradients to
the features) on FPN-like levels and on one level; ``kind="pool"`` against per-level
``torchvision.ops.roi_pool`` composed with torchvision's ``LevelMapper``; ``aligned=True``
against ``torchvision.ops.roi_align(aligned=True)``; empty box lists, errors, repr.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torchvision.ops as tv
from torchvision.ops.poolers import initLevelMapper

from segtutor.models import MultiScaleRoIPooling
from segtutor.models import roi_pooling as roi_pooling_module

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE = (256, 320)  # (height, width) of the images the features come from
STRIDES = (4, 8, 16, 32)
NAMES = ["0", "1", "2", "3"]


def fpn_features(generator: torch.Generator, images: int = 2, channels: int = 3,
                 dtype: torch.dtype = torch.float32) -> OrderedDict[str, torch.Tensor]:
    """Random maps at strides 4..32 of an ``IMAGE``, plus a map no pooler should read."""
    features = OrderedDict(
        (name, torch.randn(images, channels, IMAGE[0] // stride, IMAGE[1] // stride,
                           generator=generator, dtype=dtype))
        for name, stride in zip(NAMES, STRIDES, strict=True))
    features["pool"] = torch.randn(images, channels, 4, 5, generator=generator, dtype=dtype)
    return features


def random_boxes(generator: torch.Generator, count: int, dtype: torch.dtype = torch.float32
                 ) -> torch.Tensor:
    """``count`` boxes ``(x1, y1, x2, y2)`` inside the image, sides from 8 to 250 pixels
    (log-uniform, so small and large boxes are both common); the first one is 290 x 245."""
    sides = torch.exp(torch.empty(count, 2, dtype=torch.float64).uniform_(
        torch.log(torch.tensor(8.0)).item(), torch.log(torch.tensor(250.0)).item(),
        generator=generator))
    sides[:, 1] = sides[:, 1].clamp(max=IMAGE[0] - 1)
    limit = torch.tensor([IMAGE[1], IMAGE[0]], dtype=torch.float64) - sides
    corners = torch.rand(count, 2, generator=generator, dtype=torch.float64) * limit
    boxes = torch.cat([corners, corners + sides], 1)
    boxes[0] = torch.tensor([10.0, 5.0, 300.0, 250.0])  # one box on the coarsest levels
    return boxes.to(dtype)


def levels_of(boxes: list[torch.Tensor], canonical_scale: int = 224, canonical_level: int = 4
              ) -> torch.Tensor:
    """Each box's level index by torchvision's LevelMapper for strides 4..32 (levels 2..5)."""
    return initLevelMapper(2, 5, canonical_scale=canonical_scale,
                           canonical_level=canonical_level)(boxes)


def per_level(pool, features: OrderedDict[str, torch.Tensor], boxes: list[torch.Tensor],
              levels: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """The reference composition: ``pool(level_map, rois, output_size, 1 / stride)`` on the
    boxes of each level, put back in the boxes' order."""
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype), b], 1)
                      for i, b in enumerate(boxes)])
    channels = features["0"].shape[1]
    result = torch.zeros(len(rois), channels, *output_size, dtype=features["0"].dtype)
    for level, (name, stride) in enumerate(zip(NAMES, STRIDES, strict=True)):
        chosen = torch.where(levels == level)[0]
        result[chosen] = pool(features[name], rois[chosen], output_size, 1 / stride)
    return result


def with_grad(features: OrderedDict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, v.clone().requires_grad_(True)) for k, v in features.items())


def assert_same_gradients(ours_out, theirs_out, ours_in, theirs_in, generator, atol=1e-5):
    weights = torch.randn(theirs_out.shape, generator=generator, dtype=theirs_out.dtype)
    (ours_out * weights).sum().backward()
    (theirs_out * weights).sum().backward()
    for name in NAMES:
        if theirs_in[name].grad is None:
            assert ours_in[name].grad is None or not ours_in[name].grad.any(), name
            continue
        torch.testing.assert_close(ours_in[name].grad, theirs_in[name].grad, atol=atol, rtol=0)
    assert ours_in["pool"].grad is None  # a map not named is not read


# --- kind="align": torchvision's MultiScaleRoIAlign -----------------------------------------


@pytest.mark.parametrize(("output_size", "sampling_ratio", "canonical_scale"), [
    (7, 2, 224), (14, 2, 224), ((3, 5), -1, 224), (7, 0, 112), ((6, 4), 3, 112),
])
def test_align_equals_torchvision_on_fpn_levels(output_size, sampling_ratio, canonical_scale):
    generator = torch.Generator().manual_seed(sampling_ratio + canonical_scale)
    features = fpn_features(generator)
    boxes = [random_boxes(generator, 40), random_boxes(generator, 25)]
    levels = levels_of(boxes, canonical_scale)
    expected_levels = {0, 1, 2} if canonical_scale == 224 else {0, 1, 2, 3}
    assert set(levels.tolist()) == expected_levels  # several levels are really used

    ours_module = MultiScaleRoIPooling(NAMES, output_size, sampling_ratio,
                                       canonical_scale=canonical_scale)
    theirs_module = tv.MultiScaleRoIAlign(NAMES, output_size, sampling_ratio,
                                          canonical_scale=canonical_scale)
    assert isinstance(ours_module, tv.MultiScaleRoIAlign)
    ours_in, theirs_in = with_grad(features), with_grad(features)
    ours = ours_module(ours_in, boxes, [IMAGE, IMAGE])
    theirs = theirs_module(theirs_in, boxes, [IMAGE, IMAGE])
    size = (output_size, output_size) if isinstance(output_size, int) else output_size
    assert ours.shape == (65, 3, *size) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert ours_module.scales == theirs_module.scales == [1 / s for s in STRIDES]
    assert_same_gradients(ours, theirs, ours_in, theirs_in, generator)
    # the levels it cached are torchvision's (a second call reuses them)
    torch.testing.assert_close(ours_module(features, boxes, [IMAGE, IMAGE]), theirs.detach(),
                               atol=1e-5, rtol=0)


def test_align_equals_torchvision_on_one_level():
    generator = torch.Generator().manual_seed(1)
    features = fpn_features(generator, images=3, channels=4)
    boxes = [random_boxes(generator, 9), random_boxes(generator, 1), random_boxes(generator, 6)]
    for name, stride in zip(NAMES[:2], STRIDES[:2], strict=True):
        ours_module = MultiScaleRoIPooling([name], 7, 2)
        theirs_module = tv.MultiScaleRoIAlign([name], 7, 2)
        ours_in, theirs_in = with_grad(features), with_grad(features)
        ours = ours_module(ours_in, boxes, [IMAGE] * 3)
        theirs = theirs_module(theirs_in, boxes, [IMAGE] * 3)
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
        assert ours_module.scales == [1 / stride]
        weights = torch.randn(theirs.shape, generator=generator)
        (ours * weights).sum().backward()
        (theirs * weights).sum().backward()
        torch.testing.assert_close(ours_in[name].grad, theirs_in[name].grad, atol=1e-5, rtol=0)


def test_align_equals_torchvision_in_float64():
    generator = torch.Generator().manual_seed(2)
    features = fpn_features(generator, dtype=torch.float64)
    boxes = [random_boxes(generator, 20, torch.float64), random_boxes(generator, 20, torch.float64)]
    ours = MultiScaleRoIPooling(NAMES, 7, 2)(features, boxes, [IMAGE, IMAGE])
    theirs = tv.MultiScaleRoIAlign(NAMES, 7, 2)(features, boxes, [IMAGE, IMAGE])
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)


def test_aligned_true_equals_torchvision_roi_align_aligned():
    generator = torch.Generator().manual_seed(3)
    features = fpn_features(generator)
    boxes = [random_boxes(generator, 12), random_boxes(generator, 7)]
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1)
                      for i, b in enumerate(boxes)])
    for sampling_ratio in (2, -1):
        module = MultiScaleRoIPooling(["1"], (7, 7), sampling_ratio, aligned=True)
        ours_in = features["1"].clone().requires_grad_(True)
        theirs_in = features["1"].clone().requires_grad_(True)
        ours = module({"1": ours_in}, boxes, [IMAGE, IMAGE])
        theirs = tv.roi_align(theirs_in, rois, (7, 7), 1 / 8, sampling_ratio, aligned=True)
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
        unaligned = tv.roi_align(features["1"], rois, (7, 7), 1 / 8, sampling_ratio)
        assert not torch.allclose(ours, unaligned, atol=1e-3)  # the offset matters
        weights = torch.randn(theirs.shape, generator=generator)
        (ours * weights).sum().backward()
        (theirs * weights).sum().backward()
        torch.testing.assert_close(ours_in.grad, theirs_in.grad, atol=1e-5, rtol=0)


def test_aligned_true_on_fpn_levels_is_per_level_aligned_roi_align():
    generator = torch.Generator().manual_seed(4)
    features = fpn_features(generator)
    boxes = [random_boxes(generator, 30), random_boxes(generator, 30)]
    levels = levels_of(boxes)

    def aligned_roi_align(x, rois, output_size, scale):
        return tv.roi_align(x, rois, output_size, scale, 2, aligned=True)

    ours = MultiScaleRoIPooling(NAMES, 7, 2, aligned=True)(features, boxes, [IMAGE, IMAGE])
    expected = per_level(aligned_roi_align, features, boxes, levels, (7, 7))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


# --- kind="pool": per-level roi_pool with torchvision's LevelMapper -------------------------


@pytest.mark.parametrize(("output_size", "canonical_scale"), [(7, 224), ((3, 5), 112), (14, 224)])
def test_pool_equals_per_level_torchvision_roi_pool(output_size, canonical_scale):
    generator = torch.Generator().manual_seed(output_size if isinstance(output_size, int) else 35)
    features = fpn_features(generator)
    boxes = [random_boxes(generator, 30), random_boxes(generator, 35)]
    levels = levels_of(boxes, canonical_scale)
    assert len(set(levels.tolist())) >= 3
    size = (output_size, output_size) if isinstance(output_size, int) else output_size

    module = MultiScaleRoIPooling(NAMES, output_size, 2, kind="pool",
                                  canonical_scale=canonical_scale)
    ours_in, theirs_in = with_grad(features), with_grad(features)
    ours = module(ours_in, boxes, [IMAGE, IMAGE])
    theirs = per_level(tv.roi_pool, theirs_in, boxes, levels, size)
    assert ours.shape == (65, 3, *size)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    # the module's own level mapper is torchvision's for these levels
    assert torch.equal(module.map_levels(boxes), levels)
    assert_same_gradients(ours, theirs, ours_in, theirs_in, generator)
    # and it is not RoIAlign
    align = tv.MultiScaleRoIAlign(NAMES, output_size, 2, canonical_scale=canonical_scale)
    assert not torch.allclose(ours, align(features, boxes, [IMAGE, IMAGE]), atol=1e-2)


def test_pool_ignores_sampling_ratio():
    generator = torch.Generator().manual_seed(5)
    features = fpn_features(generator)
    boxes = [random_boxes(generator, 10), random_boxes(generator, 10)]
    outputs = [MultiScaleRoIPooling(NAMES, 7, ratio, kind="pool")(features, boxes, [IMAGE, IMAGE])
               for ratio in (-1, 0, 2, 5)]
    assert all(torch.equal(outputs[0], other) for other in outputs[1:])


def test_gradcheck_in_float64():
    generator = torch.Generator().manual_seed(6)
    names = ["0", "1"]
    image = (16, 24)
    features = [torch.randn(1, 1, 16 // s, 24 // s, generator=generator, dtype=torch.float64,
                            requires_grad=True) for s in (4, 8)]
    boxes = [torch.tensor([[1.0, 2.0, 6.0, 7.0], [3.5, 1.2, 23.0, 15.0]], dtype=torch.float64)]
    for kind in ("align", "pool"):
        module = MultiScaleRoIPooling(names, 2, 2, kind=kind, canonical_scale=8,
                                      canonical_level=2)

        def pooled(a, b, module=module):
            return module(OrderedDict(zip(names, (a, b), strict=True)), boxes, [image])

        assert torch.autograd.gradcheck(pooled, tuple(features))
        assert set(module.map_levels(boxes).tolist()) == {0, 1}


# --- it is segtutor's operators inside -------------------------------------------------------


@pytest.mark.parametrize("kind", ["align", "pool"])
def test_pools_with_segtutors_operators(monkeypatch, kind):
    calls = []
    for name in ("roi_align", "roi_pool"):
        original = getattr(roi_pooling_module, name)

        def spy(*args, original=original, name=name, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(roi_pooling_module, name, spy)
    generator = torch.Generator().manual_seed(7)
    features = fpn_features(generator)
    boxes = [random_boxes(generator, 10), random_boxes(generator, 10)]
    MultiScaleRoIPooling(NAMES, 7, 2, kind=kind)(features, boxes, [IMAGE, IMAGE])
    assert calls and set(calls) == {f"roi_{kind}"}
    assert len(calls) == len(NAMES)  # one call per level


# --- empty box lists ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["align", "pool"])
@pytest.mark.parametrize("names", [NAMES, ["0"]])
def test_empty_box_lists(kind, names):
    generator = torch.Generator().manual_seed(8)
    features = fpn_features(generator)
    empty = torch.zeros(0, 4)
    module = MultiScaleRoIPooling(names, (7, 5), 2, kind=kind)
    out = module(features, [empty, empty], [IMAGE, IMAGE])
    assert out.shape == (0, 3, 7, 5) and out.dtype == torch.float32
    # one image with boxes, one without: the same as the image with boxes alone
    boxes = random_boxes(generator, 6)
    both = module(features, [empty, boxes], [IMAGE, IMAGE])
    theirs = tv.MultiScaleRoIAlign(names, (7, 5), 2)(features, [empty, boxes], [IMAGE, IMAGE])
    assert both.shape == theirs.shape == (6, 3, 7, 5)
    if kind == "align":
        torch.testing.assert_close(both, theirs, atol=1e-5, rtol=0)


# --- options and errors ---------------------------------------------------------------------


def test_defaults_and_attributes():
    module = MultiScaleRoIPooling(["0"], 7, 2)
    assert module.kind == "align" and module.aligned is False
    assert module.output_size == (7, 7) and module.sampling_ratio == 2
    assert module.canonical_scale == 224 and module.canonical_level == 4
    assert module.featmap_names == ["0"]
    assert MultiScaleRoIPooling(["0"], [3, 4], 2).output_size == (3, 4)
    assert roi_pooling_module.ROI_KINDS == ("align", "pool")


def test_repr():
    assert repr(MultiScaleRoIPooling(["0", "1"], 7, 2)) == (
        "MultiScaleRoIPooling(featmap_names=['0', '1'], output_size=(7, 7), sampling_ratio=2, "
        "kind='align', aligned=False)")
    assert repr(MultiScaleRoIPooling(["p2"], (14, 10), -1, kind="pool", aligned=True)) == (
        "MultiScaleRoIPooling(featmap_names=['p2'], output_size=(14, 10), sampling_ratio=-1, "
        "kind='pool', aligned=True)")


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"kind": "max"}, ValueError, r"kind must be one of \('align', 'pool'\), got 'max'"),
    ({"kind": "Align"}, ValueError, r"kind must be one of \('align', 'pool'\), got 'Align'"),
    ({"kind": None}, ValueError, r"kind must be one of .* got None"),
    ({"sampling_ratio": 2.0}, TypeError, r"sampling_ratio must be an int, got 2.0 \(float\)"),
    ({"sampling_ratio": True}, TypeError, r"sampling_ratio must be an int, got True \(bool\)"),
    ({"sampling_ratio": None}, TypeError, r"sampling_ratio must be an int, got None"),
    ({"aligned": 1}, TypeError, r"aligned must be True or False, got 1 \(int\)"),
    ({"aligned": None}, TypeError, r"aligned must be True or False, got None"),
    ({"aligned": "yes"}, TypeError, r"aligned must be True or False, got 'yes' \(str\)"),
])
def test_bad_options_raise(kwargs, error, message):
    arguments = {"featmap_names": ["0"], "output_size": 7, "sampling_ratio": 2, **kwargs}
    sampling_ratio = arguments.pop("sampling_ratio")
    with pytest.raises(error, match=message):
        MultiScaleRoIPooling(arguments.pop("featmap_names"), arguments.pop("output_size"),
                             sampling_ratio, **arguments)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        MultiScaleRoIPooling(["0"], 7, 2, "pool")  # kind by position


def test_a_bad_output_size_fails_in_the_operator():
    module = MultiScaleRoIPooling(["0"], 0, 2)
    features = {"0": torch.randn(1, 2, 8, 8)}
    with pytest.raises(ValueError, match="output_size must be a positive int"):
        module(features, [torch.tensor([[0.0, 0.0, 4.0, 4.0]])], [(32, 32)])
