"""segtutor.models.fcn against a reference built from torchvision's VGG layers and torch.nn.functional."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from segtutor import models
from segtutor.models import fcn, vgg

TORCHVISION_POOLS = {"pool3": "16", "pool4": "23", "pool5": "30"}  # indices in vgg16().features


def tiny_config(width: int) -> list[int | str]:
    return [c if c == "M" else c * width // 64 for c in vgg.VGG16_CONFIG]


def is_score_layer(name: str) -> bool:
    return name.startswith(("head.score_fr", "score_pool"))


def randomize_scores(model: fcn.FCN) -> None:
    """Give the zero-initialised score layers random weights, so every path matters."""
    generator = torch.Generator().manual_seed(0)
    for name, parameter in model.named_parameters():
        if is_score_layer(name):
            with torch.no_grad():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)


def bilinear_weight(channels: int, factor: int) -> torch.Tensor:
    """FCN's upsample_filt, written out independently of segtutor.ops."""
    size = 2 * factor
    taps = 1 - (torch.arange(size) - (factor - 0.5)).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    for c in range(channels):
        weight[c, c] = taps[:, None] * taps[None, :]
    return weight


def reference_fcn(model: fcn.FCN, x: torch.Tensor) -> torch.Tensor:
    """The same network from torchvision's VGG layers and F.conv2d / F.conv_transpose2d."""
    width = model.backbone[0].out_channels
    features = torchvision.models.vgg.make_layers(tiny_config(width))
    features.load_state_dict(model.backbone.state_dict())
    extractor = create_feature_extractor(
        nn.Sequential(features).eval(), {f"0.{i}": n for n, i in TORCHVISION_POOLS.items()})
    height, width_in = x.shape[-2:]
    pad_h, pad_w = -height % 32, -width_in % 32
    top, left = pad_h // 2, pad_w // 2
    padded = F.pad(x, (left, pad_w - left, top, pad_h - top))
    pools = extractor(padded)
    head = model.head
    y = F.relu(F.conv2d(pools["pool5"], head.fc6.weight, head.fc6.bias, padding=3))
    y = F.relu(F.conv2d(y, head.fc7.weight, head.fc7.bias))
    scores = F.conv2d(y, head.score_fr.weight, head.score_fr.bias)
    classes = scores.shape[1]
    for name in model.skips:
        layer = model.score_pool[name]
        up = F.conv_transpose2d(scores, bilinear_weight(classes, 2), stride=2, padding=1)
        scores = up + F.conv2d(pools[name], layer.weight, layer.bias)
    factor = 32 // 2 ** len(model.skips)
    out = F.conv_transpose2d(scores, bilinear_weight(classes, factor), stride=factor,
                             padding=factor // 2)
    return out[..., top:top + height, left:left + width_in]


@pytest.mark.parametrize("builder", [fcn.fcn32s, fcn.fcn16s, fcn.fcn8s])
def test_matches_a_reference_from_torchvision_layers(builder):
    torch.manual_seed(0)
    model = builder(num_classes=4, width=8, fc_channels=32).eval()
    randomize_scores(model)
    x = torch.randn(2, 3, 70, 101, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_fcn(model, x), rtol=1e-4, atol=1e-5)


def test_skips_and_upsampling_per_variant():
    for builder, skips, final in [(fcn.fcn32s, (), 32), (fcn.fcn16s, ("pool4",), 16),
                                  (fcn.fcn8s, ("pool4", "pool3"), 8)]:
        model = builder(num_classes=2, width=4, fc_channels=8)
        assert model.skips == skips and tuple(model.score_pool) == skips
        assert model.upscore.stride == (final, final)
        assert model.upscore.kernel_size == (2 * final, 2 * final)


def test_upsampling_is_bilinear_interpolation_inside_the_image():
    model = fcn.fcn8s(num_classes=3, width=4, fc_channels=8)
    scores = torch.randn(1, 3, 6, 7, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model.upscore(scores)
    expected = F.interpolate(scores, scale_factor=8, mode="bilinear", align_corners=False)
    margin = 8  # within one input cell of the border the transposed conv sees zero padding
    torch.testing.assert_close(ours[..., margin:-margin, margin:-margin],
                               expected[..., margin:-margin, margin:-margin])


def test_score_layers_start_at_zero():
    model = fcn.fcn8s(num_classes=3, width=4, fc_channels=8)
    for name, parameter in model.named_parameters():
        if is_score_layer(name):
            assert not parameter.any(), name
    assert not model(torch.randn(1, 3, 40, 40)).any()


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_upsampling(freeze):
    model = fcn.fcn8s(num_classes=3, width=4, fc_channels=8, freeze_upsampling=freeze)
    randomize_scores(model)
    upsamplers = [model.upscore, *model.upscore2.values()]
    before = [u.weight.clone() for u in upsamplers]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(1, 3, 64, 64)).square().mean().backward()
    optimizer.step()
    for upsampler, weight in zip(upsamplers, before, strict=True):
        assert upsampler.weight.requires_grad is not freeze
        assert torch.equal(upsampler.weight, weight) is freeze


def test_parameter_counts_for_21_classes_and_torchvision_vgg16_weights():
    reference = torchvision.models.vgg16()
    model = fcn.fcn8s(num_classes=21)
    vgg_convs = sum(p.numel() for p in reference.features.parameters())
    fc6 = 7 * 7 * 512 * 4096 + 4096
    fc7 = 4096 * 4096 + 4096
    scores = (4096 * 21 + 21) + (512 * 21 + 21) + (256 * 21 + 21)
    bilinear = 21 * 21 * (4 * 4 + 4 * 4 + 16 * 16)  # fixed, counted only as parameters
    learnable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert learnable == vgg_convs + fc6 + fc7 + scores
    assert sum(p.numel() for p in model.parameters()) == learnable + bilinear
    assert learnable == pytest.approx(134e6, rel=0.005)  # the paper's "134M"

    # torchvision's ImageNet VGG16 state_dict maps onto backbone, fc6 and fc7
    missing, unexpected = model.load_state_dict(
        fcn.vgg16_state_to_fcn(reference.state_dict()), strict=False)
    assert not unexpected
    assert {k.split(".")[0] for k in missing} == {"head", "score_pool", "upscore2", "upscore"}
    assert all(k.startswith("head.score_fr") for k in missing if k.startswith("head"))
    pool5 = torch.randn(1, 512, 7, 7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # in float64: a 25,088-term float32 sum differs by ~1e-5 between kernels
        fc6_conv = model.head.fc6.double()(pool5.double())[:, :, 3, 3]  # the centre sees all of 7x7
        fc6_linear = reference.classifier[0].double()(pool5.double().flatten(1))
        torch.testing.assert_close(fc6_conv, fc6_linear, rtol=1e-10, atol=1e-10)


def test_registered_semantic_models():
    for name in ("fcn32s", "fcn16s", "fcn8s"):
        info = models.model_info(name)
        assert info.task == "semantic" and info.tiny_kwargs
        assert isinstance(models.create(name, num_classes=2, **info.tiny_kwargs), fcn.FCN)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"num_classes": 0}, ValueError, r"num_classes must be a positive int, got 0"),
    ({"num_classes": 2, "fc_channels": 0}, ValueError, "fc_channels must be a positive int"),
    ({"num_classes": 2, "width": 2.0}, TypeError, r"width must be a positive int, got 2.0"),
    ({"num_classes": 2, "freeze_upsampling": "yes"}, TypeError,
     "freeze_upsampling must be True or False, got 'yes'"),
    ({"num_classes": 2, "weights_backbone": "IMAGENET1K_V1", "width": 8}, ValueError,
     r"need width=64, got width=8"),
    ({"num_classes": 2, "weights_backbone": "IMAGENET1K_V1", "in_channels": 1}, ValueError,
     r"need in_channels=3, got in_channels=1"),
    ({"num_classes": 2, "weights_backbone": "IMAGENET1K_V1", "fc_channels": 64}, ValueError,
     r"need fc_channels=4096, got fc_channels=64"),
    ({"num_classes": 2, "weights_backbone": "IMAGENET"}, ValueError, "unknown weights 'IMAGENET'"),
    ({"num_classes": 2, "weights_backbone": "IMAGENET1K_V1", "batch_norm": True}, ValueError,
     "are for VGG16 without batch norm; got batch_norm=True"),
])
def test_bad_builder_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fcn.fcn8s(**kwargs)


