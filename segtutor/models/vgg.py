"""VGG16 (Simonyan & Zisserman 2015), and turning it into a fully convolutional network.

Paper: "Very Deep Convolutional Networks for Large-Scale Image Recognition",
https://arxiv.org/abs/1409.1556.

The network here is built from the same configuration list as torchvision's, so its
``state_dict`` has exactly torchvision's keys and shapes and torchvision's ImageNet weights
load unchanged (``vgg16(weights="IMAGENET1K_V1")`` goes through torchvision's weights API).
"16" counts the layers with weights: 13 convolutions and 3 fully connected layers.

:func:`convolutionalize` rewrites the three fully connected layers as convolutions (fc6 as a
7x7 convolution, fc7 and fc8 as 1x1 convolutions) -- the step from a classifier to a fully
convolutional network (Long, Shelhamer & Darrell 2015, https://arxiv.org/abs/1411.4038).
:func:`pool_stages` runs the convolutional part and returns the output of every pooling
stage, which FCN's skip connections and SegNet's decoder need.
"""

from __future__ import annotations

import copy
import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import VGG16_Weights, WeightsEnum

from .._checks import check_bool, check_positive_int, check_positive_number, check_probability
from ..ops import conv_bn_relu
from .registry import register

__all__ = [
    "VGG",
    "VGG16_CONFIG",
    "WeightsUnavailableError",
    "convolutionalize",
    "load_weights",
    "make_features",
    "pool_stages",
    "resolve_weights",
    "vgg16",
]

#: VGG16's convolutional part ("configuration D" of the paper): an int is a 3x3 convolution
#: (padding 1) with that many output channels, followed by ReLU; ``"M"`` is a 2x2 max pooling
#: with stride 2. 13 convolutions in 5 stages, each stage ending in a pooling.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, "M",
    512, 512, 512, "M",
    512, 512, 512, "M",
)

#: The channel count of VGG16's first stage; ``width`` arguments scale every stage from it.
FULL_WIDTH = 64


class WeightsUnavailableError(ConnectionError):
    """Pretrained weights could not be downloaded (offline, or the server is unreachable)."""


def make_features(config: tuple[int | str, ...] = VGG16_CONFIG, *, in_channels: int = 3,
                  batch_norm: bool = False, width: int = FULL_WIDTH) -> nn.Sequential:
    """Build VGG's convolutional part from a configuration list.

    The layer order and indices are torchvision's (``features.0`` is conv1_1,
    ``features.4`` is pool1, ...), so the ``state_dict`` keys match.

    Args:
        config: see :data:`VGG16_CONFIG`.
        in_channels: channels of the input image.
        batch_norm: put a ``BatchNorm2d`` between every convolution and its ReLU (VGG16-BN,
            and SegNet's encoder).
        width: channels of the first stage; every stage is scaled by ``width / 64``
            (64 is VGG16 itself; 8 gives a network small enough to train on a CPU).

    Raises:
        TypeError, ValueError: ``in_channels`` or ``width`` is not a positive int, or
            ``config`` holds something other than positive ints and ``"M"``.
    """
    check_positive_int(in_channels, "in_channels")
    check_positive_int(width, "width")
    check_bool(batch_norm, "batch_norm")
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        out_channels = check_positive_int(item, "config entry") * width // FULL_WIDTH
        if out_channels < 1:
            raise ValueError(f"width={width} scales the config entry {item} to 0 channels; "
                             f"use width >= {-(-FULL_WIDTH // item)}")
        layers += conv_bn_relu(channels, out_channels, batch_norm=batch_norm, bias=True)
        channels = out_channels
    return nn.Sequential(*layers)


