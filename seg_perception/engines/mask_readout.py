"""Readouts of mask-classification networks (Mask2Former, OneFormer) at camera resolution.

Such a network answers with Q queries, each a class distribution (C classes + "no
object") and a mask. From the one forward pass come:

* the **semantic** readout: per class, ``sum_q p_q(c) * sigmoid(mask_q)`` (transformers'
  ``post_process_semantic_segmentation``), its argmax at each pixel after bilinear
  resampling; confidence is the winning class's share ``s_max / sum_c s_c`` (the scores
  are not probabilities: they sum over queries);
* the **panoptic** readout (``post_process_panoptic_segmentation``): queries whose best
  class is a real one with score above ``threshold`` are kept; each pixel goes to the kept
  query with the largest ``score * mask probability``; a query becomes a segment when that
  region is non-empty and covers more than ``overlap`` of the pixels where its own weighted
  probability reaches ``mask_threshold``; the instances of "stuff" classes merge into one.

transformers does the panoptic part with a Python loop over queries, each building full-size
boolean masks, and resamples every query's mask to the camera size at once. Here the kept
queries are resampled in chunks (memory bounded by :data:`CHUNK_ELEMENTS`), the argmax is
a running one (first maximum wins, torch's rule), the areas come from one ``bincount`` and
one thresholded sum per chunk, and segment ids from a lookup table: the same partition,
segment ids and scores, at a fraction of the cost (``bench/bench_families.py``). One
deliberate difference: transformers numbers the segment after a merged stuff instance from
the stuff segment's id, so it can reuse a taken id and merge two unrelated instances; here
ids are 1, 2, 3, ... in query order, and a merged stuff class is listed once (best score).

Everything here is torch, so it runs on the device the network ran on.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.nn import functional

from seg_perception.engines.postprocess import axis_samples
from seg_perception.engines.preprocess import Letterbox

#: Resampled elements per chunk (64 MB of float32).
CHUNK_ELEMENTS = 1 << 24


# --------------------------------------------------------------------------- resampling
def resampled_chunks(
    values: torch.Tensor, box: Letterbox, antialias: bool = False
) -> Iterator[tuple[int, torch.Tensor]]:
    """(K, h, w) maps of the network input -> (start, (k, H, W)) chunks at the image size.

    Bilinear, ``align_corners=False``, as ``interpolate`` (``antialias``: as torchvision's
    resize). With letterbox padding the content's cells are sampled through the box.
    """
    height, width = box.image_size
    step = max(1, CHUNK_ELEMENTS // max(1, height * width))
    padded = box.resized != box.network_size
    if padded:
        rows = axis_samples(height, box.resized[0], height, box.network_size[0], values.shape[1])
        cols = axis_samples(width, box.resized[1], width, box.network_size[1], values.shape[2])
        r0, r1, c0, c1 = (
            torch.as_tensor(a, device=values.device)
            for a in (rows.low, rows.high, cols.low, cols.high)
        )
        wr, wc = (
            torch.as_tensor(a, device=values.device, dtype=values.dtype)
            for a in (rows.high_weight, cols.high_weight)
        )
    same = tuple(values.shape[1:]) == (height, width)
    for start in range(0, values.shape[0], step):
        chunk = values[start : start + step]
        if same and not padded:  # interpolate and torchvision return the maps as they are
            yield start, chunk.clone()
            continue
        if not padded:
            yield start, functional.interpolate(chunk[None], size=(height, width), mode="bilinear",
                                       align_corners=False, antialias=antialias)[0]  # fmt: skip
            continue
        by_rows = chunk[:, r0] * (1 - wr)[:, None] + chunk[:, r1] * wr[:, None]
        yield start, by_rows[..., c0] * (1 - wc) + by_rows[..., c1] * wc


def _running_max(
    best: tuple[torch.Tensor, torch.Tensor] | None, chunk: torch.Tensor, start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a chunk of maps into (max, argmax); on ties the earlier index stays (torch's)."""
    top, where = chunk.max(dim=0)
    if best is None:
        return top, where + start
    raised = top > best[0]
    return torch.where(raised, top, best[0]), torch.where(raised, where + start, best[1])


