"""segtutor.arithmetic's module-to-spec conversion (layer_specs), the block registry
(register_layers, receptive_field_layers(), main_path), and the layer rule that the
package's arithmetic imports only torch."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from segtutor.arithmetic import (
    Conv,
    ConvTranspose,
    Pool,
    Upsample,
    layer_specs,
    main_path,
    measure_receptive_field,
    receptive_field,
    register_layers,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[2]


def comparable(specs):
    """Specs as values: ``nn.Identity()`` instances compare by identity, so name them."""
    return ["identity" if isinstance(spec, nn.Identity) else spec for spec in specs]


def geometry(table):
    return [(f.size, f.stride, f.padding, f.output_size) for f in table.layers]


class TwoConvs(nn.Module):
    """A residual block of our own: two 3x3 convolutions, the second strided, and a strided
    1x1 shortcut, which reads a subset of the main path's pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(1, 1, 3, padding=1)
        self.second = nn.Conv2d(1, 1, 3, stride=2, padding=1)
        self.shortcut = nn.Conv2d(1, 1, 1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x))) + self.shortcut(x)


def two_convs_main_path(block: TwoConvs) -> list[nn.Module]:
    return [block.first, nn.ReLU(), block.second]


# --------------------------------------------------------------------------- layer_specs


def test_layer_specs_of_a_mixed_stack_are_the_hand_written_specs():
    stack = [
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Sequential(nn.MaxPool2d(2, ceil_mode=True),
                      nn.Conv2d(8, 8, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(1, 2))),
        Conv(3, p=1),  # a spec passes through
        nn.AvgPool2d(3, stride=2, padding=1),
        nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1, output_padding=1),
        nn.Upsample(scale_factor=2.0, mode="bilinear"), nn.Upsample(scale_factor=(1.5, 2)),
        nn.Conv2d(8, 8, 3, padding="same", dilation=2), nn.Conv2d(8, 8, 3, padding="valid"),
        nn.Dropout2d(),
    ]
    expected = [
        Conv(3, 1, 1, 1), "identity", "identity",
        Pool(2, 2, 0, 1, ceil_mode=True), Conv((3, 5), (1, 2), (1, 2), (1, 2)),
        Conv(3, p=1),
        Pool(3, 2, 1, 1),
        ConvTranspose(4, 2, 1, 1, output_padding=1),
        Upsample(2, "bilinear"), Upsample((1.5, 2), "nearest"),
        Conv(3, 1, 2, 2), Conv(3, 1, 0, 1),
        "identity",
    ]
    specs = layer_specs(stack)
    assert comparable(specs) == expected
    # receptive_field goes through the same conversion: modules and their specs agree
    assert geometry(receptive_field(stack, 37)) == geometry(receptive_field(specs, 37))


def test_layer_specs_accepts_one_sequential_and_refuses_what_it_cannot_convert():
    assert comparable(layer_specs(nn.Sequential(nn.Conv2d(1, 1, 2), nn.GELU()))) == [
        Conv(2, 1, 0, 1), "identity"]
    assert layer_specs([]) == []
    with pytest.raises(ValueError, match=r"layer 1 \(1\.0\): cannot compute the receptive field "
                                         r"of Linear.*register_layers"):
        layer_specs([nn.Conv2d(1, 1, 3), nn.Sequential(nn.Linear(2, 2))])
    with pytest.raises(ValueError, match="layer 0: unknown layer 'conv3x3'"):
        layer_specs(["conv3x3"])
    with pytest.raises(ValueError, match="fixed output size"):
        layer_specs(nn.Upsample(size=8))


# --------------------------------------------------------------------------- the registry


def test_torchvision_blocks_are_registered_by_name_and_open_into_their_convolutions():
    basic, bottleneck = BasicBlock(4, 4), Bottleneck(16, 4)
    assert main_path(basic) == [basic.conv1, basic.conv2]
    assert main_path(bottleneck) == [bottleneck.conv1, bottleneck.conv2, bottleneck.conv3]
    assert main_path(nn.Conv2d(1, 1, 3)) is None and main_path(nn.Sequential()) is None


