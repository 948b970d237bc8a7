"""segtutor.recipes: Chapter 8's ISBI U-Net recipe is one object that the chapter and
benchmarks/isbi_unet.py both run, composed as before, and it trains and evaluates."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from segtutor import recipes
from segtutor.bench import count_parameters
from segtutor.data import default_isbi_root
from segtutor.data.weightmap import unet_weight_map
from segtutor.losses import CrossEntropyLoss, DiceCELoss
from segtutor.metrics import ISBI_SCORES, isbi_scores
from segtutor.models.unet import UNet, unet
from segtutor.ops.tiling import SymmetryAverage
from segtutor.recipes import ISBI_UNET, ISBI_UNET_GPU, ISBIUNetRecipe, load_isbi
from segtutor.train import evaluate, predict
from segtutor.utils import seed_everything

REPO = Path(__file__).resolve().parents[2]

#: A recipe small enough to train for a few seconds in a test.
TINY = dataclasses.replace(ISBI_UNET, crop=32, batch_size=2, base_channels=4, budget=2.0,
                           steps_per_epoch=3)


def load_benchmark():
    spec = importlib.util.spec_from_file_location("isbi_unet", REPO / "benchmarks" / "isbi_unet.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["isbi_unet"] = module
    spec.loader.exec_module(module)
    return module


def synthetic_pairs(n: int, size: int = 48, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Grey images whose bright pixels are class 1, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    masks = (torch.rand(n, size, size, generator=generator) > 0.7).long()
    images = masks[:, None].float() * 0.5 + 0.3 * torch.rand(n, 1, size, size, generator=generator)
    return list(zip(images, masks, strict=True))


def first_kernel(model: torch.nn.Module) -> torch.Tensor:
    """A 3x3 kernel with several input channels (where channels_last differs from contiguous)."""
    return next(p for p in model.parameters() if p.ndim == 4 and min(p.shape[1:]) > 1)


@pytest.fixture(scope="module")
def pairs():
    """A few ISBI 2012 slices when the copy is there, else synthetic images."""
    root = default_isbi_root()
    if root is None:
        return synthetic_pairs(4), synthetic_pairs(1, seed=1)
    train_pairs, test_pairs = load_isbi(root)
    return train_pairs[:4], [(image[:, :96, :96], mask[:96, :96]) for image, mask in test_pairs[:1]]


# -- one recipe for the chapter and the benchmark ---------------------------------------


def test_the_recipe_is_chapter_8s():
    assert ISBI_UNET == ISBIUNetRecipe(crop=128, batch_size=8, base_channels=16, lr=3e-3,
                                       weight_decay=1e-4, jitter=False, elastic=False,
                                       dice=True, weight_map=False, budget=120.0,
                                       steps_per_epoch=50, num_classes=2, in_channels=1)
    assert ISBI_UNET_GPU == dataclasses.replace(ISBI_UNET, crop=256, batch_size=16,
                                                base_channels=32, budget=480.0)
    parameters = count_parameters(ISBI_UNET.model())
    assert parameters == count_parameters(unet(num_classes=2, in_channels=1, base_channels=16))
    assert round(parameters / 1e6, 2) == 1.94  # as the benchmark's docstring says


def test_benchmark_and_chapter_run_the_same_recipe():
    benchmark = load_benchmark()
    assert benchmark.recipe_for("ce+dice", ISBI_UNET.budget) == ISBI_UNET
    assert benchmark.recipe_for("jitter", 60.0) == dataclasses.replace(ISBI_UNET, jitter=True,
                                                                      budget=60.0)
    assert benchmark.recipe_for("ce", 60.0) == dataclasses.replace(ISBI_UNET, dice=False,
                                                                  budget=60.0)
    assert benchmark.recipe_for("weights", 9.0).weight_map
    assert benchmark.recipe_for("elastic", 9.0).elastic
    assert tuple(benchmark.VARIANTS) == ("ce+dice", "ce", "weights", "elastic", "jitter")
    with pytest.raises(ValueError, match="name must be one of"):
        benchmark.recipe_for("mixup", 60.0)
    # the chapter picks the same objects by profile and builds everything through them
    notebook = json.loads((REPO / "book" / "08_unet.ipynb").read_text())
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"]
                     if cell["cell_type"] == "code")
    assert "recipe = rt.pick(cpu=ISBI_UNET, gpu=ISBI_UNET_GPU)" in code
    for call in ("recipe.normalization(", "recipe.train_loader(", "recipe.test_loader(",
                 "recipe.train(", "recipe.evaluate("):
        assert call in code
    for recomposed in ("unet(num_classes", "AdamW(", "one_cycle_in_time(", "DiceCELoss(",
                       "SymmetryAverage(net)", "v2.RandomCrop("):
        assert recomposed not in code


# -- the parts ------------------------------------------------------------------------


def test_normalization_uses_the_training_pixels(pairs):
    train_pairs, _ = pairs
    normalize = ISBI_UNET.normalization(train_pairs)
    pixels = torch.cat([image.flatten() for image, _ in train_pairs]).double()
    assert normalize.mean == pytest.approx([pixels.mean().item()], rel=1e-4)
    assert normalize.std == pytest.approx([pixels.std().item()], rel=1e-4)
    with pytest.raises(ValueError, match="train_pairs is empty"):
        ISBI_UNET.normalization([])


def test_augmentation_crops_flips_rotates_and_jitters():
    image = torch.arange(48 * 48, dtype=torch.float32).reshape(1, 48, 48) / 48**2
    mask = (image[0] * 2).long()
    identity = v2.Normalize([0.0], [1.0])
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        crop, crop_mask = TINY.augmentation(identity)(image, mask)
        assert crop.shape == (1, 32, 32) and crop_mask.shape == (32, 32)
        # without jitter, image and mask move together: the mask is still the image's half
        assert torch.equal(crop_mask, (crop[0] * 2).long())
        # the direction in which the values grow fastest tells the orientation
        rows, cols = crop[0, 1, 0] - crop[0, 0, 0], crop[0, 0, 1] - crop[0, 0, 0]
        seen.add((round(rows.item() * 48**2), round(cols.item() * 48**2)))
    assert seen == {(48, 1), (48, -1), (-48, 1), (-48, -1), (1, 48), (1, -48), (-1, 48),
                    (-1, -48)}  # all eight orientations
    names = [type(t).__name__ for t in TINY.augmentation(identity).pipeline.transforms]
    assert names == ["RandomCrop", "RandomHorizontalFlip", "RandomChoice", "Normalize"]
    jitter = dataclasses.replace(TINY, jitter=True).augmentation(identity)
    assert [type(t).__name__ for t in jitter.pipeline.transforms][3:] == ["ColorJitter",
                                                                         "Normalize"]


def test_loaders_model_optimizer_and_loss(pairs):
    train_pairs, test_pairs = pairs
    normalize = TINY.normalization(train_pairs)
    loader = TINY.train_loader(train_pairs, normalize)
    assert len(loader) == TINY.steps_per_epoch
    images, masks = next(iter(loader))
    assert images.shape == (2, 1, 32, 32) and masks.shape == (2, 32, 32)
    test_loader = TINY.test_loader(test_pairs, normalize)
    image, mask = next(iter(test_loader))
    assert torch.equal(image[0], normalize(test_pairs[0][0])) and torch.equal(mask[0],
                                                                              test_pairs[0][1])
    seed_everything(3)
    model = TINY.model()
    seed_everything(3)
    reference = unet(num_classes=2, in_channels=1, base_channels=4)
    assert isinstance(model, UNet)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 reference.state_dict().values(), strict=True))
    seed_everything(3)
    bilinear = dataclasses.replace(TINY, bilinear=True).model()
    seed_everything(3)
    reference = unet(num_classes=2, in_channels=1, base_channels=4, bilinear=True)
    assert all(torch.equal(a, b) for a, b in zip(bilinear.state_dict().values(),
                                                 reference.state_dict().values(), strict=True))
    assert count_parameters(bilinear) < count_parameters(model)  # no 2 x 2 up-convolutions
    optimizer = ISBI_UNET.optimizer(model.parameters())
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["lr"] == 3e-3 and optimizer.defaults["weight_decay"] == 1e-4
    assert isinstance(ISBI_UNET.loss(), DiceCELoss)


@pytest.mark.parametrize(("field", "value", "error"), [
    ("crop", 0, ValueError), ("crop", 1.5, TypeError), ("batch_size", True, TypeError),
    ("num_classes", 1, ValueError), ("lr", 0.0, ValueError), ("lr", "3e-3", TypeError),
    ("weight_decay", -1e-4, ValueError), ("budget", float("inf"), ValueError),
    ("jitter", 1, TypeError), ("steps_per_epoch", 0, ValueError),
    ("elastic", "yes", TypeError), ("dice", 0, TypeError), ("weight_map", None, TypeError),
    ("bilinear", "no", TypeError),
])
def test_bad_fields_are_refused(field, value, error):
    with pytest.raises(error, match=f"{field} must be"):
        dataclasses.replace(ISBI_UNET, **{field: value})


def test_the_recipe_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ISBI_UNET.crop = 256


# -- training and evaluation ----------------------------------------------------------


def test_train_composes_the_recipe_as_before(monkeypatch, pairs):
    """Seed, then the weights, then fit with AdamW, the clock's one cycle, Dice + CE, the budget
    and the seed again: what chapter 8 and the benchmark each wrote out before."""
    captured = {}

    def fake_fit(model, loader, **kwargs):
        captured.update(model=model, loader=loader, **kwargs)
        return "history"

    monkeypatch.setattr(recipes, "fit", fake_fit)
    loader = TINY.train_loader(*pairs[:1], v2.Normalize([0.5], [0.2]))
    torch.manual_seed(99)
    net, history = TINY.train(loader, seed=7, amp=True, device="cpu")
    seed_everything(7)
    reference = unet(num_classes=2, in_channels=1, base_channels=4)
    assert history == "history" and captured["model"] is net and captured["loader"] is loader
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 reference.state_dict().values(), strict=True))
    assert first_kernel(net).is_contiguous(memory_format=torch.channels_last)
    assert captured["seed"] == 7 and captured["amp"] is True and captured["device"] == "cpu"
    assert captured["time_budget"] == TINY.budget and captured["num_classes"] == 2
    assert isinstance(captured["loss_fn"], DiceCELoss) and captured["progress"] is False
    optimizer = captured["optimizer"](net.parameters())
    assert (optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (3e-3, 1e-4)
    scheduler = captured["lr_scheduler"](optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.04 * 3e-3, rel=0.05)  # warming up
    TINY.train(loader, seed=7, amp=None)
    assert captured["amp"] is None
    assert not first_kernel(captured["model"]).is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="seed must be"):
        TINY.train(loader, seed=-1)
    with pytest.raises(TypeError, match="amp must be True, False or None"):
        TINY.train(loader, seed=0, amp="bf16")


def test_train_and_evaluate_a_few_steps(pairs):
    train_pairs, test_pairs = pairs
    normalize = TINY.normalization(train_pairs)
    net, history = TINY.train(TINY.train_loader(train_pairs, normalize), seed=0, amp=False,
                              device="cpu")
    assert history.step[-1] >= 1 and history.stop_reason == "time_budget"
    assert sum(history.seconds) < TINY.budget + 5
    test_loader = TINY.test_loader(test_pairs, normalize)
    results = TINY.evaluate(net, test_loader, device="cpu")
    assert list(results) == list(recipes.EVALUATIONS) == ["one pass", "8 rotations/flips"]
    for method, model in zip(recipes.EVALUATIONS, (net, SymmetryAverage(net)), strict=True):
        expected = evaluate(model, test_loader, num_classes=2)
        assert results[method]["seconds"] > 0
        pixel_metrics = {k: v for k, v in results[method].items()
                         if k != "seconds" and k not in ISBI_SCORES}
        assert pixel_metrics == expected


# --- Chapter 9's DeepLab recipe ----------------------------------------------------------


def test_deeplab_recipe_networks():
    from segtutor.recipes import DEEPLAB_SHAPES, DEEPLAB_SHAPES_GPU, DEEPLAB_VARIANTS

    counts = {}
    for variant, (stride, head) in DEEPLAB_VARIANTS.items():
        net = DEEPLAB_SHAPES.model(variant)
        counts[variant] = sum(p.numel() for p in net.parameters())
        assert net.output_stride == stride
        logits = net.train()(torch.randn(2, 3, 40, 44))
        assert logits.shape == (2, 4, 40, 44)
        pooling = [m for m in net.modules() if type(m).__name__ == "ASPPPooling"]
        assert bool(pooling) == (head == "aspp+pooling")
    # the output-stride networks are the same network (same weights), only strides differ
    assert counts["os32"] == counts["os16"] == counts["os8"]
    assert DEEPLAB_SHAPES.rates_at(8) == (2, 4, 6)
    assert DEEPLAB_SHAPES.rates_at(16) == (1, 2, 3) and DEEPLAB_SHAPES.rates_at(32) == (1, 1, 2)
    assert DEEPLAB_SHAPES_GPU.rates_at(8) == (4, 8, 12)
    with pytest.raises(ValueError, match="variant must be one of"):
        DEEPLAB_SHAPES.model("os4")


def test_deeplab_recipe_trains_and_scores():
    import dataclasses

    from segtutor.recipes import DEEPLAB_SHAPES

    recipe = dataclasses.replace(DEEPLAB_SHAPES, image_size=32, steps=3, batch_size=2,
                                 val_images=4, width=4, fc_channels=8)
    net, history, seconds = recipe.train("os16", seed=0, device="cpu")
    assert history.step[-1] == 3 and seconds > 0
    val = recipe.val_set()
    images = torch.stack([i for i, _ in val])
    masks = torch.stack([m for _, m in val])
    scores = recipe.evaluate(net, images, masks)
    assert set(scores) == {"miou", "trimap_iou", "boundary_iou"}
    assert all(0 <= v <= 1 for v in scores.values())
    again, _, _ = recipe.train("os16", seed=0, device="cpu")
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)  # a seed fixes weights and data order
    with pytest.raises(ValueError, match="steps must be a positive int"):
        dataclasses.replace(DEEPLAB_SHAPES, steps=0)


# --- Chapter 6's FCN recipe -------------------------------------------------------------

#: An FCN recipe small enough to train for a few steps in a test.
TINY_FCN = dataclasses.replace(recipes.FCN_SHAPES, image_size=32, steps=3, batch_size=2,
                               val_images=4, width=4, fc_channels=8)


def test_fcn_recipe_networks():
    from segtutor.models.fcn import FCN
    from segtutor.recipes import FCN_SHAPES, FCN_SHAPES_GPU, FCN_VARIANTS

    assert FCN_VARIANTS == {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}
    learnable = {}
    for variant, stride in FCN_VARIANTS.items():
        net = FCN_SHAPES.model(variant)
        assert isinstance(net, FCN) and net.upscore.factor == stride
        assert len(net.skips) == {32: 0, 16: 1, 8: 2}[stride]
        # batch norm after every one of VGG16's 13 convolutions; fc6/fc7 as wide as asked
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.backbone) == 13
        assert net.head.fc6.out_channels == net.head.fc7.out_channels == FCN_SHAPES.fc_channels
        assert net.head.drop6.p == net.head.drop7.p == FCN_SHAPES.dropout
        upsamplings = [net.upscore, *net.upscore2.values()]
        assert not any(m.weight.requires_grad for m in upsamplings)  # frozen by default
        logits = net.train()(torch.randn(2, 3, 40, 44))
        assert logits.shape == (2, 4, 40, 44)
        learnable[variant] = count_parameters(net, trainable_only=True)
    # a skip adds only its 1x1 score layer: pool4 has 8 x width channels, pool3 4 x width
    classes, width = 4, FCN_SHAPES.width
    assert learnable["fcn16s"] - learnable["fcn32s"] == 8 * width * classes + classes
    assert learnable["fcn8s"] - learnable["fcn16s"] == 4 * width * classes + classes
    trainable = dataclasses.replace(FCN_SHAPES, freeze_upsampling=False).model("fcn8s")
    assert all(m.weight.requires_grad for m in [trainable.upscore, *trainable.upscore2.values()])
    assert FCN_SHAPES.train_set().size == (96, 96) and len(FCN_SHAPES.train_set()) == 240 * 8
    assert FCN_SHAPES_GPU.image_size == 192 and FCN_SHAPES_GPU.steps == 3000
    with pytest.raises(ValueError, match="variant must be one of"):
        FCN_SHAPES.model("fcn4s")


def test_fcn_recipe_trains_and_scores():
    net, history, seconds = TINY_FCN.train("fcn16s", seed=0, device="cpu")
    assert history.step[-1] == 3 and seconds > 0
    val = TINY_FCN.val_set()
    images = torch.stack([i for i, _ in val])
    masks = torch.stack([m for _, m in val])
    scores = TINY_FCN.evaluate(net, images, masks)
    assert set(scores) == {"pixel_accuracy", "miou", "trimap_iou", "boundary_iou"}
    assert all(0 <= v <= 1 for v in scores.values())
    expected = evaluate(net, [(images, masks)], num_classes=4)  # the training loop's metrics
    assert scores["pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"])
    assert scores["miou"] == pytest.approx(expected["mean_iou"])
    again, _, _ = TINY_FCN.train("fcn16s", seed=0, device="cpu")
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)  # a seed fixes weights and data order


@pytest.mark.parametrize("field, value, error", [
    ("steps", 0, ValueError), ("width", 8.0, TypeError), ("dropout", 1.5, ValueError),
    ("freeze_upsampling", 1, TypeError), ("lr", 0.0, ValueError), ("band", 0, ValueError),
])
def test_fcn_recipe_refuses_bad_fields(field, value, error):
    with pytest.raises(error, match=field):
        dataclasses.replace(recipes.FCN_SHAPES, **{field: value})


def test_fcn_benchmark_results_are_the_recipes():
    from segtutor.viz.source import benchmark_results

    spec = importlib.util.spec_from_file_location("fcn_shapes", REPO / "benchmarks" / "fcn_shapes.py")
    benchmark = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = benchmark
    spec.loader.exec_module(benchmark)
    assert benchmark.FCN_SHAPES is recipes.FCN_SHAPES
    results = benchmark_results("fcn_shapes.csv")
    assert any(line.startswith("command: python benchmarks/fcn_shapes.py")
               for line in results.comments)
    for variant, stride in recipes.FCN_VARIANTS.items():
        runs = results.where(variant=variant)
        assert sorted(int(r["seed"]) for r in runs) == [0, 1, 2]
        assert {int(r["output_stride"]) for r in runs} == {stride}
        assert {int(r["parameters"]) for r in runs} == {
            count_parameters(recipes.FCN_SHAPES.model(variant))}
    # the chapter reads this file rather than retyping its numbers
    notebook = json.loads((REPO / "book" / "06_fcn.ipynb").read_text())
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"]
                     if cell["cell_type"] == "code")
    assert 'benchmark_results("fcn_shapes.csv")' in code


# --- Chapter 7's SegNet recipe ----------------------------------------------------------

#: A SegNet recipe small enough to train for a few steps in a test.
TINY_SEGNET = dataclasses.replace(recipes.SEGNET_SHAPES, image_size=32, steps=3, batch_size=2,
                                  val_images=4, width=4)


def test_segnet_recipe_networks():
    from segtutor.models.segnet import SEGNET_UPSAMPLINGS, SegNet
    from segtutor.recipes import SEGNET_SHAPES, SEGNET_SHAPES_GPU

    counts = {}
    for upsampling in SEGNET_UPSAMPLINGS:
        net = SEGNET_SHAPES.model(upsampling)
        assert isinstance(net, SegNet) and net.upsampling == upsampling
        assert net.encoder[0].out_channels == SEGNET_SHAPES.width
        assert net.train()(torch.randn(2, 3, 40, 44)).shape == (2, 4, 40, 44)
        counts[upsampling] = count_parameters(net)
    # interpolation learns nothing more than unpooling; FCN's skips add their 1x1 layers
    assert counts["indices"] == counts["nearest"] == counts["bilinear"] < counts["skip"]
    assert SEGNET_SHAPES.train_set().size == (64, 64) and len(SEGNET_SHAPES.train_set()) == 240 * 8
    assert SEGNET_SHAPES_GPU.image_size == 192 and SEGNET_SHAPES_GPU.steps == 3000
    with pytest.raises(ValueError, match="upsampling must be one of"):
        SEGNET_SHAPES.model("deconvolution")


def test_segnet_recipe_trains_and_scores_as_chapter_6():
    net, history, seconds = TINY_SEGNET.train("indices", seed=0, device="cpu")
    assert history.step[-1] == 3 and seconds > 0
    val = TINY_SEGNET.val_set()
    images = torch.stack([i for i, _ in val])
    masks = torch.stack([m for _, m in val])
    scores = TINY_SEGNET.evaluate(net, images, masks)
    assert set(scores) == {"pixel_accuracy", "miou", "trimap_iou", "boundary_iou"}
    expected = evaluate(net, [(images, masks)], num_classes=4)  # the training loop's metrics
    assert scores["miou"] == pytest.approx(expected["mean_iou"])
    again, _, _ = TINY_SEGNET.train("indices", seed=0, device="cpu")
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)  # a seed fixes weights and data order


@pytest.mark.parametrize("field, value, error", [
    ("steps", 0, ValueError), ("width", 8.0, TypeError), ("lr", -1.0, ValueError),
    ("band", 0, ValueError),
])
def test_segnet_recipe_refuses_bad_fields(field, value, error):
    with pytest.raises(error, match=field):
        dataclasses.replace(recipes.SEGNET_SHAPES, **{field: value})


def test_segnet_benchmark_results_are_the_recipes():
    from segtutor.models.segnet import SEGNET_UPSAMPLINGS
    from segtutor.viz.source import benchmark_results

    spec = importlib.util.spec_from_file_location("segnet_decoders",
                                                  REPO / "benchmarks" / "segnet_decoders.py")
    benchmark = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = benchmark
    spec.loader.exec_module(benchmark)
    assert benchmark.SEGNET_SHAPES is recipes.SEGNET_SHAPES
    results = benchmark_results("segnet_decoders.csv")
    assert any(line.startswith("command: python benchmarks/segnet_decoders.py")
               for line in results.comments)
    longer = benchmark_results("segnet_decoders_960.csv")  # the same sweep, 4x the steps
    assert any(line.startswith("command: python benchmarks/segnet_decoders.py --steps 960")
               for line in longer.comments)
    image = torch.zeros(3, 64, 64)
    for upsampling in SEGNET_UPSAMPLINGS:
        net = recipes.SEGNET_SHAPES.model(upsampling).eval()
        for table in (results, longer):
            runs = table.where(variant=upsampling)
            assert sorted(int(r["seed"]) for r in runs) == [0, 1, 2]
            assert {int(r["parameters"]) for r in runs} == {count_parameters(net)}
            assert {int(r["from_encoder_bytes"]) for r in runs} == {
                benchmark.from_encoder_bytes(net, image)}
    notebook = json.loads((REPO / "book" / "07_segnet.ipynb").read_text())
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"]
                     if cell["cell_type"] == "code")
    assert 'benchmark_results("segnet_decoders.csv")' in code
    assert 'benchmark_results("segnet_decoders_960.csv")' in code


# -- Chapter 11: Mask R-CNN on ShapesInstances -------------------------------------------

#: A Mask R-CNN recipe small enough to train for a few steps in a test.
TINY_MASK_RCNN = dataclasses.replace(
    recipes.MASK_RCNN_SHAPES, image_size=32, widths=(4, 4, 8), representation_size=16,
    mask_channels=4, anchor_sizes=(8, 16), batch_size=2, steps=4, test_images=3, workers=0)


def test_mask_rcnn_recipe_data_network_and_variants():
    from segtutor.data import ShapesInstances
    from segtutor.models.mask_rcnn import SoftmaxMaskRoIHeads
    from segtutor.models.roi_pooling import MultiScaleRoIPooling
    from segtutor.recipes import MASK_RCNN_SHAPES, MASK_RCNN_SHAPES_GPU, MASK_RCNN_VARIANTS

    recipe = MASK_RCNN_SHAPES
    train, test = recipe.train_set(), recipe.test_data()
    assert isinstance(train, ShapesInstances) and len(train) == recipe.steps * recipe.batch_size
    assert len(test) == recipe.test_images and (train.seed, test.seed) == (0, 1)
    assert train.size == test.size == (recipe.image_size, recipe.image_size)
    assert not torch.equal(train[0][0], test[0][0])
    assert MASK_RCNN_VARIANTS == {"align": ("align", "sigmoid"), "pool": ("pool", "sigmoid"),
                                  "softmax": ("align", "softmax")}
    counts = set()
    for roi_pooler, mask_loss in MASK_RCNN_VARIANTS.values():
        net = recipe.model(roi_pooler=roi_pooler, mask_loss=mask_loss)
        pooler = net.roi_heads.box_roi_pool
        assert isinstance(pooler, MultiScaleRoIPooling) and pooler.kind == roi_pooler
        assert isinstance(net.roi_heads, SoftmaxMaskRoIHeads) == (mask_loss == "softmax")
        assert net.transform.min_size == (recipe.image_size,)
        counts.add(count_parameters(net))
    assert len(counts) == 1  # the variants differ in operators and losses, not in weights
    assert count_parameters(recipe.model()) < 1.5e6  # CPU-sized
    assert MASK_RCNN_SHAPES_GPU.image_size > recipe.image_size
    assert MASK_RCNN_SHAPES_GPU.steps > recipe.steps


def test_mask_rcnn_recipe_trains_and_scores():
    net, history, seconds = TINY_MASK_RCNN.train(seed=0, device="cpu")
    assert history.step == [TINY_MASK_RCNN.steps] and len(history.step_loss) == 4
    assert all(torch.isfinite(torch.tensor(history.step_loss)))
    assert seconds > 0 and history.seconds == [seconds] and net.training
    scores = TINY_MASK_RCNN.evaluate(net)
    assert set(scores) == {"mask_AP", "mask_AP50", "mask_AP75", "box_AP", "box_AP50",
                           "box_AP75", "seconds"}
    assert all(0 <= scores[key] <= 1 for key in scores if key != "seconds")
    again, again_history, _ = TINY_MASK_RCNN.train(seed=0, device="cpu")
    assert again_history.step_loss == history.step_loss  # a seed fixes weights, data, sampling
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    predictions, targets = TINY_MASK_RCNN.predict(net, TINY_MASK_RCNN.test_data())
    assert len(predictions) == len(targets) == 3
    assert all(p["masks"].shape[1:] == (1, 32, 32) for p in predictions)


def test_mask_rcnn_recipe_training_lowers_the_loss():
    recipe = dataclasses.replace(TINY_MASK_RCNN, steps=30, lr=1e-2)
    _, history, _ = recipe.train(seed=1, roi_pooler="pool", mask_loss="softmax", device="cpu")
    first, last = history.step_loss[:5], history.step_loss[-5:]
    assert sum(last) < sum(first)


@pytest.mark.parametrize(("field", "value", "error"), [
    ("steps", 0, ValueError), ("batch_size", 1.0, TypeError), ("lr", 0.0, ValueError),
    ("workers", -1, ValueError), ("roi_pooler", "max", ValueError),
    ("mask_loss", "dice", ValueError), ("touch", 2.0, ValueError), ("widths", (), ValueError),
    ("image_size", 8, ValueError),
])
def test_mask_rcnn_recipe_refuses_bad_fields(field, value, error):
    # the data set checks image_size (as its "size")
    with pytest.raises(error, match=field.removeprefix("image_")):
        dataclasses.replace(TINY_MASK_RCNN, **{field: value})


def test_elastic_dice_and_weight_map_variants(pairs):
    """The ablation's fields: the paper's elastic deformation inside a wider crop, cross-entropy
    alone, and the weight map computed once per image and moved with its crop."""
    identity = v2.Normalize([0.0], [1.0])
    elastic = dataclasses.replace(TINY, elastic=True).augmentation(identity)
    names = [type(t).__name__ for t in elastic.pipeline.transforms]
    assert names == ["RandomCrop", "RandomHorizontalFlip", "RandomChoice", "ElasticGrid",
                     "CenterCrop", "Normalize"]
    assert elastic.pipeline.transforms[0].size == (TINY.crop + 2 * recipes.ELASTIC_MARGIN,) * 2
    image, mask = pairs[0][0]
    crop, crop_mask = elastic(image, mask)
    assert crop.shape == (1, TINY.crop, TINY.crop) and crop_mask.shape == (TINY.crop, TINY.crop)
    assert isinstance(dataclasses.replace(TINY, dice=False).loss(), CrossEntropyLoss)
    weighted = dataclasses.replace(TINY, weight_map=True)
    images, masks, weights = next(iter(weighted.train_loader(pairs[0], identity)))
    assert weights.shape == masks.shape and weights.dtype == torch.float32
    full = set()  # crops and turns move values, never make new ones
    for _, whole in pairs[0]:
        full |= set(unet_weight_map(whole, num_classes=2, foreground=1, w0=10.0,
                                    sigma=5.0).unique().tolist())
    assert set(weights.unique().tolist()) <= full
    loss = weighted.loss()(torch.randn(2, 2, TINY.crop, TINY.crop), masks, weights)
    assert torch.isfinite(loss)


def test_evaluate_adds_the_isbi_scores(pairs):
    train_pairs, test_pairs = pairs
    normalize = TINY.normalization(train_pairs)
    seed_everything(0)
    net = TINY.model()
    results = TINY.evaluate(net, TINY.test_loader(test_pairs, normalize), device="cpu")
    for method in ("one pass", "8 rotations/flips"):
        labels = [predict(net if method == "one pass" else SymmetryAverage(net), normalize(image))
                  for image, _ in test_pairs]
        expected = isbi_scores(labels[0], test_pairs[0][1])
        for key in ISBI_SCORES:
            assert results[method][key] == pytest.approx(expected[key])
        reference = evaluate(net if method == "one pass" else SymmetryAverage(net),
                             TINY.test_loader(test_pairs, normalize), num_classes=2)
        assert results[method]["mean_iou"] == pytest.approx(reference["mean_iou"])
