"""RoIPool and RoIAlign: a fixed-size feature for every box, in pure PyTorch.

A two-stage detector (Fast R-CNN, Faster R-CNN, Mask R-CNN) computes one feature map for
the whole image and then, for every region of interest (RoI, a box ``x1, y1, x2, y2`` in
image pixels), a small fixed-size feature ``[C, oh, ow]`` for the heads. The box is first
mapped onto the feature map by ``spatial_scale`` (``1/16`` for a stride-16 backbone), then
divided into ``oh x ow`` bins, and each bin is reduced to one value per channel.

* :func:`roi_pool` -- Fast R-CNN's RoIPool (Girshick 2015,
  https://arxiv.org/abs/1504.08083): the maximum over the feature cells of each bin.
* :func:`roi_align` -- Mask R-CNN's RoIAlign (He et al. 2017,
  https://arxiv.org/abs/1703.06870): the average of bilinearly interpolated samples.

RoIPool quantises twice, RoIAlign not at all -- the three differences:

1. **Rounding of the box.** RoIPool rounds the scaled corners to whole cells
   (``round(x1 * spatial_scale)``), so a box moves by up to half a cell, 8 image pixels at
   stride 16. RoIAlign keeps the real-valued corners.
2. **Rounding of the bins.** RoIPool's bin ``i`` covers the cells from
   ``floor(i * bin)`` to ``ceil((i + 1) * bin)``: bins overlap or differ in size by a cell.
   RoIAlign's bins are exactly ``roi / oh`` long.
3. **Bilinear sampling.** RoIAlign reads each bin at a regular ``grid x grid`` of points
   (``sampling_ratio``, or ``ceil(roi_h / oh)`` per box when it is ``<= 0``), each point
   interpolated bilinearly from its four neighbouring cells, and averages them; the
   gradient flows to all four neighbours in proportion. RoIPool takes the maximum cell and
   sends the whole gradient to it.

These misalignments hardly hurt box classification but do hurt pixel-accurate masks, which
is why Mask R-CNN introduced RoIAlign. ``aligned=True`` (Detectron2's default, its
``ROIAlignV2``) also shifts the box by half a cell, ``-0.5``, so that a cell's value sits
at its centre, as with ``F.interpolate(align_corners=False)``; torchvision's detectors
(``MultiScaleRoIAlign``, used by its Faster and Mask R-CNN) keep the original
``aligned=False``, which instead forces every box to be at least one cell wide and high.

The 4 x 4 map ``arange(16)`` and the box ``(0, 0, 2, 2)`` in a single bin::

    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> box = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]])     # batch index, x1, y1, x2, y2
    >>> roi_align(x, box, 1).item()                  # samples at 0.5 and 1.5: mean of 0..5, 4..9
    5.0
    >>> roi_align(x, box, 1, aligned=True).item()    # samples at 0 and 1: mean of 0, 1, 4, 5
    2.5
    >>> roi_pool(x, box, 1).item()                   # cells 0..2 x 0..2: the maximum is x[2, 2]
    10.0

Both reproduce torchvision's CPU kernels (``torchvision.ops.roi_align``/``roi_pool``) in
value and gradient, including their treatment of boxes outside the map, empty bins, ties
and boxes with ``x2 < x1`` (one documented exception, see :func:`roi_align`). Gradients
come from autograd; no gradient flows to the boxes, as in torchvision.

**How they are computed, and what dominates.** Everything is vectorised over boxes and
bins; the Python loops run over a bounded number of things: box-size classes, the images
of the batch, and the levels of a table.

A bilinear sample is separable: its weight on cell ``(h, w)`` is ``a(h) * b(w)``, so the
average over a bin's ``grid_h x grid_w`` samples is ``sum_hw A[i, h] F[h, w] B[j, w]``,
with ``A[k, i, h]`` the mean over the bin's sample rows of their weights on row ``h``
(``[K, oh, H]``, built with one ``scatter_add``; it absorbs ``sampling_ratio``, also a
different grid per box) and ``B`` likewise for the columns. A bin is then ``A_k F B_k^T``,
two matrix products per box, batched: a box touches only a ``p x q`` patch of the map
(its cells rounded up to powers of two), so the boxes of one patch size are done together
-- the patches copied out of the channels-last map (``index_select`` of channel vectors),
``bmm`` with ``A``, then with ``B``. A box whose patch would cover more than
half the map (``_WHOLE_MAP_FRACTION``) is done on the whole map instead, with the image's
other large boxes, as one ``[k * oh, H] @ [H, W * C]`` product. What dominates is moving
memory, not arithmetic: copying the patches (and, for large boxes, writing the
``[k, oh, W, C]`` intermediate), then the products, then putting the boxes back in their
order. The number of samples changes only ``A`` and ``B``, so unlike torchvision's kernel
the cost does not grow with ``sampling_ratio``; the backward pass is autograd's transposed
products and an ``index_add`` of the patches.

RoIPool's bins have integer edges, and the maximum over a bin ``[h0, h1) x [w0, w1)`` is
the maximum of four overlapping windows of ``2^p x 2^q`` cells (``2^p <= h1 - h0 <
2^(p+1)``), looked up in a 2-D sparse table of every such window's maximum for the sizes
the bins need. To get the kernel's argmax (the first maximum in row-major order) from a
plain ``max``, each cell is encoded as one int64 key, its value's rank in the high bits and
its reversed position in the low bits; the output is then gathered from the input at the
argmax, so autograd's backward pass is one ``scatter_add`` to exactly the cells the
kernel's backward pass writes to. Without a gradient to compute, the table holds the
values themselves (half the bytes, no keys, no gather). The four lookups (``index_select``
of channel vectors, ``[K * oh * ow, C]`` each) dominate, then building the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import (
    check_bool,
    check_int,
    check_int_pair,
    check_positive_number,
    check_tensor,
    describe,
)

__all__ = ["RoIAlign", "RoIPool", "roi_align", "roi_pool"]

#: RoIPool's initial maximum (``-FLT_MAX`` in torchvision's kernel): a non-empty bin whose
#: values are all below it (``-inf``, NaN) gives this value and no gradient.
_LOWEST = -torch.finfo(torch.float32).max


# --------------------------------------------------------------------------- checks


def _check_input(input: object) -> Tensor:
    return check_tensor(input, "input", dims=4, floating=True, layout="[N, C, H, W]")


def _check_box_tensor(boxes: object, name: str, columns: int, like: Tensor) -> Tensor:
    layout = f"[{'K' if columns == 5 else 'L'}, {columns}]"
    check_tensor(boxes, name, dims=2, floating=True, layout=layout)
    assert isinstance(boxes, Tensor)
    if boxes.shape[1] != columns:
        raise ValueError(f"{name} must be a Tensor{layout}, got shape {tuple(boxes.shape)}")
    if boxes.dtype != like.dtype:
        raise TypeError(f"{name} must have input's dtype {like.dtype}, got {boxes.dtype}")
    if boxes.device != like.device:
        raise ValueError(f"{name} must be on input's device {like.device}, got {boxes.device}")
    return boxes


def _rois(input: Tensor, boxes: object) -> Tensor:
    """``boxes`` (``Tensor[K, 5]`` or a list of ``Tensor[L, 4]``) as checked ``Tensor[K, 5]``."""
    what = "a Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of Tensor[L, 4]"
    if isinstance(boxes, Tensor):
        rois = _check_box_tensor(boxes, "boxes", 5, input)
    elif isinstance(boxes, (list, tuple)):
        per_image = [_check_box_tensor(b, f"boxes[{i}]", 4, input) for i, b in enumerate(boxes)]
        if not per_image:
            return input.new_zeros(0, 5)
        ids = [torch.full_like(b[:, :1], i) for i, b in enumerate(per_image)]
        rois = torch.cat([torch.cat(ids), torch.cat(per_image)], dim=1)
    else:
        raise TypeError(f"boxes must be {what}, got {describe(boxes)} ({type(boxes).__name__})")
    if not bool(torch.isfinite(rois).all()):
        raise ValueError("boxes must be finite numbers, got NaN or infinite coordinates")
    batch = rois[:, 0]
    bad = (batch != batch.floor()) | (batch < 0) | (batch >= input.shape[0])
    if bool(bad.any()):
        raise ValueError(f"the batch index of every box must be an integer in "
                         f"[0, {input.shape[0]}) (input's batch), got {batch[bad][:5].tolist()}")
    return rois.detach()


def _check_options(output_size: object, spatial_scale: object) -> tuple[tuple[int, int], float]:
    return (check_int_pair(output_size, "output_size", minimum=1),
            check_positive_number(spatial_scale, "spatial_scale"))


def _prepare(input: object, boxes: object, output_size: object, spatial_scale: object
             ) -> tuple[Tensor, Tensor, tuple[int, int], float]:
    """The checks both operators share: ``(input, rois [K, 5], (oh, ow), spatial_scale)``."""
    _check_input(input)
    assert isinstance(input, Tensor)
    if 0 in input.shape[-2:]:  # torchvision's kernels crash on an empty map
        raise ValueError(f"input must have a non-empty map [N, C, H >= 1, W >= 1], got shape "
                         f"{tuple(input.shape)}")
    rois = _rois(input, boxes)
    return (input, rois, *_check_options(output_size, spatial_scale))


def _channels_last(input: Tensor) -> Tensor:
    """``input [N, C, H, W]`` as ``[N * H * W, C]``: a row of channels per cell (differentiable)."""
    return input.permute(0, 2, 3, 1).reshape(-1, input.shape[1])


def _in_order(parts: list[Tensor], index: list[Tensor]) -> Tensor:
    """The rows ``parts[g]`` put at positions ``index[g]`` of one tensor (every position once)."""
    rows = torch.cat(index)
    values = torch.cat(parts)
    return values.new_empty(values.shape).index_copy_(0, rows, values)


def _power_of_two_at_least(x: Tensor) -> Tensor:
    power = torch.ones_like(x)
    while bool((power < x).any()):
        power = torch.where(power < x, 2 * power, power)
    return power


# --------------------------------------------------------------------------- RoIAlign

#: A box whose patch (its cells rounded up to ``2^a x 2^b``) covers more than this fraction
#: of the map is pooled from the whole map, with the image's other large boxes in one
#: matrix product, instead of from a patch copied out of it.
_WHOLE_MAP_FRACTION = 0.5


def _axis_weights(start: Tensor, length: Tensor, bins: int, grid: Tensor, size: int) -> Tensor:
    """The mean bilinear weight of each bin's samples on each cell of one axis: ``[K, bins, size]``.

    Samples ``start + i * bin + (g + 0.5) * bin / grid`` (``g < grid``, ``bin = length /
    bins``) as torchvision computes them; a sample outside ``[-1, size]`` weighs nothing,
    one in ``[-1, 0]`` reads cell 0 and one at or beyond ``size - 1`` the last cell.
    """
    dtype, device = start.dtype, start.device
    count = max(int(grid.max()) if grid.numel() else 0, 0)
    bin_size = (length / bins)[:, None, None]
    offsets = torch.arange(bins, device=device, dtype=dtype)[None, :, None] * bin_size
    steps = torch.arange(count, device=device, dtype=dtype) + 0.5
    grid_t = grid.to(dtype)[:, None, None].clamp(min=1)
    y = (start[:, None, None] + offsets) + (steps * bin_size) / grid_t
    used = (torch.arange(count, device=device) < grid[:, None, None]) & (y >= -1) & (y <= size)
    y = torch.where(used, y, 0).clamp(0, size)  # NaN or far away: unused, kept indexable
    low = y.long()  # y >= 0: truncation is floor, as the kernel's (int) cast
    last = low >= size - 1
    low = torch.where(last, size - 1, low)
    y = torch.where(last, low.to(dtype), y)
    high = torch.where(last, low, low + 1)
    frac = y - low
    scale = torch.where(used, 1 / grid_t, 0)
    weights = torch.zeros(start.shape[0], bins, size, dtype=dtype, device=device)
    weights.scatter_add_(2, torch.cat([low, high], 2),
                         torch.cat([(1 - frac) * scale, frac * scale], 2))
    return weights


def _support(weights: Tensor) -> tuple[Tensor, Tensor]:
    """First cell and number of cells (at least 1) that a box's weights ``[K, bins, size]`` touch."""
    size = weights.shape[-1]
    used = (weights != 0).any(1)
    cell = torch.arange(size, device=weights.device)
    first = torch.where(used, cell, size).amin(1)
    last = torch.where(used, cell, -1).amax(1)
    return first.clamp(max=size - 1), (last - first + 1).clamp(min=1)


