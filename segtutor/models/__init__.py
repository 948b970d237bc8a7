"""The networks of the book, one file each, all buildable by name.

    >>> from segtutor import models
    >>> net = models.create("tiny_fcn", num_classes=4)
    >>> net = models.unet(num_classes=2)          # the builders, as in torchvision.models

Semantic models take ``float[N, C_in, H, W]`` and return logits
``float[N, num_classes, H, W]`` at the input's resolution (the model contract, see
``CONTRIBUTING.md`` and :mod:`segtutor.models._contract`). Every builder is keyword-only and
registered (:func:`create`, :func:`list_models`, :func:`model_info`).

As in ``torchvision.models`` (where ``torchvision.models.alexnet`` is the builder, not the
module ``alexnet.py``), a builder named like its file wins the name: ``models.unet`` and
``models.segnet`` are the builders; their modules are imported by path, e.g.
``from segtutor.models.unet import UNet``.
"""

# Importing each file registers its builders (and binds the modules fcn, simple, vgg here).
from .deeplab import (
    DeepLab,
    DeepLabV3,
    DeepLabV3Plus,
    deeplab_v1,
    deeplab_v2,
    deeplabv3_resnet50,
    deeplabv3_resnet101,
    deeplabv3plus_resnet50,
    effective_taps,
)
from .fcn import FCN, fcn8s, fcn16s, fcn32s
from .mask_rcnn import SmallBackbone, mask_rcnn
from .pspnet import PSPNet, pspnet_resnet50, pspnet_resnet101
from .registry import TASKS, ModelInfo, create, list_models, model_info, register
from .roi_pooling import MultiScaleRoIPooling
from .segnet import SegNet, segnet
from .simple import PatchClassifier, TinyFCN, patch_classifier, tiny_fcn
from .unet import UNet, unet, unet_paper
from .vgg import VGG, VGG16_Weights, WeightsUnavailableError, vgg16

__all__ = [
    "DeepLab", "DeepLabV3", "DeepLabV3Plus", "deeplab_v1", "deeplab_v2", "deeplabv3_resnet50",
    "deeplabv3_resnet101", "deeplabv3plus_resnet50", "effective_taps",
    "PSPNet", "pspnet_resnet50", "pspnet_resnet101",
    "MultiScaleRoIPooling", "SmallBackbone", "mask_rcnn",
    "FCN", "TASKS", "VGG", "VGG16_Weights", "ModelInfo", "PatchClassifier", "SegNet", "TinyFCN",
    "UNet", "WeightsUnavailableError", "create", "fcn8s", "fcn16s", "fcn32s", "list_models",
    "model_info", "patch_classifier", "register", "segnet", "tiny_fcn", "unet", "unet_paper",
    "vgg16",
]
