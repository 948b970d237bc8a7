"""segtutor.models.pspnet: the pyramid pooling module, adaptive pooling windows, PSPNet.

What only PSPNet has: the pyramid against a direct re-implementation with the functional
operators, the adaptive pooling windows against ``F.adaptive_avg_pool2d``, the fixed pooling
an export needs, the batch-of-one pitfall of the 1x1 bin, and the options' errors. The shared
battery (test_model_battery.py) runs the registered builders.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from network_helpers import (
    bn_params,
    conv_params,
    count,
    randomise_batch_norm,
)
from torch import nn

from segtutor import models
from segtutor.arithmetic import measure_receptive_field, receptive_field
from segtutor.models import pspnet, resnet
from segtutor.models.deeplab import AuxHead
from segtutor.models.pspnet import (
    PyramidPooling,
    PyramidStage,
    adaptive_pool_windows,
    fixed_pooling_for,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def pyramid_by_hand(ppm: PyramidPooling, x: torch.Tensor, training: bool) -> torch.Tensor:
    """The pyramid from the functional operators and the module's parameters."""
    outs = [x]
    pool = F.adaptive_avg_pool2d if ppm.pooling == "avg" else F.adaptive_max_pool2d
    for stage in ppm.stages:
        conv, bn = stage[1], stage[2]
        y = F.conv2d(pool(x, stage.bins), conv.weight)
        y = F.batch_norm(y, None if training else bn.running_mean,
                         None if training else bn.running_var, bn.weight, bn.bias,
                         training=training, eps=bn.eps)
        y = F.interpolate(F.relu(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
        outs.append(y)
    return torch.cat(outs, dim=1)


def tiny(**kwargs) -> pspnet.PSPNet:
    return models.pspnet_resnet50(**{"backbone": "resnet18", "num_classes": 3, **kwargs})


# --- the pyramid pooling module --------------------------------------------------------------


@pytest.mark.parametrize(("bins", "out_channels", "size"), [
    ((1, 2, 3, 6), None, (7, 9)),
    ((1, 2, 3, 6), 5, (60, 60)),
    ((1,), None, (1, 1)),
    ((2, 4), 3, (5, 3)),
    ((1, 3, 8), None, (4, 11)),
])
@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_pyramid_matches_a_direct_reimplementation(bins, out_channels, size, pooling):
    torch.manual_seed(0)
    in_channels = 24
    ppm = PyramidPooling(in_channels, bins, pooling=pooling, out_channels=out_channels)
    stage = in_channels // len(bins) if out_channels is None else out_channels
    assert ppm.stage_channels == stage
    assert ppm.total_channels == in_channels + len(bins) * stage
    assert [s.bins for s in ppm.stages] == list(bins)
    assert all(isinstance(s[0], nn.AdaptiveAvgPool2d if pooling == "avg" else nn.AdaptiveMaxPool2d)
               for s in ppm.stages)
    randomise_batch_norm(ppm)
    x = torch.randn(2, in_channels, *size)
    ppm.eval()
    out = ppm(x)
    assert out.shape == (2, ppm.total_channels, *size)
    torch.testing.assert_close(out[:, :in_channels], x)
    torch.testing.assert_close(out, pyramid_by_hand(ppm, x, training=False))
    ppm.train()
    torch.testing.assert_close(ppm(x), pyramid_by_hand(ppm, x, training=True))


def test_pyramid_defaults_are_the_papers():
    ppm = PyramidPooling(2048)
    assert ppm.bins == pspnet.PSP_BINS == (1, 2, 3, 6)
    assert ppm.pooling == "avg"
    assert ppm.stage_channels == 512 and ppm.total_channels == 4096
    # one 1x1 convolution (no bias) and one batch norm per level
    assert sum(p.numel() for p in ppm.parameters()) == 4 * (2048 * 512 + 2 * 512)
    assert set(ppm.state_dict()) == {f"stages.{i}.{k}" for i in range(4) for k in (
        "1.weight", "2.weight", "2.bias", "2.running_mean", "2.running_var",
        "2.num_batches_tracked")}


def test_avg_and_max_pooling_differ_only_in_the_pooling():
    torch.manual_seed(0)
    avg = PyramidPooling(8, (1, 2), pooling="avg").eval()
    big = PyramidPooling(8, (1, 2), pooling="max").eval()
    big.load_state_dict(avg.state_dict())
    x = torch.randn(2, 8, 6, 6)
    assert not torch.allclose(avg(x), big(x))
    # the same weights on a constant map: every window's mean is its max
    constant = torch.ones(2, 8, 6, 6) * torch.randn(1, 8, 1, 1)
    torch.testing.assert_close(avg(constant), big(constant))


def test_batch_of_one_in_training_is_a_clear_error():
    ppm = PyramidPooling(8)
    with pytest.raises(ValueError, match="batch of 1 image"):
        ppm(torch.randn(1, 8, 5, 5))
    with pytest.raises(ValueError, match="batch of 1 image"):
        PyramidPooling(8, pooling="max")(torch.randn(1, 8, 5, 5))
    ppm.eval()
    assert ppm(torch.randn(1, 8, 5, 5)).shape == (1, 16, 5, 5)
    ppm.train()
    assert ppm(torch.randn(2, 8, 5, 5)).shape == (2, 16, 5, 5)
    # without a 1x1 bin a single image gives every batch norm several values
    assert PyramidPooling(8, (2, 3))(torch.randn(1, 8, 5, 5)).shape == (1, 16, 5, 5)
    # eval mode of that batch norm alone is enough (frozen BN when fine-tuning)
    ppm.stages[0][2].eval()
    assert ppm(torch.randn(1, 8, 5, 5)).shape == (1, 16, 5, 5)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"in_channels": 0}, ValueError, "in_channels must be a positive int"),
    ({"in_channels": 8.0}, TypeError, "in_channels must be a positive int"),
    ({"in_channels": 8, "bins": 6}, TypeError, "bins must be a tuple or list"),
    ({"in_channels": 8, "bins": ()}, ValueError, "bins must be a non-empty"),
    ({"in_channels": 8, "bins": (1, 0)}, ValueError, "each bin must be a positive int"),
    ({"in_channels": 8, "bins": (1, True)}, TypeError, "each bin must be a positive int"),
    ({"in_channels": 8, "pooling": "mean"}, ValueError, "pooling must be one of"),
    ({"in_channels": 8, "out_channels": 0}, ValueError, "out_channels must be None or"),
    ({"in_channels": 8, "out_channels": 2.5}, TypeError, "out_channels must be None or"),
    ({"in_channels": 3}, ValueError, "in_channels must be >= len"),
])
def test_pyramid_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        PyramidPooling(**kwargs)


