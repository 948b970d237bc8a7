"""U-Net's elastic deformation (``ElasticGrid``) against a direct resampling by SciPy.

The paper's field: Gaussian displacements (10 px) on a coarse 3 x 3 grid, bicubically
interpolated to every pixel. The warp must sample the input at ``(x + dx, y + dy)`` in
*pixels* -- checked with ``scipy.ndimage.map_coordinates`` (bilinear, order 1) -- so the
conversion to torchvision's normalised displacement is right.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torchvision import tv_tensors

from segtutor.data import IGNORE_INDEX, ElasticGrid, JointTransform


def test_the_field_is_the_coarse_grid_interpolated():
    torch.manual_seed(0)
    transform = ElasticGrid(grid=3, sigma=10.0)
    nodes = []
    for _ in range(400):
        pixels = transform.make_params([tv_tensors.Image(torch.zeros(1, 65, 65))])["pixels"]
        # align_corners=True: the field's corners and centre are grid nodes exactly
        nodes.append(pixels[:, ::32, ::32].reshape(-1))
    values = torch.cat(nodes)
    assert values.std().item() == pytest.approx(10.0, rel=0.05)
    assert values.mean().abs().item() < 0.5


def test_the_warp_samples_the_input_at_the_displaced_pixels():
    torch.manual_seed(1)
    image = torch.from_numpy(ndimage.gaussian_filter(np.random.default_rng(0).random((48, 40)), 2))
    image = image.float()[None]
    transform = ElasticGrid(grid=3, sigma=3.0)
    params = transform.make_params([tv_tensors.Image(image)])
    warped = transform.transform(tv_tensors.Image(image), params)[0].numpy()
    dx, dy = params["pixels"].numpy()
    rows, cols = np.mgrid[0:48, 0:40].astype(np.float64)
    expected = ndimage.map_coordinates(image[0].double().numpy(), [rows + dy, cols + dx], order=1,
                                       mode="constant", cval=0.0)
    inside = ((rows + dy >= 0) & (rows + dy <= 47) & (cols + dx >= 0) & (cols + dx <= 39))
    assert inside.mean() > 0.8
    np.testing.assert_allclose(warped[inside], expected[inside], atol=2e-5)


def test_masks_keep_their_classes_and_zero_sigma_is_the_identity():
    torch.manual_seed(2)
    image, mask = torch.rand(1, 32, 32), (torch.rand(32, 32) > 0.5).long()
    new_image, new_mask = JointTransform(ElasticGrid(sigma=8.0))(image, mask)
    assert new_mask.dtype == torch.int64
    assert set(new_mask.unique().tolist()) <= {0, 1, IGNORE_INDEX}
    assert not torch.equal(new_mask, mask)
    same_image, same_mask = JointTransform(ElasticGrid(sigma=0.0))(image, mask)
    torch.testing.assert_close(same_image, image, atol=1e-6, rtol=0)
    assert torch.equal(same_mask, mask)


def test_weights_move_with_the_mask():
    torch.manual_seed(3)
    mask = (torch.rand(32, 32) > 0.5).long()
    weights = mask.float() * 3.0 + 1.0
    _, new_mask, new_weights = JointTransform(ElasticGrid(sigma=8.0))(torch.rand(1, 32, 32), mask,
                                                                      weights)
    labelled = new_mask != IGNORE_INDEX
    torch.testing.assert_close(new_weights[labelled], new_mask[labelled].float() * 3.0 + 1.0)
    with pytest.raises(TypeError, match="weights must be a floating-point tensor"):
        JointTransform()(torch.rand(1, 4, 4), mask[:4, :4], mask[:4, :4])
    with pytest.raises(ValueError, match=r"weights must have the mask's shape \(4, 4\)"):
        JointTransform()(torch.rand(1, 4, 4), mask[:4, :4], torch.rand(3, 4))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"grid": 1}, ValueError, "grid must be"),
    ({"grid": 2.5}, TypeError, "grid must be"),
    ({"sigma": -1.0}, ValueError, "sigma must be"),
    ({"sigma": "10"}, TypeError, "sigma must be"),
])
def test_bad_arguments_name_the_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        ElasticGrid(**kwargs)
