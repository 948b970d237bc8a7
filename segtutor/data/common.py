"""What every data set here shares: the ignore value, pair validation, file reading.

A *pair* is ``(image, mask)``: ``image`` is ``float32[C, H, W]`` with values in
``[0, 1]`` and ``mask`` is ``int64[H, W]`` holding class ids ``0 .. num_classes - 1``
or :data:`IGNORE_INDEX` (255) for pixels that no loss or metric should count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .._checks import IGNORE_INDEX, check_choice, check_labels, check_positive_int

PairTransformFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""A callable ``(image, mask) -> (image, mask)``, e.g. :func:`segtutor.data.train_transforms`."""


def check_pair(
    image: torch.Tensor, mask: torch.Tensor, num_classes: int, *, source: str = "pair"
) -> None:
    """Check that ``(image, mask)`` follows the data contract, and raise if it does not.

    Args:
        image: ``float[C, H, W]``.
        mask: ``int64[H, W]`` of class ids in ``0 .. num_classes - 1`` or 255.
        num_classes: the number of classes of the data set.
        source: where the pair came from (file names), quoted in error messages.

    Raises:
        TypeError: ``image`` or ``mask`` is not a tensor, or has the wrong dtype.
        ValueError: wrong number of dimensions, image and mask of different sizes, or
            mask values that are neither a class id nor 255.
    """
    check_pair_layout(image, mask, source=source)
    check_mask_values(mask, num_classes, source=source)


def check_pair_layout(image: torch.Tensor, mask: torch.Tensor, *, source: str = "pair") -> None:
    """Check the types, dtypes and shapes of ``(image, mask)`` (not the mask values).

    Raises:
        TypeError: not tensors, a non-floating image or a mask that is not ``int64``.
        ValueError: not ``[C, H, W]`` and ``[H, W]``, or different ``H, W``.
    """
    if not isinstance(image, torch.Tensor) or not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"{source}: expected image and mask tensors, got {type(image).__name__} and "
            f"{type(mask).__name__}"
        )
    if not image.is_floating_point():
        raise TypeError(f"{source}: image dtype is {image.dtype}; expected a floating dtype")
    if mask.dtype != torch.int64:
        raise TypeError(f"{source}: mask dtype is {mask.dtype}; expected torch.int64")
    if image.ndim != 3:
        raise ValueError(f"{source}: image shape {tuple(image.shape)}; expected [C, H, W]")
    if mask.ndim != 2:
        raise ValueError(f"{source}: mask shape {tuple(mask.shape)}; expected [H, W]")
    if image.shape[-2:] != mask.shape:
        raise ValueError(
            f"{source}: image size {tuple(image.shape[-2:])} (H, W) differs from mask size "
            f"{tuple(mask.shape)}; image and mask must cover the same pixels"
        )


def check_mask_values(mask: torch.Tensor, num_classes: int, *, source: str = "mask") -> None:
    """Raise ``ValueError`` if ``mask`` holds a value that is neither a class id nor 255.

    Args:
        mask: integer tensor of any shape.
        num_classes: class ids are ``0 .. num_classes - 1``.
        source: where the mask came from, quoted in the error message.
    """
    check_positive_int(num_classes, "num_classes")
    check_labels(mask, f"{source}: mask", num_classes, IGNORE_INDEX)


def read_pair(
    image_path: Path,
    mask_path: Path,
    *,
    image_mode: str,
    label_to_class: dict[int, int],
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an image file and its label PNG as a checked ``(image, mask)`` pair.

    Args:
        image_path: the image (any format PIL reads).
        mask_path: the single-channel label PNG.
        image_mode: ``"RGB"`` or ``"L"``, see :func:`read_image`.
        label_to_class: label value -> class id (or 255), see :func:`remap_labels`.
        num_classes: number of classes, for :func:`check_pair`.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: different sizes, or label values not in ``label_to_class``.
    """
    image = read_image(image_path, image_mode)
    mask = remap_labels(read_label_png(mask_path), label_to_class, source=str(mask_path))
    check_pair(image, mask, num_classes, source=f"{image_path} and {mask_path}")
    return image, mask


def read_image(path: Path, mode: str) -> torch.Tensor:
    """Read an image file as ``float32[C, H, W]`` in ``[0, 1]``.

    Args:
        path: the image file.
        mode: PIL mode to read it in: ``"RGB"`` (3 channels) or ``"L"`` (1 channel).
            A file in another mode (e.g. a grayscale JPEG read as ``"RGB"``) is
            converted, as torchvision's data sets do.
    """
    check_choice(mode, "mode", ("RGB", "L"))
    with Image.open(_existing_file(path)) as picture:
        array = np.asarray(picture.convert(mode))
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy()).float().div_(255)


def read_label_png(path: Path) -> np.ndarray:
    """Read a single-channel label image (palette ``P`` or grayscale ``L``) as ``uint8[H, W]``.

    For a palette PNG the values are the palette *indices*, which is how Pascal VOC
    stores class ids.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a single-channel 8-bit image (e.g. an RGB rendering
            of a mask, whose colours are not class ids).
    """
    with Image.open(_existing_file(path)) as picture:
        if picture.mode not in ("P", "L"):
            raise ValueError(
                f"{path}: label image has PIL mode {picture.mode!r}; expected a single-channel "
                f"8-bit image, mode 'P' (palette) or 'L'"
            )
        return np.asarray(picture).copy()


def remap_labels(raw: np.ndarray, mapping: dict[int, int], *, source: str) -> torch.Tensor:
    """Map the raw values of a label image to class ids, as ``int64[H, W]``.

    Args:
        raw: ``uint8[H, W]`` label image.
        mapping: raw value -> class id (or :data:`IGNORE_INDEX`), one entry per valid raw value.
        source: the file name, for error messages.

    Raises:
        ValueError: ``raw`` holds a value that ``mapping`` does not list.
    """
    lookup = np.full(256, -1, dtype=np.int64)
    for raw_value, class_id in mapping.items():
        lookup[raw_value] = class_id
    mask = lookup[raw]
    if (mask < 0).any():
        bad = sorted(set(np.unique(raw[mask < 0]).tolist()))
        raise ValueError(
            f"{source}: label values {bad[:10]} are not valid; expected one of {sorted(mapping)}"
        )
    return torch.from_numpy(mask)


def require_dir(path: Path, *, what: str, how_to_get: str) -> Path:
    """Return ``path`` if it is a folder, else raise ``FileNotFoundError`` saying how to get it."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path} is not a folder. {how_to_get}")
    return path


def _existing_file(path: Path) -> Path:
    if not Path(path).is_file():
        raise FileNotFoundError(f"file {path} does not exist")
    return Path(path)
