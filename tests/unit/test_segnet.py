"""segtutor.models.segnet: encoder against torchvision's vgg16_bn, unpooling against nn.MaxUnpool2d."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from segtutor import models
from segtutor.models import segnet  # the builder, as torchvision.models.alexnet is
from segtutor.models.segnet import SegNet


def conv_bn_parameters(in_channels: int, out_channels: int) -> int:
    """3x3 convolution with bias, then batch norm's scale and shift."""
    return 9 * in_channels * out_channels + out_channels + 2 * out_channels


def test_encoder_is_torchvision_vgg16_bn_features():
    torch.manual_seed(0)
    reference = torchvision.models.vgg16_bn().features.eval()
    model = segnet(num_classes=5).eval()
    ours = model.encoder.state_dict()
    theirs = reference.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    model.encoder.load_state_dict(theirs)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pooled5, _ = model.encode(x)[-1]
        torch.testing.assert_close(pooled5, reference(x))


def test_parameter_count_and_the_papers_figure():
    model = segnet(num_classes=11)  # CamVid's 11 classes, the paper's main benchmark
    count = sum(p.numel() for p in model.parameters())
    encoder = sum(p.numel() for p in torchvision.models.vgg16_bn().features.parameters())
    decoder_channels = [512, 512, 512, 512, 512, 512, 256, 256, 256, 128, 128, 64, 64]
    decoder = sum(conv_bn_parameters(a, b) for a, b in zip(decoder_channels, decoder_channels[1:],
                                                            strict=False))
    classifier = 9 * 64 * 11 + 11
    assert count == encoder + decoder + classifier
    # The paper (TPAMI 2017) quotes about 29.5 M trainable parameters: three significant
    # digits (+-0.17 %), for an unstated number of classes (577 parameters each) and with or
    # without batch norm's 16,896 affine parameters. 0.5 % covers all of that and still
    # rejects any wrong layer (the smallest, conv1_2's, has 36,928 parameters = 0.13 %;
    # any 512-channel layer is 8 %).
    assert count == pytest.approx(29.5e6, rel=0.005)
    assert encoder == pytest.approx(14.7e6, rel=0.005)


def test_no_learned_upsampling():
    model = segnet(num_classes=3, width=8)
    kinds = {type(m) for m in model.modules()}
    assert nn.ConvTranspose2d not in kinds and nn.Upsample not in kinds
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 + 13  # 13 encoder convolutions, 12 decoder ones and the classifier


def test_decoder_unpools_with_the_encoders_indices_like_max_unpool2d():
    """Capture the tensors around every pooling and unpooling with hooks; rebuild with torch."""
    model = segnet(num_classes=3, width=8).eval()
    before_pool, decoder_in, decoder_out = [], [], []
    for layer in model.encoder:
        if isinstance(layer, nn.ReLU):
            layer.register_forward_hook(lambda m, i, o: before_pool.append(o.clone()))
    for stage in model.decoder:
        stage.register_forward_pre_hook(lambda m, i: decoder_in.append(i[0]))
        stage.register_forward_hook(lambda m, i, o: decoder_out.append(o))
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        model(x)
    stage_ends = [1, 3, 6, 9, 12]  # the last ReLU of each encoder stage, before its pooling
    pool, unpool = nn.MaxPool2d(2, 2, return_indices=True), nn.MaxUnpool2d(2, 2)
    pooled_and_indices = [pool(before_pool[i]) for i in stage_ends]
    upsampled = pooled_and_indices[-1][0]
    for depth, (stage_input, (_, indices)) in enumerate(zip(decoder_in,
                                                          reversed(pooled_and_indices),
                                                          strict=True)):
        torch.testing.assert_close(stage_input, unpool(upsampled, indices))
        # three of every four values are zeros put there by the unpooling
        assert (stage_input == 0).float().mean() >= 0.75
        upsampled = decoder_out[depth]


def decoder_traffic(model, x):
    """Inputs and outputs of every decoder stage, and the encoder's pooled maps (by torch)."""
    before_pool, decoder_in, decoder_out = [], [], []
    hooks = [layer.register_forward_hook(lambda m, i, o: before_pool.append(o.clone()))
             for layer in model.encoder if isinstance(layer, nn.ReLU)]
    for stage in model.decoder:
        hooks.append(stage.register_forward_pre_hook(lambda m, i: decoder_in.append(i[0])))
        hooks.append(stage.register_forward_hook(lambda m, i, o: decoder_out.append(o)))
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    stage_ends = [1, 3, 6, 9, 12]  # the last ReLU of each encoder stage, before its pooling
    pooled = [nn.functional.max_pool2d(before_pool[i], 2) for i in stage_ends]
    return pooled, decoder_in, decoder_out


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_interpolating_decoders_are_nn_upsample_with_the_same_weights(mode):
    torch.manual_seed(0)
    model = segnet(num_classes=3, width=8, upsampling=mode).eval()
    indices_model = segnet(num_classes=3, width=8)
    indices_model.load_state_dict(model.state_dict())  # the same layers, nothing added
    pooled, decoder_in, decoder_out = decoder_traffic(model, torch.randn(1, 3, 64, 96))
    upsample = nn.Upsample(scale_factor=2, mode=mode)
    previous = [pooled[-1], *decoder_out[:-1]]
    for stage_input, before in zip(decoder_in, previous, strict=True):
        torch.testing.assert_close(stage_input, upsample(before))
    with torch.no_grad():
        stages = model.encode(torch.randn(1, 3, 64, 64))
    assert model.from_encoder(stages) == []  # nothing but the deepest map


