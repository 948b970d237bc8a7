"""Pascal VOC 2012 semantic segmentation, with object borders kept as ``ignore_index``.

VOC's masks are palette PNGs whose palette *indices* are the class ids 0-20; a
5-pixel-wide band around every object is drawn with index 255, "void". Unlike d2l
(which maps that band to background), we keep it as 255 so the loss and the metrics
skip it, as the VOC evaluation itself does.
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

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
"""The 21 class names of Pascal VOC, index = class id (0 = background)."""

VOC2012_URL = "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
"""Where :func:`download_voc2012` fetches the 2 GB train+val archive (torchvision's mirror)."""
VOC2012_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"
"""MD5 of the archive at :data:`VOC2012_URL` (the value torchvision checks)."""

_IMAGE_SETS = ("train", "val", "trainval")
_LABELS = {**{c: c for c in range(len(VOC_CLASSES))}, IGNORE_INDEX: IGNORE_INDEX}


def download_voc2012(root: str | Path, url: str = VOC2012_URL, md5: str = VOC2012_MD5) -> Path:
    """Download and unpack VOC 2012 train+val into ``root/VOCdevkit/VOC2012``.

    Args:
        root: folder that receives the archive and the ``VOCdevkit`` folder.
        url: where the ``.tar`` archive is.
        md5: its MD5 checksum.

    Returns:
        The ``VOCdevkit/VOC2012`` folder.
    """
    root = Path(root)
    archive = fetch(url, root / Path(url).name, checksum=("md5", md5), progress=True)
    extract_archive(str(archive), str(root))
    return root / "VOCdevkit" / "VOC2012"


class VOCSegmentation(datasets.VOCSegmentation):
    """`Pascal VOC 2012 <http://host.robots.ox.ac.uk/pascal/VOC/voc2012/>`_ segmentation.

    Same folder layout and ``images``/``masks`` lists as
    :class:`torchvision.datasets.VOCSegmentation`: ``root/VOCdevkit/VOC2012/`` holding
    ``JPEGImages/``, ``SegmentationClass/`` and ``ImageSets/Segmentation/{train,val,trainval}.txt``.
    Items are tensors, checked against the data contract.

    Args:
        root: folder that holds ``VOCdevkit``.
        image_set: ``"train"`` (1464 images), ``"val"`` (1449) or ``"trainval"``.
        download: fetch the archive (2 GB, MD5-checked) first if needed.
        transforms: optional callable ``(image, mask) -> (image, mask)``.

    Returns (per item):
        ``(image, mask)``: ``float32[3, H, W]`` in ``[0, 1]`` and ``int64[H, W]`` with class
        ids 0-20 (:data:`VOC_CLASSES`) and 255 on object borders.

    Raises:
        FileNotFoundError: ``root/VOCdevkit/VOC2012`` is missing (says how to get it).
        ValueError: an unknown ``image_set``; and, when reading an item, an image and a
            mask of different sizes, or mask values outside 0-20 and 255.
    """

    classes: tuple[str, ...] = VOC_CLASSES
    num_classes: int = len(VOC_CLASSES)

    def __init__(
        self,
        root: str | Path,
        image_set: str = "train",
        download: bool = False,
        transforms: PairTransformFn | None = None,
    ) -> None:
        if image_set not in _IMAGE_SETS:
            raise ValueError(f"image_set must be one of {_IMAGE_SETS}, got {image_set!r}")
        if download:
            download_voc2012(root, VOC2012_URL, VOC2012_MD5)
        require_dir(
            Path(root) / "VOCdevkit" / "VOC2012",
            what="Pascal VOC 2012",
            how_to_get=(
                f"Pass download=True to fetch {VOC2012_URL} (2 GB), or unpack that archive "
                f"into {root}."
            ),
        )
        super().__init__(str(root), year="2012", image_set=image_set, transforms=transforms)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = Path(self.images[index]), Path(self.masks[index])
        image, mask = read_pair(
            image_path,
            mask_path,
            image_mode="RGB",
            label_to_class=_LABELS,
            num_classes=self.num_classes,
        )
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask
