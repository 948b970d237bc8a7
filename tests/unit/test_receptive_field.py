"""receptive_field against the published values (Araujo, Norris & Sim, Distill 2019, whose
table comes from TF-Slim models) and against a gradient measurement on real networks: the
input pixels that get a non-zero gradient from one output unit."""

from fractions import Fraction

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from segtutor.arithmetic import (
    Conv,
    ConvTranspose,
    Pool,
    Upsample,
    measure_receptive_field,
    receptive_field,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def overall(layers, input_size=None):
    field = receptive_field(layers, input_size).overall
    return field.size, field.stride, field.padding


def on_meta(builder):
    """Build a torchvision model without allocating or initialising its weights."""
    with torch.device("meta"):
        return builder()


def resnet50_backbone(model):
    """ResNet-50 up to conv5_x: everything before the global average pool and the classifier."""
    return nn.Sequential(*list(model.children())[:-2])


# --------------------------------------------------------------------------- published values


def test_vgg16_up_to_pool5_matches_the_published_values():
    features = on_meta(torchvision.models.vgg16).features
    assert overall(features) == ((212, 212), (32, 32), (90, 90))


def tf_slim_resnet_v1_50():
    """The ResNet-50 of the published table (TF-Slim's resnet_v1_50).

    conv1 is 7x7/2 with 3 pixels of explicit padding; the 3x3/2 max pool uses 'SAME'
    padding, which on an even-sized input pads 0 before and 1 after; each block's stride
    sits on the 3x3 convolution of its *last* unit, and block 4 has stride 1.
    """
    layers = [Conv(7, 2, 3), Pool(3, 2, 0)]
    for units, stride in ((3, 2), (4, 2), (6, 2), (3, 1)):
        for unit in range(units):
            layers += [Conv(1), Conv(3, stride if unit == units - 1 else 1, 1), Conv(1)]
    return layers


def test_resnet50_as_published_is_tf_slim_resnet_v1_50():
    assert overall(tf_slim_resnet_v1_50()) == ((483, 483), (32, 32), (239, 239))


def test_torchvision_resnet50_is_v1_5_with_a_smaller_receptive_field():
    """torchvision's ResNet-50 strides on the 3x3 convolution of each stage's *first* block
    (ResNet "v1.5"), so later 3x3 convolutions run at the coarser stride for fewer blocks:
    r = 427 and P = 213, not the published 483 and 239 (measured below)."""
    assert overall(resnet50_backbone(on_meta(torchvision.models.resnet50))) == (
        (427, 427), (32, 32), (213, 213))


def test_original_resnet50_layout_gives_r_483():
    """With the stride moved to each first block's 1x1 conv1 (He et al.'s original v1),
    torchvision's network has the published r = 483; P is 241 because PyTorch's max pool
    pads 1 on each side where TF's 'SAME' pads 0 before."""
    model = on_meta(torchvision.models.resnet50)
    for stage in (model.layer2, model.layer3, model.layer4):
        stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    assert overall(resnet50_backbone(model)) == ((483, 483), (32, 32), (241, 241))


# --------------------------------------------------------------------------- gradient measurement


def interior_units(field, input_size, count=4):
    """Up to ``count`` output units (row, col) spread over those whose region lies inside
    the input, so that padding does not cut what the measurement sees."""
    inside = [u for u in range(field.output_size[0])
              if field.region(u, u)[0][0] >= 0 and field.region(u, u)[0][1] < input_size]
    assert len(inside) >= 2, "the input is too small for this stack"
    picks = [inside[round(i * (len(inside) - 1) / (count - 1))] for i in range(count)]
    return [(row, col) for row, col in zip(picks, reversed(picks), strict=True)]


def assert_matches_measurement(network, input_size, units=None):
    table = receptive_field(network, input_size)
    for unit in units or interior_units(table.overall, input_size):
        measured = measure_receptive_field(network, input_size, unit=unit)
        rows, cols = table.overall.region(*unit)
        assert rows[0] >= 0 and cols[0] >= 0 and rows[1] < input_size and cols[1] < input_size, (
            f"choose an interior unit: {unit} sees {rows}, {cols}")
        assert (measured.rows, measured.cols) == (rows, cols), unit
    return table


SINGLE_PATH_STACKS = {
    "strided and dilated convs": lambda: nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 5, stride=2, padding=2),
        nn.BatchNorm2d(3), nn.Conv2d(3, 2, 3, dilation=3, padding=1), nn.Conv2d(2, 1, (3, 1))),
    "max pools, ceil mode": lambda: nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(3, 2, padding=1, ceil_mode=True),
        nn.Conv2d(2, 2, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(2, 1, 3, padding=1)),
    "avg pool and stride 3": lambda: nn.Sequential(
        nn.Conv2d(1, 2, 4, stride=3), nn.AvgPool2d(3, 1, padding=1), nn.Conv2d(2, 1, 2)),
    "nested sequential and dropout": lambda: nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 1, 3), nn.Dropout2d(0.5)), nn.Sequential(nn.Conv2d(1, 1, 3, 2))),
}


