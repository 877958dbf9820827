"""Network output -> labels and confidence at the camera's pixels, at any output resolution.

Definitions (the contract every backend and test relies on):

* **Labels** are the argmax over classes of the network's scores bilinearly resampled to
  the camera's pixels with ``align_corners=False`` -- what ``torch.nn.functional.
  interpolate(..., mode="bilinear", align_corners=False)`` followed by ``argmax`` gives, as
  Hugging Face's ``post_process_semantic_segmentation`` does. Ties go to the lowest class
  index (torch's and numpy's rule). A camera pixel center maps to the resized image, then
  to the network input, then to score cells, in one bilinear step (as the GPU path does).
* **Confidence** is the maximum softmax probability computed at the scores' own
  resolution, ``1 / sum_c exp(l_c - max_c l)``, then bilinearly resampled the same way
  (one channel instead of C). When the scores are already at the image size this *is* the
  softmax confidence of each pixel's label.
* **Probabilities** (a model ending in a softmax) label pixels as the same model without
  its softmax would: ``log p`` differs from the logits by one constant per cell, which
  bilinear weights (summing to one) pass equally to every class, so the argmax of the
  resampled ``log p`` is the argmax of the resampled logits. The log is taken only where
  resampling is needed (boundary cells), on ``max(p, 1e-30)``; elsewhere the argmax of ``p``
  is the label. Confidence is the maximum probability itself, resampled: no softmax.

Why it is fast (issue 10): three regimes, chosen from the geometry and the data.

1. **Scores at the image size** (``none``, or ``stretch`` with a net at the camera size, a
   full-resolution CNN): no resampling at all. Labels and confidence come from one sweep
   over the scores in row bands small enough to stay in cache: a running max and index
   per channel (``greater``, ``maximum`` and an index update that needs no branch, much
   faster than ``np.argmax(axis=0)``, which transposes (C, H, W) internally), then the sum
   of ``exp(l - max)`` per channel into one (H, W) accumulator, with OpenCV's ``exp``
   (2.7x faster than numpy's float32 ``exp`` here, relative error 1e-7). No (C, H, W)
   temporary is ever made, which is where the old code lost its time (a 40 MB
   ``logits - top`` and its ``exp``, then re-resampling every class change, which at
   scale 1 needs none: by gathering, or with a channel-last copy of all logits).
2. **Scores at another resolution** (SegFormer at 1/4, a CNN at 1/8, or a net at 512x1024
   for a 375x1242 camera): the same sweep at the scores' resolution, then the boundary
   trick. Bilinear interpolation is a convex combination with non-negative weights and
   float rounding is monotone, so where the (up to four) score cells a pixel samples all
   have the same argmax, the resampled argmax is that class. Only pixels whose cells
   disagree get their C resampled scores computed, gathered from the cells in chunks.
   (The one exception, shared with the old code: a class ahead at all four cells by less
   than float32 rounding can tie after rounding, and torch then reports the lower index.)
3. **Boundaries nearly everywhere** (untrained nets, noise): gathering per pixel costs more
   than resampling every channel, so each channel is resampled in bands of output rows
   and folded into a running argmax (never C full-resolution planes at once). The switch
   is a measured cost model (``PLANE_TO_POINT_COST``).

Resampled scores are computed with the same float32 arithmetic as PyTorch's CPU kernel
(weights ``fl(scale * (i + 0.5) - 0.5)`` rounded once, columns before rows, fused
multiply-adds emulated in float64), so labels agree with ``F.interpolate`` + ``argmax``
bit for bit, near-ties included, rather than merely to within rounding. (PyTorch itself
uses other kernels for tiny outputs or 3-channel inputs on one thread; against those,
agreement is exact except where two classes' resampled scores differ by float32 rounding.)

Only the score cells some camera pixel samples are read: with ``keep_aspect_pad`` the
cells wholly inside the padding are skipped, except the row (column) next to the content's
edge, which the edge pixels' bilinear weights reach. NaN scores make the confidence NaN at
that pixel (the sum of exponentials is NaN), which downstream consumers can see; such
pixels' labels are unspecified.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Literal, NamedTuple

import cv2
import numpy as np

from seg_perception.engines.preprocess import UINT8, Letterbox

OutputKind = Literal["logits", "probabilities", "class_ids"]
# Row bands of about this many elements per channel: a band of every channel plus the
# running buffers stays in L2 on the CI machines, and each numpy call still has enough
# work (~64k elements) for its fixed overhead (~1 us) not to matter.
BAND_ELEMENTS = 1 << 16
# Resampling whole channel planes costs ~1.8-2.2 ns per plane element and channel (columns
# at the scores' rows, then rows at the image size); gathering and resampling one boundary
# pixel ~6-7 ns per channel (one core, 19-20 classes, scales 1/8 to 1.2; measured with
# forced paths on logits with 1-100 % boundary pixels). Planes win when the boundary
# pixels exceed this share of the plane elements.
PLANE_TO_POINT_COST = 0.33
# Boundary pixels resampled per chunk, and output elements per band of the plane path.
POINT_CHUNK = 8192
DENSE_BAND_ELEMENTS = 1 << 16
# Probabilities are floored here before their log (as the engines did: log 0 is -inf).
TINY_PROBABILITY = np.float32(1e-30)
# Probabilities outside [0, 1] by more than this mean the model outputs something else.
PROBABILITY_SLACK = 1e-2


class AxisSamples(NamedTuple):
    """Where each output pixel along one axis samples the score grid.

    ``low``/``high`` are the two cells (equal at the last cell, PyTorch's clamp) and
    ``low_weight``/``high_weight`` their float32 weights, rounded as PyTorch rounds them.
    ``identity`` means output pixel i is exactly cell i (scale 1: a crop, no resampling).
    """

    low: np.ndarray
    high: np.ndarray
    low_weight: np.ndarray
    high_weight: np.ndarray
    identity: bool


def axis_samples(out: int, resized: int, image: int, network: int, cells: int) -> AxisSamples:
    """Bilinear sources (``align_corners=False``) of ``out`` camera pixels in ``cells``.

    A camera pixel center ``i + 0.5`` maps to ``(i + 0.5) * resized / image`` network
    pixels, then times ``cells / network`` score cells. PyTorch computes the scale as a
    float32 quotient and the source index with one fused multiply-add,
    ``fl32(scale * (i + 0.5) - 0.5)``; with ``stretch`` and ``none`` the scale here is the
    same rational number (``cells / out``), so the weights are bit-identical to torch's.
    The float64 product of a float32 and a half-integer is exact, so rounding it once to
    float32 is exactly the fused result.
    """
    ratio = Fraction(cells * resized, network * image)
    if ratio == 1:
        index = np.arange(out, dtype=np.intp)
        ones = np.ones(out, dtype=np.float32)
        return AxisSamples(index, index, ones, np.zeros(out, dtype=np.float32), True)
    if ratio.numerator < 1 << 24 and ratio.denominator < 1 << 24:
        # Both exact in float32, so IEEE division gives the correctly rounded quotient.
        scale = np.float32(ratio.numerator) / np.float32(ratio.denominator)
    else:
        scale = np.float32(float(ratio))
    position = np.float64(scale) * (np.arange(out, dtype=np.float64) + 0.5) - 0.5
    position = np.maximum(position.astype(np.float32), np.float32(0.0))
    low = np.minimum(np.floor(position).astype(np.intp), cells - 1)
    high_weight = np.clip(position - low.astype(np.float32), 0.0, 1.0).astype(np.float32)
    high = np.minimum(low + 1, cells - 1)
    return AxisSamples(low, high, np.float32(1.0) - high_weight, high_weight, False)


def nearest_source(out: int, resized: int, image: int, network: int, cells: int) -> np.ndarray:
    """For each output pixel along one axis, the class-id cell whose area contains it."""
    position = (np.arange(out, dtype=np.float64) + 0.5) * (resized / image) * (cells / network)
    return np.minimum(position.astype(np.intp), cells - 1)


def _index_dtype(classes: int) -> np.dtype:
    """The smallest unsigned type that holds every class index (uint8 up to 256 classes)."""
    if classes <= 256:
        return np.dtype(np.uint8)
    return np.dtype(np.uint16) if classes <= 65536 else np.dtype(np.int32)


def reduce_channels(
    scores: np.ndarray, softmax: bool, index_dtype: np.dtype | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(C, h, w) scores -> (argmax (h, w), confidence (h, w) float32) in one banded sweep.

    Per row band: a running max over channels, and the index of the last channel that
    strictly raised it -- i.e. the first maximal channel, numpy's and torch's tie rule --
    kept as ``max(index, c * raised)`` so the update has no data-dependent branch (a masked
    copy is 7x slower on noisy masks). With ``softmax`` a second loop over the band,
    still in cache, sums ``exp(l_c - max)``; the confidence is its reciprocal. Otherwise
    the confidence is the maximum itself (probabilities).
    """
    classes, height, width = scores.shape
    index_dtype = np.dtype(index_dtype or _index_dtype(classes))
    best = np.empty((height, width), dtype=index_dtype)
    confidence = np.empty((height, width), dtype=np.float32)
    band = max(1, min(height, BAND_ELEMENTS // max(width, 1)))
    top_buffer = np.empty((band, width), dtype=np.float32)
    work_buffer = np.empty((band, width), dtype=np.float32)
    raised_buffer = np.empty((band, width), dtype=bool)
    step_buffer = np.empty((band, width), dtype=index_dtype)
    for start in range(0, height, band):
        stop = min(height, start + band)
        rows = stop - start
        top, work = top_buffer[:rows], work_buffer[:rows]
        raised, step = raised_buffer[:rows], step_buffer[:rows]
        index = best[start:stop]
        index.fill(0)
        np.copyto(top, scores[0, start:stop])
        for channel in range(1, classes):
            plane = scores[channel, start:stop]
            np.greater(plane, top, out=raised)
            np.maximum(top, plane, out=top)
            np.multiply(raised.view(np.uint8), index_dtype.type(channel), out=step)
            np.maximum(index, step, out=index)
        out = confidence[start:stop]
        if not softmax:
            np.copyto(out, top)
            continue
        out.fill(0.0)
        for channel in range(classes):
            np.subtract(scores[channel, start:stop], top, out=work)
            cv2.exp(work, dst=work)
            np.add(out, work, out=out)
        np.reciprocal(out, out=out)
    return best, confidence


def _fma(a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """float32 ``a * wa + b * wb`` rounded as a fused multiply-add of ``a * wa`` onto the
    rounded ``b * wb`` -- how PyTorch's compiled CPU kernel computes one bilinear step.

    The float64 product of two float32 values is exact, so only the final sum is rounded
    (a second rounding to float32 can differ from a true fused one about once in 2^29).
    """
    total = np.multiply(a, wa, dtype=np.float64)
    total += np.multiply(b, wb, dtype=np.float32)
    return total.astype(np.float32)


def _log_probability(values: np.ndarray) -> np.ndarray:
    """``log(max(p, 1e-30))`` in place: probabilities -> logits up to a per-cell constant."""
    np.maximum(values, TINY_PROBABILITY, out=values)
    return np.log(values, out=values)


def _resample_points(
    scores: np.ndarray,
    rows: AxisSamples,
    cols: AxisSamples,
    y: np.ndarray,
    x: np.ndarray,
    log: bool = False,
) -> np.ndarray:
    """(C, h, w) scores resampled at output pixels (y, x) -> (C, n), torch's arithmetic.

    Gathers each pixel's (up to) four cells from every channel plane by flat index, so
    the scores are never transposed to channel-last (a full copy of them). With ``log``
    the gathered cells are probabilities and their log is resampled.
    """
    classes, _, width = scores.shape
    flat = scores.reshape(classes, -1)
    r0, r1 = rows.low[y] * width, rows.high[y] * width
    c0, c1 = cols.low[x], cols.high[x]

    def cells(index: np.ndarray) -> np.ndarray:
        values = np.take(flat, index, axis=1)
        return _log_probability(values) if log else values

    if cols.identity:
        return _fma(cells(r0 + c0), rows.low_weight[y], cells(r1 + c0), rows.high_weight[y])
    w0, w1 = cols.low_weight[x], cols.high_weight[x]
    top = _fma(cells(r0 + c0), w0, cells(r0 + c1), w1)
    if rows.identity:
        return top
    bottom = _fma(cells(r1 + c0), w0, cells(r1 + c1), w1)
    return _fma(top, rows.low_weight[y], bottom, rows.high_weight[y])


def _argmax_channels(values: np.ndarray) -> np.ndarray:
    """First index of the maximum over axis 0 of (C, n), without numpy's transposing copy."""
    index = np.zeros(values.shape[1:], dtype=np.intp)
    top = values[0].copy()
    raised = np.empty(values.shape[1:], dtype=bool)
    for channel in range(1, values.shape[0]):
        np.greater(values[channel], top, out=raised)
        np.maximum(top, values[channel], out=top)
        np.maximum(index, raised * channel, out=index)
    return index


def _resampled_bands(
    scores: np.ndarray, rows: AxisSamples, cols: AxisSamples, log: bool = False
) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """Every channel resampled to the image, one band of output rows at a time.

    Yields ``(start, stop, channel, values)``: output rows ``start:stop`` of ``channel``,
    band-major (all channels of a band, then the next band). ``values`` is a reused buffer,
    valid until the next item. Columns are resampled on the few score rows the band
    samples, then rows, with torch's arithmetic. Bands keep every buffer in cache (whole
    (H, W) planes were 1.4-1.7x slower), and memory stays at a few band-sized buffers
    whatever C is. With ``log`` the scores are probabilities and their log is resampled.
    """
    classes = scores.shape[0]
    out_h, out_w = len(rows.low), len(cols.low)
    band = max(1, min(out_h, DENSE_BAND_ELEMENTS // max(out_w, 1)))
    # Score rows a band samples: the most any `band` consecutive output rows span.
    source = int((rows.high[band - 1 :] - rows.low[: out_h - band + 1]).max()) + 1
    value_buffer = np.empty((band, out_w), dtype=np.float32)
    up_a_buffer = np.empty((band, out_w), dtype=np.float32)
    up_b_buffer = np.empty((band, out_w), dtype=np.float32)
    across_buffer = np.empty((source, out_w), dtype=np.float32)
    gather_a_buffer = np.empty((source, out_w), dtype=np.float32)
    gather_b_buffer = np.empty((source, out_w), dtype=np.float32)
    log_buffer = np.empty((source, scores.shape[2]), dtype=np.float32) if log else None
    wide = np.empty((max(band, source), out_w), dtype=np.float64)

    def fused(a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray, out: np.ndarray):
        total = wide[: out.shape[0]]
        np.multiply(a, wa, out=total, dtype=np.float64)
        np.multiply(b, wb, out=b)
        np.add(total, b, out=total)
        np.copyto(out, total, casting="same_kind")

    for start in range(0, out_h, band):
        stop = min(out_h, start + band)
        first, last = int(rows.low[start]), int(rows.high[stop - 1]) + 1
        low, high = rows.low[start:stop] - first, rows.high[start:stop] - first
        h0, h1 = rows.low_weight[start:stop, None], rows.high_weight[start:stop, None]
        value = value_buffer[: stop - start]
        up_a, up_b = up_a_buffer[: stop - start], up_b_buffer[: stop - start]
        across = across_buffer[: last - first]
        gather_a, gather_b = gather_a_buffer[: last - first], gather_b_buffer[: last - first]
        for channel in range(classes):
            plane = scores[channel, first:last]
            if log_buffer is not None:
                converted = log_buffer[: last - first]
                np.copyto(converted, plane)
                plane = _log_probability(converted)
            if cols.identity:
                np.copyto(across, plane[:, :out_w])
            else:
                np.take(plane, cols.low, axis=1, out=gather_a)
                np.take(plane, cols.high, axis=1, out=gather_b)
                fused(gather_a, cols.low_weight, gather_b, cols.high_weight, across)
            if rows.identity:
                np.copyto(value, across)
            else:
                np.take(across, low, axis=0, out=up_a)
                np.take(across, high, axis=0, out=up_b)
                fused(up_a, h0, up_b, h1, value)
            yield start, stop, channel, value


def _resample_dense(
    scores: np.ndarray,
    rows: AxisSamples,
    cols: AxisSamples,
    index_dtype: np.dtype,
    log: bool = False,
) -> np.ndarray:
    """Argmax of all channels resampled to (H, W), for when most pixels are on boundaries.

    Folds :func:`_resampled_bands` into a running argmax band by band (same branch-free
    update as :func:`reduce_channels`), never holding C planes.
    """
    labels = np.empty((len(rows.low), len(cols.low)), dtype=index_dtype)
    best = raised = step = labels[:0]  # band-sized buffers, made at the first (largest) band
    for start, stop, channel, value in _resampled_bands(scores, rows, cols, log):
        index = labels[start:stop]
        if channel == 0:
            if len(best) < stop - start:
                best, step = np.empty_like(value), np.empty_like(index)
                raised = np.empty(value.shape, dtype=bool)
            index.fill(0)
            np.copyto(best[: stop - start], value)
            continue
        count = stop - start
        np.greater(value, best[:count], out=raised[:count])
        np.maximum(best[:count], value, out=best[:count])
        np.multiply(raised[:count].view(np.uint8), index_dtype.type(channel), out=step[:count])
        np.maximum(index, step[:count], out=index)
    return labels


def _boundary_cells(best: np.ndarray, rows: AxisSamples, cols: AxisSamples) -> np.ndarray:
    """(h, w) bool: cells whose bilinear neighbourhood (right, below) holds another class.

    An output pixel sampling cells (r, c), (r, c+1), (r+1, c), (r+1, c+1) is on a boundary
    exactly when its (r, c) cell is marked here; along an identity axis the neighbour is
    never sampled, so it is not compared.
    """
    marked = np.zeros(best.shape, dtype=bool)
    if not cols.identity:
        np.not_equal(best[:, :-1], best[:, 1:], out=marked[:, :-1])
    if not rows.identity:
        across = marked.copy() if not cols.identity else None
        marked[:-1] |= best[:-1] != best[1:]
        if across is not None:
            marked[:-1] |= across[1:]
    return marked


def _lerp(values: np.ndarray, rows: AxisSamples, cols: AxisSamples) -> np.ndarray:
    """Separable bilinear resampling of one (h, w) float32 map (the confidence)."""
    if not cols.identity:
        values = (
            np.take(values, cols.low, axis=1) * cols.low_weight
            + np.take(values, cols.high, axis=1) * cols.high_weight
        )
    else:
        values = values[:, : len(cols.low)]
    if not rows.identity:
        values = (
            np.take(values, rows.low, axis=0) * rows.low_weight[:, None]
            + np.take(values, rows.high, axis=0) * rows.high_weight[:, None]
        )
    else:
        values = values[: len(rows.low)]
    return np.ascontiguousarray(values, dtype=np.float32)


def _as_scores(scores: np.ndarray, what: str) -> np.ndarray:
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    if scores.ndim != 3 or min(scores.shape) == 0:
        raise ValueError(f"{what} must be (C, h, w) with C, h, w > 0, got shape {scores.shape}")
    return scores


def _scores_to_labels(
    scores: np.ndarray, box: Letterbox, label_dtype: np.dtype, probabilities: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Shared body of :func:`logits_to_labels` and :func:`probabilities_to_labels`."""
    classes, cells_h, cells_w = scores.shape
    height, width = box.image_size
    rows = axis_samples(height, box.resized[0], height, box.network_size[0], cells_h)
    cols = axis_samples(width, box.resized[1], width, box.network_size[1], cells_w)
    # Only cells some pixel samples (letterbox padding beyond the edge cells is skipped).
    used = scores[:, : int(rows.high[-1]) + 1, : int(cols.high[-1]) + 1]
    index_dtype = _index_dtype(classes)
    best, confidence = reduce_channels(used, not probabilities, index_dtype)
    if rows.identity and cols.identity:
        return best.astype(label_dtype, copy=False), confidence
    confidence = _lerp(confidence, rows, cols)

    # Labels of the cell each pixel samples first; exact wherever its cells agree.
    marked = np.take(_boundary_cells(best, rows, cols), rows.low, axis=0)
    on_boundary = np.take(marked, cols.low, axis=1)
    labels = np.take(np.take(best, rows.low, axis=0), cols.low, axis=1)
    count = np.count_nonzero(on_boundary)
    plane_elements = (used.shape[1] + height) * width
    if count > PLANE_TO_POINT_COST * plane_elements:
        used = np.ascontiguousarray(used)
        labels = _resample_dense(used, rows, cols, index_dtype, probabilities)
    elif count:
        y, x = np.nonzero(on_boundary)
        # In chunks: (C, chunk) temporaries stay in cache instead of faulting in fresh
        # pages for every (C, n) float64 array (2x faster at 77k boundary pixels).
        for start in range(0, y.size, POINT_CHUNK):
            cy, cx = y[start : start + POINT_CHUNK], x[start : start + POINT_CHUNK]
            values = _resample_points(scores, rows, cols, cy, cx, probabilities)
            labels[cy, cx] = _argmax_channels(values)
    return labels.astype(label_dtype, copy=False), confidence


def logits_to_labels(
    logits: np.ndarray, box: Letterbox, label_dtype: np.dtype = UINT8
) -> tuple[np.ndarray, np.ndarray]:
    """(C, h, w) logits of the whole network input -> labels and confidence, both (H, W).

    Labels: argmax of the bilinearly resampled logits (``align_corners=False``), exactly.
    Confidence: max softmax probability at the logits' resolution, resampled the same way
    (at the image size, the softmax confidence of each pixel's label).
    """
    return _scores_to_labels(_as_scores(logits, "logits"), box, np.dtype(label_dtype), False)


def probabilities_to_labels(
    probabilities: np.ndarray, box: Letterbox, label_dtype: np.dtype = UINT8
) -> tuple[np.ndarray, np.ndarray]:
    """(C, h, w) class probabilities (a model ending in softmax) -> labels and confidence.

    Labels: argmax of the bilinearly resampled ``log(max(p, 1e-30))``, i.e. the labels the
    model's logits would get (see the module docstring); at the image size simply the
    argmax of ``p``. Confidence: the maximum probability, resampled; no softmax is taken
    (it would be a second one), and no log outside boundary cells. Values outside [0, 1]
    mean the model outputs logits, and are refused rather than reported as confidences.
    """
    scores = _as_scores(probabilities, "probabilities")
    labels, confidence = _scores_to_labels(scores, box, np.dtype(label_dtype), True)
    low, high = float(confidence.min()), float(confidence.max())
    if not (low >= -PROBABILITY_SLACK and high <= 1 + PROBABILITY_SLACK):
        raise ValueError(
            f"output_kind 'probabilities' but the maximum class score ranges over "
            f"[{low:.3g}, {high:.3g}], not [0, 1]: does the model output logits?"
        )
    return labels, confidence


def class_ids_to_labels(
    class_ids: np.ndarray, box: Letterbox, label_dtype: np.dtype = UINT8
) -> np.ndarray:
    """(h, w) class ids of the network input (models that output ids) -> (H, W), nearest."""
    class_ids = np.asarray(class_ids)
    if class_ids.ndim != 2 or min(class_ids.shape) == 0:
        raise ValueError(f"class ids must be (h, w) with h, w > 0, got shape {class_ids.shape}")
    height, width = box.image_size
    rows = nearest_source(height, box.resized[0], height, box.network_size[0], class_ids.shape[0])
    cols = nearest_source(width, box.resized[1], width, box.network_size[1], class_ids.shape[1])
    return np.take(np.take(class_ids, rows, axis=0), cols, axis=1).astype(label_dtype)


def output_to_labels(
    output: np.ndarray, box: Letterbox, label_dtype: np.dtype, output_kind: OutputKind
) -> tuple[np.ndarray, np.ndarray | None]:
    """Any network output kind -> (labels, confidence or None for class ids)."""
    if output_kind == "logits":
        return logits_to_labels(output, box, label_dtype)
    if output_kind == "probabilities":
        return probabilities_to_labels(output, box, label_dtype)
    if output_kind == "class_ids":
        return class_ids_to_labels(output, box, label_dtype), None
    raise ValueError(f"output_kind must be logits, probabilities or class_ids, not {output_kind!r}")
