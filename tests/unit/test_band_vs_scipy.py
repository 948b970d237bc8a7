"""Chapter 8 measures where the errors lie with ``segtutor.metrics.boundary_band(mask[None], 1)``
instead of SciPy's 3x3 maximum and minimum filters: the two must give the same band, on the
real ISBI 2012 labels when they are here and on random labels always."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from segtutor.data import ISBI2012, default_isbi_root
from segtutor.metrics import boundary_band


def scipy_band(labels: np.ndarray) -> np.ndarray:
    """Chapter 8's former band: a 3x3 window holds more than one label."""
    return ndimage.maximum_filter(labels, size=3) != ndimage.minimum_filter(labels, size=3)


@pytest.mark.skipif(default_isbi_root() is None, reason="ISBI 2012 copy not found")
def test_band_equals_scipy_on_the_isbi_labels():
    for _, mask in ISBI2012(default_isbi_root(), split="all"):
        band = boundary_band(mask[None], 1)[0]
        assert band.dtype == torch.bool
        assert np.array_equal(band.numpy(), scipy_band(mask.numpy()))


@pytest.mark.parametrize(("shape", "classes"), [((64, 48), 2), ((17, 31), 5), ((1, 9), 3),
                                                ((1, 1), 2), ((40, 40), 256)])
def test_band_equals_scipy_on_random_labels(shape, classes):
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        mask = torch.randint(0, classes, shape, generator=generator)
        assert np.array_equal(boundary_band(mask[None], 1)[0].numpy(), scipy_band(mask.numpy()))