@pytest.mark.parametrize("name", SINGLE_PATH_STACKS)
def test_receptive_field_equals_gradient_measurement(name):
    torch.manual_seed(0)
    network = SINGLE_PATH_STACKS[name]()
    size = 40
    field = assert_matches_measurement(network, size).overall
    for unit in interior_units(field, size, count=2):  # the extent is Distill's r, and
        assert measure_receptive_field(network, size, unit=unit).size == field.size
        rows, cols = field.region(*unit)  # the region starts at u * S - P
        assert (rows[0], cols[0]) == tuple(u * s - p for u, s, p in zip(
            unit, field.stride, field.padding, strict=True))


def test_output_sizes_in_the_table_are_the_real_shapes():
    network = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(3, 2, padding=1, ceil_mode=True),
        nn.Conv2d(2, 2, 3, stride=2), nn.ConvTranspose2d(2, 2, 3, 2, 1, output_padding=1),
        nn.Upsample(scale_factor=3, mode="bilinear"), nn.AvgPool2d(2))
    shapes = []
    for layer in network:
        layer.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape[-2:])))
    network(torch.zeros(1, 1, 29, 23))
    table = receptive_field(network, (29, 23))
    assert [field.output_size for field in table.layers] == shapes


def test_residual_block_field_is_its_main_path():
    torch.manual_seed(0)
    downsample = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2), nn.BatchNorm2d(8))
    network = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1),
                            BasicBlock(4, 8, stride=2, downsample=downsample), BasicBlock(8, 8))
    table = assert_matches_measurement(network, 32)
    assert table.overall.size == (1 + 2 + 2 + 3 * (2 * 2),) * 2
    assert [field.name for field in table.layers[1:]] == [
        "1.conv1", "1.conv2", "2.conv1", "2.conv2"]


UPSAMPLING_STACKS = {
    "nearest x2": lambda: nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2),
                                        nn.Conv2d(1, 1, 3)),
    "nearest x3": lambda: nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=3),
                                        nn.Conv2d(1, 1, 5, padding=2)),
    "bilinear x2": lambda: nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2,
                                         mode="bilinear"), nn.Conv2d(1, 1, 3)),
    "bilinear x3": lambda: nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=3,
                                         mode="bilinear"), nn.Conv2d(1, 1, 3)),
    "transposed k4 s2": lambda: nn.Sequential(nn.Conv2d(1, 1, 3), nn.ConvTranspose2d(1, 1, 4, 2, 1),
                                              nn.Conv2d(1, 1, 3)),
    "transposed k3 s2 (uneven)": lambda: nn.Sequential(nn.ConvTranspose2d(1, 1, 3, 2),
                                                       nn.Conv2d(1, 1, 3)),
    "transposed dilated": lambda: nn.Sequential(
        nn.Conv2d(1, 1, 3, stride=2), nn.ConvTranspose2d(1, 1, 3, 3, 1, dilation=2),
        nn.Conv2d(1, 1, 3)),
    "encoder-decoder": lambda: nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, padding=1),
        nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, padding=1), nn.ConvTranspose2d(2, 2, 2, 2),
        nn.Conv2d(2, 2, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(2, 1, 3, padding=1)),
}


@pytest.mark.parametrize("name", UPSAMPLING_STACKS)
def test_region_after_upsampling_equals_gradient_measurement(name):
    """With upsampling the extent changes from unit to unit; region() follows it exactly."""
    network = UPSAMPLING_STACKS[name]()
    field = receptive_field(network, 40).overall
    units = interior_units(field, 40, count=7)
    assert_matches_measurement(network, 40, units)


@pytest.mark.parametrize("factor", [2, 3])
def test_fractional_stride_is_the_shift_per_output_unit(factor):
    """S = 1/f: moving the output unit by f moves the measured region by one input pixel."""
    network = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=factor),
                            nn.Conv2d(1, 1, 3))
    assert receptive_field(network).overall.stride == (Fraction(1, factor),) * 2
    first = measure_receptive_field(network, 30, unit=(20, 20))
    moved = measure_receptive_field(network, 30, unit=(20 + factor, 20))
    assert (moved.rows[0] - first.rows[0], moved.rows[1] - first.rows[1]) == (1, 1)


def test_specs_and_modules_give_the_same_table():
    specs = [Conv(3, 1, 1), Pool(2), Conv((3, 5), 2, (1, 2), (1, 2)), ConvTranspose(4, 2, 1),
             Upsample(2, "bilinear")]
    modules = [nn.Conv2d(1, 1, 3, 1, 1), nn.MaxPool2d(2), nn.Conv2d(1, 1, (3, 5), 2, (1, 2), (1, 2)),
               nn.ConvTranspose2d(1, 1, 4, 2, 1), nn.Upsample(scale_factor=2, mode="bilinear")]
    for spec_field, module_field in zip(receptive_field(specs, 32).layers,
                                        receptive_field(modules, 32).layers, strict=True):
        assert (spec_field.size, spec_field.stride, spec_field.padding, spec_field.output_size) == (
            module_field.size, module_field.stride, module_field.padding, module_field.output_size)
        assert spec_field.region(3, 4) == module_field.region(3, 4)


def test_padding_same_is_read_from_the_module():
    field = receptive_field([nn.Conv2d(1, 1, 5, padding="same", dilation=2)], 11).overall
    assert field.padding == (4, 4) and field.output_size == (11, 11)


@pytest.mark.slow
def test_vgg16_measured_receptive_field_is_212():
    features = torchvision.models.vgg16().features
    measured = measure_receptive_field(features, 224, unit=(3, 3))
    assert measured.size == (212, 212)
    assert (measured.rows, measured.cols) == receptive_field(features).overall.region(3, 3)


@pytest.mark.slow
def test_torchvision_resnet50_measured_receptive_field_is_427():
    backbone = resnet50_backbone(torchvision.models.resnet50())
    measured = measure_receptive_field(backbone, 448, unit=(7, 7))
    assert measured.size == (427, 427)
    assert (measured.rows, measured.cols) == receptive_field(backbone).overall.region(7, 7)


# --------------------------------------------------------------------------- bad layers


def test_unknown_module_is_refused_with_its_name():
    with pytest.raises(ValueError, match=r"layer 2: cannot compute the receptive field of Linear"):
        receptive_field([nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Linear(4, 4)])
    with pytest.raises(ValueError, match="layer 0: unknown layer 'conv3x3'"):
        receptive_field(["conv3x3"])