def _over_columns(cols: Tensor, over_rows: Tensor) -> Tensor:
    """``[k, ow, w] x [k, oh, w, C] -> [k, C, oh, ow]``: the second, per-box product."""
    return torch.matmul(cols[:, None], over_rows).permute(0, 3, 1, 2)


def _align_patches(cells: Tensor, shape: tuple[int, ...], rows: Tensor, cols: Tensor,
                   batch: Tensor, first_row: Tensor, first_col: Tensor, p: int, q: int) -> Tensor:
    """RoIAlign of ``k`` boxes whose samples lie in a ``p x q`` patch: ``[k, C, oh, ow]``.

    The patches are copied out of ``cells`` (``[N * H * W, C]``) as rows of channels.
    """
    height, width, channels = shape
    k, oh = rows.shape[:2]
    device = cells.device
    r = first_row.clamp(max=height - p)[:, None] + torch.arange(p, device=device)   # [k, p]
    c = first_col.clamp(max=width - q)[:, None] + torch.arange(q, device=device)    # [k, q]
    rows = rows.gather(2, r[:, None, :].expand(k, oh, p))
    cols = cols.gather(2, c[:, None, :].expand(k, cols.shape[1], q))
    where = (batch[:, None, None] * height + r[:, :, None]) * width + c[:, None, :]
    patches = cells.index_select(0, where.flatten()).view(k, p, q * channels)
    return _over_columns(cols, torch.bmm(rows, patches).view(k, oh, q, channels))


