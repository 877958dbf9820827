"""Post-processing on the device the network ran on (CUDA), with the same definitions as
:mod:`seg_perception.engines.preprocess`: labels are the argmax of bilinearly upsampled
logits, confidence the interpolated max softmax probability at network resolution.

On a GPU upsampling every class channel is cheap, so this computes it directly; only the
(H, W) labels and confidence travel back to the host.
"""

from __future__ import annotations

import numpy as np
import torch

from seg_perception.core.pipeline import Segmentation
from seg_perception.engines.postprocess import axis_samples, nearest_source
from seg_perception.engines.preprocess import Letterbox


def _lerp(values: torch.Tensor, rows: tuple, cols: tuple) -> torch.Tensor:
    """Separable bilinear sampling of (..., h, w) at the given sources -> (..., H, W)."""
    device = values.device
    r0, r1, wr = (torch.as_tensor(a, device=device) for a in rows)
    c0, c1, wc = (torch.as_tensor(a, device=device) for a in cols)
    by_rows = values[..., r0, :] * (1 - wr)[:, None] + values[..., r1, :] * wr[:, None]
    return by_rows[..., c0] * (1 - wc) + by_rows[..., c1] * wc


def _triple(samples: object) -> tuple:
    """(low, high, weight of high) of an AxisSamples, the form ``_lerp`` takes."""
    return samples.low, samples.high, samples.high_weight  # type: ignore[attr-defined]


def postprocess_on_device(
    output: torch.Tensor, box: Letterbox, label_dtype: np.dtype, output_kind: str
) -> Segmentation:
    """(C, h, w) logits or (h, w) class ids on any device -> Segmentation on the host."""
    height, width = box.image_size
    if output_kind == "class_ids":
        h_ids, w_ids = output.shape[-2:]
        rows = nearest_source(height, box.resized[0], height, box.network_size[0], h_ids)
        cols = nearest_source(width, box.resized[1], width, box.network_size[1], w_ids)
        device = output.device
        labels = output[torch.as_tensor(rows, device=device)][
            :, torch.as_tensor(cols, device=device)
        ]
        return Segmentation(labels.cpu().numpy().astype(label_dtype), None)
    logits = output.float()
    rows = _triple(
        axis_samples(height, box.resized[0], height, box.network_size[0], logits.shape[1])
    )
    cols = _triple(axis_samples(width, box.resized[1], width, box.network_size[1], logits.shape[2]))
    labels = _lerp(logits, rows, cols).argmax(dim=0)
    probability = torch.softmax(logits, dim=0).amax(dim=0)
    confidence = _lerp(probability, rows, cols)
    return Segmentation(
        labels.to(torch.int32).cpu().numpy().astype(label_dtype),
        confidence.cpu().numpy().astype(np.float32),
    )
