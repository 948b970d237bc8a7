"""Chapter 12's comparison: ComparisonRecipe (networks, costs checked against hand counts),
benchmarks/compare_all.py and its committed results, benchmarks/gpu_throughput.py on the CPU."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from segtutor import models, recipes
from segtutor.bench import count_parameters, saved_for_backward_bytes
from segtutor.recipes import COMPARISON, COMPARISON_GPU, COMPARISON_LABELS, COMPARISON_NETWORKS
from segtutor.train import evaluate
from segtutor.viz.source import benchmark_results

REPO = Path(__file__).resolve().parents[2]

#: The comparison, small enough to train and cost in a few seconds.
TINY = dataclasses.replace(COMPARISON, image_size=32, steps=3, batch_size=2, val_images=4,
                           cost_sizes=(32, 64))


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def conv_macs(net: nn.Module, image: torch.Tensor) -> int:
    """Multiply-adds of every convolution and linear layer, from the output shapes (hooks)."""
    total = 0

    def count(module, _inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * module.in_channels // module.groups * k
        elif isinstance(module, nn.ConvTranspose2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += _inputs[0].numel() * module.out_channels // module.groups * k
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(count) for m in net.modules()]
    with torch.no_grad():
        net(image)
    for handle in handles:
        handle.remove()
    return total


def test_every_semantic_network_of_the_book_is_compared():
    semantic = set(models.list_models("semantic"))
    assert set(COMPARISON_NETWORKS) <= semantic and set(COMPARISON_LABELS) == set(COMPARISON_NETWORKS)
    # the registry's variants of one network are represented once: deeper backbones
    # (ResNet-101), the other FCN strides, DeepLab v2 (v1 with ASPP) and the paper's U-Net
    left_out = semantic - set(COMPARISON_NETWORKS)
    assert left_out == {"deeplab_v2", "deeplabv3_resnet101", "fcn16s", "fcn32s",
                        "pspnet_resnet101", "unet_paper"}
    for name in COMPARISON_NETWORKS:
        net = COMPARISON.model(name)
        assert net.train()(torch.randn(2, 3, 64, 64)).shape == (2, 4, 64, 64)
    with pytest.raises(ValueError, match="network must be one of"):
        COMPARISON.model("fcn32s")
    assert COMPARISON.train_set().size == (64, 64) and len(COMPARISON.train_set()) == 240 * 8
    assert COMPARISON_GPU.image_size == 192 and COMPARISON_GPU.steps == 3000


@pytest.mark.parametrize("name", ["tiny_fcn", "unet", "fcn8s", "deeplab_v1"])
def test_costs_count_every_convolution(name):
    costs = TINY.costs(name, min_run_time=0)
    net = TINY.model(name)
    assert costs["parameters"] == count_parameters(net)
    for size in TINY.cost_sizes:
        image = torch.randn(1, 3, size, size)
        # FlopCounterMode's count is the hand count of the convolutions (and nothing else)
        assert costs[f"gmacs_{size}"] * 1e9 == pytest.approx(conv_macs(net.eval(), image), rel=1e-9)
        assert costs[f"latency_ms_{size}"] > 0
        two = image.expand(2, -1, -1, -1).contiguous()
        assert costs[f"activation_mib_{size}"] == pytest.approx(
            saved_for_backward_bytes(net.train(), two) / 2 / 2**20)
    if name in ("tiny_fcn", "unet"):  # every map's side proportional to the image's
        assert costs["gmacs_64"] == pytest.approx(4 * costs["gmacs_32"], rel=1e-9)


def test_the_recipe_trains_and_scores_as_chapter_6():
    net, history, seconds = TINY.train("tiny_fcn", seed=0, device="cpu")
    assert history.step[-1] == 3 and seconds > 0
    images, masks = TINY.val_tensors()
    scores = TINY.evaluate(net, images, masks)
    assert scores["miou"] == pytest.approx(evaluate(net, [(images, masks)], num_classes=4)["mean_iou"])
    again, _, _ = TINY.train("tiny_fcn", seed=0, device="cpu")
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("field, value, error", [
    ("steps", 0, ValueError), ("lr", -1.0, ValueError), ("cost_sizes", (), TypeError),
    ("cost_sizes", [256], TypeError), ("cost_sizes", (0,), ValueError),
    ("cost_sizes", (256.0,), TypeError),
])
def test_bad_fields_are_refused(field, value, error):
    with pytest.raises(error, match="cost_sizes|steps|lr"):
        dataclasses.replace(COMPARISON, **{field: value})


def test_compare_all_rows_and_committed_results(monkeypatch, tmp_path):
    compare_all = load_script("compare_all")
    assert compare_all.COMPARISON is recipes.COMPARISON
    monkeypatch.setattr(compare_all, "COMPARISON", dataclasses.replace(TINY, cost_sizes=(256, 512)))
    out = tmp_path / "rows.csv"
    compare_all.main(["--networks", "tiny_fcn", "--seeds", "0", "--out", str(out)])
    text = out.read_text()
    assert "# command: python benchmarks/compare_all.py --networks tiny_fcn" in text
    header = next(line for line in text.splitlines() if not line.startswith("#"))
    assert tuple(header.split(",")) == compare_all.FIELDS

    results = benchmark_results("compare_all.csv")
    assert any(line.startswith("command: python benchmarks/compare_all.py")
               for line in results.comments)
    for name in COMPARISON_NETWORKS:
        runs = results.where(variant=name)
        assert sorted(int(r["seed"]) for r in runs) == [0, 1, 2], name
        assert {int(r["parameters"]) for r in runs} == {count_parameters(COMPARISON.model(name))}
    notebook = json.loads((REPO / "book" / "12_comparison.ipynb").read_text())
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"]
                     if cell["cell_type"] == "code")
    assert 'benchmark_results("compare_all.csv")' in code


def test_gpu_throughput_runs_on_the_cpu(tmp_path):
    throughput = load_script("gpu_throughput")
    rows = throughput.main(["--device", "cpu", "--models", "fcn8s", "--size", "32",
                            "--batch-size", "2", "--warmup", "1", "--steps", "1",
                            "--out", str(tmp_path / "t.csv")])
    assert [row["mode"] for row in rows] == list(throughput.MODES)
    assert rows[0]["speedup_over_fp32"] == 1.0 and all(row["images_per_second"] > 0 for row in rows)
    assert "# device: cpu" in (tmp_path / "t.csv").read_text()
    refused = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_throughput.py"),
                              "--steps", "0", "--out", "-"], capture_output=True, text=True,
                             cwd=REPO)
    assert refused.returncode == 2 and "--steps must be >= 1, got 0" in refused.stderr