def roi_align(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """Mask R-CNN's RoIAlign (https://arxiv.org/abs/1703.06870), as ``torchvision.ops.roi_align``.

    Each box, scaled by ``spatial_scale`` (and shifted by ``-0.5`` when ``aligned``), is
    divided into ``output_size`` bins; each bin is the average of a ``grid_h x grid_w`` grid
    of bilinearly interpolated samples. Without ``aligned`` a box is at least 1 x 1 cell.
    With ``aligned`` a box with ``x2 < x1`` keeps its negative size: with
    ``sampling_ratio > 0`` its bins run backwards from ``x1``, as in torchvision; with
    ``sampling_ratio <= 0`` it gets no samples and gives zeros, where torchvision's kernel
    raises an error (a negative grid size) -- the one documented difference.

    Args:
        input: the feature maps ``float[N, C, H, W]``.
        boxes: ``Tensor[K, 5]`` rows ``(batch index, x1, y1, x2, y2)``, or a list of
            ``Tensor[L, 4]`` rows ``(x1, y1, x2, y2)``, one per image; in image coordinates,
            of ``input``'s dtype and device. No gradient flows to the boxes.
        output_size: ``oh`` (square) or ``(oh, ow)``.
        spatial_scale: feature-map cells per image pixel, e.g. ``1/16``.
        sampling_ratio: samples per bin along each axis; ``<= 0`` means ``ceil(roi_h / oh)``
            (and ``ceil(roi_w / ow)``) for each box separately.
        aligned: shift the box by half a cell (Detectron2's convention).

    Returns:
        ``float[K, C, oh, ow]``.

    Raises:
        TypeError: ``input`` or ``boxes`` of the wrong type or dtype, or an option of the
            wrong type.
        ValueError: a wrong shape or an empty map, a batch index that is not an integer in
            ``[0, N)``, boxes on another device, or a non-positive ``output_size`` or
            ``spatial_scale``.
    """
    input, rois, (oh, ow), spatial_scale = _prepare(input, boxes, output_size, spatial_scale)
    sampling_ratio = check_int(sampling_ratio, "sampling_ratio")
    aligned = check_bool(aligned, "aligned")
    images, channels, height, width = input.shape
    corners = rois[:, 1:] * torch.tensor(spatial_scale, dtype=rois.dtype, device=rois.device)
    corners = corners - (0.5 if aligned else 0.0)
    sizes = corners[:, 2:] - corners[:, :2]  # (roi_w, roi_h)
    if not aligned:
        sizes = sizes.clamp(min=1)
    if sampling_ratio > 0:
        grids = torch.full_like(sizes, sampling_ratio, dtype=torch.long)
    else:
        grids = torch.ceil(sizes / torch.tensor([ow, oh], dtype=rois.dtype, device=rois.device)
                           ).long()
    rows = _axis_weights(corners[:, 1], sizes[:, 1], oh, grids[:, 1], height)   # [K, oh, H]
    cols = _axis_weights(corners[:, 0], sizes[:, 0], ow, grids[:, 0], width)    # [K, ow, W]
    batch = rois[:, 0].long()
    cells = _channels_last(input)                                               # [N*H*W, C]
    first_row, row_span = _support(rows)
    first_col, col_span = _support(cols)
    p = _power_of_two_at_least(row_span).clamp(max=height)
    q = _power_of_two_at_least(col_span).clamp(max=width)
    patched = p * q <= _WHOLE_MAP_FRACTION * height * width
    group = torch.where(patched, p * (width + 1) + q, -1)
    parts, index = [cells[:0].view(0, channels, 1, 1).expand(0, channels, oh, ow)], [batch[:0]]
    for key in torch.unique(group[patched]).tolist():  # at most log2(2H) * log2(2W) sizes
        members = (group == key).nonzero()[:, 0]
        parts.append(_align_patches(cells, (height, width, channels), rows[members],
                                    cols[members], batch[members], first_row[members],
                                    first_col[members], *divmod(key, width + 1)))
        index.append(members)
    image_rows = cells.reshape(images, height, width * channels)
    for n in range(images):  # the large boxes: [k * oh, H] @ [H, W * C] on the whole map
        members = (~patched & (batch == n)).nonzero()[:, 0]
        if len(members):
            over_rows = rows[members].reshape(-1, height) @ image_rows[n]
            parts.append(_over_columns(cols[members],
                                       over_rows.view(len(members), oh, width, channels)))
            index.append(members)
    return _in_order(parts, index)


# --------------------------------------------------------------------------- RoIPool


def _round_half_away(x: Tensor) -> Tensor:
    """C's ``round``: halves away from zero (``torch.round`` rounds them to even)."""
    whole = torch.trunc(x)
    return whole + torch.sign(x) * ((x - whole).abs() >= 0.5)


def _pool_bins(start: Tensor, end: Tensor, bins: int, size: int, dtype: torch.dtype
               ) -> tuple[Tensor, Tensor]:
    """RoIPool's bin edges on one axis, ``[K, bins]`` each, clipped to ``[0, size]``."""
    length = (end - start + 1).clamp(min=1).to(dtype)
    bin_size = (length / bins)[:, None]
    i = torch.arange(bins, device=start.device, dtype=dtype)[None]
    first = torch.floor(i * bin_size).long() + start[:, None]
    stop = torch.ceil((i + 1) * bin_size).long() + start[:, None]
    return first.clamp(0, size), stop.clamp(0, size)


def _levels(first: Tensor, stop: Tensor) -> Tensor:
    """``floor(log2(stop - first))`` (0 for empty bins), by exact integer comparisons."""
    length = (stop - first).clamp(min=1)
    level = torch.zeros_like(length)
    power = 2
    while bool((length >= power).any()):
        level += length >= power
        power *= 2
    return level


#: The low 32 bits of a key: ``_POSITION - h * W - w``.
_POSITION = 2**32 - 1


def _comparable(input: Tensor) -> Tensor:
    """A channels-last copy ``[N, H, W, C]`` of ``input`` in which NaN is ``-inf`` (the kernel
    never picks a NaN) and ``-0.0`` is ``0.0`` (equal values, so the first one wins)."""
    value = input.detach().permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)
    return value.nan_to_num_(nan=float("-inf"), posinf=float("inf"),
                             neginf=float("-inf")).add_(0.0)


