"""segtutor.models.deeplab (and the dilated ResNet backbones of segtutor.models.resnet).

What only DeepLab has: the released prototxts' VGG16 geometry, parameter counts from the
layer shapes, equality with torchvision's DeepLabV3 (same keys, same outputs, with and without
the auxiliary head, at output strides 8 and 16), the weights paths (a local file, offline),
the batch-of-one pitfall, the atrous-tap count and the options' errors. The shared battery
(test_model_battery.py) runs the registered builders.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F
import torchvision
from network_helpers import bn_params, conv_params, count, randomise_batch_norm
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import DeepLabHead as TVDeepLabHead
from torchvision.models.segmentation.deeplabv3 import DeepLabV3 as TVDeepLabV3
from torchvision.models.segmentation.fcn import FCNHead as TVFCNHead

from segtutor import models
from segtutor.arithmetic import measure_receptive_field, receptive_field
from segtutor.models import deeplab, resnet, vgg

pytestmark = pytest.mark.usefixtures("one_thread")

ODD = (65, 67)
VGG16_CONVS = 14_714_688  # VGG16's 13 convolutions: sum of 9 * c_in * c_out + c_out
RESNET_DILATION = {8: [False, True, True], 16: [False, False, True]}


def torchvision_reference(output_stride: int, aux: bool, num_classes: int = 5,
                          depth: str = "resnet50") -> nn.Module:
    """torchvision's DeepLabV3 at output stride 8 or 16, assembled as its builder does."""
    builder = getattr(torchvision.models, depth)
    backbone = builder(weights=None, replace_stride_with_dilation=RESNET_DILATION[output_stride])
    return_layers = {"layer4": "out", **({"layer3": "aux"} if aux else {})}
    rates = (12, 24, 36) if output_stride == 8 else (6, 12, 18)
    return TVDeepLabV3(IntermediateLayerGetter(backbone, return_layers),
                       TVDeepLabHead(2048, num_classes, rates),
                       TVFCNHead(1024, num_classes) if aux else None)


def shapes(module_or_state) -> dict[str, tuple]:
    state = module_or_state if isinstance(module_or_state, dict) else module_or_state.state_dict()
    return {k: tuple(v.shape) for k, v in state.items()}


# --- v1 / v2: the prototxts' geometry and parameter counts ---------------------------------


