"""The building block most networks of the book repeat: convolution, batch norm, ReLU."""

from __future__ import annotations

from torch import nn

from .._checks import check_bool, check_non_negative_int, check_positive_int

__all__ = ["conv_bn_relu"]


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, *,
                 padding: int | None = None, dilation: int = 1, batch_norm: bool = True,
                 bias: bool | None = None) -> nn.Sequential:
    """A convolution, optional ``BatchNorm2d``, and ``ReLU(inplace=True)``.

    The three layers come as an ``nn.Sequential`` with keys ``0``, ``1``, ``2`` (``0``, ``1``
    without batch norm); a network that keeps a flat list of layers (VGG's, SegNet's,
    U-Net's) unpacks it, ``[*conv_bn_relu(...)]``, so its ``state_dict`` keys stay flat.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: the kernel size (3 in VGG, SegNet and U-Net; 1 for a projection).
        padding: zeros added on each side; ``None`` keeps the size ("same": an odd
            ``kernel_size`` and ``dilation * (kernel_size - 1) / 2``), ``0`` is the U-Net
            paper's "valid" convolution.
        dilation: spacing of the kernel taps (DeepLab's atrous rate).
        batch_norm: include the ``BatchNorm2d``.
        bias: give the convolution a bias; ``None`` means "only without batch norm", since
            batch norm's shift cancels a bias (VGG16-BN and SegNet keep one anyway: pass
            ``bias=True`` for their weights to load).

    Raises:
        TypeError, ValueError: a channel count, kernel size or dilation that is not a
            positive int, a negative padding, an even kernel size with ``padding=None``, or
            a flag that is not a bool.
    """
    check_positive_int(in_channels, "in_channels")
    check_positive_int(out_channels, "out_channels")
    check_positive_int(kernel_size, "kernel_size")
    check_positive_int(dilation, "dilation")
    check_bool(batch_norm, "batch_norm")
    if padding is None:
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for a same-size convolution (padding=None), "
                             f"got {kernel_size}; give the padding explicitly")
        padding = dilation * (kernel_size - 1) // 2
    check_non_negative_int(padding, "padding")
    bias = (not batch_norm) if bias is None else check_bool(bias, "bias")
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size,
                                         padding=padding, dilation=dilation, bias=bias)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
