"""Panoptic readouts: an instance id per pixel, each segment's class and score.

Universal models (Mask2Former, OneFormer) give one besides their semantic labels
(``UniversalEngine.segment_panoptic``); semantic-only engines have no such method, and
:func:`segment_panoptic` says so in one sentence instead of an AttributeError. How the
readout is computed: :mod:`~seg_perception.engines.mask_readout`. No torch here, so the
types can be imported anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from seg_perception.core.pipeline import Segmentation
from seg_perception.engines.base import EngineLoadError


class PanopticUnsupportedError(EngineLoadError):
    """A panoptic readout asked of an engine whose model has none (a semantic-only one)."""


@dataclass(frozen=True)
class PanopticSegment:
    """One segment of a panoptic readout: ``id`` (its value in ``instances``), its published
    class id, the query's class score, and whether it merges all instances of a stuff class."""

    id: int
    class_id: int
    score: float
    fused: bool = False


@dataclass
class PanopticSegmentation:
    """A panoptic readout at the image's resolution, with the semantic one of the same pass.

    ``instances``: (H, W) int32 segment ids, 0 where no segment claims the pixel.
    """

    semantic: Segmentation
    instances: np.ndarray
    segments: tuple[PanopticSegment, ...]

    def as_segmentation(self) -> Segmentation:
        """The semantic readout with the *thing* instances attached (stuff segments, which
        merge all of a class's pixels, are no objects: 0), as fusion takes them."""
        table = np.zeros(max((s.id for s in self.segments), default=0) + 1, dtype=np.int32)
        for segment in self.segments:
            if not segment.fused:
                table[segment.id] = segment.id
        return replace(
            self.semantic,
            instances=table[self.instances],
            instance_scores={s.id: float(s.score) for s in self.segments if not s.fused},
        )

    def class_map(self, unlabeled_id: int = 255) -> np.ndarray:
        """(H, W) class ids of each pixel's segment (``unlabeled_id`` where none)."""
        table = np.full(max((s.id for s in self.segments), default=0) + 1, unlabeled_id)
        for segment in self.segments:
            table[segment.id] = segment.class_id
        return table[self.instances].astype(self.semantic.labels.dtype)


@runtime_checkable
class PanopticSource(Protocol):
    """An engine with a panoptic readout (universal models)."""

    def segment_panoptic(self, image: np.ndarray) -> PanopticSegmentation: ...


def segment_panoptic(engine: Any, image: np.ndarray) -> PanopticSegmentation:
    """``engine``'s panoptic readout of ``image``; PanopticUnsupportedError when it has none."""
    if not isinstance(engine, PanopticSource):
        raise PanopticUnsupportedError(
            f"{getattr(engine, 'description', type(engine).__name__)} has no panoptic readout: "
            "panoptic segmentation needs a universal model (Mask2Former or OneFormer)"
        )
    return engine.segment_panoptic(image)