def test_vgg16_backbone_follows_the_largefov_prototxt_and_keeps_torchvision_keys():
    features = deeplab.deeplab_vgg16_features()
    pools = [(i, m) for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    assert [i for i, _ in pools] == [4, 9, 16, 23, 30]  # torchvision's indices
    assert [(m.kernel_size, m.stride, m.padding, m.ceil_mode) for _, m in pools] == (
        [(3, 2, 1, True)] * 3 + [(3, 1, 1, True)] * 2)
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    assert [m.dilation for m in convs] == [(1, 1)] * 10 + [(2, 2)] * 3
    assert [m.padding for m in convs] == [(1, 1)] * 10 + [(2, 2)] * 3
    assert isinstance(features[31], nn.AvgPool2d) and len(features) == 32  # pool5a
    assert (features[31].kernel_size, features[31].stride, features[31].padding) == (3, 1, 1)
    reference = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    assert shapes(features) == shapes(reference)
    assert len(deeplab.deeplab_vgg16_features(pool5a=False)) == 31  # ASPP-L has no pool5a


def test_vgg_backbones_have_output_stride_8_with_caffe_rounding():
    model = models.deeplab_v1(width=4, fc_channels=8, num_classes=2).eval()
    with torch.inference_mode():
        assert model.backbone(torch.zeros(1, 3, 321, 321)).shape[-2:] == (41, 41)  # 8k + 1
        # Caffe rounds up: each stride-2 pooling maps n to ceil((n - 1) / 2) + 1.
        assert model.backbone(torch.zeros(1, 3, *ODD)).shape[-2:] == (9, 10)  # 65: 33, 17, 9; 67: 34, 18, 10
        assert model.backbone(torch.zeros(1, 3, 64, 64)).shape[-2:] == (9, 9)  # 64: 33, 17, 9 (floor would give 8)
        assert model(torch.zeros(1, 3, *ODD)).shape == (1, 2, *ODD)
    assert model.output_stride == 8 and model.atrous_rates == (deeplab.LARGEFOV_RATE,) == (12,)


def test_deeplab_v1_parameter_count_from_the_layer_shapes():
    model = models.deeplab_v1()
    fc6, fc7, fc8 = conv_params(512, 1024, 3), conv_params(1024, 1024, 1), conv_params(1024, 21, 1)
    assert (fc6, fc7, fc8) == (4_719_616, 1_049_600, 21_525)
    assert count(model.backbone) == VGG16_CONVS
    assert count(model) == VGG16_CONVS + fc6 + fc7 + fc8 == 20_505_429
    head = model.head
    assert (head.fc6.kernel_size, head.fc6.dilation, head.fc6.padding) == ((3, 3), (12, 12), (12, 12))


def test_deeplab_v2_vgg_parameter_count_and_four_summed_branches():
    model = models.deeplab_v2(width=8, fc_channels=16, num_classes=3).eval()
    assert model.atrous_rates == deeplab.V2_RATES == (6, 12, 18, 24)
    assert [branch.fc6.dilation[0] for branch in model.head] == [6, 12, 18, 24]
    x = torch.randn(2, 3, *ODD)
    with torch.inference_mode():
        features = model.backbone(x)
        summed = sum(branch(features) for branch in model.head)
        expected = F.interpolate(summed, size=ODD, mode="bilinear", align_corners=False)
        torch.testing.assert_close(model(x), expected)
    full = models.deeplab_v2()
    branch = conv_params(512, 1024, 3) + conv_params(1024, 1024, 1) + conv_params(1024, 21, 1)
    assert count(full) == VGG16_CONVS + 4 * branch == 37_877_652


def test_deeplab_v2_resnet_backbone_is_four_3x3_classifiers_on_layer4():
    model = models.deeplab_v2(backbone="resnet18", num_classes=4).eval()
    assert [(c.kernel_size, c.dilation, c.out_channels) for c in model.head] == [
        ((3, 3), (r, r), 4) for r in (6, 12, 18, 24)]
    assert model.backbone.output_stride == 8
    with torch.inference_mode():
        assert model(torch.randn(1, 3, *ODD)).shape == (1, 4, *ODD)


@pytest.mark.slow
def test_deeplab_v2_resnet101_parameter_count():
    model = models.deeplab_v2(backbone="resnet101")
    resnet101 = torchvision.models.resnet101()
    without_fc = count(resnet101) - count(resnet101.fc)
    assert count(model) == without_fc + 4 * conv_params(2048, 21, 3) == 44_048_532


def test_receptive_field_of_the_vgg_backbone_is_computed_and_measured():
    model = models.deeplab_v1(width=4, fc_channels=8)
    computed = receptive_field(model.backbone).overall
    assert computed.stride == (8, 8)
    measured = measure_receptive_field(model.backbone, 289)
    assert measured.size == computed.size == (243, 243)
    centre = 37 // 2  # the measured unit, the centre of the 37x37 output (289 -> 145 -> 73 -> 37)
    assert measured.rows == measured.cols == computed.region(centre, centre)[0]
    # The whole model: fc6, 3x3 at rate 12 on the stride-8 map, adds 2 * 12 * 8 pixels.
    assert receptive_field(model).overall.size == (243 + 2 * 12 * 8,) * 2 == (435, 435)
    # v2's field is that of its widest branch (rate 24); summing adds nothing outside it.
    v2 = models.deeplab_v2(width=4, fc_channels=8)
    assert receptive_field(v2).overall.size == (243 - 2 * 8 + 2 * 24 * 8,) * 2  # no pool5a
    tiny = nn.Sequential(v2.backbone, v2.head)
    assert measure_receptive_field(tiny, 641).size == receptive_field(v2).overall.size


def test_imagenet_vgg16_weights_land_in_the_backbone(monkeypatch):
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state.update({"classifier.0.weight": torch.randn(2, 512 * 49), "classifier.0.bias": torch.randn(2),
                  "classifier.3.weight": torch.randn(2, 2), "classifier.3.bias": torch.randn(2)})
    asked = []
    monkeypatch.setattr(deeplab, "load_weights", lambda w, progress: asked.append(w) or state)
    model = models.deeplab_v1(weights_backbone="IMAGENET1K_V1")
    assert asked == [torchvision.models.VGG16_Weights.IMAGENET1K_V1]
    for key, value in features.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value)
    v2 = models.deeplab_v2(weights_backbone=torchvision.models.VGG16_Weights.IMAGENET1K_V1)
    assert torch.equal(v2.backbone[28].weight, features[28].weight)


