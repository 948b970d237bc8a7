"""Fixtures of the unit tests: local stand-ins for torchvision's downloadable weights."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from torchvision.models import Weights, WeightsEnum


def _local_weights(url: str, num_categories: int = 7) -> WeightsEnum:
    class LocalWeights(WeightsEnum):
        TEST = Weights(url=url, transforms=None,
                       meta={"categories": [str(i) for i in range(num_categories)]})
    return LocalWeights.TEST


def _unreachable_url(filename: str) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{filename}"


@pytest.fixture
def local_weights() -> Callable[..., WeightsEnum]:
    """``local_weights(url, num_categories=7)``: a torchvision weights enum member pointing
    at ``url`` (e.g. a ``file://`` URL), so the weights API runs with no internet."""
    return _local_weights


@pytest.fixture
def unreachable_url() -> Callable[[str], str]:
    """``unreachable_url(filename)``: an http URL on 127.0.0.1 at a port nobody listens on,
    so that a download fails at once."""
    return _unreachable_url
