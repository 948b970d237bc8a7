"""Operations the networks are built from (this layer imports only torch).

* :mod:`~segtutor.ops.upsample`: interpolation, bed of nails, max unpooling, transposed,
  resize and sub-pixel convolutions (with ICNR initialisation);
* :mod:`~segtutor.ops.blocks`: :func:`conv_bn_relu`, the block most networks repeat;
* :mod:`~segtutor.ops.tiling`: overlap-tile prediction and averaging over the 8 symmetries;
* :mod:`~segtutor.ops.crf`: the fully connected CRF (:func:`dense_crf`, exact or windowed);
* :mod:`~segtutor.ops.roi`: Fast R-CNN's RoIPool and Mask R-CNN's RoIAlign
  (:func:`roi_pool`, :func:`roi_align`, :class:`RoIPool`, :class:`RoIAlign`), equal to
  torchvision's operators.
"""

from .blocks import conv_bn_relu
from .crf import DenseCRF, dense_crf
from .roi import RoIAlign, RoIPool, roi_align, roi_pool
from .tiling import SymmetryAverage, center_crop, mirror_indices, mirror_pad, predict_tiled
from .upsample import (
    INTERPOLATION_MODES,
    BilinearConvTranspose2d,
    MaxPoolWithIndices,
    PooledWithIndices,
    ResizeConv2d,
    SubPixelConv2d,
    TransposedConvUpsample,
    bed_of_nails,
    bilinear_kernel,
    icnr_,
    max_unpool,
    upsample_bilinear,
    upsample_nearest,
    upsampling_kernel_size,
)

__all__ = [
    "INTERPOLATION_MODES",
    "BilinearConvTranspose2d",
    "DenseCRF",
    "MaxPoolWithIndices",
    "PooledWithIndices",
    "ResizeConv2d",
    "RoIAlign",
    "RoIPool",
    "SubPixelConv2d",
    "SymmetryAverage",
    "TransposedConvUpsample",
    "bed_of_nails",
    "bilinear_kernel",
    "center_crop",
    "conv_bn_relu",
    "dense_crf",
    "icnr_",
    "max_unpool",
    "mirror_indices",
    "mirror_pad",
    "predict_tiled",
    "roi_align",
    "roi_pool",
    "upsample_bilinear",
    "upsample_nearest",
    "upsampling_kernel_size",
]