def test_offline_vgg_weights_raise_weights_unavailable(tmp_path, monkeypatch, local_weights,
                                                       unreachable_url):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = unreachable_url("vgg16-00000000.pth")
    with pytest.raises(models.WeightsUnavailableError, match=rf"could not download .* from {url}"):
        models.deeplab_v1(weights_backbone=local_weights(url, 1000))


# --- v3: torchvision's DeepLabV3, key for key and output for output ------------------------


@pytest.mark.parametrize("aux", [False, True])
def test_state_dict_keys_and_shapes_are_torchvisions(aux):
    reference = torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, aux_loss=aux)
    ours = models.deeplabv3_resnet50(aux_loss=aux)
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert shapes(ours) == shapes(reference)
    assert count(ours) == count(reference) == (42_004_074 if aux else 39_638_869)
    if aux:
        meta = torchvision.models.segmentation.DeepLabV3_ResNet50_Weights.DEFAULT.meta
        assert count(ours) == meta["num_params"]


@pytest.mark.slow
def test_resnet101_keys_shapes_and_count_are_torchvisions():
    reference = torchvision.models.segmentation.deeplabv3_resnet101(
        weights=None, weights_backbone=None, aux_loss=True)
    ours = models.deeplabv3_resnet101(aux_loss=True)
    assert shapes(ours) == shapes(reference)
    meta = torchvision.models.segmentation.DeepLabV3_ResNet101_Weights.DEFAULT.meta
    assert count(ours) == count(reference) == meta["num_params"] == 60_996_202
    assert count(models.deeplabv3_resnet101()) == 58_630_997


