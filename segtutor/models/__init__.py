"""The networks of the book, one file each, all buildable by name.

    >>> from segtutor import models
    >>> net = models.create("tiny_fcn", num_classes=4)

Semantic models take ``float[N, C_in, H, W]`` and return logits
``float[N, num_classes, H, W]`` at the input's resolution (see ``DESIGN.md``).
"""

from . import simple  # noqa: F401, I001  (registers its builders)
from . import fcn, segnet, vgg  # noqa: F401, E402  (registers its builders)
from . import unet  # noqa: F401, E402  (registers its builders)
from .registry import TASKS, ModelInfo, create, list_models, model_info, register

__all__ = ["TASKS", "ModelInfo", "create", "list_models", "model_info", "register"]
