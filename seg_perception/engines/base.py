"""The one interface every 2D segmentation backend implements.

``segment(image)`` takes an (H, W, 3) uint8 RGB image and returns class ids and confidence
at the image's own resolution, so callers never see network sizes or padding. Backends
implement only ``_infer`` (network input -> logits or class ids); preprocessing and
postprocessing are shared, which is what makes backend parity testable.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import Segmentation
from seg_perception.engines.preprocess import (
    Letterbox,
    Preprocessor,
    class_ids_to_labels,
    logits_to_labels,
)

OutputKind = Literal["logits", "class_ids"]


class EngineLoadError(RuntimeError):
    """A model that cannot be loaded: missing/corrupt file, mismatched inputs, offline hub."""


@dataclass
class EngineTimings:
    """Milliseconds spent in each stage of the last ``segment`` call."""

    preprocess: float = 0.0
    network: float = 0.0
    postprocess: float = 0.0
    history: list[tuple[float, float, float]] = field(default_factory=list, repr=False)

    @property
    def total(self) -> float:
        return self.preprocess + self.network + self.postprocess


class SegmentationEngine(ABC):
    """Image in, labels + confidence at the image's resolution out.

    Satisfies :class:`seg_perception.core.pipeline.LabelSource`, so an engine plugs into
    the ``Pipeline`` directly.
    """

    backend: str = "base"

    def __init__(
        self,
        preprocessor: Preprocessor,
        label_set: LabelSet,
        output_kind: OutputKind = "logits",
        source: str = "",
    ) -> None:
        self.preprocessor = preprocessor
        self.label_set = label_set
        self.output_kind = output_kind
        self.source = source
        self.timings = EngineTimings()

    @property
    def description(self) -> str:
        return f"{self.backend} engine ({self.source})"

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """(1, 3, h, w) float32 -> (C, h', w') logits, or (h', w') class ids.

        GPU backends may return a torch tensor on their device instead of a numpy array;
        post-processing then runs on that device.
        """

    def _postprocess(self, output: np.ndarray, box: Letterbox) -> Segmentation:
        if not isinstance(output, np.ndarray):
            # A device tensor (torch on CUDA, TensorRT): post-process where it lives and
            # bring back only the (H, W) maps.
            from seg_perception.engines.torch_postprocess import postprocess_on_device

            return postprocess_on_device(output, box, self.label_set.dtype, self.output_kind)
        if self.output_kind == "class_ids":
            labels = class_ids_to_labels(output, box, self.label_set.dtype)
            return Segmentation(labels, None)
        labels, confidence = logits_to_labels(output, box, self.label_set.dtype)
        return Segmentation(labels, confidence)

    def segment(self, image: np.ndarray) -> Segmentation:
        start = time.perf_counter()
        batch, box = self.preprocessor(image)
        prepared = time.perf_counter()
        output = self._infer(batch)
        inferred = time.perf_counter()
        result = self._postprocess(output, box)
        done = time.perf_counter()
        self.timings.preprocess = (prepared - start) * 1e3
        self.timings.network = (inferred - prepared) * 1e3
        self.timings.postprocess = (done - inferred) * 1e3
        return result

    def logits(self, image: np.ndarray) -> np.ndarray:
        """The raw network output for an image (for parity checks and debugging)."""
        batch, _ = self.preprocessor(image)
        return self._infer(batch)
