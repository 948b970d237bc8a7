"""Evaluation and prediction: :func:`evaluate` and :func:`predict`.

Both run the model in evaluation mode under ``torch.inference_mode()`` through
:func:`segtutor.utils.eval_mode`, which gives every submodule back its own training flag
afterwards (a frozen, evaluating encoder stays so). The helpers that :func:`fit` shares
with them live here too: where a model is (:func:`_model_device`), which device a
``device`` argument names (:func:`_resolve_device`) and how a batch is unpacked
(:func:`_unpack`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sized
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import IGNORE_INDEX, check_tensor, describe
from ..metrics import ConfusionMatrix
from ..utils import device as best_device
from ..utils import eval_mode

__all__ = ["evaluate", "predict"]


def _check_model(model: object) -> nn.Module:
    """``model`` if it is an ``nn.Module``, else ``TypeError``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {describe(model)} "
                        f"({type(model).__name__})")
    return model


def _resolve_device(device: str | torch.device | None) -> torch.device:
    """The device that a ``device`` argument names; None picks the best available."""
    if device is None:
        return best_device()
    if isinstance(device, str):
        return best_device(device)
    if isinstance(device, torch.device):
        return device
    raise TypeError(f"device must be None, a string such as 'cuda' or a torch.device, "
                    f"got {describe(device)} ({type(device).__name__})")


def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _unpack(batch: Any, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(image, mask)`` or ``(image, mask, pixel_weights)``, moved to ``device``."""
    if not isinstance(batch, list | tuple) or len(batch) not in (2, 3):
        kind = type(batch).__name__
        size = f" of length {len(batch)}" if isinstance(batch, Sized) else ""
        raise TypeError(f"a batch must be (images, masks) or (images, masks, pixel_weights), "
                        f"got a {kind}{size}")
    moved = [t.to(device, non_blocking=True) for t in batch]
    return moved[0], moved[1], (moved[2] if len(moved) == 3 else None)


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    num_classes: int,
    device: str | torch.device | None = None,
    *,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, Any]:
    """Metrics of ``model`` over ``loader`` (see :meth:`segtutor.metrics.ConfusionMatrix.compute`).

    The model runs in eval mode under ``torch.inference_mode()``; every submodule's own
    mode is restored afterwards.

    Args:
        model: the network.
        loader: yields ``(images, masks)`` (a third element is ignored).
        num_classes: number of classes.
        device: where to run; None keeps the model where it is, otherwise the model is
            moved there.
        ignore_index: mask value that is not counted.

    Returns:
        ``pixel_accuracy``, ``mean_accuracy``, ``mean_iou``, ``mean_dice``,
        ``per_class_iou``, ``per_class_dice``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``device`` is of the wrong kind, or a
            batch is not a pair or triple.
        ValueError: a bad ``num_classes`` or ``ignore_index``.
    """
    _check_model(model)
    matrix = ConfusionMatrix(num_classes, ignore_index)
    if device is not None:
        model.to(_resolve_device(device))
    dev = _model_device(model)
    with eval_mode(model), torch.inference_mode():
        for batch in loader:
            images, masks, _ = _unpack(batch, dev)
            matrix.update(model(images), masks)
    return matrix.compute()


def predict(model: nn.Module, images: Tensor) -> Tensor:
    """Class labels ``int64[N, H, W]`` for ``images`` ``float[N, C, H, W]`` (or ``[H, W]``
    for one image ``[C, H, W]``), on the device of ``images``.

    The model runs in eval mode on its own device; every submodule's own mode is restored.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``images`` is not a tensor.
        ValueError: ``images`` is neither 3-D nor 4-D.
    """
    _check_model(model)
    check_tensor(images, "images", dims=(3, 4), layout="([C, H, W] or [N, C, H, W])")
    batch = images.unsqueeze(0) if images.ndim == 3 else images
    with eval_mode(model), torch.inference_mode():
        labels = model(batch.to(_model_device(model))).argmax(dim=1)
    labels = labels.to(images.device)
    return labels[0] if images.ndim == 3 else labels