def _order_keys(value: Tensor) -> Tensor:
    """int64 keys ``[N, H, W, C]`` that order the cells of ``value`` (:func:`_comparable`'s)
    as RoIPool's kernel chooses them.

    A larger value has a larger key; among equal values the first cell in row-major order
    has the larger key, because the kernel keeps the first maximum it meets (``>``). The
    high 32 bits rank the value (its float32 bits made monotonic, or for float64 its rank
    among the distinct values), the low 32 bits hold ``_POSITION - h * W - w``.
    """
    height, width = value.shape[1:3]
    if value.element_size() <= 4:
        key = value.float().view(torch.int32).long()
        key ^= (key >> 31) & 0x7FFFFFFF  # negative floats: larger magnitude, smaller key
    else:
        key = torch.unique(value, return_inverse=True)[1]
    position = torch.arange(height * width, device=value.device).view(height, width, 1)
    return key.mul_(2**32).add_(_POSITION - position)


def _max_table(keys: Tensor, levels_h: int, levels_w: int) -> Tensor:
    """The largest key over every window of ``2^p`` rows by ``2^q`` columns.

    ``keys`` is ``[N, H, W, C]``; returns ``[levels_w, levels_h, N, H, W, C]`` with the
    window whose top-left cell is ``(h, w)`` at ``[q, p, n, h, w]``. A window that would
    leave the map keeps a smaller window's maximum: no bin asks for it.
    """
    table = keys.new_empty(levels_w, levels_h, *keys.shape)
    table[0, 0] = keys
    for q in range(levels_w):
        for p in range(levels_h):
            if p:     # from the window half as high, and the one 2^(p-1) rows below it
                _merge(table[q, p - 1], table[q, p], 2 ** (p - 1), dim=1)
            elif q:   # from the window half as wide, and the one 2^(q-1) columns right of it
                _merge(table[q - 1, 0], table[q, 0], 2 ** (q - 1), dim=2)
    return table