@pytest.mark.parametrize("output_stride", [8, 16])
def test_outputs_equal_torchvisions_with_and_without_aux(output_stride):
    torch.manual_seed(output_stride)
    reference = torchvision_reference(output_stride, aux=True)
    randomise_batch_norm(reference)
    reference.eval()
    ours = models.deeplabv3_resnet50(num_classes=5, aux_loss=True, output_stride=output_stride)
    ours.load_state_dict(reference.state_dict())
    ours.eval()
    plain = models.deeplabv3_resnet50(num_classes=5, output_stride=output_stride)
    plain.load_state_dict({k: v for k, v in reference.state_dict().items()
                           if not k.startswith("aux_classifier.")})
    plain.eval()
    assert ours.atrous_rates == plain.atrous_rates == deeplab.aspp_rates(output_stride)
    for size in (ODD, (33, 50)):
        x = torch.randn(2, 3, *size)
        with torch.inference_mode():
            expected = reference(x)
            out, aux = ours.forward_with_aux(x)
            torch.testing.assert_close(out, expected["out"], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(aux, expected["aux"], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ours(x), expected["out"], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(plain(x), expected["out"], rtol=1e-5, atol=1e-5)
        assert out.shape == aux.shape == (2, 5, *size)


def test_the_hand_built_reference_is_torchvisions_builder_at_output_stride_8():
    torch.manual_seed(0)
    builder = torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, aux_loss=True, num_classes=5)
    by_hand = torchvision_reference(8, aux=True)
    assert shapes(builder) == shapes(by_hand)
    by_hand.load_state_dict(builder.state_dict())
    x = torch.randn(1, 3, *ODD)
    with torch.inference_mode():
        torch.testing.assert_close(by_hand.eval()(x)["out"], builder.eval()(x)["out"])


def test_forward_with_aux_needs_the_aux_head():
    model = models.deeplabv3_resnet50(backbone="resnet18").eval()
    with pytest.raises(RuntimeError, match="built without an auxiliary head; build it with aux_loss=True"):
        model.forward_with_aux(torch.randn(1, 3, 32, 32))
    assert model.aux_classifier is None and "aux" not in model.backbone.return_layers.values()


def test_aux_head_trains_with_the_main_head():
    torch.manual_seed(0)
    model = models.deeplabv3_resnet50(backbone="resnet18", aux_loss=True, num_classes=3).train()
    x, target = torch.randn(2, 3, 40, 44), torch.randint(0, 3, (2, 40, 44))
    out, aux = model.forward_with_aux(x)
    (F.cross_entropy(out, target) + 0.5 * F.cross_entropy(aux, target)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


# --- output strides and the dilated ResNets -------------------------------------------------


@pytest.mark.parametrize(("output_stride", "size"), [(8, (9, 9)), (16, (5, 5)), (32, (3, 3))])
def test_layer4_size_at_each_output_stride(output_stride, size):
    x = torch.randn(1, 3, *ODD)
    ours = resnet.resnet_backbone("resnet50", output_stride=output_stride)
    reference = IntermediateLayerGetter(torchvision.models.resnet50(
        replace_stride_with_dilation=resnet.dilation_for(output_stride)), {"layer4": "out"})
    assert shapes(ours) == shapes(reference)
    small = resnet.resnet_backbone("resnet18", output_stride=output_stride)
    with torch.inference_mode():
        assert ours(x)["out"].shape[-2:] == size
        assert small(x)["out"].shape == (1, 512, *size)
    assert ours.output_stride == output_stride
    assert receptive_field(small).overall.stride == (output_stride, output_stride)


def test_basic_blocks_follow_torchvisions_dilation_rule():
    backbone = resnet.resnet_backbone("resnet18", output_stride=8)
    bottleneck = resnet.resnet_backbone("resnet50", output_stride=8)
    for layer, (first, rest) in {"layer3": (1, 2), "layer4": (2, 4)}.items():
        blocks = getattr(backbone, layer)
        reference = getattr(bottleneck, layer)
        assert reference[0].conv2.dilation == (first, first) and reference[1].conv2.dilation == (rest, rest)
        assert blocks[0].conv1.dilation == blocks[0].conv2.dilation == (first, first)
        assert blocks[1].conv1.dilation == blocks[1].conv2.dilation == (rest, rest)
        assert blocks[0].conv1.stride == blocks[0].downsample[0].stride == (1, 1)
    assert shapes(backbone) == shapes(IntermediateLayerGetter(
        torchvision.models.resnet18(), {"layer4": "out"}))


def test_resnet_backbone_channels_and_in_channels():
    backbone = resnet.resnet_backbone("resnet50", in_channels=1,
                                      return_layers={"layer1": "low", "layer4": "out"})
    assert backbone.channels == {"low": 256, "out": 2048}
    assert backbone.conv1.weight.shape == (64, 1, 7, 7)
    assert resnet.layer_channels("resnet34") == {"layer1": 64, "layer2": 128, "layer3": 256,
                                                 "layer4": 512}


def test_resnet_weights_load_from_a_local_file_and_fail_offline(tmp_path, monkeypatch, local_weights,
                                                                 unreachable_url):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    source = torchvision.models.resnet18()
    saved = tmp_path / "resnet.pth"
    torch.save(source.state_dict(), saved)
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    named = saved.rename(tmp_path / f"resnet18-{digest[:8]}.pth")
    backbone = resnet.resnet_backbone("resnet18", weights_backbone=local_weights(named.as_uri(), 1000))
    assert torch.equal(backbone.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    url = unreachable_url("resnet18-00000000.pth")
    with pytest.raises(models.WeightsUnavailableError, match=rf"from {url}"):
        models.deeplabv3plus_resnet50(backbone="resnet18", weights_backbone=local_weights(url, 1000))
    with pytest.raises(ValueError, match=r"need in_channels=3, got in_channels=1"):
        resnet.resnet_backbone("resnet18", in_channels=1, weights_backbone="IMAGENET1K_V1")


# --- the v3 weights path ----------------------------------------------------------------------


@pytest.mark.slow
def test_pretrained_weights_load_from_a_local_file(tmp_path, monkeypatch, local_weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    torch.manual_seed(0)
    source = torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, aux_loss=True, num_classes=7)
    saved = tmp_path / "deeplab.pth"
    torch.save(source.state_dict(), saved)
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    named = saved.rename(tmp_path / f"deeplabv3-{digest[:8]}.pth")
    model = models.deeplabv3_resnet50(weights=local_weights(named.as_uri(), 7), num_classes=7)
    assert model.aux_classifier is not None  # the weights include it
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_offline_weights_raise_weights_unavailable(tmp_path, monkeypatch, local_weights, unreachable_url):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = unreachable_url("deeplabv3-00000000.pth")
    with pytest.raises(models.WeightsUnavailableError, match=rf"could not download .* from {url}"):
        models.deeplabv3_resnet50(weights=local_weights(url, 21))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"num_classes": 5}, r"need num_classes=21, got num_classes=5"),
    ({"in_channels": 1}, r"need in_channels=3, got in_channels=1"),
    ({"aux_loss": False}, r"include the auxiliary head; pass aux_loss=True or None"),
    ({"backbone": "resnet18"}, r"need backbone='resnet50', got backbone='resnet18'"),
    ({"weights_backbone": "IMAGENET1K_V1"}, r"give weights or weights_backbone, not both"),
])
def test_pretrained_weights_refuse_settings_they_do_not_fit(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.deeplabv3_resnet50(weights="COCO_WITH_VOC_LABELS_V1", **kwargs)


def test_weights_accept_strings_and_enums_and_refuse_unknown_names():
    enum = torchvision.models.segmentation.DeepLabV3_ResNet101_Weights
    with pytest.raises(ValueError, match=r"need num_classes=21, got num_classes=2"):
        models.deeplabv3_resnet101(weights=enum.COCO_WITH_VOC_LABELS_V1, num_classes=2)
    with pytest.raises(ValueError, match=r"need num_classes=21, got num_classes=2"):
        models.deeplabv3_resnet101(weights="DEFAULT", num_classes=2)
    with pytest.raises(ValueError, match=r"unknown weights 'VOC'; valid: \['COCO_WITH_VOC_LABELS_V1'"):
        models.deeplabv3_resnet50(weights="VOC")


# --- v3+ ---------------------------------------------------------------------------------------


def test_deeplabv3plus_structure_and_parameter_count():
    model = models.deeplabv3plus_resnet50()
    assert model.output_stride == 16 and model.atrous_rates == (6, 12, 18)
    assert model.aspp.project[3].p == 0.1
    resnet50 = torchvision.models.resnet50()
    aspp = (conv_params(2048, 256, 1, False) + 3 * conv_params(2048, 256, 3, False)
            + conv_params(2048, 256, 1, False) + conv_params(5 * 256, 256, 1, False)
            + 6 * bn_params(256))
    decoder = (conv_params(256, 48, 1, False) + bn_params(48)
               + conv_params(256 + 48, 256, 3, False) + conv_params(256, 256, 3, False)
               + 2 * bn_params(256) + conv_params(256, 21, 1))
    assert count(model.aspp) == aspp and count(model.decoder) == decoder
    assert count(model) == count(resnet50) - count(resnet50.fc) + aspp + decoder == 40_352_181
    assert models.deeplabv3plus_resnet50(output_stride=8, backbone="resnet18").atrous_rates == (12, 24, 36)


def test_deeplabv3plus_decoder_works_at_stride_4():
    torch.manual_seed(0)
    model = models.deeplabv3plus_resnet50(backbone="resnet18", num_classes=3).eval()
    x = torch.randn(2, 3, *ODD)
    with torch.inference_mode():
        features = model.backbone(x)
        assert features["low"].shape[-2:] == (17, 17) and features["out"].shape[-2:] == (5, 5)
        scores = model.decoder(features["low"], model.aspp(features["out"]))
        assert scores.shape == (2, 3, 17, 17)
        torch.testing.assert_close(model(x), F.interpolate(scores, size=ODD, mode="bilinear",
                                                           align_corners=False))


def test_deeplabv3plus_against_segmentation_models_pytorch():
    smp = pytest.importorskip("segmentation_models_pytorch")
    theirs = smp.DeepLabV3Plus(encoder_name="resnet50", encoder_weights=None, classes=21,
                               decoder_aspp_separable=False)
    ours = models.deeplabv3plus_resnet50()
    # The same torchvision ResNet-50 encoder, the same (regular) ASPP, the same 48-channel reduction.
    assert shapes(ours.backbone) == shapes(theirs.encoder)
    assert shapes(ours.aspp) == shapes(theirs.decoder.aspp[0])
    assert shapes(ours.decoder.reduce) == shapes(theirs.decoder.block1)
    # Differences (see the builder's docstring): smp refines with one separable 3x3 after a
    # separable 3x3 behind the ASPP; we use two regular 3x3 convolutions.
    separable = [m for m in theirs.decoder.block2.modules() if isinstance(m, nn.Conv2d)]
    assert [m.groups for m in separable] == [256 + 48, 1]
    assert isinstance(theirs.decoder.aspp[1], smp.decoders.deeplabv3.decoder.SeparableConv2d)
    assert [m.kernel_size for m in ours.decoder.fuse if isinstance(m, nn.Conv2d)] == [(3, 3)] * 2
    # ... smp dilates the first block of layer4 too, torchvision and we keep its dilation.
    assert theirs.encoder.layer4[0].conv2.dilation == (2, 2)
    assert ours.backbone.layer4[0].conv2.dilation == (1, 1)
    assert ours.backbone.layer4[1].conv2.dilation == (2, 2)
    with torch.inference_mode():  # the encoders agree up to layer3 with smp's weights
        ours.backbone.load_state_dict(theirs.encoder.state_dict())
        x = torch.randn(1, 3, 64, 64)
        torch.testing.assert_close(ours.backbone.eval()(x)["low"], theirs.encoder.eval()(x)[2])


# --- pitfalls: batch of one, degenerate atrous filters, rates ----------------------------------


@pytest.mark.parametrize("name", ["deeplabv3_resnet50", "deeplabv3plus_resnet50"])
def test_training_on_one_image_raises_a_clear_error(name):
    model = models.create(name, backbone="resnet18", num_classes=2).train()
    x = torch.randn(1, 3, 40, 40)
    with pytest.raises(ValueError, match=r"batch of 1 image.*batch size >= 2.*eval mode"):
        model(x)
    model(torch.randn(2, 3, 40, 40))  # a batch of two trains
    with torch.inference_mode():
        assert model.eval()(x).shape == (1, 2, 40, 40)
    model.train()
    for module in model.modules():  # frozen batch norm, as when fine-tuning
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    assert model(x).shape == (1, 2, 40, 40)


def test_the_pooling_branch_refuses_one_image_on_its_own():
    pooling = deeplab.ASPPPooling(8, 4).train()
    with pytest.raises(ValueError, match="image-pooling branch cannot train on a batch of 1"):
        pooling(torch.randn(1, 8, 5, 5))
    assert pooling(torch.randn(2, 8, 5, 7)).shape == (2, 4, 5, 7)


def counted_taps(rate: int, height: int, width: int) -> torch.Tensor:
    """Per position, the taps on the map: a dilated 3x3 all-ones filter over an all-ones map."""
    ones = torch.ones(1, 1, height, width, dtype=torch.float64)
    kernel = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    return F.conv2d(ones, kernel, padding=rate, dilation=rate)[0, 0]


@pytest.mark.parametrize(("rate", "size"), [
    (1, (5, 5)), (2, (5, 6)), (6, (9, 9)), (12, (9, 9)), (24, (33, 33)), (36, (33, 65)),
    (5, (10, 11)), (64, (65, 65)), (4, (1, 7))])
def test_effective_taps_match_a_direct_count_and_the_gradient(rate, size):
    taps = deeplab.effective_taps(rate, size)
    counts = counted_taps(rate, *size)
    centre = ((size[0] - 1) // 2, (size[1] - 1) // 2)
    assert taps.taps == 9
    assert taps.centre == int(counts[centre])
    assert taps.mean == pytest.approx(float(counts.mean()), rel=1e-12)
    # The same count from a gradient: the centre output depends on exactly those taps.
    conv = nn.Conv2d(1, 1, 3, padding=rate, dilation=rate, bias=False).double()
    x = torch.randn(1, 1, *size, dtype=torch.float64, requires_grad=True)
    conv(x)[0, 0][centre].backward()
    assert int((x.grad != 0).sum()) == taps.centre


def test_large_rates_leave_only_the_centre_tap():
    # v3 paper, Fig. 4: a 65x65 map; at rate >= 33 the centre filter is a 1x1 convolution.
    assert deeplab.effective_taps(32, 65).centre == 9
    assert deeplab.effective_taps(33, 65).centre == 1
    assert deeplab.effective_taps(1, 65).mean == pytest.approx((1 + 2 * 64 / 65) ** 2)
    # Output stride 8 on a 65x67 input: layer4 is 9x9, and every v3 rate (12, 24, 36) exceeds it.
    assert all(deeplab.effective_taps(r, 9) == (1, 1.0, 9) for r in deeplab.aspp_rates(8))
    assert deeplab.effective_taps(2, (3, 4), kernel_size=5).taps == 25


def test_aspp_rates_and_the_models_rates():
    assert deeplab.aspp_rates(16) == (6, 12, 18) and deeplab.aspp_rates(8) == (12, 24, 36)
    model = models.deeplabv3_resnet50(backbone="resnet18", output_stride=16)
    assert model.atrous_rates == (6, 12, 18) == model.classifier[0].atrous_rates
    assert [b.rate for b in model.classifier[0].convs[1:4]] == [6, 12, 18]
    assert models.deeplabv3_resnet50(backbone="resnet18").atrous_rates == (12, 24, 36)
    with pytest.raises(ValueError, match=r"output_stride must be one of \(8, 16\), got 32"):
        deeplab.aspp_rates(32)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"rate": 0, "feature_size": 5}, ValueError, "rate must be a positive int, got 0"),
    ({"rate": 2.0, "feature_size": 5}, TypeError, "rate must be a positive int"),
    ({"rate": 2, "feature_size": (5, 0)}, ValueError, "feature_size must be a positive int or a pair"),
    ({"rate": 2, "feature_size": 5, "kernel_size": 4}, ValueError, "kernel_size must be an odd"),
])
def test_effective_taps_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        deeplab.effective_taps(**kwargs)