def test_stage_bad_arguments():
    with pytest.raises(ValueError, match="bins must be a positive int"):
        PyramidStage(8, 4, 0)
    with pytest.raises(ValueError, match="pooling must be one of"):
        PyramidStage(8, 4, 1, "sum")


# --- adaptive pooling windows ----------------------------------------------------------------


def windows_by_pooling(size: int, bins: int) -> list[tuple[int, int]]:
    """Each window's ``[start, end)`` read back from ``F.adaptive_avg_pool2d`` itself.

    Pooling ``x = position`` gives each window's mean position ``(start + end - 1) / 2`` and
    pooling ``x = position ** 2`` its second moment, from which its length follows
    (``E[p^2] - E[p]^2 = (n^2 - 1) / 12`` for ``n`` consecutive positions).
    """
    positions = torch.arange(size, dtype=torch.float64)
    pool = lambda v: F.adaptive_avg_pool1d(v.view(1, 1, -1), bins).view(-1)  # noqa: E731
    mean, second = pool(positions), pool(positions ** 2)
    lengths = torch.sqrt(12 * (second - mean ** 2) + 1).round().long()
    starts = (mean - (lengths - 1) / 2).round().long()
    return [(int(s), int(s + n)) for s, n in zip(starts, lengths, strict=True)]


SIZES_AND_BINS = [(s, b) for s in (1, 2, 3, 5, 7, 10, 13, 17, 30, 33, 60, 61, 64, 97)
                  for b in (1, 2, 3, 4, 6, 7, 8)]


@pytest.mark.parametrize(("size", "bins"), SIZES_AND_BINS)
def test_windows_are_those_of_adaptive_avg_pool(size, bins):
    windows = adaptive_pool_windows(size, bins)
    assert windows == windows_by_pooling(size, bins)
    assert len(windows) == bins and windows[0][0] == 0 and windows[-1][1] == size
    # window by window: the means of a random 2-D map are adaptive_avg_pool2d's
    x = torch.randn(1, 1, size, size + 1, dtype=torch.float64)
    cols = adaptive_pool_windows(size + 1, bins)
    means = torch.tensor([[x[0, 0, a:b, c:d].mean() for c, d in cols] for a, b in windows],
                         dtype=torch.float64)
    torch.testing.assert_close(F.adaptive_avg_pool2d(x, bins)[0, 0], means)


def test_windows_overlap_exactly_when_bins_do_not_divide():
    assert adaptive_pool_windows(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert adaptive_pool_windows(6, 3) == [(0, 2), (2, 4), (4, 6)]
    assert adaptive_pool_windows(2, 3) == [(0, 1), (0, 2), (1, 2)]  # positions repeat
    for size, bins in SIZES_AND_BINS:
        windows = adaptive_pool_windows(size, bins)
        overlap = any(b > c for (_, b), (c, _) in zip(windows, windows[1:], strict=False))
        assert overlap == (size % bins != 0 and bins > 1), (size, bins)


@pytest.mark.parametrize(("size", "bins"), [(s, b) for s, b in SIZES_AND_BINS if s % b == 0])
def test_fixed_pooling_equals_adaptive_pooling_when_bins_divide(size, bins):
    kernel, stride = fixed_pooling_for(size, bins)
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    torch.testing.assert_close(F.avg_pool2d(x, kernel, stride), F.adaptive_avg_pool2d(x, bins))
    torch.testing.assert_close(F.max_pool2d(x, kernel, stride), F.adaptive_max_pool2d(x, bins))


def test_fixed_pooling_of_the_papers_60x60_map_and_refusals():
    assert [fixed_pooling_for(60, b) for b in (1, 2, 3, 6)] == [(60, 60), (30, 30), (20, 20),
                                                                (10, 10)]
    with pytest.raises(ValueError, match=r"size must be a multiple of bins=6.*got size=59"):
        fixed_pooling_for(59, 6)
    with pytest.raises(ValueError, match="size must be a positive int"):
        fixed_pooling_for(0, 1)
    with pytest.raises(TypeError, match="bins must be a positive int"):
        adaptive_pool_windows(4, 2.0)


# --- the network -----------------------------------------------------------------------------


def head_params(c: int, num_classes: int, aux_channels: int | None) -> int:
    """The pyramid (four 1x1 convolutions to c/4 and their BN), the 3x3 to 512, the classifier,
    and the auxiliary head on layer3 (3x3 to a quarter of its channels, BN, 1x1)."""
    stage = c // 4
    pyramid = 4 * (conv_params(c, stage, 1, bias=False) + bn_params(stage))
    bottleneck = conv_params(2 * c, 512, 3, bias=False) + bn_params(512)
    total = pyramid + bottleneck + conv_params(512, num_classes, 1)
    if aux_channels is not None:
        inter = aux_channels // 4
        total += (conv_params(aux_channels, inter, 3, bias=False) + bn_params(inter)
                  + conv_params(inter, num_classes, 1))
    return total


@pytest.mark.parametrize(("name", "documented"), [
    ("resnet50", (46_592_597, 48_957_802)),
    ("resnet101", (65_584_725, 67_949_930)),
])
def test_parameter_counts_follow_from_the_layer_shapes(name, documented):
    reference = getattr(torchvision.models, name)()
    backbone = count(reference) - count(reference.fc)
    builder = getattr(models, f"pspnet_{name}")
    for aux, expected in zip((False, True), documented, strict=True):
        model = builder(aux_loss=aux)
        assert count(model) == backbone + head_params(2048, 21, 1024 if aux else None) == expected
        assert count(model.backbone) == backbone
    assert count(model.classifier.pyramid) == 4 * (2048 * 512 + 2 * 512) == 4_198_400
    assert f"{documented[0]:,}" in builder.__doc__ and f"{documented[1]:,}" in builder.__doc__


def test_architecture_of_pspnet_resnet50():
    model = models.pspnet_resnet50(aux_loss=True)
    assert model.output_stride == 8 and model.bins == (1, 2, 3, 6) and model.num_classes == 21
    head = model.classifier
    assert list(dict(head.named_children())) == ["pyramid", "bottleneck", "dropout", "classifier"]
    assert head.pyramid.total_channels == 4096 and head.pyramid.stage_channels == 512
    conv = head.bottleneck[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.bias) == (4096, 512, (3, 3), None)
    assert head.dropout.p == 0.1
    assert isinstance(model.aux_classifier, AuxHead) and model.aux_classifier[0].in_channels == 1024
    # the backbone is torchvision's ResNet-50, dilated as in its segmentation models
    reference = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])
    ours = {k: v.shape for k, v in model.backbone.state_dict().items()}
    assert ours == {k: v.shape for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    assert model.backbone.layer4[2].conv2.dilation == (4, 4)


@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize("size", [(65, 67), (33, 97), (8, 9)])
def test_output_strides_and_odd_sizes(output_stride, size):
    torch.manual_seed(0)
    model = tiny(output_stride=output_stride, aux_loss=True).eval()
    assert model.output_stride == output_stride
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        features = model.backbone(x)
        out = model(x)
    halvings = {8: 3, 16: 4}[output_stride]  # conv1, max pool, layer2 (and layer3), rounding up
    expected_size = list(size)
    for _ in range(halvings):
        expected_size = [-(-n // 2) for n in expected_size]
    assert features["out"].shape[-2:] == tuple(expected_size) == features["aux"].shape[-2:]
    assert out.shape == (2, 3, *size)
    expected = F.interpolate(model.classifier(features["out"]), size=size, mode="bilinear",
                             align_corners=False)
    torch.testing.assert_close(out, expected)


def test_the_papers_473_input_gives_a_60x60_map_that_fixed_pooling_fits():
    model = models.pspnet_resnet50().to("meta").eval()
    features = model.backbone(torch.empty(1, 3, 473, 473, device="meta"))["out"]
    assert features.shape == (1, 2048, 60, 60)
    assert [fixed_pooling_for(60, b) for b in model.bins] == [(60, 60), (30, 30), (20, 20),
                                                              (10, 10)]
    assert model(torch.empty(1, 3, 473, 473, device="meta")).shape == (1, 21, 473, 473)
    sizes = {n: model.backbone(torch.empty(1, 3, n, n, device="meta"))["out"].shape[-1]
             for n in (472, 473, 480, 481)}
    assert sizes == {472: 59, 473: 60, 480: 60, 481: 61}
    with pytest.raises(ValueError, match="size must be a multiple of bins=2"):
        fixed_pooling_for(59, 2)


def test_forward_with_aux_is_one_pass_of_both_heads():
    torch.manual_seed(0)
    model = tiny(aux_loss=True)
    randomise_batch_norm(model)
    model.eval()
    x = torch.randn(2, 3, 41, 50)
    calls = []
    model.backbone.conv1.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        out, aux = model.forward_with_aux(x)
        assert len(calls) == 1
        torch.testing.assert_close(out, model(x))
        features = model.backbone(x)
        expected = F.interpolate(model.aux_classifier(features["aux"]), size=(41, 50),
                                 mode="bilinear", align_corners=False)
    torch.testing.assert_close(aux, expected)
    assert aux.shape == out.shape == (2, 3, 41, 50)
    # the deeply supervised loss reaches every parameter, the auxiliary head's too
    model.train()
    target = torch.randint(0, 3, (2, 41, 50))
    out, aux = model.forward_with_aux(x)
    (F.cross_entropy(out, target) + pspnet.AUX_WEIGHT * F.cross_entropy(aux, target)).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert pspnet.AUX_WEIGHT == 0.4
    with pytest.raises(RuntimeError, match="built without an auxiliary head; build it with aux_loss=True"):
        tiny().forward_with_aux(x)
    assert tiny().aux_classifier is None and "aux" not in tiny().backbone.return_layers.values()


def test_options_bins_and_max_pooling():
    model = tiny(bins=(1, 2, 4), pooling="max")
    pyramid = model.classifier.pyramid
    assert model.bins == (1, 2, 4) and pyramid.stage_channels == 512 // 3
    assert all(isinstance(s[0], nn.AdaptiveMaxPool2d) for s in pyramid.stages)
    assert model.classifier.bottleneck[0].in_channels == 512 + 3 * (512 // 3)
    assert model(torch.randn(2, 3, 37, 45)).shape == (2, 3, 37, 45)
    assert tiny(in_channels=1)(torch.randn(2, 1, 20, 20)).shape == (2, 3, 20, 20)


def test_a_training_batch_of_one_image_fails_before_the_backbone_runs():
    model = tiny().train()
    calls = []
    model.backbone.conv1.register_forward_hook(lambda *_: calls.append(1))
    with pytest.raises(ValueError, match="1x1 bin cannot train on a batch of 1 image"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="batch of 1 image"):
        tiny(aux_loss=True).forward_with_aux(torch.randn(1, 3, 32, 32))
    assert not calls
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"num_classes": 0}, ValueError, "num_classes must be a positive int, got 0"),
    ({"num_classes": 2.0}, TypeError, "num_classes must be a positive int"),
    ({"aux_loss": 1}, TypeError, "aux_loss must be True or False"),
    ({"aux_loss": None}, TypeError, "aux_loss must be True or False"),
    ({"progress": "yes"}, TypeError, "progress must be True or False"),
    ({"output_stride": 32}, ValueError, r"output_stride must be one of \(8, 16\), got 32"),
    ({"output_stride": 8.0}, ValueError, "output_stride must be one of"),
    ({"backbone": "resnet51"}, ValueError, "backbone must be one of"),
    ({"bins": (1, 2, 0)}, ValueError, "each bin must be a positive int, got 0"),
    ({"bins": 6}, TypeError, "bins must be a tuple or list"),
    ({"pooling": "sum"}, ValueError, r"pooling must be one of \('avg', 'max'\)"),
    ({"in_channels": 0}, ValueError, "in_channels must be a positive int"),
    ({"in_channels": 1, "weights_backbone": "IMAGENET1K_V1"}, ValueError,
     "need in_channels=3, got in_channels=1"),
    ({"weights_backbone": "IMAGENET"}, ValueError, "unknown weights 'IMAGENET'"),
])
def test_builder_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        models.pspnet_resnet50(**kwargs)


def test_bad_inputs_are_refused():
    model = tiny().eval()
    with pytest.raises(ValueError, match="PSPNet was built for in_channels=3, got a batch with 1"):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 3, 16, 16, dtype=torch.long))


def test_imagenet_backbone_weights_are_requested_and_land_in_the_backbone(monkeypatch):
    source = torchvision.models.resnet18()
    requested = []

    def fake_load(weights, progress):
        requested.append((weights, progress))
        return source.state_dict()

    monkeypatch.setattr(resnet, "load_weights", fake_load)  # the download, as resnet_backbone calls it
    model = tiny(weights_backbone="IMAGENET1K_V1", progress=False)
    assert requested == [(torchvision.models.ResNet18_Weights.IMAGENET1K_V1, False)]
    assert torch.equal(model.backbone.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert model.backbone.layer4[1].conv2.dilation == (4, 4)  # the same weights, dilated


def test_offline_backbone_weights_raise_weights_unavailable(tmp_path, monkeypatch, local_weights,
                                                            unreachable_url):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = unreachable_url("resnet18-00000000.pth")
    for builder in (models.pspnet_resnet50, models.pspnet_resnet101):
        with pytest.raises(models.WeightsUnavailableError, match=rf"could not download .* from {url}"):
            builder(backbone="resnet18", weights_backbone=local_weights(url, 1000))


def test_receptive_field_is_the_convolutions_and_the_pyramid_sees_the_whole_image():
    model = tiny()
    backbone = receptive_field(model.backbone).overall
    computed = receptive_field(model).overall
    assert computed.stride == backbone.stride == (8, 8)
    # the head's one 3x3 convolution on the stride-8 map adds 2 * 8 pixels
    assert computed.size == (backbone.size[0] + 2 * 8, backbone.size[1] + 2 * 8)
    assert model.classifier.pyramid.receptive_field_layers() == []  # its local path: identity
    # measured, the 1x1 bin's global average makes every output read every input pixel
    measured = measure_receptive_field(model, 45, unit=(0, 0))
    assert measured.size == (45, 45) and bool(measured.mask.all())


# --- segmentation_models_pytorch's PSPNet, for the docstring's comparison ----------------------


def test_smp_pspnet_differs_as_the_docstring_says():
    smp = pytest.importorskip("segmentation_models_pytorch")
    theirs = smp.PSPNet(encoder_name="resnet50", encoder_weights=None, classes=21)
    encoder = theirs.encoder
    # encoder_depth=3: the pyramid reads layer2 (512 channels, stride 8, not dilated)
    assert encoder.out_channels == [3, 64, 256, 512] and encoder.output_stride == 8
    assert encoder.layer2[0].conv2.stride == (2, 2) and encoder.layer3[0].conv2.dilation == (1, 1)
    ran = set()
    for name in ("layer2", "layer3", "layer4"):
        getattr(encoder, name).register_forward_hook(lambda *_, n=name: ran.add(n))
    theirs.eval()
    with torch.no_grad():
        assert theirs(torch.randn(1, 3, 64, 64)).shape == (1, 21, 64, 64)
    assert ran == {"layer2"}  # layer3 and layer4 are built (and counted) but never run
    # its parameters: all of ResNet-50 but fc, a 128-channel pyramid whose 1x1 stage has a bias
    # and no batch norm, a 1x1 fusion to 512 (BN) and a 3x3 classifier
    resnet = torchvision.models.resnet50()
    pyramid = 3 * (conv_params(512, 128, 1, bias=False) + bn_params(128)) + conv_params(512, 128, 1)
    fusion = conv_params(1024, 512, 1, bias=False) + bn_params(512)
    assert count(theirs) == (count(resnet) - count(resnet.fc) + pyramid + fusion
                             + conv_params(512, 21, 3)) == 24_393_173
    blocks = theirs.decoder.psp.blocks
    assert isinstance(blocks[0].pool[1][1], nn.Identity) and isinstance(blocks[1].pool[1][1], nn.BatchNorm2d)
    assert isinstance(theirs.decoder.dropout, nn.Dropout2d) and theirs.decoder.dropout.p == 0.2
    upsample = theirs.segmentation_head[1]
    assert (upsample.scale_factor, upsample.align_corners) == (8.0, True)
    with pytest.raises(RuntimeError, match="divisible by 8"):
        theirs(torch.randn(1, 3, 65, 64))
    # a batch of one trains there (no BN on the 1x1 stage); ours says why it cannot
    theirs.train()
    theirs(torch.randn(1, 3, 64, 64))
