"""Convolution arithmetic: output sizes, transposed convolution, convolution as a matrix,
receptive fields, and the geometry of RoIPool and RoIAlign.

Every size formula here returns exactly what PyTorch's layers produce, and refuses what
PyTorch refuses (the tests compare the two on exhaustive grids). The notation follows
Dumoulin & Visin, "A guide to convolution arithmetic for deep learning"
(https://arxiv.org/abs/1603.07285): input size ``i``, kernel size ``k``, stride ``s``,
padding ``p`` (on each side), dilation ``d``. Receptive fields follow Araujo, Norris & Sim,
"Computing Receptive Fields of Convolutional Neural Networks", Distill 2019
(https://distill.pub/2019/computing-receptive-fields/).

    >>> conv_output_size(5, 3, s=2, p=1)
    3
    >>> conv_transpose_output_size(3, 3, s=2, p=1)
    5

One module per topic (this layer imports only torch and the standard library):

* :mod:`~segtutor.arithmetic.sizes`: output sizes and paddings;
* :mod:`~segtutor.arithmetic.transposed`: a transposed convolution as a direct one;
* :mod:`~segtutor.arithmetic.matrix`: a convolution as a matrix;
* :mod:`~segtutor.arithmetic.receptive`: receptive fields, computed and measured;
* :mod:`~segtutor.arithmetic.roi`: where RoIPool's and RoIAlign's bins and sample points land.
"""

from .matrix import DENSE_LIMIT, conv_matrix
from .receptive import (
    Conv,
    ConvTranspose,
    Interval,
    LayerField,
    LayerSpec,
    MeasuredField,
    Number,
    Pool,
    ReceptiveFieldTable,
    Upsample,
    layer_specs,
    main_path,
    measure_receptive_field,
    receptive_field,
    register_layers,
)
from .roi import (
    Box,
    EdgeOffsets,
    Misalignment,
    RoIAlignSamples,
    RoIPoolBins,
    Span,
    misalignment,
    roi_align_samples,
    roi_pool_bins,
)
from .sizes import (
    conv_output_size,
    conv_transpose_output_size,
    effective_kernel_size,
    full_padding,
    pool_output_size,
    same_padding,
)
from .transposed import TransposedAsConv, conv_transpose_via_conv, insert_zeros, transposed_as_conv

__all__ = [
    "DENSE_LIMIT",
    "Box",
    "Conv",
    "ConvTranspose",
    "EdgeOffsets",
    "Interval",
    "LayerField",
    "LayerSpec",
    "MeasuredField",
    "Misalignment",
    "Number",
    "Pool",
    "ReceptiveFieldTable",
    "RoIAlignSamples",
    "RoIPoolBins",
    "Span",
    "TransposedAsConv",
    "Upsample",
    "conv_matrix",
    "conv_output_size",
    "conv_transpose_output_size",
    "conv_transpose_via_conv",
    "effective_kernel_size",
    "full_padding",
    "insert_zeros",
    "layer_specs",
    "main_path",
    "measure_receptive_field",
    "misalignment",
    "pool_output_size",
    "receptive_field",
    "register_layers",
    "roi_align_samples",
    "roi_pool_bins",
    "same_padding",
    "transposed_as_conv",
]