def feature_channels(module: nn.Module) -> int:
    """Output channels of a stack of layers such as :func:`make_features`'s: its last convolution's."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def pool_stages(features: nn.Sequential, x: Tensor, *, return_indices: bool = False
                ) -> list[Tensor] | list[tuple[Tensor, Tensor]]:
    """Run a :func:`make_features` stack and collect the output of every pooling stage.

    Args:
        features: VGG's convolutional part (e.g. ``vgg16().features``).
        x: the input batch ``[N, C, H, W]``.
        return_indices: also return the argmax indices of every max pooling (as
            ``nn.MaxPool2d(return_indices=True)`` does), which SegNet's decoder uses.

    Returns:
        One entry per pooling layer, shallowest first (pool1 ... pool5 for VGG16): the
        pooled tensor, or ``(pooled, indices)`` with ``return_indices=True``.
    """
    outputs: list = []
    for layer in features:
        if isinstance(layer, nn.MaxPool2d):
            pooled, indices = nn.functional.max_pool2d(
                x, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                ceil_mode=layer.ceil_mode, return_indices=True)
            outputs.append((pooled, indices) if return_indices else pooled)
            x = pooled
        else:
            x = layer(x)
    return outputs


class VGG(nn.Module):
    """VGG: a convolutional ``features`` stack, ``avgpool`` to 7x7, and a 3-layer ``classifier``.

    Args:
        features: the convolutional part, from :func:`make_features`.
        num_classes: outputs of the last fully connected layer (fc8).
        dropout: dropout probability after fc6 and fc7.
        hidden: units of fc6 and fc7 (4096 in the paper).
    """

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5,
                 hidden: int = 4096) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(hidden, "hidden")
        check_probability(dropout, "dropout")
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(feature_channels(features) * 7 * 7, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        init_vgg_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        """Class scores ``[N, num_classes]`` for images ``[N, C, H, W]`` (224x224 in the paper)."""
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def init_vgg_weights(module: nn.Module) -> None:
    """torchvision's VGG initialisation: He (fan-out) for convolutions, N(0, 0.01) for linears."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def resolve_weights(weights: str | WeightsEnum | None,
                    enum: type[WeightsEnum] = VGG16_Weights) -> WeightsEnum | None:
    """Turn ``"IMAGENET1K_V1"`` (or ``"DEFAULT"``) into a member of torchvision's ``enum``.

    A ``WeightsEnum`` member is returned as it is (any enum, so that tests can point one at
    a local file); ``None`` stays ``None``.

    Raises:
        ValueError: the string names no member of ``enum`` (the message lists them).
        TypeError: ``weights`` is neither ``None``, a string nor a ``WeightsEnum`` member.
    """
    if weights is None or isinstance(weights, WeightsEnum):
        return weights
    if not isinstance(weights, str):
        raise TypeError(f"weights must be None, a string such as 'IMAGENET1K_V1' or a "
                        f"torchvision WeightsEnum member, got {weights!r}")
    try:
        return enum.verify(weights)
    except KeyError:
        valid = [*enum.__members__]
        raise ValueError(f"unknown weights {weights!r}; valid: {valid}") from None


def load_weights(weights: WeightsEnum, *, progress: bool = True,
                 timeout: float = 30.0) -> dict[str, Tensor]:
    """Read the ``state_dict`` of ``weights`` from torch's cache, downloading it if needed.

    The file lives at ``$TORCH_HOME/hub/checkpoints/<name>`` (``<name>`` is the last part
    of ``weights.url``, e.g. ``vgg16-397923af.pth``; ``TORCH_HOME`` defaults to
    ``~/.cache/torch``), which is where torchvision's weights API
    (``weights.get_state_dict``) looks and downloads to, so a file placed there by hand is
    used with no network. torch checks the hash prefix in the name (``397923af``: the
    first digits of the file's SHA-256) only while downloading; a file already there is
    checked here first (once per process), so a wrong or truncated copy gets a clear
    error instead of an unpickling failure or silently wrong weights.

    Why no mirror list here, unlike the data sets (:mod:`segtutor.data.download`): every
    pretrained file has one publisher, ``download.pytorch.org`` (a CDN), and no other
    host serves the same bytes -- copies such as timm's on the Hugging Face Hub are
    re-serialised (safetensors, other bytes), so they would fail the hash in the name.
    What helps a reader whose download fails is the exact path and file name to place a
    copy at, which the error gives. torch's own downloader has no time-out, so the server
    is first asked for the file's headers with one (``timeout``): a host that does not
    answer fails fast instead of hanging the notebook.

    Args:
        weights: a torchvision ``WeightsEnum`` member.
        progress: show torch's download progress bar.
        timeout: seconds to wait for the server's first answer before giving up.

    Returns:
        The ``state_dict``.

    Raises:
        WeightsUnavailableError: the file is not in the cache and cannot be downloaded
            (no answer, an HTTP error, or a corrupt download); the message names the URL,
            the error and the exact path to place the file at by hand.
        ValueError: a file in the cache whose SHA-256 does not start with the prefix in its
            name (the message says to delete or replace it), or a ``timeout`` that is not
            a positive number.
        TypeError: ``weights`` is not a ``WeightsEnum`` member, or ``progress`` not a bool.
    """
    if not isinstance(weights, WeightsEnum):
        raise TypeError(f"weights must be a torchvision WeightsEnum member, got {weights!r}")
    check_bool(progress, "progress")
    timeout = check_positive_number(timeout, "timeout")
    path = _cache_path(weights)
    prefix = _hash_prefix(path)
    if path.is_file():
        _check_cached_file(weights, path, prefix)
    else:
        try:
            _probe(weights.url, timeout)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            raise _unavailable(weights, path, prefix, error) from error
    try:
        state_dict = weights.get_state_dict(progress=progress, check_hash=True)
    except (urllib.error.URLError, ConnectionError, TimeoutError,
            http.client.HTTPException) as error:
        raise _unavailable(weights, path, prefix, error) from error
    except RuntimeError as error:  # torch.hub's hash check of the downloaded bytes
        if "invalid hash value" not in str(error):
            raise
        raise _unavailable(weights, path, prefix, f"the download was corrupt: {error}") from error
    _remember_verified(path)
    return state_dict


