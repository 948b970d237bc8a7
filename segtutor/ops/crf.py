"""The fully connected CRF of Krähenbühl & Koltun (2011), by mean-field inference.

Krähenbühl and Koltun, "Efficient Inference in Fully Connected CRFs with Gaussian Edge
Potentials" (NeurIPS 2011, https://arxiv.org/abs/1210.5644) refine a network's per-pixel
scores with a CRF in which *every* pair of pixels is connected. The energy of a labelling
is the unary term ``-logits`` plus, for every pair ``i != j`` that takes different labels,
the Potts penalty ``w_app * k_app(i, j) + w_smooth * k_smooth(i, j)`` with two Gaussian
kernels over the pixels' positions ``p`` (in pixels) and colours ``I`` (in 0--255 units, the
convention of Krähenbühl's code and pydensecrf):

* the *appearance* (bilateral) kernel
  ``k_app(i, j) = exp(-|p_i - p_j|^2 / 2 theta_alpha^2 - |I_i - I_j|^2 / 2 theta_beta^2)``:
  nearby pixels of similar colour want the same label;
* the *smoothness* kernel ``k_smooth(i, j) = exp(-|p_i - p_j|^2 / 2 theta_gamma^2)``:
  removes small isolated regions.

Mean-field inference approximates the CRF's distribution by independent per-pixel
distributions ``Q`` and updates them in turn, exactly as :func:`dense_crf` computes::

    Q = softmax(logits)
    repeat `iterations` times:
        msg_m(i, l)    = sum_{j != i} k_m(i, j) Q(j, l)                  (m = app, smooth)
        pairwise(i, l) = sum_m w_m sum_{l' != l} msg_m(i, l')            (Potts)
        Q              = softmax(logits - pairwise)

The message passing is a filter with a spatially varying kernel over the whole image, and
computing it for all pairs is the expensive part. Two methods are offered:

* ``method="exact"`` sums over all pairs, in blocks of rows so that memory stays bounded;
  its cost grows as ``(H * W)**2``.
* ``method="window"`` truncates both kernels to a ``window x window`` neighbourhood, as the
  ConvCRF of Teichmann and Cipolla ("Convolutional CRFs for Semantic Segmentation", 2018,
  https://arxiv.org/abs/1805.04777) does; its cost grows as ``H * W * window**2``.

Krähenbühl's code and pydensecrf compute the filter approximately with the permutohedral
lattice and (by default) normalise the kernels, so their ``Q`` is close to, not equal to,
this one; the defaults (``w_app=10, theta_alpha=80, theta_beta=13, w_smooth=3,
theta_gamma=3``) are the values commonly used with them (and ConvCRF's defaults).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from .._checks import (
    check_choice,
    check_number,
    check_optional_int,
    check_positive_int,
    check_positive_number,
    check_tensor,
)

__all__ = ["DenseCRF", "dense_crf"]

#: The values of ``method``.
CRF_METHODS = ("exact", "window")
#: Bytes of one block of the exact method's kernel when ``chunk_size`` is ``None``.
CHUNK_BYTES = 8 * 2**20
#: Largest window ``method="window"`` picks by itself (``window=None``).
MAX_AUTO_WINDOW = 31


def _check_options(iterations: object, w_appearance: object, theta_alpha: object,
                   theta_beta: object, w_smoothness: object, theta_gamma: object,
                   method: object, window: object, chunk_size: object) -> dict:
    """The keyword arguments of :func:`dense_crf`, checked, as a dict."""
    options = {
        "iterations": check_positive_int(iterations, "iterations"),
        "w_appearance": check_number(w_appearance, "w_appearance", minimum=0),
        "theta_alpha": check_positive_number(theta_alpha, "theta_alpha"),
        "theta_beta": check_positive_number(theta_beta, "theta_beta"),
        "w_smoothness": check_number(w_smoothness, "w_smoothness", minimum=0),
        "theta_gamma": check_positive_number(theta_gamma, "theta_gamma"),
        "method": check_choice(method, "method", CRF_METHODS),
        "window": _check_window(window),
        "chunk_size": check_optional_int(chunk_size, "chunk_size", minimum=1),
    }
    if method == "exact" and window is not None:
        raise ValueError(f"window is used by method='window' only, got window={window!r} "
                         "with method='exact'")
    if method == "window" and chunk_size is not None:
        raise ValueError(f"chunk_size is used by method='exact' only, got "
                         f"chunk_size={chunk_size!r} with method='window'")
    return options


def _check_window(window: object) -> int | None:
    """``None`` or an odd positive int (a window has a centre pixel)."""
    if window is None:
        return None
    what = "None or an odd positive int"
    if check_optional_int(window, "window", minimum=1) % 2 == 0:
        raise ValueError(f"window must be {what}, got {window!r}")
    return window


def _check_inputs(logits: object, image: object) -> tuple[Tensor, Tensor]:
    """Both inputs as ``[N, C, H, W]`` and ``[N, K, H, W]``, checked against each other."""
    check_tensor(logits, "logits", dims=(3, 4), floating=True, layout="[N, C, H, W]")
    check_tensor(image, "image", dims=(3, 4), floating=True, layout="[N, K, H, W]")
    if image.dtype != logits.dtype:
        raise TypeError(f"image must have the dtype of logits ({logits.dtype}), "
                        f"got dtype {image.dtype}")
    if image.device != logits.device:
        raise ValueError(f"image must be on the device of logits ({logits.device}), "
                         f"got device {image.device}")
    if image.ndim != logits.ndim:
        raise ValueError(f"image must be {logits.ndim}-D like logits (shape "
                         f"{tuple(logits.shape)}), got shape {tuple(image.shape)}")
    batched_logits = logits if logits.ndim == 4 else logits.unsqueeze(0)
    batched_image = image if image.ndim == 4 else image.unsqueeze(0)
    n, _, h, w = batched_logits.shape
    if batched_image.shape[1] not in (1, 3):
        raise ValueError(f"image must have 3 (RGB) or 1 (grey) channels, got shape "
                         f"{tuple(image.shape)}")
    if batched_image.shape[0] != n or batched_image.shape[2:] != (h, w):
        raise ValueError(f"image must have the batch size and height and width of logits "
                         f"(shape {tuple(logits.shape)}), got shape {tuple(image.shape)}")
    if image.numel() and not bool(((image >= 0) & (image <= 1)).all()):
        low, high = image.min().item(), image.max().item()
        raise ValueError(f"image must have values in [0, 1], got values in "
                         f"[{low:g}, {high:g}]")
    return batched_logits, batched_image


def default_window(theta_alpha: float, theta_gamma: float) -> int:
    """The window ``method="window"`` uses when ``window`` is ``None``.

    ``2 * ceil(3 * theta) + 1`` for the narrower of the two kernels -- the smallest odd
    window holding that Gaussian out to three standard deviations, where it has fallen to
    ``exp(-4.5) = 1.1 %`` of its peak -- but at most ``MAX_AUTO_WINDOW`` (31). With
    the defaults (``theta_gamma = 3``) that is 19: the smoothness kernel is kept to
    three standard deviations, and the appearance kernel (``theta_alpha = 80``, whose
    spatial factor is still 0.99 at the window's edge) is cut to that neighbourhood.
    ConvCRF's default ``filter_size=11`` runs on an image downsampled 4 times (its
    ``blur=4``), so it spans about 44 pixels of the original; this module does not
    downsample, and 19 costs 2--2.5 times what 11 does (0.035 s against 0.014 s at
    64 x 64, 0.085 s against 0.034 s at 128 x 128; see :func:`dense_crf`).

    Raises:
        TypeError, ValueError: a theta that is not a positive number.
    """
    theta = min(check_positive_number(theta_alpha, "theta_alpha"),
                check_positive_number(theta_gamma, "theta_gamma"))
    return min(2 * math.ceil(3 * theta) + 1, MAX_AUTO_WINDOW)


def dense_crf(logits: Tensor, image: Tensor, *, iterations: int = 5,
              w_appearance: float = 10.0, theta_alpha: float = 80.0,
              theta_beta: float = 13.0, w_smoothness: float = 3.0, theta_gamma: float = 3.0,
              method: str = "exact", window: int | None = None,
              chunk_size: int | None = None) -> Tensor:
    """Mean-field inference in the fully connected CRF; returns the probabilities ``Q``.

    Computes exactly the update of the module docstring: ``Q = softmax(logits)``, then
    ``iterations`` times ``Q = softmax(logits - pairwise(Q))`` with the Potts pairwise term
    of the appearance and smoothness kernels over all pairs ``j != i`` (``method="exact"``)
    or over the pairs within a ``window x window`` neighbourhood (``method="window"``).
    Everything runs in the inputs' dtype on their device (CPU or CUDA), under autograd
    (gradients reach ``logits`` and ``image``), ``torch.no_grad`` and
    ``torch.inference_mode``.

    **Exact.** The appearance kernel matrix (``H*W x H*W``) is computed in blocks of
    ``chunk_size`` rows from the pixels' features (``torch.cdist`` without its
    matrix-product shortcut, so that the squared distances carry no cancellation error) and
    multiplied with ``Q``; each iteration computes the blocks again, and under autograd the
    backward pass does too (``torch.utils.checkpoint``), so that memory stays bounded there
    as well. The smoothness kernel over all pairs of the pixel grid is the Kronecker
    product of a Gaussian over rows and one over columns, i.e. two small matrix products.
    The diagonal (``j = i``, where both kernels are 1) is subtracted afterwards. Measured
    with :func:`segtutor.bench.median_seconds` on a shared 2-core AMD EPYC (PyTorch 2.14.1,
    2 threads, float32, one image, 21 classes, 5 iterations, the best of three rounds):
    **0.37 s for 64 x 64 and 7.5 s for 128 x 128** (``method="window"`` with its default
    window of 19: 0.035 s and 0.085 s). The cost grows as ``(H*W)**2``, so 256 x 256 would
    take about two minutes: beyond about 128 x 128 use ``method="window"`` (or a GPU).

    **Window.** Both kernels are truncated to the ``window x window`` neighbourhood of each
    pixel (Teichmann & Cipolla's ConvCRF); pixels outside the image contribute nothing.
    The ``window**2 - 1`` kernel values per pixel are computed once; each iteration sums
    ``kernel * shifted Q`` over the offsets. This is the product ConvCRF computes with
    ``unfold``, but on shifted views of ``Q``: ``unfold(Q)`` would hold
    ``C * window**2`` values per pixel (500 MB for 128 x 128 x 21 with a window of 19),
    and here it measured 60--100 times slower. Only the truncation differs from the exact
    method, and with ``window >= 2 * max(H, W) - 1`` nothing is truncated. The wide
    appearance kernel (``theta_alpha = 80``) loses most: on a synthetic 64 x 64 image (a
    disc of one colour on another, colour noise 0.05, 21 classes, logits favouring the true
    class by 2 with N(0, 1.2) noise) a 19 x 19 window keeps 5 %, 9 % and 33 % of the
    appearance kernel's sum over ``j`` at the corner pixel, at pixel (5, 5) and at the
    centre. Where the logits are right on average both methods saturate to the same labels
    (all pixels agree, max ``|delta Q|`` 8e-16; 1e-10 at 128 x 128), but a 24 x 24 patch
    whose logits favour a wrong class by 4 is corrected by the exact method only (pixel
    accuracy over the image 1.000 against 0.810 with the window of 19, 0.806 with 11, 0.867
    with 31).

    Args:
        logits: ``float[C, H, W]`` or ``float[N, C, H, W]``, the unary scores (a network's
            output; ``-logits`` is the unary energy).
        image: ``float[3, H, W]`` or ``float[N, 3, H, W]`` (RGB), or with 1 channel (grey),
            in ``[0, 1]``, the dtype and device of ``logits``, and as many dimensions.
            Colours are compared in 0--255 units.
        iterations: mean-field updates, a positive int.
        w_appearance: weight of the appearance kernel, ``>= 0``.
        theta_alpha: its spatial standard deviation in pixels, ``> 0``.
        theta_beta: its colour standard deviation in 0--255 units, ``> 0``.
        w_smoothness: weight of the smoothness kernel, ``>= 0``.
        theta_gamma: its spatial standard deviation in pixels, ``> 0``.
        method: ``"exact"`` (all pairs) or ``"window"`` (a local window).
        window: ``method="window"`` only: the window's side, an odd positive int; ``None``
            picks ``default_window`` (19 for the defaults).
        chunk_size: ``method="exact"`` only: rows ``i`` of the kernel per block (each block
            is ``N x chunk_size x H*W`` values, and a few temporaries of its size);
            ``None`` picks the most that fit in 8 MiB (``CHUNK_BYTES``; blocks of 64 MiB
            measured slower: 10 s instead of 7.5 s at 128 x 128).

    Returns:
        ``Q``, probabilities with the shape, dtype and device of ``logits``, summing to 1
        over the classes.

    Raises:
        TypeError: a tensor that is not a floating-point tensor, ``image`` of another
            dtype than ``logits``, or an option of the wrong type (``iterations=2.0``).
        ValueError: shapes that disagree, an image with other than 1 or 3 channels or
            values outside ``[0, 1]``, another device, ``iterations < 1``, a
            non-positive theta, a negative weight, an unknown method, an even window,
            or ``window`` / ``chunk_size`` with the other method.
    """
    options = _check_options(iterations, w_appearance, theta_alpha, theta_beta,
                             w_smoothness, theta_gamma, method, window, chunk_size)
    batched_logits, batched_image = _check_inputs(logits, image)
    return _mean_field(batched_logits, batched_image, **options).reshape(logits.shape)


def _mean_field(logits: Tensor, image: Tensor, *, iterations: int, w_appearance: float,
                theta_alpha: float, theta_beta: float, w_smoothness: float,
                theta_gamma: float, method: str, window: int | None,
                chunk_size: int | None) -> Tensor:
    """:func:`dense_crf` on checked ``[N, C, H, W]`` logits and ``[N, K, H, W]`` image."""
    if logits.numel() == 0 or (w_appearance == 0 and w_smoothness == 0):
        return torch.softmax(logits, dim=1)
    colour = image * (255 / theta_beta)  # so that k_app's colour term is exp(-|c_i-c_j|^2/2)
    kernels = (w_appearance, theta_alpha, w_smoothness, theta_gamma)
    if method == "exact":
        messages = _exact_messages(colour, kernels, chunk_size, logits.requires_grad)
    else:
        messages = _window_messages(colour, kernels,
                                    window or default_window(theta_alpha, theta_gamma))
    q = torch.softmax(logits, dim=1)
    for _ in range(iterations):
        message = messages(q)
        pairwise = message.sum(1, keepdim=True) - message  # Potts: the sum over l' != l
        q = torch.softmax(logits - pairwise, dim=1)
    return q


def _exact_messages(colour: Tensor, kernels: tuple[float, float, float, float],
                    chunk_size: int | None, logits_need_grad: bool
                    ) -> Callable[[Tensor], Tensor]:
    """A function ``Q -> sum_m w_m sum_{j != i} k_m(i, j) Q(j)`` over all pairs."""
    w_app, theta_alpha, w_smooth, theta_gamma = kernels
    n, channels, height, width = colour.shape
    pixels = height * width
    rows = torch.arange(height, dtype=colour.dtype, device=colour.device)[:, None]
    cols = torch.arange(width, dtype=colour.dtype, device=colour.device)[:, None]
    # The smoothness kernel on the pixel grid is the Kronecker product of a Gaussian over
    # rows and one over columns, so its sum over all pairs is two small matrix products.
    rows_kernel = _gaussian(rows / theta_gamma, rows / theta_gamma)
    cols_kernel = _gaussian(cols / theta_gamma, cols / theta_gamma)
    # The appearance kernel is exp(-|f_i - f_j|^2 / 2) of f = (row, col) / theta_alpha
    # and the colour / theta_beta (scaled already): computed in blocks of rows i.
    positions = torch.cartesian_prod(rows[:, 0], cols[:, 0]).reshape(pixels, 2)
    features = torch.cat([(positions / theta_alpha).expand(n, -1, -1),
                          colour.reshape(n, channels, pixels).transpose(1, 2)], dim=-1)
    block_rows = chunk_size or max(1, CHUNK_BYTES // (n * pixels * colour.element_size()))
    starts = range(0, pixels, block_rows)
    recompute = torch.is_grad_enabled() and (logits_need_grad or colour.requires_grad)

    def block(q: Tensor, features: Tensor, start: int) -> Tensor:
        """``sum_j k_app(i, j) Q(j)`` for the rows ``i`` from ``start``, ``[N, C, rows]``."""
        kernel = _gaussian(features[:, start:start + block_rows], features, scale=w_app)
        return q @ kernel.transpose(1, 2)

    def appearance(q: Tensor) -> Tensor:
        flat = q.reshape(n, -1, pixels)
        if recompute and len(starts) > 1:  # keep the blocks out of the autograd graph:
            # the backward pass computes each again, so memory stays bounded there too
            parts = [checkpoint(block, flat, features, start, use_reentrant=False)
                     for start in starts]
        else:
            parts = [block(flat, features, start) for start in starts]
        return torch.cat(parts, dim=-1).reshape(q.shape)

    def messages(q: Tensor) -> Tensor:
        total = appearance(q) if w_app else torch.zeros_like(q)
        if w_smooth:
            smooth = torch.einsum("ah,nchw,bw->ncab", rows_kernel, q, cols_kernel)
            total = total + w_smooth * smooth
        return total - (w_app + w_smooth) * q  # j != i: k_m(i, i) = 1 for both kernels
    return messages


def _gaussian(rows: Tensor, features: Tensor, scale: float = 1.0) -> Tensor:
    """``scale * exp(-|f_i - f_j|^2 / 2)`` for the ``rows`` ``f_i`` and all ``features``.

    The differences are taken directly (``torch.cdist`` without its matrix-product
    shortcut), so that nearby pixels' small distances carry no cancellation error. The
    scale goes into the exponent, and ``exp`` works in place on the one temporary, which
    autograd allows (``addcmul`` does not need its output for the backward pass).
    """
    distance = torch.cdist(rows, features, compute_mode="donot_use_mm_for_euclid_dist")
    log_scale = torch.tensor(math.log(scale), dtype=distance.dtype, device=distance.device)
    return torch.addcmul(log_scale, distance, distance, value=-0.5).exp_()


def _window_messages(colour: Tensor, kernels: tuple[float, float, float, float],
                     window: int) -> Callable[[Tensor], Tensor]:
    """A function ``Q -> sum_m w_m sum_{j in window(i), j != i} k_m(i, j) Q(j)``."""
    w_app, theta_alpha, w_smooth, theta_gamma = kernels
    _, _, height, width = colour.shape
    radius = window // 2
    offsets = [(dy, dx) for dy in range(-radius, radius + 1)
               for dx in range(-radius, radius + 1) if (dy, dx) != (0, 0)]
    padded = F.pad(colour, (radius, radius, radius, radius))

    def shifted(x: Tensor, dy: int, dx: int) -> Tensor:
        """``x`` padded by ``radius``, at ``(row + dy, column + dx)`` of every pixel."""
        return x[..., radius + dy:radius + dy + height, radius + dx:radius + dx + width]

    weights = []
    for dy, dx in offsets:  # pixels outside the image meet Q = 0 below: no mask needed
        distance2 = dy * dy + dx * dx
        weight = 0.0
        if w_app:
            colour2 = (shifted(padded, dy, dx) - colour).square().sum(1, keepdim=True)
            weight = w_app * torch.exp(-distance2 / (2 * theta_alpha**2) - 0.5 * colour2)
        if w_smooth:
            weight = weight + w_smooth * math.exp(-distance2 / (2 * theta_gamma**2))
        weights.append(weight)

    def messages(q: Tensor) -> Tensor:
        padded_q = F.pad(q, (radius, radius, radius, radius))
        total = torch.zeros_like(q)
        for (dy, dx), weight in zip(offsets, weights, strict=True):
            if isinstance(weight, Tensor):
                total.addcmul_(weight, shifted(padded_q, dy, dx))
            else:
                total.add_(shifted(padded_q, dy, dx), alpha=weight)
        return total
    return messages


class DenseCRF(nn.Module):
    """:func:`dense_crf` as a module: ``DenseCRF(**options)(logits, image)`` returns ``Q``.

    It has no parameters; the options are checked when it is built, so that a model and
    a CRF compose (``crf(model(x), x)``) and a bad option fails at once. It works wherever
    :func:`dense_crf` does (CPU, CUDA, float32, float64, ``torch.no_grad``,
    ``torch.inference_mode``).

    Raises:
        TypeError, ValueError: as :func:`dense_crf` for its options.
    """

    def __init__(self, *, iterations: int = 5, w_appearance: float = 10.0,
                 theta_alpha: float = 80.0, theta_beta: float = 13.0,
                 w_smoothness: float = 3.0, theta_gamma: float = 3.0,
                 method: str = "exact", window: int | None = None,
                 chunk_size: int | None = None) -> None:
        super().__init__()
        self.options = _check_options(iterations, w_appearance, theta_alpha, theta_beta,
                                      w_smoothness, theta_gamma, method, window, chunk_size)

    def forward(self, logits: Tensor, image: Tensor) -> Tensor:
        """``Q`` for ``logits`` ``[N, C, H, W]`` (or ``[C, H, W]``) and ``image``."""
        return dense_crf(logits, image, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.options.items())
