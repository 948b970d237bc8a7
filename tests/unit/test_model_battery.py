"""One battery for every registered semantic model, plus the contract helpers behind it.

The model contract (CONTRIBUTING.md): ``model(x)`` with ``x: float[N, C_in, H, W]`` returns logits
``float[N, num_classes, H, W]`` for any ``H, W >= model.min_size``, and bad input raises a
``ValueError`` that names the offending value. Each test runs on every name in
``segtutor.models.list_models(task="semantic")``, built with the model's registered
``tiny_kwargs`` so the battery stays fast on a CPU; a new model is covered as soon as it is
registered.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from segtutor import models
from segtutor.models import _contract

SEMANTIC = models.list_models(task="semantic")
NUM_CLASSES = 3


def build(name: str, in_channels: int = 3, **overrides) -> nn.Module:
    """The registered model ``name`` in its tiny configuration."""
    kwargs = {**models.model_info(name).tiny_kwargs, **overrides}
    return models.create(name, num_classes=NUM_CLASSES, in_channels=in_channels, **kwargs)


def test_the_battery_covers_the_books_networks():
    assert {"segnet"} <= set(SEMANTIC)
    assert "vgg16" not in SEMANTIC and "patch_classifier" not in SEMANTIC


@pytest.mark.parametrize("name", SEMANTIC)
def test_declares_an_int_min_size(name):
    model = build(name)
    assert isinstance(model.min_size, int) and model.min_size >= 1


@pytest.mark.parametrize("name", SEMANTIC)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_backward_at_an_odd_size(name, in_channels):
    torch.manual_seed(0)
    model = build(name, in_channels=in_channels).train()
    x = torch.randn(2, in_channels, 97, 131)
    logits = model(x)
    assert logits.shape == (2, NUM_CLASSES, 97, 131)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    target = torch.randint(0, NUM_CLASSES, (2, 97, 131))
    F.cross_entropy(logits, target).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"no gradient reached {missing}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)


@pytest.mark.parametrize("name", SEMANTIC)
def test_documented_minimum_size_works(name):
    model = build(name).eval()
    size = model.min_size
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, NUM_CLASSES, size, size)
        assert model(torch.randn(1, 3, size, size + 7)).shape == (1, NUM_CLASSES, size, size + 7)


@pytest.mark.parametrize("name", SEMANTIC)
def test_below_minimum_size_raises(name):
    model = build(name).eval()
    small = model.min_size - 1
    if small < 1:
        pytest.skip(f"{name} accepts any size down to 1x1")
    with pytest.raises(ValueError, match=rf"\b{small}x{model.min_size + 5}\b"):
        model(torch.randn(1, 3, small, model.min_size + 5))
    with pytest.raises(ValueError, match=rf"\b{model.min_size + 5}x{small}\b"):
        model(torch.randn(1, 3, model.min_size + 5, small))


@pytest.mark.parametrize("name", SEMANTIC)
def test_wrong_channel_count_raises(name):
    model = build(name, in_channels=3).eval()
    size = max(model.min_size, 32)
    with pytest.raises(ValueError, match=r"in_channels=3, got a batch with 5 channels"):
        model(torch.randn(1, 5, size, size))


@pytest.mark.parametrize("name", SEMANTIC)
def test_not_a_batch_raises(name):
    model = build(name).eval()
    size = max(model.min_size, 32)
    with pytest.raises(ValueError, match=r"4-D batch \[N, C, H, W\], got shape \(3, "):
        model(torch.randn(3, size, size))


@pytest.mark.slow
@pytest.mark.parametrize("name", SEMANTIC)
def test_torch_compile_matches_eager(name):
    torch.manual_seed(0)
    model = build(name).eval()
    x = torch.randn(1, 3, 97, 131)
    compiled = torch.compile(model, backend="eager", fullgraph=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", SEMANTIC)
def test_full_size_forward_at_an_odd_size(name):
    model = models.create(name, num_classes=NUM_CLASSES, in_channels=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 97, 131)).shape == (1, NUM_CLASSES, 97, 131)


# --- the contract helpers ---------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 80), width=st.integers(1, 80), multiple=st.integers(1, 40))
def test_pad_to_multiple_is_minimal_centred_and_cropped_back(height, width, multiple):
    x = torch.randn(1, 2, height, width)
    padded, pads = _contract.pad_to_multiple(x, multiple)
    h, w = padded.shape[-2:]
    assert h % multiple == 0 and w % multiple == 0
    assert height <= h < height + multiple and width <= w < width + multiple
    assert abs(pads.left - pads.right) <= 1 and abs(pads.top - pads.bottom) <= 1
    torch.testing.assert_close(padded, F.pad(x, tuple(pads)))
    assert torch.equal(_contract.crop_padding(padded, pads), x)


def test_pad_modes_follow_f_pad():
    x = torch.randn(1, 1, 20, 21)
    for mode in _contract.PAD_MODES:
        padded, pads = _contract.pad_to_multiple(x, 8, mode=mode)
        assert pads == _contract.Padding(1, 2, 2, 2)
        torch.testing.assert_close(padded, F.pad(x, (1, 2, 2, 2), mode=mode))


def test_pad_and_crop_runs_a_network_at_the_padded_size():
    seen = []

    def network(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape[-2:]))
        return t * 2

    x = torch.randn(1, 1, 33, 64)
    torch.testing.assert_close(_contract.pad_and_crop(network, x, 32), x * 2)
    assert seen == [(64, 64)]


def test_contract_helper_errors():
    with pytest.raises(ValueError, match="mode must be one of .*got 'circle'"):
        _contract.pad_to_multiple(torch.zeros(1, 1, 4, 4), 2, mode="circle")
    with pytest.raises(ValueError, match=r"multiple must be a positive int, got 0"):
        _contract.pad_to_multiple(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(TypeError, match=r"expects a torch.Tensor \[N, C, H, W\], got ndarray"):
        import numpy as np
        _contract.check_input(np.zeros((1, 3, 8, 8)), 3, 1, "net")
    with pytest.raises(TypeError, match="net expects a floating-point tensor, got dtype torch.int64"):
        _contract.check_input(torch.zeros(1, 3, 8, 8, dtype=torch.long), 3, 1, "net")
    with pytest.raises(TypeError, match=r"flag must be a positive int, got True \(bool\)"):
        _contract.check_positive_int(True, "flag")


# --- the registry's metadata --------------------------------------------------------------


def test_registry_task_filter_and_metadata():
    assert set(models.list_models(task="semantic")) | set(
        models.list_models(task="classification")) | set(
        models.list_models(task="instance")) == set(models.list_models())
    info = models.model_info("segnet")
    assert info.name == "segnet" and info.builder is models.segnet
    with pytest.raises(TypeError):
        info.tiny_kwargs["width"] = 64  # read-only, so no test can change it for the others


def test_every_builder_is_keyword_only_and_importable_from_models():
    for name in models.list_models():
        builder = models.model_info(name).builder
        assert getattr(models, name) is builder, f"segtutor.models.{name} is not the builder"
        kinds = {p.kind for p in inspect.signature(builder).parameters.values()}
        assert kinds <= {inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD}, name
        assert name in models.__all__


def test_register_refuses_positional_builders():
    def _positional(num_classes: int) -> nn.Module:
        return nn.Conv2d(3, num_classes, 1)

    with pytest.raises(TypeError, match=r"builder '_positional' takes \['num_classes'\] by position"):
        models.register(_positional)
    assert "_positional" not in models.list_models()


def test_registry_errors():
    with pytest.raises(ValueError, match=r"task must be one of \('semantic', .*got 'depth'"):
        models.register(task="depth")
    with pytest.raises(TypeError, match="tiny_kwargs must be a mapping of keyword arguments, got 8"):
        models.register(tiny_kwargs=8)
    with pytest.raises(ValueError, match=r"task must be None or one of .*got 'depth'"):
        models.list_models(task="depth")
    with pytest.raises(ValueError, match="unknown model 'nope'; registered models"):
        models.model_info("nope")


def test_register_with_metadata_and_bare():
    @models.register(task="classification", tiny_kwargs={"width": 2})
    def _battery_test_only(*, num_classes: int, width: int = 8) -> nn.Module:
        return nn.Linear(width, num_classes)

    @models.register
    def _battery_test_only_bare(*, num_classes: int) -> nn.Module:
        return nn.Conv2d(3, num_classes, 1)

    try:
        assert models.model_info("_battery_test_only").task == "classification"
        assert models.create("_battery_test_only", num_classes=2, width=2).in_features == 2
        assert "_battery_test_only_bare" in models.list_models(task="semantic")
    finally:
        models.registry._BUILDERS.pop("_battery_test_only")
        models.registry._BUILDERS.pop("_battery_test_only_bare")
