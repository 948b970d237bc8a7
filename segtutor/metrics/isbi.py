"""The ISBI 2012 challenge's scores: is every cell found as one segment, or are cells merged and split?

Pixel scores (accuracy, IoU) count pixels; the EM segmentation challenge
(Arganda-Carreras et al. 2015, https://doi.org/10.3389/fnana.2015.00142) scores the
*segmentation* that the membranes imply: the cells are the connected regions between
membranes, and a one-pixel gap in a membrane merges two cells while costing almost no
pixel accuracy. Its two scores, both restricted to the true cells' pixels ("foreground-
restricted": the labelled membrane pixels are left out, since where exactly a membrane's
pixels end is the annotator's choice):

* the **Rand** scores: over pairs of true-cell pixels, do truth and prediction agree on
  "same cell"? The *merge* score is the share of the pairs together in the prediction that
  are together in the truth (low when cells are merged), the *split* score the share of the
  pairs together in the truth that are together in the prediction (low when cells are
  split); their harmonic mean is the challenge's V_rand, and the *adapted Rand error* is
  ``1 - V_rand``;
* the **variation of information** ``H(pred | true) + H(true | pred)``: the first term
  measures splits, the second merges (in bits).

:func:`isbi_scores` hands both to scikit-image (``skimage.metrics.adapted_rand_error`` and
``variation_of_information``, the field's implementations), after turning the two class
maps into segmentations: the truth's cells are the 4-connected components of its cell
pixels (membrane pixels get label 0, ignored); the prediction's are the components of its
cell pixels, each predicted membrane pixel given to the nearest predicted cell (the
challenge likewise thins the proposed membranes away before scoring).

scikit-image calls the two Rand scores ``precision`` (``sum p_ij^2 / sum a_i^2``, with
``a_i`` the sizes of the *true* segments: the split score) and ``recall`` (over the sizes of
the predicted segments: the merge score); :func:`isbi_scores` returns them under the
challenge's names, which say what lowers them (tested against the pair-counting formula).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.metrics import adapted_rand_error, variation_of_information
from torch import Tensor

from .._checks import check_int, describe

__all__ = ["ISBI_SCORES", "isbi_scores", "label_segments"]

#: The keys of :func:`isbi_scores`'s result.
ISBI_SCORES = ("rand_error", "rand_split", "rand_merge", "vi_split", "vi_merge")


def _labels(array: np.ndarray | Tensor, name: str) -> np.ndarray:
    if isinstance(array, Tensor):
        array = array.detach().cpu().numpy()
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype.kind not in "iub":
        raise TypeError(f"{name} must be an integer array or tensor [H, W] of class labels, "
                        f"got {describe(array)}")
    return array


def label_segments(labels: np.ndarray | Tensor, *, foreground: int = 1,
                   fill_boundaries: bool = False) -> np.ndarray:
    """Segments of a class map: the 4-connected components of ``labels == foreground``, from 1.

    Args:
        labels: ``int[H, W]`` class labels (a tensor or an array).
        foreground: the class of the cells (ISBI 2012: 1, the cell interiors).
        fill_boundaries: give every other pixel the label of the nearest segment (by
            Euclidean distance); otherwise they are 0. Without any segment all are 0.

    Raises:
        TypeError: ``labels`` is not a 2-D integer array/tensor or ``foreground`` not an int.
    """
    array = _labels(labels, "labels")
    foreground = check_int(foreground, "foreground")
    segments, count = ndimage.label(array == foreground)
    if fill_boundaries and count > 0:
        nearest = ndimage.distance_transform_edt(segments == 0, return_distances=False,
                                                 return_indices=True)
        segments = segments[tuple(nearest)]
    return segments


def isbi_scores(prediction: np.ndarray | Tensor, target: np.ndarray | Tensor, *,
                foreground: int = 1) -> dict[str, float]:
    """Foreground-restricted Rand error (with its split and merge scores) and the split/merge VI.

    Args:
        prediction: ``int[H, W]`` predicted class labels.
        target: ``int[H, W]`` true class labels, same shape.
        foreground: the cell class; every other class is membrane.

    Returns:
        ``{"rand_error", "rand_split", "rand_merge", "vi_split", "vi_merge"}`` as floats
        (:data:`ISBI_SCORES`): ``rand_error = 1 - 2 S M / (S + M)`` of the split and merge
        scores ``S`` and ``M`` (1 = nothing split, nothing merged); the VI terms in bits
        (0 = nothing split, nothing merged).

    Raises:
        TypeError: an input is not a 2-D integer array/tensor.
        ValueError: the shapes differ, or ``target`` has no pixel of class ``foreground``.
    """
    true = label_segments(target, foreground=foreground)
    test = label_segments(prediction, foreground=foreground, fill_boundaries=True)
    if true.shape != test.shape:
        raise ValueError(f"prediction and target must have the same shape, got "
                         f"{tuple(test.shape)} and {tuple(true.shape)}")
    if true.max() == 0:
        raise ValueError(f"target must contain pixels of the foreground class {foreground}, "
                         f"got none")
    error, split_score, merge_score = adapted_rand_error(true, test, ignore_labels=(0,))
    split, merge = variation_of_information(true, test, ignore_labels=(0,))
    return {"rand_error": float(error), "rand_split": float(split_score),
            "rand_merge": float(merge_score), "vi_split": float(split), "vi_merge": float(merge)}

