"""segtutor.utils, segtutor.bench, show_source and the model registry."""

import random

import numpy as np
import pytest
import torch
from torch import nn

import segtutor
from segtutor import bench, models, utils
from segtutor.viz import show_source


def test_version_and_lazy_submodules():
    assert isinstance(segtutor.__version__, str) and segtutor.__version__.count(".") == 2
    assert segtutor.utils is utils
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        segtutor.nope  # noqa: B018


def test_device_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.delenv("SEGTUTOR_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if utils._mps_available() else "cpu")
    assert utils.device().type == expected
    assert utils.device("cpu") == torch.device("cpu")


def test_device_rejects_unknown_or_unavailable():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        utils.device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            utils.device("cuda")


def test_seed_everything_reproduces_all_generators():
    utils.seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(3))
    utils.seed_everything(7)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        utils.seed_everything(-1)


def test_profile_and_runtime(monkeypatch):
    monkeypatch.setenv("SEGTUTOR_PROFILE", "gpu")
    assert utils.runtime_profile(torch.device("cpu")) == "gpu"
    monkeypatch.setenv("SEGTUTOR_PROFILE", "huge")
    with pytest.raises(ValueError, match="SEGTUTOR_PROFILE='huge'"):
        utils.runtime_profile(torch.device("cpu"))
    monkeypatch.delenv("SEGTUTOR_PROFILE")
    rt = utils.start_chapter(seed=3, prefer="cpu", quiet=True)
    assert rt.profile == "cpu" and rt.pick(cpu=1, gpu=2) == 1 and not rt.amp


def test_start_chapter_prints_versions(capsys):
    utils.start_chapter(seed=0, prefer="cpu")
    out = capsys.readouterr().out
    assert "device: cpu" in out and f"torch {torch.__version__}" in out


def test_show_source_returns_real_source():
    code = show_source(bench.count_parameters)
    assert "def count_parameters" in code.data


@pytest.mark.parametrize("name, new_home", [("show_source", "segtutor.viz"),
                                            ("median_seconds", "segtutor.bench"),
                                            ("count_parameters", "segtutor.bench")])
def test_moved_names_still_work_with_a_deprecation_warning(name, new_home):
    import importlib

    with pytest.warns(DeprecationWarning, match=f"segtutor.utils.{name} moved to {new_home}"):
        old = getattr(utils, name)
    assert old is getattr(importlib.import_module(new_home), name)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        utils.nope  # noqa: B018


def test_eval_mode_restores_each_module_own_mode():
    model = nn.Sequential(nn.BatchNorm2d(2), nn.Dropout(), nn.Sequential(nn.Dropout()))
    model[2].eval()  # a frozen part that evaluates during training
    with utils.eval_mode(model) as inside:
        assert inside is model
        assert not any(module.training for module in model.modules())
    assert [module.training for module in model.modules()] == [True, True, True, False, False]
    with pytest.raises(RuntimeError), utils.eval_mode(model):
        raise RuntimeError("restored on errors too")
    assert model.training and model[0].training and not model[2].training
    with pytest.raises(TypeError, match="model must be an nn.Module, got int"):
        with utils.eval_mode(3):
            pass


def test_count_parameters_matches_torch():
    layer = nn.Conv2d(3, 8, 3)
    assert bench.count_parameters(layer) == 3 * 8 * 9 + 8
    layer.bias.requires_grad_(False)
    assert bench.count_parameters(layer, trainable_only=True) == 3 * 8 * 9


def test_registry_create_and_errors():
    @models.register
    def _test_only_identity(*, num_classes: int) -> nn.Module:
        return nn.Conv2d(3, num_classes, 1)

    try:
        assert "_test_only_identity" in models.list_models()
        assert models.create("_test_only_identity", num_classes=2).out_channels == 2
        with pytest.raises(ValueError, match="unknown model 'nope'; registered models"):
            models.create("nope")
    finally:
        models.registry._BUILDERS.pop("_test_only_identity")


def test_median_seconds_measures_a_sleep():
    import time

    seconds = bench.median_seconds(lambda: time.sleep(0.01), min_run_time=0.05)
    assert 0.009 <= seconds < 1.0  # a lower bound only: the machine may be busy
    with pytest.raises(TypeError, match="fn must be callable"):
        bench.median_seconds(3)
    with pytest.raises(ValueError, match="min_run_time must be a finite number >= 0"):
        bench.median_seconds(lambda: None, min_run_time=-1)
