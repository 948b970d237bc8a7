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
from test_deeplab import randomise_batch_norm  # tests/unit is on sys.path (rootdir)
from torch import nn

from segtutor.models import pspnet
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