@pytest.mark.parametrize("spec, message", [
    (Conv(0), r"layer 1: kernel size k must be a positive int or a pair .*, got 0"),
    (Conv(3, s=0), r"layer 1: stride s must be a positive int"),
    (Conv(3, p=-1), r"layer 1: padding p must be a non-negative int"),
    (Pool((2, 0)), r"layer 1: kernel size k must be a positive int or a pair .*, got \(2, 0\)"),
    (ConvTranspose(3, d=0), r"layer 1: dilation d must be a positive int"),
    (Upsample(0), r"layer 1: upsampling factor must be a finite number > 0, got 0"),
    (Upsample(2, "bicubic"), r"layer 1: upsampling mode must be one of \('nearest', 'bilinear'\), got 'bicubic'"),
    (Conv(2.5), r"layer 1: kernel size k must be a positive int or a pair .*, got 2.5 \(float\)"),
])
def test_bad_layer_specification_names_the_layer(spec, message):
    with pytest.raises((ValueError, TypeError), match=message):
        receptive_field([Conv(3), spec])


def test_upsampling_without_a_constant_stride_is_refused():
    with pytest.raises(ValueError, match="fixed output size, not a scale factor"):
        receptive_field([nn.Upsample(size=16)])
    with pytest.raises(ValueError, match="align_corners=True has no constant stride"):
        receptive_field([nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)])


def test_stack_that_does_not_fit_the_input_is_refused():
    with pytest.raises(ValueError, match=r"layer 1 does not fit its input: .*larger than the padded"):
        receptive_field([Conv(3), Conv(5)], input_size=6)
    with pytest.raises(ValueError, match="at least one layer"):
        receptive_field([])
    with pytest.raises(ValueError, match="input_size must be a positive int"):
        receptive_field([Conv(3)], input_size=0)


def test_measurement_refuses_units_outside_the_output():
    with pytest.raises(ValueError, match=r"unit \(9, 0\) is outside the output of size \(8, 8\)"):
        measure_receptive_field(nn.Conv2d(1, 1, 3), 10, unit=(9, 0))
    with pytest.raises(ValueError, match="dilated max pool"):
        measure_receptive_field(nn.MaxPool2d(2, dilation=2), 10)


def test_table_prints_one_row_per_layer():
    text = str(receptive_field([Conv(3, 1, 1), Pool(2), Upsample(2)], 8))
    lines = text.splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].split() == ["#", "layer", "r", "S", "P", "output"]
    assert lines[-1].split()[1:] == ["Upsample", "x2", "nearest", "4", "1", "1", "8x8"]


# --------------------------------------------------------------------------- the static figure


def test_plot_draws_the_region_of_the_chosen_unit():
    from matplotlib.patches import Rectangle

    from segtutor.viz.diagrams import KERNEL_COLOR
    from segtutor.viz.receptive import plot_receptive_field

    network = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(1, 1, 5))
    drawn = plot_receptive_field(network, 20, unit=(0, 3), image=torch.rand(1, 20, 20))
    rows, cols = receptive_field(network).overall.region(0, 3)
    assert drawn.region == (rows, cols) and rows[0] < 0  # this unit's field reaches the padding
    footprints = [p for p in drawn.axes[0].patches
                  if isinstance(p, Rectangle) and p.get_facecolor()[:3] == _rgb(KERNEL_COLOR)]
    assert [(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in footprints] == [
        (cols[0] - 0.5, rows[0] - 0.5, cols[1] - cols[0] + 1, rows[1] - rows[0] + 1)]
    assert drawn._repr_png_().startswith(b"\x89PNG")


def _rgb(color):
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def test_plot_refuses_bad_arguments():
    from segtutor.viz.receptive import plot_receptive_field

    layers = [Conv(3), Pool(2)]
    with pytest.raises(ValueError, match=r"unit=\(4, 0\) is outside the 4x4 output of layer 1"):
        plot_receptive_field(layers, 10, unit=(4, 0))
    with pytest.raises(ValueError, match="layer=2 is not an index into the 2 layers"):
        plot_receptive_field(layers, 10, layer=2)
    with pytest.raises(ValueError, match=r"image must be .* of size \(10, 10\), got shape \(8, 8\)"):
        plot_receptive_field(layers, 10, image=torch.rand(8, 8).numpy())
