"""ISBI 2012 EM membranes: the 30 training slices that U-Net was first evaluated on.

Serial-section electron microscopy of a Drosophila larva's ventral nerve cord
(Cardona et al., 2010), published for the ISBI 2012 challenge "Segmentation of
neuronal structures in EM stacks" (Arganda-Carreras et al., 2015). We use the PNG
export in the MIT-licensed repository `zhixuhao/unet <https://github.com/zhixuhao/unet>`_:
30 slices of 512 x 512 pixels, with labels 255 = cell interior and 0 = membrane.

The split is fixed: slices 0-24 are ``"train"``, slices 25-29 are ``"test"`` (held out
for the reported figures); ``"all"`` is the 30 of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .._checks import describe
from .common import (
    PairTransformFn,
    read_pair,
    require_dir,
)
from .download import DEFAULT_TIMEOUT_S, Resource, fetch
from .isbi2012_sha256 import ISBI2012_MIRRORS, ISBI2012_SHA256

ISBI_ROOT_ENV = "SEGTUTOR_ISBI_ROOT"
"""Environment variable that points :func:`default_isbi_root` at a local copy."""

ISBI2012_SPLITS: dict[str, range] = {"train": range(0, 25), "test": range(25, 30), "all": range(30)}
"""Slice numbers of each split."""

LABEL_TO_CLASS = {0: 0, 255: 1}
"""Label PNG value -> class id: membrane (0) -> 0, cell interior (255) -> 1."""

_PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds segtutor/


def default_isbi_root() -> Path | None:
    """Find a local copy of the ISBI 2012 slices, or return ``None``.

    Looks, in order, at the folder named by the ``SEGTUTOR_ISBI_ROOT`` environment
    variable; ``../shared/data/isbi2012`` from the project root (the folder above the
    ``segtutor`` package); and ``../shared/data/isbi2012`` from the current directory
    and each of its parents (notebooks run from ``book/``). A folder counts if it has
    ``train/image`` and ``train/label``.

    Raises:
        FileNotFoundError: ``SEGTUTOR_ISBI_ROOT`` is set but is not such a folder.
    """
    named = os.environ.get(ISBI_ROOT_ENV)
    if named:
        if not _is_isbi_root(Path(named)):
            raise FileNotFoundError(
                f"{ISBI_ROOT_ENV}={named!r} is not an ISBI 2012 folder: expected "
                f"train/image and train/label inside it. Unset it, or point it at such a folder."
            )
        return Path(named).resolve()
    cwd = Path.cwd().resolve()
    for start in (_PROJECT_ROOT, cwd, *cwd.parents):
        candidate = start.parent / "shared" / "data" / "isbi2012"
        if _is_isbi_root(candidate):
            return candidate
    return None


def _is_isbi_root(path: Path) -> bool:
    return (path / "train" / "image").is_dir() and (path / "train" / "label").is_dir()


def _resources(mirrors: str | tuple[str, ...]) -> dict[str, Resource]:
    """Path relative to ``train/`` -> the file's record: its SHA-256, one URL per mirror."""
    if isinstance(mirrors, str):
        mirrors = (mirrors,)
    if not isinstance(mirrors, (tuple, list)) or not all(isinstance(m, str) for m in mirrors):
        raise TypeError(f"mirrors must be a folder URL or a tuple of them, got "
                        f"{describe(mirrors)} ({type(mirrors).__name__})")
    return {relative: Resource(Path(relative).name, ("sha256", sha256),
                               tuple(f"{base.rstrip('/')}/{relative}" for base in mirrors))
            for relative, sha256 in ISBI2012_SHA256.items()}


