"""segtutor.viz.plots: palette against the Pascal VOC devkit's published colours, overlays,
grids and curves."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from segtutor import viz

# Colours listed in the VOC 2012 devkit (VOCcode/VOClabelcolormap.m), by class id.
VOC_DEVKIT_COLOURS = {
    0: (0, 0, 0),          # background
    1: (128, 0, 0),        # aeroplane
    2: (0, 128, 0),        # bicycle
    5: (128, 0, 128),      # bottle
    8: (64, 0, 0),         # cat
    12: (64, 0, 128),      # dog
    15: (192, 128, 128),   # person
    20: (0, 64, 128),      # tvmonitor
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_palette_matches_voc_devkit():
    palette = viz.voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    for class_id, colour in VOC_DEVKIT_COLOURS.items():
        assert tuple(palette[class_id]) == colour, class_id
    assert tuple(palette[255]) == (224, 224, 192)  # VOC's border/ignore colour
    assert len({tuple(c) for c in palette[:21]}) == 21


def test_palette_rejects_bad_size():
    with pytest.raises(ValueError, match=r"num_classes must be an int in \[1, 256\], got 0"):
        viz.voc_palette(0)


def test_colorize_and_overlay():
    mask = torch.tensor([[0, 1], [255, 2]])
    coloured = viz.colorize(mask)
    assert coloured.shape == (2, 2, 3)
    assert tuple(coloured[0, 1]) == (128, 0, 0) and tuple(coloured[1, 0]) == (224, 224, 192)
    image = torch.zeros(3, 2, 2)
    blended = viz.overlay(image, mask, alpha=0.5)
    assert np.allclose(blended[0, 0], 0.0)  # background left uncoloured
    assert np.allclose(blended[0, 1], np.array([128, 0, 0]) / 255 * 0.5)


def test_overlay_rejects_mismatched_sizes_and_bad_alpha():
    with pytest.raises(ValueError, match=r"image is \(4, 4\) but mask is \(2, 2\)"):
        viz.overlay(torch.zeros(3, 4, 4), torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"alpha must be a finite number >= 0 and <= 1, got 1.5"):
        viz.overlay(torch.zeros(3, 2, 2), torch.zeros(2, 2, dtype=torch.int64), alpha=1.5)


def test_masks_must_be_integer_class_ids():
    with pytest.raises(TypeError, match="integer class ids"):
        viz.colorize(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="class ids in 0..255"):
        viz.colorize(torch.full((2, 2), 300))


def test_show_image_accepts_chw_and_grayscale():
    ax = viz.show_image(torch.rand(3, 5, 7), title="x")
    assert ax.images[0].get_array().shape == (5, 7, 3) and ax.get_title() == "x"
    ax = viz.show_image(torch.rand(1, 5, 7))
    assert ax.images[0].get_array().shape == (5, 7, 3)
    with pytest.raises(ValueError, match=r"expected an image \[3, H, W\]"):
        viz.show_image(torch.rand(2, 5, 7))


def test_show_predictions_grid():
    images = torch.rand(3, 3, 8, 8)
    masks = torch.randint(0, 3, (3, 8, 8))
    figure = viz.show_predictions(images, masks, masks, class_names=["bg", "a", "b"])
    assert len(figure.axes) == 9
    with pytest.raises(ValueError, match="counts must match"):
        viz.show_predictions(images, masks[:1], masks)


def test_plot_history_from_dict():
    figure = viz.plot_history({"train_loss": [1.0, 0.5], "val_miou": [0.2, 0.6]})
    assert len(figure.axes) == 2
    with pytest.raises(ValueError, match="no train_loss"):
        viz.plot_history({"train_loss": []})


def test_plot_history_uses_fractional_epochs_and_skips_nan():
    figure = viz.plot_history({"epoch": [1.0, 1.5], "train_loss": [1.0, 0.8],
                               "val_miou": [float("nan"), float("nan")]})
    assert len(figure.axes) == 1  # no validation axis when every value is NaN
    assert list(figure.axes[0].lines[0].get_xdata()) == [1.0, 1.5]
    with pytest.raises(ValueError, match="2 epochs but 3 train_loss"):
        viz.plot_history({"epoch": [1, 2], "train_loss": [1.0, 0.5, 0.2]})