def test_batch_norm_backbone_is_torchvision_vgg16_bn():
    model = fcn.fcn8s(num_classes=2, batch_norm=True, fc_channels=8)
    ours = {k.removeprefix("backbone."): v.shape for k, v in model.state_dict().items()
            if k.startswith("backbone.")}
    reference = torchvision.models.vgg16_bn().features.state_dict()
    assert ours == {k: v.shape for k, v in reference.items()}
    assert model(torch.randn(2, 3, 40, 33)).shape == (2, 2, 40, 33)


def test_bad_output_stride():
    with pytest.raises(ValueError, match=r"output_stride must be one of \(32, 16, 8\), got 4"):
        fcn.fcn(output_stride=4, num_classes=2, width=4, fc_channels=8)


def test_offline_backbone_weights_raise_weights_unavailable(tmp_path, monkeypatch, local_weights, unreachable_url):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = unreachable_url("vgg16-00000000.pth")
    with pytest.raises(vgg.WeightsUnavailableError, match=rf"could not download .* from {url}"):
        fcn.fcn32s(num_classes=2, weights_backbone=local_weights(url, 1000))


def test_builders_are_keyword_only_and_the_old_weights_keyword_warns():
    with pytest.raises(TypeError, match="positional"):
        fcn.fcn(8, num_classes=2)  # type: ignore[misc]
    with pytest.warns(DeprecationWarning, match="'backbone_weights' is now called 'weights_backbone'"):
        with pytest.raises(ValueError, match="unknown weights 'IMAGENET'"):
            fcn.fcn8s(num_classes=2, backbone_weights="IMAGENET")
    with pytest.raises(TypeError, match="got both 'backbone_weights' and its new name"):
        fcn.fcn8s(num_classes=2, backbone_weights=None, weights_backbone=None)


def test_bad_inputs_name_the_variant():
    model = fcn.fcn16s(num_classes=2, width=4, fc_channels=8)
    with pytest.raises(ValueError, match=r"FCN-16s needs height and width >= 32, got 20x64"):
        model(torch.randn(1, 3, 20, 64))
