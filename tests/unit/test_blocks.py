"""segtutor.ops.conv_bn_relu against the torch layers it stands for."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segtutor.ops import conv_bn_relu


@pytest.mark.parametrize("kernel_size, dilation, padding", [(3, 1, None), (3, 2, None), (1, 1, None),
                                                            (3, 1, 0), (5, 3, None)])
def test_equals_conv_then_batch_norm_then_relu(kernel_size, dilation, padding):
    torch.manual_seed(0)
    block = conv_bn_relu(4, 6, kernel_size, dilation=dilation, padding=padding).eval()
    conv, norm, relu = block
    assert isinstance(norm, nn.BatchNorm2d) and isinstance(relu, nn.ReLU) and conv.bias is None
    nn.init.normal_(norm.running_mean)
    nn.init.uniform_(norm.running_var, 0.5, 2)
    x = torch.randn(2, 4, 11, 13)
    expected_padding = dilation * (kernel_size - 1) // 2 if padding is None else padding
    reference = F.relu(F.batch_norm(
        F.conv2d(x, conv.weight, padding=expected_padding, dilation=dilation),
        norm.running_mean, norm.running_var, norm.weight, norm.bias, training=False))
    out = block(x)
    torch.testing.assert_close(out, reference)
    if padding is None:
        assert out.shape[-2:] == x.shape[-2:]


def test_without_batch_norm_the_convolution_has_a_bias():
    block = conv_bn_relu(3, 5, batch_norm=False)
    assert [type(m) for m in block] == [nn.Conv2d, nn.ReLU] and block[0].bias is not None
    assert conv_bn_relu(3, 5, bias=True)[0].bias is not None
    assert [*dict(conv_bn_relu(3, 5).named_children())] == ["0", "1", "2"]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"in_channels": 0}, ValueError, "in_channels must be a positive int, got 0"),
    ({"kernel_size": 2}, ValueError, "kernel_size must be odd"),
    ({"kernel_size": 2, "padding": 0}, None, None),
    ({"padding": -1}, ValueError, "padding must be a non-negative int, got -1"),
    ({"dilation": 1.0}, TypeError, r"dilation must be a positive int, got 1.0 \(float\)"),
    ({"batch_norm": 1}, TypeError, r"batch_norm must be True or False, got 1 \(int\)"),
])
def test_bad_arguments(kwargs, error, match):
    arguments = {"in_channels": 3, "out_channels": 4, **kwargs}
    if error is None:
        assert conv_bn_relu(**arguments)[0].kernel_size == (2, 2)
        return
    with pytest.raises(error, match=match):
        conv_bn_relu(**arguments)
