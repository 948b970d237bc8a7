"""Segmentation pictures: the Pascal VOC palette, overlays, image/truth/prediction grids,
training curves.

Class colours follow the Pascal VOC palette (:func:`voc_palette`); the ignore value 255
is drawn white, as in VOC's own PNG masks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._checks import IGNORE_INDEX, check_int, check_probability


def voc_palette(num_classes: int = 256) -> np.ndarray:
    """The Pascal VOC colour map as ``uint8[num_classes, 3]``.

    Class ``c`` gets the colour whose bits interleave the bits of ``c`` (the devkit's
    ``labelcolormap``); index 255 (ignore) is overridden to VOC's cream border colour
    ``(224, 224, 192)`` so borders stand out on every class.
    """
    check_int(num_classes, "num_classes", minimum=1, maximum=256)
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for c in range(num_classes):
        r = g = b = 0
        value = c
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[c] = (r, g, b)
    if num_classes > IGNORE_INDEX:
        palette[IGNORE_INDEX] = (224, 224, 192)
    return palette


def _to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``float[3|1, H, W]`` tensor or ``[H, W(, 3)]`` array -> ``float[H, W, 3]`` in [0, 1]."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"expected an image [3, H, W], [1, H, W] or [H, W], got shape {image.shape}")
    array = array.astype(np.float64)
    if array.max(initial=0) > 1.0:
        array = array / 255.0
    return np.clip(array, 0.0, 1.0)


def _to_numpy_mask(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"expected a mask [H, W], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"a mask holds integer class ids, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > IGNORE_INDEX):
        raise ValueError(f"mask values must be class ids in 0..255, got {array.min()}..{array.max()}")
    return array


def colorize(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """Class ids ``[H, W]`` -> ``uint8[H, W, 3]`` in VOC colours (255 = ignore, cream)."""
    return voc_palette(256)[_to_numpy_mask(mask)]


def overlay(
    image: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray,
    alpha: float = 0.5,
    background: int | None = 0,
) -> np.ndarray:
    """Blend the mask's class colours over the image (``float[H, W, 3]`` in [0, 1]).

    Args:
        alpha: opacity of the class colours (0 = image only, 1 = mask only).
        background: class id left uncoloured (``None`` colours every class).
    """
    check_probability(alpha, "alpha")
    picture = _to_numpy_image(image)
    labels = _to_numpy_mask(mask)
    if picture.shape[:2] != labels.shape:
        raise ValueError(f"image is {picture.shape[:2]} but mask is {labels.shape}; they must match")
    colours = voc_palette(256)[labels].astype(np.float64) / 255.0
    weight = np.full(labels.shape + (1,), alpha)
    if background is not None:
        weight[labels == background] = 0.0
    return (1 - weight) * picture + weight * colours


def show_image(image: torch.Tensor | np.ndarray, ax: Axes | None = None, title: str = "") -> Axes:
    """Draw an image ``float[3|1, H, W]`` (or an ``[H, W(, 3)]`` array) without axes."""
    ax = ax or plt.gca()
    ax.imshow(_to_numpy_image(image), interpolation="nearest")
    ax.set_title(title)
    ax.set_axis_off()
    return ax


def show_mask(mask: torch.Tensor | np.ndarray, ax: Axes | None = None, title: str = "") -> Axes:
    """Draw a mask in VOC colours."""
    ax = ax or plt.gca()
    ax.imshow(colorize(mask), interpolation="nearest")
    ax.set_title(title)
    ax.set_axis_off()
    return ax


def show_predictions(
    images: Sequence[torch.Tensor] | torch.Tensor,
    targets: Sequence[torch.Tensor] | torch.Tensor,
    predictions: Sequence[torch.Tensor] | torch.Tensor | None = None,
    *,
    class_names: Sequence[str] | None = None,
    max_rows: int = 4,
    size: float = 2.4,
) -> Figure:
    """A grid of rows image | ground truth | prediction (when given)."""
    rows = min(len(images), max_rows)
    if rows == 0:
        raise ValueError("show_predictions needs at least one image")
    if len(targets) < rows or (predictions is not None and len(predictions) < rows):
        raise ValueError(
            f"got {len(images)} images, {len(targets)} targets and "
            f"{'no' if predictions is None else len(predictions)} predictions; counts must match"
        )
    columns = 2 if predictions is None else 3
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for r in range(rows):
        show_image(images[r], axes[r, 0])
        show_mask(targets[r], axes[r, 1])
        if predictions is not None:
            show_mask(predictions[r], axes[r, 2])
    for c, title in enumerate(["image", "ground truth", "prediction"][:columns]):
        axes[0, c].set_title(title)
    if class_names is not None:
        _add_legend(figure, class_names)
    figure.tight_layout()
    return figure


def _add_legend(figure: Figure, class_names: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    palette = voc_palette(len(class_names)) / 255.0
    handles = [Patch(color=palette[i], label=name) for i, name in enumerate(class_names)]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False,
                  bbox_to_anchor=(0.5, -0.02))


def _history_series(history: Any, name: str) -> list[float]:
    if isinstance(history, Mapping):
        return list(history.get(name) or [])
    return list(getattr(history, name, None) or [])


def plot_history(history: Any, ax: Axes | None = None) -> Figure:
    """Training loss and validation mIoU against the epoch, from a ``segtutor.train.History``
    (or a dict with the same keys).

    The x axis is ``history.epoch`` when present (a run cut by a time budget ends with a
    fractional epoch), else 1, 2, 3, ...; validation values that are NaN (no validation
    loader) are not drawn.
    """
    loss = _history_series(history, "train_loss")
    if not loss:
        raise ValueError("the history has no train_loss values to plot")
    epochs = _history_series(history, "epoch") or list(range(1, len(loss) + 1))
    if len(epochs) != len(loss):
        raise ValueError(f"the history has {len(epochs)} epochs but {len(loss)} train_loss values")
    miou = _history_series(history, "val_miou")
    if ax is None:
        figure, ax = plt.subplots(figsize=(6, 3.5))
    else:
        figure = ax.figure
    ax.plot(epochs, loss, "o-", color="#268BD2", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color="#268BD2")
    measured = [(e, v) for e, v in zip(epochs, miou, strict=False) if not np.isnan(v)]
    if measured:
        right = ax.twinx()
        right.plot(*zip(*measured, strict=True), "s-", color="#2AA198", label="validation mIoU")
        right.set_ylabel("validation mIoU", color="#2AA198")
        right.set_ylim(0, 1)
    ax.set_title("training curve")
    figure.tight_layout()
    return figure


def plot_tradeoff(rows: Sequence[Mapping[str, Any]], *, cost: str, score: str = "miou",
                  labels: Mapping[str, str] | None = None, key: str = "variant",
                  ax: Axes | None = None, log: bool = True) -> Figure:
    """Score against cost, one point per network: the mean over its runs, with bars from the
    lowest to the highest run (e.g. seeds) -- Chapter 12's accuracy-versus-cost plot.

    Args:
        rows: one mapping per run (e.g. a results CSV's rows: values may be strings), each
            with ``key`` (the network), ``cost`` and ``score``.
        cost: the field on the x axis (its mean over the runs; log scale if ``log``).
        score: the field on the y axis.
        labels: the name drawn beside each network (default: the ``key`` value).
        ax: draw into it (default: a new figure).

    Raises:
        ValueError: no rows.
        KeyError: a row lacks ``key``, ``cost`` or ``score``.
    """
    if not rows:
        raise ValueError("plot_tradeoff needs at least one row, got none")
    runs: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        runs.setdefault(str(row[key]), []).append(row)
    if ax is None:
        figure, ax = plt.subplots(figsize=(6, 4.2))
    else:
        figure = ax.figure
    for name, group in runs.items():
        values = [float(row[score]) for row in group]
        x = float(np.mean([float(row[cost]) for row in group]))
        mean = float(np.mean(values))
        ax.errorbar(x, mean, yerr=[[mean - min(values)], [max(values) - mean]], fmt="o",
                    capsize=3)
        ax.annotate((labels or {}).get(name, name), (x, mean), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    if log:
        from matplotlib import ticker

        ax.set_xscale("log")
        # 10, 20, 50, 100, ... written as plain numbers (the default 2x10^1 labels collide)
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(cost + (" (log scale)" if log else ""))
    ax.set_ylabel(f"{score} (mean; bars: lowest to highest run)")
    ax.grid(alpha=0.3)
    return figure