def _merge(keys: Tensor, out: Tensor, step: int, dim: int) -> None:
    """``out``: each window of ``keys`` merged with the one ``step`` cells later along ``dim``."""
    size = keys.shape[dim]
    kept = max(size - step, 0)
    torch.maximum(keys.narrow(dim, 0, kept), keys.narrow(dim, size - kept, kept),
                  out=out.narrow(dim, 0, kept))
    out.narrow(dim, kept, size - kept).copy_(keys.narrow(dim, kept, size - kept))


def roi_pool(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
             spatial_scale: float = 1.0) -> Tensor:
    """Fast R-CNN's RoIPool (https://arxiv.org/abs/1504.08083), as ``torchvision.ops.roi_pool``.

    The scaled corners are rounded to cells (halves away from zero), the box is at least
    one cell (``max(x2 - x1 + 1, 1)`` cells wide, so a box with ``x2 < x1`` is its corner
    cell), bin ``i`` covers cells ``floor(i * bin)`` to ``ceil((i + 1) * bin)`` (clipped to
    the map) and gives their maximum per channel; an empty bin gives 0. The gradient goes
    to the maximum's cell, the first in row-major order among equal maxima, as in the
    kernel, which also never picks NaN and starts from ``-FLT_MAX`` (a bin of NaN or
    ``-inf`` gives ``-FLT_MAX`` and no gradient); all of this is reproduced.

    The sparse table holds ``levels_h * levels_w`` int64 copies of the map, where
    ``levels = floor(log2(largest bin)) + 1``: 9 copies for bins of up to 7 cells.

    Args:
        input: the feature maps ``float[N, C, H, W]``.
        boxes: ``Tensor[K, 5]`` rows ``(batch index, x1, y1, x2, y2)``, or a list of
            ``Tensor[L, 4]``, one per image; of ``input``'s dtype and device.
        output_size: ``oh`` (square) or ``(oh, ow)``.
        spatial_scale: feature-map cells per image pixel, e.g. ``1/16``.

    Returns:
        ``float[K, C, oh, ow]``.

    Raises:
        TypeError, ValueError: as :func:`roi_align`.
    """
    input, rois, (oh, ow), spatial_scale = _prepare(input, boxes, output_size, spatial_scale)
    images, channels, height, width = input.shape
    dtype = input.dtype
    corners = _round_half_away(
        rois[:, 1:] * torch.tensor(spatial_scale, dtype=dtype, device=rois.device)).long()
    top, bottom = _pool_bins(corners[:, 1], corners[:, 3], oh, height, dtype)   # [K, oh]
    left, right = _pool_bins(corners[:, 0], corners[:, 2], ow, width, dtype)    # [K, ow]
    empty = ((bottom <= top)[:, :, None] | (right <= left)[:, None, :]).view(-1, 1)
    batch = rois[:, 0].long()
    if not len(rois):  # (still a function of input, for autograd)
        return _channels_last(input)[:0].view(0, channels, 1, 1).expand(0, channels, oh, ow)
    level_h, level_w = _levels(top, bottom), _levels(left, right)
    levels_h, levels_w = int(level_h.max()) + 1, int(level_w.max()) + 1
    # the kernel's argmax is needed for the gradient only; without one, the maxima will do
    argmax = input.requires_grad and torch.is_grad_enabled()
    table = _comparable(input)
    table = _max_table(_order_keys(table) if argmax else table, levels_h, levels_w)
    table = table.view(-1, channels)
    # the two overlapping windows of 2^level cells that cover a bin, on each axis
    row = torch.stack([top, bottom - 2 ** level_h]).clamp(0, height - 1)        # [2, K, oh]
    col = torch.stack([left, right - 2 ** level_w]).clamp(0, width - 1)         # [2, K, ow]
    level = (level_w[:, None, :] * levels_h + level_h[:, :, None]) * images + batch[:, None, None]
    entry = ((level * height + row[:, None, :, :, None]) * width
             + col[None, :, :, None, :]).view(4, -1)                           # [4, K*oh*ow]
    best = table.index_select(0, entry[0])
    other = torch.empty_like(best)
    for rows in entry[1:]:
        torch.maximum(best, torch.index_select(table, 0, rows, out=other), out=best)
    if argmax:
        # the value is gathered from the input at the argmax, so that autograd sends the
        # gradient there and only there
        position = best.bitwise_and_(_POSITION).neg_()  # in place: [K * oh * ow, C] is large
        position += (_POSITION + batch * (height * width)).repeat_interleave(oh * ow)[:, None]
        best = _channels_last(input).gather(0, position)
    # an empty bin gives 0, a bin of NaN or values <= -FLT_MAX gives -FLT_MAX, both
    # without gradient (both are rare: the masks are applied only where they occur)
    lowest = max(_LOWEST, torch.finfo(dtype).min)
    if not argmax:
        best.clamp_(min=lowest)  # the maxima: NaN is -inf already
    else:
        low = ~(best > lowest)
        if bool(low.any()):
            best = torch.where(low, lowest, best)
    if bool(empty.any()):
        best.masked_fill_(empty, 0.0)  # in place: nothing saved for backward reads it
    return best.view(len(rois), oh, ow, channels).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- modules


class RoIAlign(nn.Module):
    """:func:`roi_align` as a module, as ``torchvision.ops.RoIAlign``.

    Args:
        output_size, spatial_scale, sampling_ratio, aligned: as :func:`roi_align`.
    """

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float,
                 sampling_ratio: int, aligned: bool = False) -> None:
        super().__init__()
        _check_options(output_size, spatial_scale)
        self.output_size = output_size  # as given, as torchvision's modules keep it
        self.spatial_scale = spatial_scale
        self.sampling_ratio = check_int(sampling_ratio, "sampling_ratio")
        self.aligned = check_bool(aligned, "aligned")

    def forward(self, input: Tensor, rois: Tensor | Sequence[Tensor]) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale,  # type: ignore[arg-type]
                         self.sampling_ratio, self.aligned)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, "
                f"aligned={self.aligned})")


class RoIPool(nn.Module):
    """:func:`roi_pool` as a module, as ``torchvision.ops.RoIPool``.

    Args:
        output_size, spatial_scale: as :func:`roi_pool`.
    """

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float) -> None:
        super().__init__()
        _check_options(output_size, spatial_scale)
        self.output_size = output_size  # as given, as torchvision's modules keep it
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois: Tensor | Sequence[Tensor]) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale})")