# --- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(("builder", "kwargs", "error", "match"), [
    ("deeplabv3_resnet50", {"output_stride": 32}, ValueError, r"output_stride must be one of \(8, 16\), got 32"),
    ("deeplabv3_resnet50", {"output_stride": 8.0}, ValueError, r"output_stride must be one of \(8, 16\)"),
    ("deeplabv3plus_resnet50", {"output_stride": 4}, ValueError, r"output_stride must be one of \(8, 16\)"),
    ("deeplabv3_resnet101", {"backbone": "resnet19"}, ValueError, r"backbone must be one of \('resnet18'"),
    ("deeplabv3plus_resnet50", {"backbone": "vgg16"}, ValueError, r"backbone must be one of"),
    ("deeplab_v2", {"backbone": "vgg19"}, ValueError, r"backbone must be one of \('vgg16', 'resnet18'"),
    ("deeplab_v2", {"backbone": "resnet18", "width": 8}, ValueError, r"width=8 apply to backbone='vgg16' only"),
    ("deeplabv3_resnet50", {"num_classes": 0}, ValueError, "num_classes must be a positive int, got 0"),
    ("deeplabv3_resnet50", {"aux_loss": 1}, TypeError, "aux_loss must be True, False or None"),
    ("deeplabv3_resnet50", {"in_channels": 0, "backbone": "resnet18"}, ValueError, "in_channels must be a positive int"),
    ("deeplab_v1", {"fc_channels": 0}, ValueError, "fc_channels must be a positive int, got 0"),
    ("deeplab_v1", {"dropout": 1.5}, ValueError, "dropout must be a finite number >= 0 and <= 1"),
    ("deeplab_v1", {"width": 8, "weights_backbone": "IMAGENET1K_V1"}, ValueError, "need width=64, got width=8"),
    ("deeplab_v1", {"weights_backbone": "IMAGENET"}, ValueError, "unknown weights 'IMAGENET'"),
    ("deeplabv3_resnet50", {"weights_backbone": 3}, TypeError, "weights must be None, a string"),
])
def test_bad_builder_arguments(builder, kwargs, error, match):
    with pytest.raises(error, match=match):
        models.create(builder, **kwargs)