def download_isbi2012(
    root: str | Path,
    mirrors: str | tuple[str, ...] = ISBI2012_MIRRORS,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download the 60 PNG files into ``root/train/{image,label}/``, checking each SHA-256.

    Files already present with the right checksum are kept (so files copied by hand are
    used). Each file comes from the first mirror that serves it intact; a mirror that
    timed out or could not be reached is tried last for the files after it, so a dead
    mirror costs its time-out once, not 60 times.

    Args:
        root: the data set folder.
        mirrors: folder URL(s) holding ``image/N.png`` and ``label/N.png``
            (:data:`~segtutor.data.isbi2012_sha256.ISBI2012_MIRRORS`).
        timeout: seconds a mirror may stay silent before the next one is tried.

    Returns:
        ``root``.

    Raises:
        segtutor.data.download.DownloadError: every mirror failed for a file (a
            ``ConnectionError``; the message names each mirror, its error and the path
            where the file goes). Its subclass ``ChecksumMismatchError`` (a
            ``ValueError``) when every mirror served wrong bytes.
    """
    root = Path(root)
    for relative, resource in tqdm(_resources(mirrors).items(), desc="ISBI 2012", unit="file"):
        fetch(resource.mirrors, root / "train" / relative, checksum=resource.checksum,
              timeout=timeout)
    return root


class ISBI2012(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """ISBI 2012 EM membrane segmentation (30 slices of 512 x 512, grayscale).

    Class ids: **0 = membrane**, **1 = cell interior** (:data:`LABEL_TO_CLASS`); there is
    no ignored pixel. About 22 % of the pixels are membrane.

    Args:
        root: folder with ``train/image/{0..29}.png`` and ``train/label/{0..29}.png``
            (as ``../shared/data/isbi2012``; see :func:`default_isbi_root`).
        split: ``"train"`` (slices 0-24), ``"test"`` (25-29) or ``"all"``.
        download: fetch the files (SHA-256-checked, from the first of
            :data:`~segtutor.data.isbi2012_sha256.ISBI2012_MIRRORS` that
            serves each) into ``root`` first if needed.
        transforms: optional callable ``(image, mask) -> (image, mask)``.
        channels: 1 (the grayscale slice, as in U-Net) or 3 (the slice repeated, for
            networks pretrained on RGB images).

    Returns (per item):
        ``(image, mask)``: ``float32[channels, 512, 512]`` in ``[0, 1]`` and ``int64[512, 512]``.

    Raises:
        FileNotFoundError: ``root`` or one of the split's files is missing (says how to get them).
        ValueError: an unknown ``split`` or ``channels``; and, when reading an item, an image
            and a label of different sizes, or label values other than 0 and 255.
    """

    classes: tuple[str, ...] = ("membrane", "cell")
    num_classes: int = 2

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        download: bool = False,
        transforms: PairTransformFn | None = None,
        channels: int = 1,
    ) -> None:
        if split not in ISBI2012_SPLITS:
            raise ValueError(f"split must be one of {tuple(ISBI2012_SPLITS)}, got {split!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.root = Path(root)
        self.split = split
        self.channels = channels
        self.transforms = transforms
        if download:
            download_isbi2012(self.root, ISBI2012_MIRRORS)
        self.slices = list(ISBI2012_SPLITS[split])
        self.images = [self.root / "train" / "image" / f"{n}.png" for n in self.slices]
        self.masks = [self.root / "train" / "label" / f"{n}.png" for n in self.slices]
        self._require_files()

    def _require_files(self) -> None:
        how_to_get = (
            f"Pass download=True to fetch them from {ISBI2012_MIRRORS[0]} (or a mirror), "
            f"or set {ISBI_ROOT_ENV} to a folder that has them."
        )
        require_dir(self.root, what="ISBI 2012", how_to_get=how_to_get)
        missing = [str(path) for path in (*self.images, *self.masks) if not path.is_file()]
        if missing:
            raise FileNotFoundError(
                f"ISBI 2012 not found: {len(missing)} files missing under {self.root}, e.g. "
                f"{missing[0]}. {how_to_get}"
            )

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.images[index], self.masks[index]
        image, mask = read_pair(
            image_path,
            mask_path,
            image_mode="L",
            label_to_class=LABEL_TO_CLASS,
            num_classes=self.num_classes,
        )
        if self.channels == 3:
            image = image.expand(3, -1, -1).contiguous()
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return f"ISBI2012(root={str(self.root)!r}, split={self.split!r}, channels={self.channels})"
