"""Data for the book: a synthetic data set, three real ones, and joint transforms.

Every data set returns ``(image, mask)`` pairs: ``image`` is ``float32[C, H, W]`` in
``[0, 1]`` and ``mask`` is ``int64[H, W]`` of class ids, with :data:`IGNORE_INDEX`
(255) for pixels that no loss or metric counts. Each has ``classes`` (names, index =
class id) and ``num_classes``.

- :class:`Shapes`: circles, squares and triangles drawn on the fly (no files).
- :class:`FramedShapes`: ``Shapes`` inside a coloured frame; a shape's class is its kind x
  the frame's colour (evidence far away at the border; no files).
- :class:`ShapesInstances`: the same shapes as *instances* (one mask, box and label per
  object, torchvision's detection format), same-class objects often touching; no files.
- :class:`VOCSegmentation`: Pascal VOC 2012, 21 classes, object borders = 255.
- :class:`OxfordPets`: Oxford-IIIT Pet trimaps, background / pet, borders = 255.
- :class:`ISBI2012`: EM membranes, membrane / cell, grayscale.
- :func:`train_transforms`, :func:`eval_transforms`: augmentation for pairs;
  :class:`AugmentedPairs`: many augmented draws from a few pairs held in memory;
  :class:`ElasticGrid`: U-Net's elastic deformation (a coarse random grid).
"""

from .common import IGNORE_INDEX, check_pair
from .download import DownloadError, Resource, fetch
from .framed import FRAME_COLOURS, FramedShapes
from .instances import ShapesInstances, count_regions, detection_collate, semantic_mask
from .isbi import ISBI2012, default_isbi_root, download_isbi2012
from .pets import OxfordPets, download_oxford_pets
from .shapes import Shapes
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentedPairs,
    ElasticGrid,
    JointTransform,
    RandomScale,
    eval_transforms,
    random_crop,
    train_transforms,
)
from .voc import VOC_CLASSES, VOCSegmentation, download_voc2012

__all__ = [
    "AugmentedPairs",
    "DownloadError",
    "FRAME_COLOURS",
    "FramedShapes",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ISBI2012",
    "VOC_CLASSES",
    "JointTransform",
    "OxfordPets",
    "RandomScale",
    "Resource",
    "Shapes",
    "ShapesInstances",
    "VOCSegmentation",
    "check_pair",
    "count_regions",
    "default_isbi_root",
    "detection_collate",
    "download_isbi2012",
    "download_oxford_pets",
    "download_voc2012",
    "ElasticGrid",
    "eval_transforms",
    "fetch",
    "random_crop",
    "semantic_mask",
    "train_transforms",
]