def test_skip_decoder_adds_projected_pooled_maps_as_fcn_does():
    torch.manual_seed(0)
    model = segnet(num_classes=3, width=8, upsampling="skip").eval()
    pooled, decoder_in, decoder_out = decoder_traffic(model, torch.randn(1, 3, 64, 96))
    upsample = nn.Upsample(scale_factor=2, mode="bilinear")
    previous = [pooled[-1], *decoder_out[:-1]]
    # pool4's map joins the first stage, ..., pool1's the fourth; the last stage has none
    shallower = [pooled[3], pooled[2], pooled[1], pooled[0], None]
    for depth, (stage_input, before, skip) in enumerate(zip(decoder_in, previous, shallower,
                                                            strict=True)):
        expected = upsample(before)
        if skip is not None:
            expected = expected + model.skips[depth](skip)
        torch.testing.assert_close(stage_input, expected)
    # the 1x1 layers' parameters are all that is added: (in + 1) x out for each
    plain = sum(p.numel() for p in segnet(num_classes=3, width=8).parameters())
    channels = [(64, 64), (32, 64), (16, 32), (8, 16)]  # (pooled map, decoder stage input)
    assert sum(p.numel() for p in model.parameters()) == plain + sum(
        (c_in + 1) * c_out for c_in, c_out in channels)
    with torch.no_grad():
        stages = model.encode(torch.randn(1, 3, 64, 64))
    kept = model.from_encoder(stages)
    assert [t.shape[1:] for t in kept] == [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4)]


def test_from_encoder_bytes_are_the_indices_or_the_maps():
    model = segnet(num_classes=11).eval()  # full width
    with torch.no_grad():
        stages = model.encode(torch.randn(1, 3, 64, 64))
    indices = model.from_encoder(stages)
    assert all(a is b for a, (_, b) in zip(indices, stages, strict=True))
    # pooled cells per image: 64 x 32^2 + 128 x 16^2 + 256 x 8^2 + 512 x 4^2 + 512 x 2^2
    cells = 64 * 32**2 + 128 * 16**2 + 256 * 8**2 + 512 * 4**2 + 512 * 2**2
    assert sum(t.numel() * t.element_size() for t in indices) == 8 * cells  # int64
    skip = segnet(num_classes=11, upsampling="skip").eval()
    with torch.no_grad():
        kept = skip.from_encoder(skip.encode(torch.randn(1, 3, 64, 64)))
    assert sum(t.numel() * t.element_size() for t in kept) == 4 * (cells - 512 * 2**2)


def test_bad_upsampling_and_skips():
    with pytest.raises(ValueError, match=r"upsampling must be one of \('indices', 'nearest', "
                                         r"'bilinear', 'skip'\), got 'unpool'"):
        segnet(num_classes=2, upsampling="unpool")
    plain = segnet(num_classes=2, width=4)
    with pytest.raises(ValueError, match="skips are needed exactly when upsampling='skip'"):
        SegNet(plain.encoder, plain.decoder, plain.classifier, "skip")
    with pytest.raises(ValueError, match=r"one skip per decoder stage but the last \(4\), got 1"):
        SegNet(plain.encoder, plain.decoder, plain.classifier, "skip",
               nn.ModuleList([nn.Conv2d(4, 4, 1)]))


def test_output_size_and_padding_crop():
    model = segnet(num_classes=4, width=4).eval()
    x = torch.randn(2, 3, 45, 70)
    with torch.no_grad():
        assert model(x).shape == (2, 4, 45, 70)
        # a size that needs no padding goes through unchanged: same as decode(encode(x))
        square = torch.randn(1, 3, 64, 64)
        torch.testing.assert_close(model(square), model.decode(model.encode(square)))


def test_registered_with_tiny_kwargs():
    info = models.model_info("segnet")
    assert info.task == "semantic"
    model = models.create("segnet", num_classes=2, in_channels=1, **info.tiny_kwargs)
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"num_classes": 0}, ValueError, r"num_classes must be a positive int, got 0"),
    ({"num_classes": 2.5}, TypeError, r"num_classes must be a positive int, got 2.5"),
    ({"num_classes": 2, "width": -8}, ValueError, "width must be a positive int"),
    ({"num_classes": 2, "in_channels": "rgb"}, TypeError, "in_channels must be a positive int"),
])
def test_bad_builder_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        segnet(**kwargs)


def test_bad_inputs():
    model = segnet(num_classes=2, width=4)
    with pytest.raises(ValueError, match=r"SegNet needs height and width >= 32, got 31x40"):
        model(torch.randn(1, 3, 31, 40))
    with pytest.raises(ValueError, match=r"built for in_channels=3, got a batch with 1 channels"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(TypeError, match="expects a floating-point tensor, got dtype torch.uint8"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