# Cached files already checked in this process: path -> (size, mtime_ns) when checked.
_VERIFIED: dict[Path, tuple[int, int]] = {}


def _cache_path(weights: WeightsEnum) -> Path:
    """Where torch's weights API keeps (and looks for) the file of ``weights``."""
    name = os.path.basename(urllib.parse.urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _hash_prefix(path: Path) -> str | None:
    match = torch.hub.HASH_REGEX.search(path.name)  # the rule torch's check_hash applies
    return match.group(1) if match and match.group(1) else None


def _remember_verified(path: Path) -> None:
    if path.is_file():
        stat = path.stat()
        _VERIFIED[path] = (stat.st_size, stat.st_mtime_ns)


def _check_cached_file(weights: WeightsEnum, path: Path, prefix: str | None) -> None:
    stat = path.stat()
    if prefix is None or _VERIFIED.get(path) == (stat.st_size, stat.st_mtime_ns):
        return
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    actual = digest.hexdigest()
    if not actual.startswith(prefix):
        raise ValueError(
            f"{path} is not the file of {weights!r}: its SHA-256 is {actual}, but the name "
            f"says it starts with {prefix}. Delete it (it is then downloaded again from "
            f"{weights.url}) or replace it with that file.")
    _remember_verified(path)


def _probe(url: str, timeout: float) -> None:
    """Ask ``url``'s server for the headers; any HTTP answer counts (torch reports errors)."""
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        return
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "torch.hub"})
    try:
        urllib.request.urlopen(request, timeout=timeout).close()  # noqa: S310 (http(s) only)
    except urllib.error.HTTPError as error:  # it answered; torch's GET gives the real error
        error.close()


def _unavailable(weights: WeightsEnum, path: Path, prefix: str | None,
                 error: object) -> WeightsUnavailableError:
    check = f"; its SHA-256 must start with {prefix}" if prefix else ""
    return WeightsUnavailableError(
        f"could not download {weights!r} from {weights.url} ({error}). Connect to the "
        f"internet, or download that file elsewhere and place it at {path} (file name "
        f"{path.name}{check}). The folder is $TORCH_HOME/hub/checkpoints; set TORCH_HOME "
        f"to use another one.")