def test_resnet_backbone_bad_arguments():
    with pytest.raises(ValueError, match=r"output_stride must be one of \(8, 16, 32\), got 4"):
        resnet.resnet_backbone("resnet18", output_stride=4)
    with pytest.raises(ValueError, match=r"return_layers key must be one of \('layer1'"):
        resnet.resnet_backbone("resnet18", return_layers={"fc": "out"})
    with pytest.raises(ValueError, match=r"backbone must be one of"):
        resnet.layer_channels("resnet200")


def test_registered_semantic_builders_with_tiny_kwargs():
    names = {"deeplab_v1", "deeplab_v2", "deeplabv3_resnet50", "deeplabv3_resnet101",
             "deeplabv3plus_resnet50"}
    assert names <= set(models.list_models(task="semantic"))
    for name in names:
        info = models.model_info(name)
        assert info.tiny_kwargs, name
        assert getattr(models, name) is info.builder
    assert vgg.FULL_WIDTH == 64  # the VGG builders' defaults stay the paper's


# --- output stride and batch norm of the VGG variants, ASPP without image pooling ----------


@pytest.mark.parametrize("output_stride, pools, rate", [(8, (2, 2, 2, 1, 1), 12),
                                                         (16, (2, 2, 2, 2, 1), 6),
                                                         (32, (2, 2, 2, 2, 2), 3)])
