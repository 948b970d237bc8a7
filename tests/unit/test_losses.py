"""Tests for segtutor.losses against F.cross_entropy and a direct NumPy Dice computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segtutor.losses import (
    CrossEntropyLoss,
    DiceCELoss,
    DiceLoss,
    cross_entropy,
    soft_dice_loss,
)

IGNORE = 255


def make_batch(n=2, c=4, h=5, w=6, ignore_fraction=0.2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    target = torch.randint(0, c, (n, h, w), generator=gen)
    target[torch.rand(n, h, w, generator=gen) < ignore_fraction] = IGNORE
    return logits, target


def test_cross_entropy_equals_torch():
    logits, target = make_batch()
    expected = F.cross_entropy(logits, target, ignore_index=IGNORE)
    torch.testing.assert_close(cross_entropy(logits, target), expected)


def test_class_weights_equal_torch():
    logits, target = make_batch()
    weights = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    expected = F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE)
    torch.testing.assert_close(cross_entropy(logits, target, class_weights=weights), expected)
    torch.testing.assert_close(CrossEntropyLoss(weights)(logits, target), expected)


def test_pixel_weights_of_one_change_nothing():
    logits, target = make_batch()
    weights = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    ones = torch.ones(target.shape, dtype=torch.float64)
    expected = F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE)
    got = cross_entropy(logits, target, class_weights=weights, pixel_weights=ones)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("use_class_weights", [False, True])
def test_pixel_weights_match_explicit_loop(use_class_weights):
    logits, target = make_batch(seed=3)
    gen = torch.Generator().manual_seed(1)
    pixel_w = torch.rand(target.shape, generator=gen, dtype=torch.float64) * 5
    class_w = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    got = cross_entropy(logits, target, pixel_weights=pixel_w,
                        class_weights=class_w if use_class_weights else None)
    # sum over counted pixels of w(x) * cw[y] * -log softmax(x)[y], over the sum of cw[y]
    z, y, wmap = logits.numpy(), target.numpy(), pixel_w.numpy()
    cw = class_w.numpy() if use_class_weights else np.ones(4)
    total, norm = 0.0, 0.0
    for n in range(y.shape[0]):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                label = y[n, i, j]
                if label == IGNORE:
                    continue
                scores = z[n, :, i, j]
                log_p = scores[label] - math.log(np.exp(scores).sum())
                total += wmap[n, i, j] * cw[label] * -log_p
                norm += cw[label]
    assert float(got) == pytest.approx(total / norm, rel=1e-10)


def test_all_ignored_gives_zero_with_zero_gradient():
    logits, target = make_batch()
    target[:] = IGNORE
    assert math.isnan(float(F.cross_entropy(logits, target, ignore_index=IGNORE)))
    logits.requires_grad_(True)
    loss = cross_entropy(logits, target)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(logits.grad) == 0


def test_cross_entropy_gradient_skips_ignored_pixels():
    logits, target = make_batch()
    logits.requires_grad_(True)
    cross_entropy(logits, target, pixel_weights=torch.ones(target.shape, dtype=torch.float64)
                  ).backward()
    ignored = (target == IGNORE).unsqueeze(1).expand_as(logits)
    assert torch.count_nonzero(logits.grad[ignored]) == 0
    assert torch.count_nonzero(logits.grad[~ignored]) == int((~ignored).sum())


# -- soft Dice --------------------------------------------------------------------------


def numpy_soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float) -> float:
    z, y = logits.numpy(), target.numpy()
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    scores = []
    for c in range(z.shape[1]):
        inter = pred_sum = truth_sum = 0.0
        for n, i, j in np.ndindex(*y.shape):
            if y[n, i, j] == IGNORE:
                continue
            g = 1.0 if y[n, i, j] == c else 0.0
            inter += probs[n, c, i, j] * g
            pred_sum += probs[n, c, i, j]
            truth_sum += g
        scores.append((2 * inter + smooth) / (pred_sum + truth_sum + smooth))
    return 1.0 - float(np.mean(scores))


@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_soft_dice_matches_direct_computation(smooth):
    logits, target = make_batch(seed=5)
    got = soft_dice_loss(logits, target, smooth=smooth)
    assert float(got) == pytest.approx(numpy_soft_dice_loss(logits, target, smooth), rel=1e-9)
    assert float(DiceLoss(smooth=smooth)(logits, target)) == pytest.approx(float(got))


def test_soft_dice_perfect_prediction_is_zero_and_ignored_pixels_do_not_matter():
    _, target = make_batch(seed=2)
    clean = torch.where(target == IGNORE, 0, target)
    logits = F.one_hot(clean, 4).movedim(-1, 1).double() * 100.0
    assert float(soft_dice_loss(logits, target)) == pytest.approx(0.0, abs=1e-12)
    scrambled = torch.where((target == IGNORE).unsqueeze(1), torch.randn_like(logits), logits)
    assert float(soft_dice_loss(scrambled, target)) == float(soft_dice_loss(logits, target))


def test_soft_dice_gradcheck():
    logits, target = make_batch(n=1, c=3, h=3, w=4)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: soft_dice_loss(z, target), (logits,))


def test_dice_ce_is_the_weighted_sum():
    logits, target = make_batch(seed=7)
    pixel_w = torch.full(target.shape, 2.0, dtype=torch.float64)
    combined = DiceCELoss(ce_weight=0.3, dice_weight=0.7)(logits, target, pixel_w)
    expected = 0.3 * 2.0 * F.cross_entropy(logits, target, ignore_index=IGNORE) + 0.7 * (
        numpy_soft_dice_loss(logits, target, smooth=1.0))
    assert float(combined) == pytest.approx(float(expected), rel=1e-9)


def test_gradients_flow_through_every_loss():
    logits, target = make_batch()
    for loss_fn in (CrossEntropyLoss(), DiceLoss(), DiceCELoss()):
        z = logits.clone().requires_grad_(True)
        loss_fn(z, target).backward()
        assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [cross_entropy, soft_dice_loss])
def test_shape_mismatch(loss):
    logits, target = make_batch()
    with pytest.raises(ValueError, match=r"target of shape \(2, 5, 5\) does not match logits "
                       r"of shape \(2, 4, 5, 6\): expected target of shape \(2, 5, 6\)"):
        loss(logits, target[..., :5])


@pytest.mark.parametrize("loss", [cross_entropy, soft_dice_loss])
def test_invalid_label(loss):
    logits, target = make_batch()
    target[0, 0, 0] = 9
    with pytest.raises(ValueError, match=r"target contains labels \[9\]; valid labels are "
                       r"\[0, 4\) or ignore_index=255"):
        loss(logits, target)


def test_bad_dtypes():
    logits, target = make_batch()
    with pytest.raises(TypeError, match="target must be an int64 tensor.*torch.uint8"):
        cross_entropy(logits, target.to(torch.uint8))
    with pytest.raises(TypeError, match="logits must be a floating-point tensor"):
        soft_dice_loss(target, target)


def test_bad_weights():
    logits, target = make_batch()
    with pytest.raises(ValueError, match=r"class_weights must have shape \(4,\).*got \(3,\)"):
        cross_entropy(logits, target, class_weights=torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"pixel_weights must have the target's shape "
                       r"\(2, 5, 6\), got \(2, 5\)"):
        cross_entropy(logits, target, pixel_weights=torch.ones(2, 5))
    with pytest.raises(ValueError, match="pixel_weights must be >= 0, got a minimum of -1.0"):
        cross_entropy(logits, target, pixel_weights=-torch.ones(target.shape))
    with pytest.raises(TypeError, match="pixel_weights must be a floating-point tensor"):
        cross_entropy(logits, target, pixel_weights=torch.ones(target.shape, dtype=torch.long))
    with pytest.raises(ValueError, match="smooth must be a finite number >= 0, got -1"):
        soft_dice_loss(logits, target, smooth=-1)
    with pytest.raises(ValueError, match="ce_weight and dice_weight must be >= 0 and not both 0"):
        DiceCELoss(ce_weight=0, dice_weight=0)


def test_class_weights_refused_early():
    logits, target = make_batch()
    with pytest.raises(ValueError, match="class_weights must be >= 0, got a minimum of -1.0"):
        cross_entropy(logits, target, class_weights=-torch.ones(4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"class_weights must be a torch.Tensor, got \[1, 2\]"):
        cross_entropy(logits, target, class_weights=[1, 2])
    with pytest.raises(TypeError, match="class_weights must be a floating-point tensor"):
        CrossEntropyLoss(torch.ones(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"class_weights must be 1-D \[C\]"):
        CrossEntropyLoss(torch.ones(2, 2))


@pytest.mark.parametrize(("keyword", "value", "error", "message"), [
    ("smooth", "1", TypeError, "smooth must be a finite number >= 0, got '1' \\(str\\)"),
    ("smooth", float("nan"), ValueError, "smooth must be a finite number >= 0, got nan"),
    ("ignore_index", 2.5, TypeError, "ignore_index must be None or an int, got 2.5"),
])
def test_bad_dice_arguments(keyword, value, error, message):
    logits, target = make_batch()
    with pytest.raises(error, match=message):
        soft_dice_loss(logits, target, **{keyword: value})
    with pytest.raises(error, match=message):
        DiceLoss(**{keyword: value})


@pytest.mark.parametrize(("keywords", "error", "message"), [
    (dict(ce_weight=-1), ValueError, "ce_weight must be a finite number >= 0, got -1"),
    (dict(dice_weight=True), TypeError, "dice_weight must be a finite number >= 0, got True"),
    (dict(ce_weight="1"), TypeError, "ce_weight must be a finite number >= 0"),
    (dict(ignore_index=1.0), TypeError, "ignore_index must be None or an int, got 1.0"),
])
def test_bad_dice_ce_arguments(keywords, error, message):
    with pytest.raises(error, match=message):
        DiceCELoss(**keywords)


def test_logits_and_target_types():
    logits, target = make_batch()
    with pytest.raises(TypeError, match=r"logits must be a torch.Tensor \[N, C, H, W\], got "
                       r"\[0.5\] \(list\)"):
        cross_entropy([0.5], target)
    with pytest.raises(TypeError, match=r"target must be a torch.Tensor \[N, H, W\] of class "
                       r"labels, got \[0\] \(list\)"):
        soft_dice_loss(logits, [0])


def test_ignore_index_none_counts_every_pixel():
    logits, target = make_batch(ignore_fraction=0.0)
    expected = F.cross_entropy(logits, target)
    torch.testing.assert_close(cross_entropy(logits, target, ignore_index=None), expected)
    torch.testing.assert_close(CrossEntropyLoss(ignore_index=None)(logits, target), expected)
    # 255 is then an invalid label, not an ignored one
    target[0, 0, 0] = IGNORE
    with pytest.raises(ValueError, match=r"target contains labels \[255\]; valid labels are "
                       r"\[0, 4\)$"):
        soft_dice_loss(logits, target, ignore_index=None)
    clean = make_batch(ignore_fraction=0.0)[1]
    assert float(soft_dice_loss(logits, clean, ignore_index=None)) == pytest.approx(
        float(soft_dice_loss(logits, clean)))


def test_default_ignore_index_is_the_shared_one():
    import inspect

    from segtutor._checks import IGNORE_INDEX

    for function in (cross_entropy, soft_dice_loss, CrossEntropyLoss, DiceLoss, DiceCELoss):
        default = inspect.signature(function).parameters["ignore_index"].default
        assert default == IGNORE_INDEX == 255
