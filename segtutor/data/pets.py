"""Oxford-IIIT Pet as a two-class (background / pet) segmentation set, from its trimaps.

Each trimap marks every pixel 1 = pet, 2 = background, 3 = border or unclassified.
We map them to class 1 = pet, class 0 = background, and 255 (ignored) for the
uncertain border band.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import datasets
from torchvision.datasets.utils import extract_archive

from .common import (
    IGNORE_INDEX,
    PairTransformFn,
    read_pair,
    require_dir,
)
from .download import fetch

PETS_RESOURCES: tuple[tuple[str, str], ...] = (
    ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
    ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz", "95a8c909bbe2e81eed6a22bccdf3f68f"),
)  # fmt: skip
"""``(url, md5)`` of the two archives (the values torchvision checks): 790 MB and 19 MB."""

TRIMAP_TO_CLASS = {1: 1, 2: 0, 3: IGNORE_INDEX}
"""Trimap value -> class id: pet -> 1, background -> 0, border/unclassified -> 255."""

_SPLITS = ("trainval", "test")


def download_oxford_pets(
    root: str | Path, resources: tuple[tuple[str, str], ...] = PETS_RESOURCES
) -> Path:
    """Download and unpack the images and annotations into ``root/oxford-iiit-pet``.

    Args:
        root: folder that receives ``oxford-iiit-pet``.
        resources: ``(url, md5)`` of each ``.tar.gz`` archive.

    Returns:
        The ``oxford-iiit-pet`` folder.
    """
    base = Path(root) / "oxford-iiit-pet"
    for url, md5 in resources:
        archive = fetch(url, base / Path(url).name, checksum=("md5", md5), progress=True)
        extract_archive(str(archive), str(base))
    return base


class OxfordPets(datasets.OxfordIIITPet):
    """`Oxford-IIIT Pet <https://www.robots.ox.ac.uk/~vgg/data/pets/>`_ trimaps as masks.

    Same layout as :class:`torchvision.datasets.OxfordIIITPet`: ``root/oxford-iiit-pet/``
    holding ``images/*.jpg``, ``annotations/trimaps/*.png`` and
    ``annotations/{trainval,test}.txt``.

    Args:
        root: folder that holds ``oxford-iiit-pet``.
        split: ``"trainval"`` (3680 images) or ``"test"`` (3669).
        download: fetch the two archives (MD5-checked) first if needed.
        transforms: optional callable ``(image, mask) -> (image, mask)``.

    Returns (per item):
        ``(image, mask)``: ``float32[3, H, W]`` in ``[0, 1]`` and ``int64[H, W]`` with
        0 = background, 1 = pet, 255 = border (see :data:`TRIMAP_TO_CLASS`).

    Raises:
        FileNotFoundError: ``root/oxford-iiit-pet`` is missing (says how to get it).
        ValueError: an unknown ``split``; and, when reading an item, an image and a
            trimap of different sizes, or trimap values other than 1, 2, 3.
    """

    classes: tuple[str, ...] = ("background", "pet")  # type: ignore[assignment]
    num_classes: int = 2

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        download: bool = False,
        transforms: PairTransformFn | None = None,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        if download:
            download_oxford_pets(root, PETS_RESOURCES)
        base = Path(root) / "oxford-iiit-pet"
        how_to_get = (
            f"Pass download=True to fetch {PETS_RESOURCES[0][0]} and {PETS_RESOURCES[1][0]}, "
            f"or unpack both archives into {base}."
        )
        for folder in (base / "images", base / "annotations" / "trimaps"):
            require_dir(folder, what="Oxford-IIIT Pet", how_to_get=how_to_get)
        super().__init__(str(root), split=split, target_types="segmentation", transforms=transforms)
        self.classes = ("background", "pet")  # torchvision's breed names are not our classes
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = Path(self._images[index]), Path(self._segs[index])
        image, mask = read_pair(
            image_path,
            mask_path,
            image_mode="RGB",
            label_to_class=TRIMAP_TO_CLASS,
            num_classes=self.num_classes,
        )
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask
