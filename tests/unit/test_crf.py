"""The dense CRF: against a direct NumPy transcription of the mean-field update, by hand,
the window method against the exact one restricted to its window, and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segtutor.ops import DenseCRF, dense_crf
from segtutor.ops.crf import default_window

pytestmark = pytest.mark.usefixtures("one_thread")

#: reference keyword -> dense_crf keyword
NAMES = {"iterations": "iterations", "w_app": "w_appearance", "theta_alpha": "theta_alpha",
         "theta_beta": "theta_beta", "w_smooth": "w_smoothness", "theta_gamma": "theta_gamma"}
DEFAULTS = {"iterations": 5, "w_app": 10.0, "theta_alpha": 80.0, "theta_beta": 13.0,
            "w_smooth": 3.0, "theta_gamma": 3.0}
SETTINGS = [
    {},  # the defaults: saturated on a random image
    {"w_app": 2.0, "theta_alpha": 2.0, "theta_beta": 40.0, "w_smooth": 1.0,
     "theta_gamma": 1.5},
    {"w_app": 0.5, "theta_alpha": 5.0, "theta_beta": 100.0, "w_smooth": 0.0},
    {"w_app": 0.0, "w_smooth": 0.7, "theta_gamma": 0.8},
]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference_crf(logits: np.ndarray, image: np.ndarray, *, window: int | None = None,
                  **options: float) -> np.ndarray:
    """The update of the issue, in float64 over all pairs (broadcasting), one image at a time.

    ``window``: keep only the pairs with ``|dy| <= window // 2`` and ``|dx| <= window // 2``
    (the exact method restricted to the window).
    """
    o = {**DEFAULTS, **options}
    logits, image = np.asarray(logits, np.float64), np.asarray(image, np.float64)
    n, c, h, w = logits.shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    p = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)  # [P, 2]
    distance2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    result = []
    for b in range(n):
        colour = image[b].reshape(image.shape[1], -1).T * 255  # [P, K], 0-255 units
        colour2 = ((colour[:, None] - colour[None]) ** 2).sum(-1)
        k_app = np.exp(-distance2 / (2 * o["theta_alpha"] ** 2)
                       - colour2 / (2 * o["theta_beta"] ** 2))
        k_smooth = np.exp(-distance2 / (2 * o["theta_gamma"] ** 2))
        kernels = [(o["w_app"], k_app), (o["w_smooth"], k_smooth)]
        for _, k in kernels:
            np.fill_diagonal(k, 0.0)  # j != i
            if window is not None:
                inside = (np.abs(p[:, None] - p[None]) <= window // 2).all(-1)
                k *= inside
        unary = logits[b].reshape(c, -1).T  # [P, C]
        q = softmax(unary)
        for _ in range(o["iterations"]):
            pairwise = np.zeros_like(q)
            for weight, k in kernels:
                message = k @ q  # msg(i, l) = sum_j k(i, j) Q(j, l)
                for label in range(c):
                    others = [l2 for l2 in range(c) if l2 != label]
                    pairwise[:, label] += weight * message[:, others].sum(1)
            q = softmax(unary - pairwise)
        result.append(q.T.reshape(c, h, w))
    return np.stack(result)


def crf_options(options: dict) -> dict:
    return {NAMES[key]: value for key, value in options.items()}


def tiny_case(dtype=torch.float64, channels: int = 3, seed: int = 0, size=(5, 6),
              batch: int = 2, classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(batch, classes, *size, generator=g, dtype=torch.float64)
    image = torch.rand(batch, channels, *size, generator=g, dtype=torch.float64)
    return logits.to(dtype), image.to(dtype)


def synthetic(size: int, classes: int = 5, seed: int = 0):
    """A disc of one colour (class 3) on a background of another (class 0), noisy image,
    logits that favour the true class by 2 with N(0, 1.2) noise on every class."""
    g = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = (size - 1) / 2
    inside = (rows - centre) ** 2 + (cols - 0.8 * centre) ** 2 < (0.3 * size) ** 2
    truth = torch.where(inside, 3, 0)
    colours = torch.where(inside, torch.tensor([0.85, 0.25, 0.2])[:, None, None],
                          torch.tensor([0.2, 0.35, 0.75])[:, None, None])
    image = (colours + 0.05 * torch.randn(3, size, size, generator=g)).clamp(0, 1)
    one_hot = torch.nn.functional.one_hot(truth, classes).permute(2, 0, 1).float()
    logits = 2 * one_hot + 1.2 * torch.randn(classes, size, size, generator=g)
    return logits, image, truth


# --- against the NumPy reference ---------------------------------------------------------

@pytest.mark.parametrize("options", SETTINGS)
@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_exact_matches_the_numpy_reference(options: dict, iterations: int) -> None:
    options = {**options, "iterations": iterations}
    logits, image = tiny_case()
    expected = reference_crf(logits.numpy(), image.numpy(), **options)
    for chunk_size in (None, 1, 7, 30):  # one row per block, ragged blocks, one block
        q = dense_crf(logits, image, chunk_size=chunk_size, **crf_options(options))
        np.testing.assert_allclose(q.numpy(), expected, rtol=0, atol=1e-6)
    q32 = dense_crf(logits.float(), image.float(), **crf_options(options))
    assert q32.dtype == torch.float32
    np.testing.assert_allclose(q32.numpy(), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("options", SETTINGS[:2])
def test_a_grey_image_is_compared_in_its_one_channel(options: dict) -> None:
    logits, image = tiny_case(channels=1, seed=1)
    expected = reference_crf(logits.numpy(), image.numpy(), **options)
    for method in ("exact", "window"):
        window = {"window": 11} if method == "window" else {}  # 11 covers all of 5 x 6
        q = dense_crf(logits, image, method=method, **window, **crf_options(options))
        np.testing.assert_allclose(q.numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("options", SETTINGS)
@pytest.mark.parametrize("window", [1, 3, 5])
def test_window_equals_the_exact_method_restricted_to_the_window(options: dict,
                                                                 window: int) -> None:
    options = {**options, "iterations": 3}
    logits, image = tiny_case(seed=2, size=(6, 7))
    expected = reference_crf(logits.numpy(), image.numpy(), window=window, **options)
    q = dense_crf(logits, image, method="window", window=window, **crf_options(options))
    np.testing.assert_allclose(q.numpy(), expected, rtol=0, atol=1e-6)
    q32 = dense_crf(logits.float(), image.float(), method="window", window=window,
                    **crf_options(options))
    np.testing.assert_allclose(q32.numpy(), expected, rtol=0, atol=1e-4)


def test_a_window_covering_the_image_is_the_exact_method() -> None:
    logits, image = tiny_case(seed=3, size=(6, 7))  # 2 * 7 - 1 = 13
    options = crf_options(SETTINGS[1])
    exact = dense_crf(logits, image, **options)
    torch.testing.assert_close(dense_crf(logits, image, method="window", window=13,
                                         **options), exact, rtol=0, atol=1e-12)
    truncated = dense_crf(logits, image, method="window", window=11, **options)
    assert (truncated - exact).abs().max() > 1e-9  # one offset fewer changes something


def test_window_one_has_no_neighbours() -> None:
    logits, image = tiny_case()
    torch.testing.assert_close(dense_crf(logits, image, method="window", window=1),
                               torch.softmax(logits, dim=1))


def test_the_default_window() -> None:
    assert default_window(80.0, 3.0) == 19  # the smoothness kernel to 3 standard deviations
    assert default_window(80.0, 0.5) == 5
    assert default_window(2.0, 30.0) == 13  # the narrower kernel decides
    assert default_window(80.0, 20.0) == 31  # capped
    logits, image = tiny_case(size=(12, 11))
    torch.testing.assert_close(dense_crf(logits, image, method="window"),
                               dense_crf(logits, image, method="window", window=19))


# --- by hand -----------------------------------------------------------------------------

def test_one_iteration_by_hand() -> None:
    """Two pixels side by side, two classes: every sum written out."""
    logits = torch.tensor([[[1.0, -0.5]], [[0.0, 0.5]]], dtype=torch.float64)  # [2, 1, 2]
    image = torch.tensor([[[0.2, 0.4]], [[0.5, 0.5]], [[0.9, 0.8]]], dtype=torch.float64)
    w_app, ta, tb, w_smooth, tg = 4.0, 2.0, 30.0, 1.5, 1.0
    colour2 = (0.2 * 255 - 0.4 * 255) ** 2 + 0 + (0.9 * 255 - 0.8 * 255) ** 2
    k_app = math.exp(-1 / (2 * ta**2) - colour2 / (2 * tb**2))  # |p_i - p_j|^2 = 1
    k_smooth = math.exp(-1 / (2 * tg**2))
    k = w_app * k_app + w_smooth * k_smooth  # both pixels have one neighbour, the other

    def soft(a: float, b: float) -> tuple[float, float]:
        return math.exp(a) / (math.exp(a) + math.exp(b)), math.exp(b) / (math.exp(a) + math.exp(b))

    q_left, q_right = soft(1.0, 0.0), soft(-0.5, 0.5)  # (class 0, class 1) per pixel
    # pairwise(i, l) = k * sum_{l' != l} Q(j, l') = k * Q(j, other label)
    left = soft(1.0 - k * q_right[1], 0.0 - k * q_right[0])
    right = soft(-0.5 - k * q_left[1], 0.5 - k * q_left[0])
    expected = torch.tensor([[[left[0], right[0]]], [[left[1], right[1]]]],
                            dtype=torch.float64)
    for method in ("exact", "window"):
        q = dense_crf(logits, image, iterations=1, w_appearance=w_app, theta_alpha=ta,
                      theta_beta=tb, w_smoothness=w_smooth, theta_gamma=tg, method=method)
        torch.testing.assert_close(q, expected, rtol=0, atol=1e-12)


# --- properties --------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["exact", "window"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_q_is_a_distribution_with_the_shape_of_logits(method: str, dtype: torch.dtype) -> None:
    logits, image = tiny_case(dtype, size=(7, 9), classes=4)
    q = dense_crf(logits, image, method=method)
    assert q.shape == logits.shape and q.dtype == dtype
    assert bool((q >= 0).all())
    torch.testing.assert_close(q.sum(1), torch.ones(2, 7, 9, dtype=dtype))
    single = dense_crf(logits[1], image[1], method=method)
    assert single.shape == logits[1].shape
    torch.testing.assert_close(single, dense_crf(logits[1:], image[1:], method=method)[0])
    torch.testing.assert_close(single, q[1])  # the images of a batch are independent


@pytest.mark.parametrize("method", ["exact", "window"])
def test_non_contiguous_inputs(method: str) -> None:
    logits, image = tiny_case(size=(6, 5))
    expected = dense_crf(logits.transpose(2, 3).contiguous(),
                         image.transpose(2, 3).contiguous(), method=method)
    q = dense_crf(logits.transpose(2, 3), image.transpose(2, 3), method=method)
    torch.testing.assert_close(q, expected)


@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 3, 0, 5), (1, 0, 4, 5)])
def test_empty_inputs(shape: tuple[int, ...]) -> None:
    logits = torch.zeros(shape)
    image = torch.zeros(shape[0], 3, *shape[2:])
    for method in ("exact", "window"):
        assert dense_crf(logits, image, method=method).shape == shape


def test_without_weights_q_is_the_softmax() -> None:
    logits, image = tiny_case()
    q = dense_crf(logits, image, w_appearance=0.0, w_smoothness=0.0)
    torch.testing.assert_close(q, torch.softmax(logits, dim=1))


@pytest.mark.parametrize("method, extra", [("exact", {}), ("exact", {"chunk_size": 7}),
                                           ("window", {"window": 3})])
def test_gradients_reach_logits_and_image(method: str, extra: dict) -> None:
    logits, image = tiny_case(size=(3, 4), batch=1, classes=2)
    image = (0.1 + 0.8 * image).requires_grad_()  # away from the [0, 1] bounds
    logits.requires_grad_()
    options = {"iterations": 2, "w_appearance": 1.0, "theta_alpha": 2.0, "theta_beta": 60.0,
               "w_smoothness": 0.5, "theta_gamma": 1.0, "method": method, **extra}
    assert torch.autograd.gradcheck(lambda lg, im: dense_crf(lg, im, **options),
                                    (logits, image))


@pytest.mark.parametrize("method", ["exact", "window"])
def test_no_grad_and_inference_mode(method: str) -> None:
    logits, image = tiny_case(torch.float32)
    logits.requires_grad_()
    expected = dense_crf(logits, image, method=method, chunk_size=None)
    assert expected.requires_grad
    with torch.no_grad():
        q = dense_crf(logits, image, method=method)
    assert not q.requires_grad
    torch.testing.assert_close(q, expected.detach())
    with torch.inference_mode():
        q = DenseCRF(method=method)(logits, image)
    assert q.is_inference()
    torch.testing.assert_close(q, expected.detach())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["exact", "window"])
def test_cuda_matches_the_cpu(method: str) -> None:
    logits, image = tiny_case(torch.float64, size=(9, 11))
    q = dense_crf(logits.cuda(), image.cuda(), method=method, chunk_size=None)
    assert q.device.type == "cuda"
    torch.testing.assert_close(q.cpu(), dense_crf(logits, image, method=method))


# --- on a synthetic image ----------------------------------------------------------------

def test_the_crf_recovers_the_regions_and_the_window_agrees_with_the_exact_method() -> None:
    logits, image, truth = synthetic(32)
    unary_accuracy = (logits.argmax(0) == truth).float().mean().item()
    exact = dense_crf(logits, image)
    window = dense_crf(logits, image, method="window")
    exact_accuracy = (exact.argmax(0) == truth).float().mean().item()
    window_accuracy = (window.argmax(0) == truth).float().mean().item()
    assert unary_accuracy < 0.7  # the noise flips the argmax of many pixels
    assert exact_accuracy > 0.99 and window_accuracy > 0.99
    assert (window.argmax(0) == exact.argmax(0)).float().mean().item() > 0.99
    assert (window - exact).abs().max().item() < 1e-3  # window 19 on a 32 x 32 image
    small = dense_crf(logits, image, method="window", window=3)
    assert (small - exact).abs().max().item() > (window - exact).abs().max().item()


def test_only_the_exact_method_reaches_past_a_wrong_patch_larger_than_the_window() -> None:
    """A 12 x 12 patch whose logits favour a wrong class by 4: the exact method's
    appearance kernel (theta_alpha = 80) hears the same-coloured pixels far outside the
    patch and corrects it; the window of 19 (9 pixels each side) cannot from its centre."""
    logits, image, truth = synthetic(32)
    logits[4, 2:14, 2:14] += 4.0
    patch = torch.zeros(32, 32, dtype=torch.bool)
    patch[2:14, 2:14] = True
    exact = dense_crf(logits, image).argmax(0)
    window = dense_crf(logits, image, method="window").argmax(0)
    assert (logits.argmax(0) == truth)[patch].float().mean() < 0.3
    assert (exact == truth)[patch].float().mean() > 0.95
    assert (window == truth)[patch].float().mean() < 0.6


# --- the module --------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"method": "window", "window": 5, "iterations": 2},
                                     {"theta_beta": 20.0, "chunk_size": 4}])
def test_the_module_equals_the_function(options: dict) -> None:
    logits, image = tiny_case(torch.float32)
    crf = DenseCRF(**options)
    assert list(crf.parameters()) == []
    torch.testing.assert_close(crf(logits, image), dense_crf(logits, image, **options))
    assert "iterations=" in repr(crf)


def test_the_module_composes_with_a_model() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
    crf = DenseCRF(method="window", window=5)
    image = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        q = crf(model(image), image)
    assert q.shape == (2, 4, 8, 8)


# --- bad input ---------------------------------------------------------------------------

GOOD_LOGITS, GOOD_IMAGE = tiny_case(torch.float32)


@pytest.mark.parametrize("logits, image, error, match", [
    ([[1.0]], GOOD_IMAGE, TypeError, "logits must be a torch.Tensor"),
    (GOOD_LOGITS, GOOD_IMAGE.numpy(), TypeError, "image must be a torch.Tensor"),
    (GOOD_LOGITS.long(), GOOD_IMAGE, TypeError, "logits must be a floating-point"),
    (GOOD_LOGITS, (GOOD_IMAGE * 255).to(torch.uint8), TypeError, "image must be a floating"),
    (GOOD_LOGITS, GOOD_IMAGE.double(), TypeError, "dtype of logits"),
    (GOOD_LOGITS[0, 0], GOOD_IMAGE[0], ValueError, "logits must be 3-D or 4-D"),
    (GOOD_LOGITS, GOOD_IMAGE[0], ValueError, "image must be 4-D like logits"),
    (GOOD_LOGITS, GOOD_IMAGE[:1], ValueError, "batch size and height and width"),
    (GOOD_LOGITS, GOOD_IMAGE[..., :4], ValueError, "batch size and height and width"),
    (GOOD_LOGITS, GOOD_IMAGE[:, :2], ValueError, "3 .RGB. or 1 .grey. channels"),
    (GOOD_LOGITS, torch.rand(2, 4, 5, 6), ValueError, "3 .RGB. or 1 .grey. channels"),
    (GOOD_LOGITS, GOOD_IMAGE * 255, ValueError, r"values in \[0, 1\]"),
    (GOOD_LOGITS, GOOD_IMAGE - 0.5, ValueError, r"values in \[0, 1\]"),
    (GOOD_LOGITS, torch.full_like(GOOD_IMAGE, math.nan), ValueError, r"values in \[0, 1\]"),
    (GOOD_LOGITS, GOOD_IMAGE.to("meta"), ValueError, "device of logits"),
])
def test_bad_inputs(logits, image, error, match) -> None:
    with pytest.raises(error, match=match):
        dense_crf(logits, image)


@pytest.mark.parametrize("options, error, match", [
    ({"iterations": 0}, ValueError, "iterations must be a positive int"),
    ({"iterations": 2.0}, TypeError, "iterations must be a positive int"),
    ({"iterations": True}, TypeError, "iterations must be a positive int"),
    ({"theta_alpha": 0.0}, ValueError, "theta_alpha must be a finite number > 0"),
    ({"theta_beta": -13.0}, ValueError, "theta_beta must be a finite number > 0"),
    ({"theta_gamma": math.inf}, ValueError, "theta_gamma must be a finite number > 0"),
    ({"theta_gamma": "3"}, TypeError, "theta_gamma must be"),
    ({"w_appearance": -1.0}, ValueError, "w_appearance must be a finite number >= 0"),
    ({"w_smoothness": math.nan}, ValueError, "w_smoothness must be a finite number >= 0"),
    ({"w_smoothness": None}, TypeError, "w_smoothness must be"),
    ({"method": "permutohedral"}, ValueError, "method must be one of"),
    ({"method": "window", "window": 4}, ValueError, "window must be None or an odd"),
    ({"method": "window", "window": 0}, ValueError, "window must be None or"),
    ({"method": "window", "window": 5.0}, TypeError, "window must be None or"),
    ({"window": 5}, ValueError, "window is used by method='window' only"),
    ({"method": "window", "chunk_size": 8}, ValueError, "chunk_size is used by method='exact'"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be None or a positive int"),
    ({"chunk_size": 2.5}, TypeError, "chunk_size must be None or a positive int"),
])
def test_bad_options(options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        dense_crf(GOOD_LOGITS, GOOD_IMAGE, **options)
    with pytest.raises(error, match=match):
        DenseCRF(**options)  # checked when the module is built


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        dense_crf(GOOD_LOGITS, GOOD_IMAGE, 5)  # type: ignore[misc]
    with pytest.raises(TypeError):
        DenseCRF(5)  # type: ignore[misc]