def test_torchvision_resnet50_specs_give_the_published_torchvision_numbers():
    with torch.device("meta"):
        model = torchvision.models.resnet50()
    backbone = nn.Sequential(*list(model.children())[:-2])
    specs = layer_specs(backbone)
    assert len(specs) == 4 + 16 * 3  # conv1, bn1, relu, maxpool; 16 bottlenecks of 3 convs
    for layers in (backbone, specs):
        field = receptive_field(layers).overall
        assert (field.size, field.stride, field.padding) == ((427, 427), (32, 32), (213, 213))
    assert receptive_field(backbone).layers[4].name == "4.0.conv1"


def test_a_block_registered_by_class_counts_by_its_main_path():
    class Block(TwoConvs):  # a class of its own, so that no other test registered it
        pass

    network = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), Block())
    with pytest.raises(ValueError, match="cannot compute the receptive field of Block"):
        receptive_field(network)
    register_layers(Block, two_convs_main_path)
    assert comparable(layer_specs(network)) == [Conv(3, 1, 1, 1), Conv(3, 1, 1, 1), "identity",
                                                Conv(3, 2, 1, 1)]
    table = receptive_field(network, 32)
    assert [f.name for f in table.layers] == ["0", "1.first", "1.1", "1.second"]
    torch.manual_seed(0)
    for unit in [(5, 5), (8, 10)]:  # interior units: padding does not cut their fields
        measured = measure_receptive_field(network, 32, unit=unit)
        assert (measured.rows, measured.cols) == table.overall.region(*unit)


def test_a_block_registered_by_qualified_name_needs_no_import_and_covers_subclasses():
    class Named(TwoConvs):
        pass

    class Child(Named):
        pass

    register_layers(f"{Named.__module__}.{Named.__qualname__}", two_convs_main_path)
    assert comparable(layer_specs(Named())) == [Conv(3, 1, 1, 1), "identity", Conv(3, 2, 1, 1)]
    assert comparable(layer_specs(Child())) == [Conv(3, 1, 1, 1), "identity", Conv(3, 2, 1, 1)]


def test_a_block_can_describe_itself_with_receptive_field_layers():
    class Dilated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=2, dilation=2)
            self.pool = nn.MaxPool2d(2)

        def receptive_field_layers(self) -> list[object]:
            return [self.conv, nn.Sequential(nn.ReLU(), self.pool), Conv(1)]

    class Shallow(Dilated):  # a subclass's own description wins over the inherited one
        def receptive_field_layers(self) -> list[object]:
            return [self.conv]

    assert comparable(layer_specs([Dilated()])) == [Conv(3, 1, 2, 2), "identity",
                                                    Pool(2, 2, 0, 1), Conv(1)]
    assert [f.name for f in receptive_field([Dilated()]).layers] == [
        "0.conv", "0.1.0", "0.1.1", "0.2"]  # a fresh container names its own children
    assert layer_specs(Shallow()) == [Conv(3, 1, 2, 2)]


def test_registration_wins_over_an_inherited_receptive_field_layers():
    class Described(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 5)

        def receptive_field_layers(self) -> list[object]:
            return [self.conv, self.conv]

    class Registered(Described):
        pass

    register_layers(Registered, lambda block: [block.conv])
    assert layer_specs(Registered()) == [Conv(5, 1, 0, 1)]
    assert layer_specs(Described()) == [Conv(5, 1, 0, 1)] * 2


def test_register_layers_refuses_bad_arguments():
    with pytest.raises(TypeError, match="kind must be a class or a qualified class name"):
        register_layers(BasicBlock(4, 4), two_convs_main_path)
    with pytest.raises(ValueError, match="kind must be a qualified class name 'package.module.Class'"):
        register_layers("Bottleneck", two_convs_main_path)
    with pytest.raises(TypeError, match="converter must be callable"):
        register_layers(TwoConvs, [nn.Conv2d(1, 1, 3)])


def test_a_main_path_that_contains_the_block_itself_is_refused():
    class Loop(nn.Module):
        def receptive_field_layers(self) -> list[object]:
            return [self]

    with pytest.raises(ValueError, match="the main path of Loop contains the block itself"):
        receptive_field(Loop())


# --------------------------------------------------------------------------- the layer rule


def test_importing_arithmetic_does_not_import_torchvision():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, segtutor.arithmetic; print('torchvision' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