def _count_at_least(maps: torch.Tensor, value: float) -> torch.Tensor:
    """Per map, how many elements are >= ``value``. On the CPU numpy's count_nonzero per
    map: 2 ms for 93 maps of 375x1242, where torch's sum over a bool tensor took 145."""
    above = maps >= value
    if above.device.type != "cpu":
        return above.sum(dim=(1, 2))
    flat = above.numpy().reshape(above.shape[0], -1)
    return torch.tensor([np.count_nonzero(row) for row in flat], dtype=torch.int64)


def resampled_max(
    values: torch.Tensor, box: Letterbox, antialias: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(max, argmax) over K of the resampled maps, (H, W) each; ties: the first index."""
    best = None
    for start, chunk in resampled_chunks(values, box, antialias):
        best = _running_max(best, chunk, start)
    return best  # type: ignore[return-value]


# --------------------------------------------------------------------------- readouts
def semantic_scores(class_logits: torch.Tensor, mask_probs: torch.Tensor) -> torch.Tensor:
    """(Q, C+1) class logits, (Q, h, w) mask probabilities -> (C, h, w) class scores,
    with transformers' batched einsum (the same kernel, so the same rounding)."""
    classes = class_logits.softmax(dim=-1)[..., :-1]
    return torch.einsum("bqc, bqhw -> bchw", classes[None], mask_probs[None])[0]


def share_confidence(scores: torch.Tensor) -> torch.Tensor:
    """(C, h, w) non-negative scores -> (h, w) winning share ``max / sum`` in [0, 1]."""
    total = scores.sum(dim=0)
    return torch.where(total > 0, scores.amax(dim=0) / total.clamp_min(1e-30), 0.0)


def panoptic_readout(
    class_logits: torch.Tensor,
    mask_probs: torch.Tensor,
    box: Letterbox,
    threshold: float = 0.5,
    mask_threshold: float = 0.5,
    overlap: float = 0.8,
    fuse: frozenset[int] = frozenset(),
    antialias: bool = False,
) -> tuple[np.ndarray, list[tuple[int, int, float, bool]]]:
    """(H, W) int32 segment ids (0: none) and [(id, channel, score, fused)], as the module
    docstring says; ``antialias`` as OneFormer's processor resizes (torchvision)."""
    height, width = box.image_size
    scores, labels = class_logits.softmax(dim=-1).max(dim=-1)
    keep = (labels != class_logits.shape[-1] - 1) & (scores > threshold)
    if not bool(keep.any()):
        return np.zeros((height, width), dtype=np.int32), []
    probs, scores, labels = mask_probs[keep], scores[keep], labels[keep]
    kept = probs.shape[0]
    best = None
    strong = torch.zeros(kept, dtype=torch.int64, device=probs.device)
    for start, chunk in resampled_chunks(probs, box, antialias):
        chunk *= scores[start : start + chunk.shape[0]].view(-1, 1, 1)
        strong[start : start + chunk.shape[0]] = _count_at_least(chunk, mask_threshold)
        best = _running_max(best, chunk, start)
    index = best[1]  # type: ignore[index]
    area = torch.bincount(index.flatten(), minlength=kept)
    # transformers divides the two int64 counts as tensors (float32), then compares.
    ratio = (area / strong.clamp_min(1)).tolist()
    valid = ((area > 0) & (strong > 0)).tolist()
    table = np.zeros(kept, dtype=np.int32)
    segments: dict[int, tuple[int, int, float, bool]] = {}
    stuff_ids: dict[int, int] = {}
    for k, channel in enumerate(labels.tolist()):
        if not (valid[k] and ratio[k] > overlap):
            continue
        # A new id is one past the last new one. (transformers continues from the reused
        # id of a fused class, so a later segment can get an id already taken: two
        # instances merged. Not reproduced: see test_universal_engines.py.)
        segment = stuff_ids.get(channel, len(segments) + 1)
        table[k] = segment
        score = float(scores[k])
        if segment in segments:  # a further instance of a fused class: keep the best score
            score = max(score, segments[segment][2])
        segments[segment] = (segment, channel, score, channel in fuse)
        if channel in fuse:
            stuff_ids[channel] = segment
    ids = torch.as_tensor(table, device=index.device)[index]
    return ids.cpu().numpy().astype(np.int32, copy=False), list(segments.values())
