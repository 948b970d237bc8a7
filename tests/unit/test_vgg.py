"""segtutor.models.vgg against torchvision's VGG16 (keys, outputs, weights API, parameter count)."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from segtutor import models
from segtutor.models import vgg

# Indices of the five max poolings in torchvision's vgg16().features.
TORCHVISION_POOLS = (4, 9, 16, 23, 30)


@pytest.fixture(scope="module")
def pair() -> tuple[vgg.VGG, nn.Module]:
    """Ours and torchvision's VGG16, both in eval mode, ours loaded with torchvision's weights."""
    torch.manual_seed(0)
    reference = torchvision.models.vgg16().eval()
    ours = vgg.vgg16().eval()
    ours.load_state_dict(reference.state_dict())
    return ours, reference


@pytest.fixture(scope="module")
def fully_conv(pair) -> nn.Sequential:
    """``convolutionalize`` of ours, in eval mode."""
    return vgg.convolutionalize(pair[0]).eval()


def test_state_dict_keys_and_shapes_match_torchvision(pair):
    ours, reference = pair
    ours_shapes = {k: v.shape for k, v in ours.state_dict().items()}
    reference_shapes = {k: v.shape for k, v in reference.state_dict().items()}
    assert list(ours_shapes) == list(reference_shapes)
    assert ours_shapes == reference_shapes


def test_outputs_match_torchvision_with_its_weights(pair):
    ours, reference = pair
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


def test_parameter_count_is_138_357_544_like_torchvision(pair):
    ours, reference = pair
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in reference.parameters())
    # Layer by layer from the paper's configuration: 3x3 convolutions, then 3 fully connected.
    channels = [3] + [c for c in vgg.VGG16_CONFIG if c != "M"]
    convs = sum(9 * cin * cout + cout for cin, cout in zip(channels, channels[1:], strict=False))
    fcs = (512 * 7 * 7 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert count == convs + fcs == 138_357_544


def test_sixteen_weight_layers():
    model = vgg.vgg16(width=8, hidden=16)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert (len(convs), len(linears)) == (13, 3)


def test_convolutionalized_equals_classifier_on_224(pair, fully_conv):
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        scores = fully_conv(x)
        expected = pair[1](x)
    assert scores.shape == (2, 1000, 1, 1)
    # Same products, summed in a different order (conv vs matmul over 25,088 inputs):
    # float32 agrees to ~1e-6 on scores of size ~1e-2.
    torch.testing.assert_close(scores.flatten(1), expected, rtol=1e-4, atol=1e-5)


def test_convolutional_head_is_exact_in_double_precision(pair, fully_conv):
    head = copy.deepcopy(nn.Sequential(*list(fully_conv.children())[1:])).double()
    classifier = copy.deepcopy(pair[1].classifier).double().eval()
    pool5 = torch.randn(2, 512, 7, 7, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(head(pool5).flatten(1), classifier(pool5.flatten(1)),
                                   rtol=1e-12, atol=1e-12)


def test_convolutionalized_slides_the_classifier_over_pool5_with_stride_32(pair, fully_conv):
    reference = pair[1]
    x = torch.randn(1, 3, 256, 288, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        heat = fully_conv(x)
        assert heat.shape == (1, 1000, 256 // 32 - 6, 288 // 32 - 6)
        pool5 = reference.features(x)
        windows = [pool5[:, :, i:i + 7, j:j + 7].flatten(1)
                   for i in range(heat.shape[2]) for j in range(heat.shape[3])]
        expected = reference.classifier(torch.cat(windows))
    torch.testing.assert_close(heat[0].flatten(1).T, expected, rtol=1e-4, atol=1e-5)


def test_convolutionalize_does_not_share_the_model_s_weights(pair, fully_conv):
    assert fully_conv.features[0].weight.data_ptr() != pair[0].features[0].weight.data_ptr()
    assert fully_conv.fc6.weight.data_ptr() != pair[0].classifier[0].weight.data_ptr()
    assert [name for name, _ in fully_conv.named_children()] == [
        "features", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]
    assert fully_conv.fc6.weight.shape == (4096, 512, 7, 7)


def test_convolutionalize_rejects_other_models():
    with pytest.raises(TypeError, match="expects a segtutor VGG, got Conv2d"):
        vgg.convolutionalize(nn.Conv2d(3, 3, 1))


def test_pool_stages_match_torchvision_feature_extraction(pair):
    ours, reference = pair
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(4))
    nodes = {f"features.{i}": f"pool{n}" for n, i in enumerate(TORCHVISION_POOLS, 1)}
    nodes.update({f"features.{i - 1}": f"relu{n}" for n, i in enumerate(TORCHVISION_POOLS, 1)})
    expected = create_feature_extractor(reference, return_nodes=nodes)(x)
    with torch.no_grad():
        stages = vgg.pool_stages(ours.features, x, return_indices=True)
    assert len(stages) == 5
    unpool = nn.MaxUnpool2d(2, 2)
    for n, (pooled, indices) in enumerate(stages, 1):
        torch.testing.assert_close(pooled, expected[f"pool{n}"])
        _, reference_indices = nn.MaxPool2d(2, 2, return_indices=True)(expected[f"relu{n}"])
        # Ties (e.g. several zeros after ReLU) may pick different positions; what matters
        # is that unpooling puts the maxima back where torchvision's indices put them.
        torch.testing.assert_close(unpool(pooled, indices), unpool(pooled, reference_indices))
    plain = vgg.pool_stages(ours.features, x)
    assert all(torch.equal(a, b) for a, (b, _) in zip(plain, stages, strict=True))


def test_width_scales_every_stage():
    features = vgg.make_features(width=8, in_channels=1)
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 1
    assert [c.out_channels for c in convs] == [c // 8 for c in vgg.VGG16_CONFIG if c != "M"]


def test_batch_norm_features_match_torchvision_vgg16_bn_keys():
    ours = vgg.make_features(batch_norm=True).state_dict()
    reference = torchvision.models.vgg16_bn().features.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}


def test_registered_as_classification_model():
    assert models.model_info("vgg16").task == "classification"
    assert "vgg16" not in models.list_models(task="semantic")
    model = models.create("vgg16", num_classes=5, **models.model_info("vgg16").tiny_kwargs)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"width": 0}, ValueError, r"width must be a positive int, got 0"),
    ({"width": 8.0}, TypeError, r"width must be a positive int, got 8.0 \(float\)"),
    ({"num_classes": 0}, ValueError, "num_classes must be a positive int"),
    ({"in_channels": True}, TypeError, "in_channels must be a positive int, got True"),
    ({"hidden": -1}, ValueError, "hidden must be a positive int"),
])
def test_bad_builder_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        vgg.vgg16(**kwargs)


def test_width_too_small_for_a_config_entry():
    with pytest.raises(ValueError, match="width=8 scales the config entry 4 to 0 channels"):
        vgg.make_features((4, "M"), width=8)


def test_pretrained_weights_must_fit_the_settings():
    with pytest.raises(ValueError, match=r"need num_classes=1000, got num_classes=21"):
        vgg.vgg16(weights="IMAGENET1K_V1", num_classes=21)
    with pytest.raises(ValueError, match=r"need width=64, got width=8"):
        vgg.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1, width=8)


def test_unknown_weights():
    with pytest.raises(ValueError, match=r"unknown weights 'IMAGENET9'; valid: \['IMAGENET1K_V1'"):
        vgg.vgg16(weights="IMAGENET9")
    with pytest.raises(TypeError, match="weights must be None, a string"):
        vgg.vgg16(weights=1)


def test_resolve_weights_uses_torchvision_enum():
    assert vgg.resolve_weights("IMAGENET1K_V1") is torchvision.models.VGG16_Weights.IMAGENET1K_V1
    assert vgg.resolve_weights("DEFAULT") is torchvision.models.VGG16_Weights.IMAGENET1K_V1
    assert vgg.resolve_weights(None) is None


def test_load_weights_reads_through_torchvision_api_from_a_file_url(tmp_path, monkeypatch, local_weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    source = vgg.vgg16(num_classes=7, width=8, hidden=16)
    saved = tmp_path / "tiny.pth"
    torch.save(source.state_dict(), saved)
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    named = saved.rename(tmp_path / f"tinyvgg-{digest[:8]}.pth")  # torchvision's hash check
    state = vgg.load_weights(local_weights(named.as_uri()), progress=False)
    assert (tmp_path / "torch_home" / "hub" / "checkpoints" / named.name).exists()
    loaded = vgg.vgg16(num_classes=7, width=8, hidden=16)
    loaded.load_state_dict(state)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_offline_download_raises_weights_unavailable(tmp_path, monkeypatch, local_weights, unreachable_url):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    url = unreachable_url("vgg16-00000000.pth")
    with pytest.raises(vgg.WeightsUnavailableError, match=rf"could not download .* from {url}"):
        vgg.vgg16(weights=local_weights(url), num_classes=7)
    assert not Path(tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg16-00000000.pth").exists()
