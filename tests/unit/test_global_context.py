"""segtutor.recipes.GlobalContextRecipe: Chapter 10's FCNs with and without a context module."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from segtutor.arithmetic import measure_receptive_field
from segtutor.bench import count_parameters
from segtutor.metrics import ConfusionMatrix
from segtutor.models.deeplab import ASPPPooling, DeepLabHead
from segtutor.models.pspnet import PyramidPooling
from segtutor.recipes import (
    GLOBAL_CONTEXT,
    GLOBAL_CONTEXT_GPU,
    GLOBAL_CONTEXT_VARIANTS,
    GlobalContextRecipe,
)

REPO = Path(__file__).resolve().parents[2]

SMALL = dataclasses.replace(GLOBAL_CONTEXT, image_size=40, frame_width=3, steps=3,
                            batch_size=2, val_images=4, widths=(4, 8, 8), aspp_widths=(4, 8, 8),
                            aspp_channels=4)


class Oracle(nn.Module):
    """Logits that put all mass on ``labels(masks)`` for the images it was built for."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.images, self.labels, self.num_classes = images, labels, num_classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = [int((self.images == image).flatten(1).all(1).nonzero()) for image in x]
        return nn.functional.one_hot(self.labels[index], self.num_classes).permute(
            0, 3, 1, 2).float() * self.scale


@pytest.fixture(scope="module")
def val():
    data = SMALL.val_set()
    return torch.stack([i for i, _ in data]), torch.stack([m for _, m in data])


def test_the_recipe_is_chapter_10s():
    assert GLOBAL_CONTEXT == GlobalContextRecipe(
        image_size=96, frame_width=5, frame_colours=("red", "blue"), num_objects=(1, 3),
        object_size=(0.25, 0.4), batch_size=8, steps=400, widths=(16, 32, 56),
        aspp_widths=(16, 32, 40), aspp_channels=16, aspp_rates=(2, 4, 6), lr=1e-2,
        val_images=64)
    assert GLOBAL_CONTEXT_GPU == dataclasses.replace(
        GLOBAL_CONTEXT, image_size=192, frame_width=10, batch_size=16, steps=1500,
        aspp_rates=(4, 8, 12))
    assert GLOBAL_CONTEXT.num_classes == 7 and GLOBAL_CONTEXT.output_stride == 8
    train = GLOBAL_CONTEXT.train_set()
    assert len(train) == 400 * 8 and train.seed == 0 and GLOBAL_CONTEXT.val_set().seed == 1


def test_the_networks_and_their_parameter_counts():
    counts = {}
    for variant, (context, bins, pooling) in GLOBAL_CONTEXT_VARIANTS.items():
        net = GLOBAL_CONTEXT.model(variant)
        counts[variant] = count_parameters(net)
        assert net(torch.randn(2, 3, 48, 56)).shape == (2, 7, 48, 56)
        pyramids = [m for m in net.modules() if isinstance(m, PyramidPooling)]
        heads = [m for m in net.modules() if isinstance(m, DeepLabHead)]
        assert len(pyramids) == (context == "ppm") and len(heads) == (context == "aspp")
        if pyramids:
            assert pyramids[0].bins == bins and pyramids[0].pooling == pooling
        if heads:
            assert any(isinstance(m, ASPPPooling) for m in heads[0].modules())
    # the FCN by formula: two 3x3 conv (no bias) + BN per stage, then the 1x1 classifier
    widths, expected, previous = (16, 32, 56), 0, 3
    for width in widths:
        expected += 9 * previous * width + 2 * width + 9 * width * width + 2 * width
        previous = width
    assert counts["fcn"] == expected + 56 * 7 + 7
    # the three networks of the main comparison within 10 % of each other
    main = [counts[v] for v in ("fcn", "fcn+ppm", "fcn+aspp")]
    assert max(main) / min(main) < 1.10
    # the pyramid's ablations change the pooling, not the parameters
    assert counts["fcn+ppm-max"] == counts["fcn+ppm"]
    with pytest.raises(ValueError, match="variant must be one of"):
        GLOBAL_CONTEXT.model("fcn+crf")


def test_the_plain_fcn_sees_less_than_the_image():
    field = GLOBAL_CONTEXT.receptive_field()
    net = GLOBAL_CONTEXT.model("fcn")
    # three stages of two 3x3 convolutions and a 2x2 pooling: 1 + 2*2 + 1 + 2*2*2 + 2 + ...
    jump, size = 1, 1
    for _ in range(3):
        size += 2 * 2 * jump  # two 3x3 convolutions
        size += jump  # 2x2 pooling, stride 2
        jump *= 2
    assert field["computed"] == size == 36
    assert field["measured"] == measure_receptive_field(net, 96).size
    assert field["computed"] <= field["measured"][0] < field["image_size"] / 2
    assert field["image_size"] == 96
    # the pyramid's global bin makes every output depend on every input pixel
    ppm = measure_receptive_field(GLOBAL_CONTEXT.model("fcn+ppm"), 96)
    assert ppm.size == (96, 96)


def test_evaluate_scores_against_a_confusion_matrix(val):
    images, masks = val
    recipe = SMALL
    perfect = recipe.evaluate(Oracle(images, masks, 7), images, masks)
    assert perfect["miou"] == 1.0 and perfect["kind_miou"] == 1.0
    assert perfect["frame_error"] == 0.0
    # the right kind, always the wrong frame colour: kinds perfect, every shape pixel wrong
    swapped = torch.where(masks > 0, (masks - 1 + 3) % 6 + 1, 0)
    flipped = recipe.evaluate(Oracle(images, swapped, 7), images, masks)
    assert flipped["kind_miou"] == 1.0 and flipped["frame_error"] == 1.0
    matrix = ConfusionMatrix(7)
    matrix.update(swapped, masks)
    assert flipped["miou"] == pytest.approx(matrix.mean_iou())
    assert torch.equal(flipped["confusion"], matrix.matrix[1:, 1:].cpu())
    assert flipped["confusion"].diagonal().sum() == 0
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        recipe.evaluate(Oracle(images, masks, 7), images, masks, batch_size=0)


def test_train_is_seeded_and_short(val):
    images, masks = val
    net, history, seconds = SMALL.train("fcn+ppm", seed=0, device="cpu")
    assert history.step[-1] == 3 and seconds > 0
    again, _, _ = SMALL.train("fcn+ppm", seed=0, device="cpu")
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    scores = SMALL.evaluate(net, images, masks)
    assert 0 <= scores["miou"] <= 1 and scores["confusion"].shape == (6, 6)


@pytest.mark.parametrize(("field", "value", "error", "message"), [
    ("steps", 0, ValueError, "steps must be a positive int"),
    ("batch_size", 1, ValueError, r"batch_size must be >= 2"),
    ("widths", (), ValueError, "widths must be a non-empty tuple"),
    ("aspp_rates", (2, 0), ValueError, "aspp_rates entry must be a positive int"),
    ("lr", -1.0, ValueError, r"lr must be a finite number > 0, got -1.0"),
    ("frame_width", 60, ValueError, r"frame_width must be an int in \[1, 40\]"),
    ("frame_colours", ("red", "pink"), ValueError, "frame_colours entry must be one of"),
    ("image_size", 96.0, TypeError, "image_size must be"),
])
def test_bad_fields_are_refused(field, value, error, message):
    with pytest.raises(error, match=message):
        dataclasses.replace(GLOBAL_CONTEXT, **{field: value})


def load_benchmark():
    path = REPO / "benchmarks" / "global_context.py"
    spec = importlib.util.spec_from_file_location("global_context_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_benchmark_results_are_the_recipes():
    from segtutor.viz.source import benchmark_results

    benchmark = load_benchmark()
    assert benchmark.GLOBAL_CONTEXT is GLOBAL_CONTEXT
    results = benchmark_results("global_context.csv")
    assert any(line.startswith("command: python benchmarks/global_context.py")
               for line in results.comments)
    for variant in GLOBAL_CONTEXT_VARIANTS:
        runs = results.where(variant=variant)
        assert sorted(int(r["seed"]) for r in runs) == [0, 1, 2]
        assert {int(r["parameters"]) for r in runs} == {
            count_parameters(GLOBAL_CONTEXT.model(variant))}
    # the chapter reads this file rather than retyping its numbers
    notebook = json.loads((REPO / "book" / "10_pspnet.ipynb").read_text())
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"]
                     if cell["cell_type"] == "code")
    assert 'benchmark_results("global_context.csv")' in code
    assert "rt.pick(cpu=GLOBAL_CONTEXT, gpu=GLOBAL_CONTEXT_GPU)" in code
