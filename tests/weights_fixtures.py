"""Local stand-ins for torchvision's downloadable weights (no internet at test time)."""

from __future__ import annotations

import socket

from torchvision.models._api import Weights, WeightsEnum


def local_weights(url: str, num_categories: int = 7) -> WeightsEnum:
    """A torchvision weights enum whose one member points at ``url`` (e.g. a file:// URL)."""
    class LocalWeights(WeightsEnum):
        TEST = Weights(url=url, transforms=None,
                       meta={"categories": [str(i) for i in range(num_categories)]})
    return LocalWeights.TEST


def unreachable_url(filename: str) -> str:
    """An http URL on 127.0.0.1 at a port nobody listens on: a download fails at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{filename}"
