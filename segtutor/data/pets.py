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
from .download import DEFAULT_TIMEOUT_S, Resource, fetch


def _pets_mirrors(name: str) -> tuple[str, ...]:
    return (
        # The address on the data set's page, which torchvision uses (OxfordIIITPet._RESOURCES).
        f"https://www.robots.ox.ac.uk/~vgg/data/pets/data/{name}",
        # Oxford's file server, as in Keras's U-Net example (keras-io
        # examples/vision/oxford_pets_image_segmentation.py) ...
        f"https://thor.robots.ox.ac.uk/datasets/pets/{name}",
        # ... and its earlier path there (keras-team/keras-io#1198, 2023).
        f"https://thor.robots.ox.ac.uk/~vgg/data/pets/{name}",
    )  # No copy of these two archives outside Oxford was found (Kaggle's needs a login).


PETS_RESOURCES: tuple[Resource, ...] = (
    # The MD5s torchvision checks (torchvision/datasets/oxford_iiit_pet.py).
    Resource("images.tar.gz", ("md5", "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
             _pets_mirrors("images.tar.gz")),
    Resource("annotations.tar.gz", ("md5", "95a8c909bbe2e81eed6a22bccdf3f68f"),
             _pets_mirrors("annotations.tar.gz")),
)
"""The two archives, 790 MB and 19 MB: file name, MD5 and the mirrors tried in order."""

TRIMAP_TO_CLASS = {1: 1, 2: 0, 3: IGNORE_INDEX}
"""Trimap value -> class id: pet -> 1, background -> 0, border/unclassified -> 255."""

_SPLITS = ("trainval", "test")


def download_oxford_pets(
    root: str | Path,
    resources: tuple[Resource, ...] = PETS_RESOURCES,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download and unpack the images and annotations into ``root/oxford-iiit-pet``.

    Each archive is fetched (resumably, MD5-checked) from the first of its mirrors that
    serves it; one already at ``root/oxford-iiit-pet/<name>`` with the right MD5 is used
    without any download, so an archive downloaded by hand can be placed there.

    Args:
        root: folder that receives ``oxford-iiit-pet``.
        resources: the ``.tar.gz`` archives (:data:`PETS_RESOURCES`).
        timeout: seconds a mirror may stay silent before the next one is tried.

    Returns:
        The ``oxford-iiit-pet`` folder.

    Raises:
        segtutor.data.download.DownloadError: every mirror of an archive failed (a
            ``ConnectionError``; the message names each mirror, its error and where to
            place the archive).
    """
    base = Path(root) / "oxford-iiit-pet"
    for resource in resources:
        archive = fetch(resource.mirrors, base / resource.filename, checksum=resource.checksum,
                        progress=True, timeout=timeout)
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
        download: fetch the two archives (MD5-checked, from the first mirror of
            :data:`PETS_RESOURCES` that serves each) first if needed.
        transforms: optional callable ``(image, mask) -> (image, mask)``.

    Returns (per item):
        ``(image, mask)``: ``float32[3, H, W]`` in ``[0, 1]`` and ``int64[H, W]`` with
        0 = background, 1 = pet, 255 = border (see :data:`TRIMAP_TO_CLASS`).

    Raises:
        FileNotFoundError: ``root/oxford-iiit-pet`` is missing (says how to get it).
        segtutor.data.download.DownloadError: ``download=True`` and every mirror failed.
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
            f"Pass download=True to fetch {PETS_RESOURCES[0].filename} and "
            f"{PETS_RESOURCES[1].filename} (from {PETS_RESOURCES[0].mirrors[0].rsplit('/', 1)[0]}"
            f" or a mirror), or unpack both archives into {base}."
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