@register(task="classification", tiny_kwargs={"width": 8, "hidden": 64})
def vgg16(*, num_classes: int = 1000, weights: str | WeightsEnum | None = None,
          progress: bool = True, in_channels: int = 3, width: int = FULL_WIDTH,
          hidden: int = 4096, dropout: float = 0.5) -> VGG:
    """VGG16, exactly as ``torchvision.models.vgg16`` (same keys, same outputs).

    Paper: https://arxiv.org/abs/1409.1556.

    Args:
        num_classes: outputs of fc8 (1000 for ImageNet).
        weights: ``None`` (random initialisation), ``"IMAGENET1K_V1"``/``"DEFAULT"`` or a
            torchvision ``WeightsEnum`` member such as ``VGG16_Weights.IMAGENET1K_V1``.
        progress: show a download progress bar.
        in_channels: input channels (3 for RGB; pretrained weights need 3).
        width: channels of the first stage (64 for VGG16; smaller for CPU experiments;
            pretrained weights need 64).
        hidden: units of fc6 and fc7 (4096; pretrained weights need 4096).
        dropout: dropout probability after fc6 and fc7.

    Raises:
        ValueError: pretrained ``weights`` with a ``num_classes``, ``in_channels``, ``width``
            or ``hidden`` they do not fit; or unknown weights.
        WeightsUnavailableError: the weights cannot be downloaded (offline).
    """
    weights = resolve_weights(weights, VGG16_Weights)
    state_dict = None
    if weights is not None:
        check_pretrained_fits(weights, num_classes=num_classes, in_channels=in_channels,
                              width=width, hidden=hidden)
        state_dict = load_weights(weights, progress=progress)  # fails fast when offline
    model = VGG(make_features(in_channels=in_channels, width=width), num_classes=num_classes,
                dropout=dropout, hidden=hidden)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


def check_pretrained_fits(weights: WeightsEnum, **settings: int) -> None:
    """Raise ``ValueError`` if ``settings`` differ from the full-size network ``weights`` fit.

    Args:
        weights: the pretrained weights asked for.
        settings: any of ``num_classes``, ``in_channels``, ``width``, ``hidden`` (or FCN's
            name for it, ``fc_channels``).
    """
    categories = weights.meta.get("categories")
    expected = {"num_classes": len(categories) if categories else None, "in_channels": 3,
                "width": FULL_WIDTH, "hidden": 4096, "fc_channels": 4096}
    for name, value in settings.items():
        if expected[name] is not None and value != expected[name]:
            raise ValueError(f"pretrained weights {weights!r} need {name}={expected[name]}, "
                             f"got {name}={value}; pass weights=None to train from scratch")


def linear_to_conv(linear: nn.Linear, in_channels: int, kernel_size: int) -> nn.Conv2d:
    """A convolution computing exactly what ``linear`` computes on a flattened feature map.

    ``linear`` sees a flattened ``[in_channels, k, k]`` map, so its weight
    ``[out, in_channels * k * k]`` reshapes to a ``k x k`` kernel
    ``[out, in_channels, k, k]`` (PyTorch's flatten is channel-major, like the kernel).
    """
    conv = nn.Conv2d(in_channels, linear.out_features, kernel_size)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
        conv.bias.copy_(linear.bias)
    return conv


def convolutionalize(model: VGG) -> nn.Sequential:
    """Turn a :class:`VGG` classifier into a fully convolutional network.

    fc6 becomes a 7x7 convolution over the 7x7 pool5 map, fc7 and fc8 become 1x1
    convolutions; the weights are copied (reshaped), so on a 224x224 input the result
    ``[N, num_classes, 1, 1]`` equals the classifier's output. On a larger ``H x W`` input
    it slides the classifier over the image with stride 32 and returns a coarse map of
    class scores ``[N, num_classes, H // 32 - 6, W // 32 - 6]`` (inputs must be at least
    224x224). The ``avgpool`` is dropped: it is the identity on 224x224 inputs.

    Args:
        model: a :class:`VGG` (e.g. from :func:`vgg16`); it is not modified.

    Returns:
        ``nn.Sequential`` with ``features`` (a copy), ``fc6``, ``relu6``, ``drop6``,
        ``fc7``, ``relu7``, ``drop7`` and ``fc8``.

    Raises:
        TypeError: ``model`` is not a :class:`VGG`.
    """
    if not isinstance(model, VGG):
        raise TypeError(f"convolutionalize expects a segtutor VGG, got {type(model).__name__}")
    fc6, fc7, fc8 = model.classifier[0], model.classifier[3], model.classifier[6]
    dropout = model.classifier[2].p
    return nn.Sequential(OrderedDict([
        ("features", copy.deepcopy(model.features)),
        ("fc6", linear_to_conv(fc6, feature_channels(model.features), kernel_size=7)),
        ("relu6", nn.ReLU(inplace=True)),
        ("drop6", nn.Dropout(dropout)),
        ("fc7", linear_to_conv(fc7, fc7.in_features, kernel_size=1)),
        ("relu7", nn.ReLU(inplace=True)),
        ("drop7", nn.Dropout(dropout)),
        ("fc8", linear_to_conv(fc8, fc8.in_features, kernel_size=1)),
    ]))
