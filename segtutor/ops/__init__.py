"""Operations the networks are built from: upsampling, unpooling, RoI pooling, CRF."""

from .upsample import (
    INTERPOLATION_MODES,
    BilinearConvTranspose2d,
    MaxPoolWithIndices,
    PooledWithIndices,
    ResizeConv2d,
    TransposedConvUpsample,
    bed_of_nails,
    bilinear_kernel,
    max_unpool,
    upsample_bilinear,
    upsample_nearest,
    upsampling_kernel_size,
)

__all__ = [
    "INTERPOLATION_MODES",
    "BilinearConvTranspose2d",
    "MaxPoolWithIndices",
    "PooledWithIndices",
    "ResizeConv2d",
    "TransposedConvUpsample",
    "bed_of_nails",
    "bilinear_kernel",
    "max_unpool",
    "upsample_bilinear",
    "upsample_nearest",
    "upsampling_kernel_size",
]