def test_v1_output_stride_keeps_the_field_of_view(output_stride, pools, rate):
    net = deeplab.deeplab_v1(num_classes=3, width=4, fc_channels=8, output_stride=output_stride)
    strides = [m.stride for m in net.backbone if isinstance(m, nn.MaxPool2d)]
    assert tuple(strides) == pools and net.atrous_rates == (rate,)
    assert net.output_stride == output_stride and deeplab.largefov_rate(output_stride) == rate
    x = torch.randn(1, 3, 65, 65)
    # Caffe-style 3x3 poolings rounding up: 65 -> 33 -> 17 -> 9, then 5 and 3
    assert net.backbone(x).shape[-1] == {8: 9, 16: 5, 32: 3}[output_stride]
    dilated = [m.dilation for m in net.backbone if isinstance(m, nn.Conv2d)][-3:]
    assert dilated == ([(2, 2)] * 3 if output_stride == 8 else [(1, 1)] * 3)
    # the same weights: a field of view in pixels that does not change (rate x stride)
    assert net.atrous_rates[0] * output_stride == 96


def test_batch_norm_backbone_has_vgg16_bn_keys_and_refuses_pretrained():
    features = deeplab.deeplab_vgg16_features(batch_norm=True, pool5a=False)
    ours = {k: v.shape for k, v in features.state_dict().items()}
    assert ours == {k: v.shape for k, v in torchvision.models.vgg16_bn().features.state_dict().items()}
    with pytest.raises(ValueError, match="without batch norm; got batch_norm=True"):
        deeplab.deeplab_v1(weights_backbone="IMAGENET1K_V1", batch_norm=True)
    with pytest.raises(ValueError, match=r"output_stride must be one of \(8, 16, 32\), got 4"):
        deeplab.deeplab_v1(output_stride=4)
    with pytest.raises(ValueError, match="batch_norm=True apply to backbone='vgg16' only"):
        deeplab.deeplab_v2(backbone="resnet18", batch_norm=True)


def test_aspp_without_image_pooling_has_four_branches():
    with_pooling = deeplab.ASPP(16, (1, 2, 3), 8)
    without = deeplab.ASPP(16, (1, 2, 3), 8, image_pooling=False)
    assert len(with_pooling.convs) == 5 and len(without.convs) == 4
    assert isinstance(with_pooling.pooling, deeplab.ASPPPooling) and without.pooling is None
    assert without.project[0].in_channels == 4 * 8
    assert without.train()(torch.randn(1, 16, 5, 5)).shape == (1, 8, 5, 5)  # batch of 1 is fine
    head = deeplab.DeepLabHead(16, 3, (1, 2), channels=8, image_pooling=False)
    assert head(torch.randn(2, 16, 6, 7)).shape == (2, 3, 6, 7)
    with pytest.raises(TypeError, match="image_pooling must be True or False"):
        deeplab.ASPP(16, (1,), 8, image_pooling=1)
