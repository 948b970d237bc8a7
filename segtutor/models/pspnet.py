"""PSPNet: the pyramid pooling module on a dilated ResNet (Zhao, Shi, Qi, Wang & Jia).

Paper: "Pyramid Scene Parsing Network", CVPR 2017, https://arxiv.org/abs/1612.01105.

A dilated ResNet (output stride 8) gives a feature map whose receptive field is large in
theory but, the paper argues, much smaller in practice, so a pixel's prediction misses the
scene around it. The **pyramid pooling module** (:class:`PyramidPooling`, the paper's
Fig. 3) adds that context explicitly: the map is average-pooled to ``1x1``, ``2x2``, ``3x3``
and ``6x6`` bins, each pooled map is reduced by a 1x1 convolution to a quarter of the
channels (batch norm, ReLU), upsampled bilinearly back to the map's size and concatenated
with the map itself; a 3x3 convolution and a 1x1 classifier then predict every pixel from
its own features *and* four summaries of its surroundings, the ``1x1`` bin being the whole
image.

**Adaptive pooling windows.** ``nn.AdaptiveAvgPool2d(bins)`` splits a side of ``size``
positions into ``bins`` windows ``[floor(i * size / bins), ceil((i + 1) * size / bins))``
(:func:`adaptive_pool_windows`); when ``bins`` does not divide ``size`` neighbouring windows
overlap by a position and their lengths differ. Only when it divides is the pooling a
fixed ``AvgPool2d(kernel, stride)`` (:func:`fixed_pooling_for`), which matters for export
(see there).

**The batch-of-one pitfall.** The ``1x1`` bin pools each image to one value per channel,
so in training mode its batch norm normalises over the batch alone and fails for a batch
of one image, as DeepLab v3's image pooling does
(:class:`~segtutor.models.deeplab.ASPPPooling`); :class:`PyramidStage` raises a
``ValueError`` that names the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_optional_int, check_positive_int
from .deeplab import ASPPPooling

__all__ = [
    "PSP_BINS",
    "POOLINGS",
    "PyramidPooling",
    "PyramidStage",
    "adaptive_pool_windows",
    "fixed_pooling_for",
]

#: The paper's pyramid: bins of 1x1, 2x2, 3x3 and 6x6.
PSP_BINS = (1, 2, 3, 6)
#: The pooling of the pyramid's stages: average (the paper's choice) or max (its ablation).
POOLINGS = ("avg", "max")


# --------------------------------------------------------------------------- pooling windows


def adaptive_pool_windows(size: int, bins: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` windows adaptive pooling uses to split ``size`` positions in ``bins``.

    PyTorch's ``adaptive_avg_pool2d`` (and ``adaptive_max_pool2d``) give output ``i`` the
    input positions ``start = floor(i * size / bins)`` to ``end = ceil((i + 1) * size / bins)``
    (exclusive), along each axis independently. When ``bins`` divides ``size`` these are
    ``bins`` disjoint windows of ``size / bins`` positions; otherwise some windows are one
    position longer and neighbours overlap (``size=5, bins=3``: ``[0, 2), [1, 4), [3, 5)``);
    with ``bins > size`` positions repeat.

    Args:
        size: the input's length along the axis.
        bins: the output's length along the axis.

    Returns:
        ``bins`` pairs ``(start, end)``.

    Raises:
        TypeError, ValueError: ``size`` or ``bins`` is not a positive int.
    """
    check_positive_int(size, "size")
    check_positive_int(bins, "bins")
    return [((i * size) // bins, -((-(i + 1) * size) // bins)) for i in range(bins)]


def fixed_pooling_for(size: int, bins: int) -> tuple[int, int]:
    """``(kernel, stride)`` of the fixed pooling equal to adaptive pooling of ``size`` into ``bins``.

    When ``bins`` divides ``size``, ``AvgPool2d(kernel_size=size // bins, stride=size // bins)``
    computes exactly what ``AdaptiveAvgPool2d(bins)`` does (the same disjoint windows, see
    :func:`adaptive_pool_windows`); otherwise no fixed kernel and stride do, since the
    adaptive windows differ in length or overlap.

    **Export.** ONNX's ``AveragePool`` and many inference runtimes need a fixed kernel and
    stride, so an exported PSPNet has its pyramid fixed to one feature-map size, and with it
    the input size. The original Caffe PSPNet did the same: it ran on ``473 x 473`` crops,
    and ``473 = 8 * 59 + 1`` gives a ``60 x 60`` map at output stride 8 (torchvision's
    ResNet: ``473 -> 237 -> 119 -> 60``), which 1, 2, 3 and 6 all divide (kernels 60, 30, 20
    and 10). Implementations either export at such a fixed input size, or resize (or pad)
    any other input to one before the network and the logits back after it.

    Args:
        size: the feature map's length along the axis (e.g. 60).
        bins: the pyramid level's bins along the axis (e.g. 6).

    Returns:
        ``(kernel, stride)``, both ``size // bins``.

    Raises:
        TypeError, ValueError: ``size`` or ``bins`` is not a positive int.
        ValueError: ``bins`` does not divide ``size``.
    """
    check_positive_int(size, "size")
    check_positive_int(bins, "bins")
    if size % bins:
        raise ValueError(
            f"size must be a multiple of bins={bins} for a fixed pooling, got size={size}: "
            f"adaptive pooling then uses windows of different lengths "
            f"{sorted({end - start for start, end in adaptive_pool_windows(size, bins)})}; "
            "resize the input so that the feature map is a multiple of every bin "
            "(e.g. 473 x 473 -> 60 x 60 at output stride 8), or keep adaptive pooling")
    return size // bins, size // bins


# --------------------------------------------------------------------------- the pyramid


def _check_bins(bins: object) -> tuple[int, ...]:
    if not isinstance(bins, (tuple, list)):
        raise TypeError(f"bins must be a tuple or list of positive ints, got {bins!r} "
                        f"({type(bins).__name__})")
    if not bins:
        raise ValueError(f"bins must be a non-empty tuple or list of positive ints, got {bins!r}")
    return tuple(check_positive_int(b, "each bin") for b in bins)


class PyramidStage(ASPPPooling):
    """One level of the pyramid: pool to ``bins x bins``, 1x1 conv, BN, ReLU, upsample back.

    DeepLab v3's image pooling (:class:`~segtutor.models.deeplab.ASPPPooling`) is this stage
    with ``bins=1``; the class extends it, so the layers, ``forward`` and the batch check are
    the same code. Layers (``state_dict`` keys): ``0`` the adaptive pooling (average or max),
    ``1`` the 1x1 convolution (no bias: batch norm follows), ``2`` the ``BatchNorm2d``, ``3``
    the ReLU; ``forward`` resizes the result to the input's size (bilinear,
    ``align_corners=False``).

    Args:
        in_channels: channels of the feature map.
        out_channels: channels after the 1x1 convolution.
        bins: the pooled map is ``bins x bins``.
        pooling: ``"avg"`` (the paper) or ``"max"``.

    Attributes:
        bins: as given.
        pooling: as given.
    """

    def __init__(self, in_channels: int, out_channels: int, bins: int,
                 pooling: str = "avg") -> None:
        check_positive_int(bins, "bins")
        check_choice(pooling, "pooling", POOLINGS)
        super().__init__(in_channels, out_channels)
        self[0] = nn.AdaptiveAvgPool2d(bins) if pooling == "avg" else nn.AdaptiveMaxPool2d(bins)
        self.bins = bins
        self.pooling = pooling

    def check_batch(self, batch_size: int) -> None:
        """Raise ``ValueError`` if batch norm would train on one value per channel.

        That happens for the ``1x1`` bin with a batch of one image (in training mode):
        batch norm then normalises ``batch_size * bins * bins == 1`` values.
        """
        if batch_size * self.bins * self.bins == 1 and self[2].training:
            raise ValueError(
                "the pyramid pooling's 1x1 bin cannot train on a batch of 1 image: it pools "
                "each image to 1x1, so its batch norm sees one value per channel. Use a batch "
                "size >= 2, or put batch norm in eval mode (model.eval() for inference, or "
                "freeze the BatchNorm2d layers when fine-tuning with single images)")


class PyramidPooling(nn.Module):
    """The pyramid pooling module (PSPNet's Fig. 3): the map concatenated with its pyramid.

    One :class:`PyramidStage` per entry of ``bins`` (``stages.0`` ... in the given order),
    each pooling the ``[N, in_channels, h, w]`` map to ``b x b``, reducing it to
    ``out_channels`` (default ``in_channels // len(bins)``: 512 of 2048 for the paper's four
    levels) and upsampling it back; ``forward`` returns ``cat([x, stage_1(x), ...], dim=1)``
    with ``in_channels + len(bins) * out_channels`` channels (``2 * in_channels`` for the
    default). Any ``h, w >= 1`` works (adaptive pooling repeats positions when ``b > h``).

    Args:
        in_channels: channels of the feature map (2048 for ResNet-50/101's layer4).
        bins: the pyramid's levels, ``(1, 2, 3, 6)`` in the paper.
        pooling: ``"avg"`` (the paper's choice) or ``"max"``; the paper's ablation
            (Sec. 5.2, Table 1) compares the two.
        out_channels: channels of *each* stage; ``None`` for ``in_channels // len(bins)``.

    Attributes:
        bins, pooling: as given.
        stage_channels: channels of each stage.
        total_channels: channels of the output.

    Raises:
        TypeError, ValueError: ``in_channels`` or ``out_channels`` not a positive int, bins
            that are not a non-empty tuple or list of positive ints, an unknown ``pooling``,
            or ``in_channels < len(bins)`` with the default ``out_channels``.
    """

    def __init__(self, in_channels: int, bins: Sequence[int] = PSP_BINS, *,
                 pooling: str = "avg", out_channels: int | None = None) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        self.bins = _check_bins(bins)
        self.pooling = check_choice(pooling, "pooling", POOLINGS)
        check_optional_int(out_channels, "out_channels", minimum=1)
        if out_channels is None:
            out_channels = in_channels // len(self.bins)
            if out_channels == 0:
                raise ValueError(f"in_channels must be >= len(bins) = {len(self.bins)} for the "
                                 f"default out_channels = in_channels // len(bins), got "
                                 f"in_channels={in_channels}; give out_channels")
        self.stage_channels = out_channels
        self.total_channels = in_channels + len(self.bins) * out_channels
        self.stages = nn.ModuleList(
            PyramidStage(in_channels, out_channels, b, pooling) for b in self.bins)

    def check_batch(self, batch_size: int) -> None:
        """Every stage's :meth:`PyramidStage.check_batch` (the 1x1 bin's, in practice)."""
        for stage in self.stages:
            stage.check_batch(batch_size)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, total_channels, h, w]``: ``x`` and every stage's output, concatenated."""
        self.check_batch(x.shape[0])
        return torch.cat([x, *(stage(x) for stage in self.stages)], dim=1)
