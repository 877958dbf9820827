"""The one interface every 2D segmentation backend implements.

``segment(image)`` takes an (H, W, 3) uint8 RGB image and returns class ids and confidence
at the image's own resolution, so callers never see network sizes or padding. Backends
implement only ``_infer`` (network input -> logits or class ids); preprocessing and
postprocessing are shared, which is what makes backend parity testable.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import Segmentation
from seg_perception.engines.postprocess import (
    class_ids_to_labels,
    logits_to_labels,
    probabilities_to_labels,
)
from seg_perception.engines.preprocess import Letterbox, Preprocessor
from seg_perception.engines.spec import ModelSpec, ModelSpecError

OutputKind = Literal["logits", "probabilities", "class_ids"]


class EngineRunError(RuntimeError):
    """A loaded model failed on one input (a size its graph cannot take, out of memory)."""


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
    the ``Pipeline`` directly. Built from a resolved :class:`~.spec.ModelSpec`: its
    preprocessing, output kind and classes. Output channels (or ids) become published class
    ids through the spec's channel table (void channels -> unlabeled, remaps), checked
    against the label set as soon as the channel count is known (:meth:`bind_channels`):
    at load when the model declares it, else at the first (warm-up) inference.
    """

    backend: str = "base"

    def __init__(self, spec: ModelSpec, source: str = "") -> None:
        if spec.label_set is None:  # nothing named the classes: SegFormer's, reported
            spec = replace(spec, label_set=LabelSet.cityscapes())
        self.spec = spec
        self.preprocessor = Preprocessor.from_spec(spec)
        self.label_set: LabelSet = spec.label_set  # type: ignore[assignment]
        self.output_kind = spec.output_kind
        self.source = source
        self.timings = EngineTimings()
        self.channels: int | None = None
        self._table: np.ndarray | None = None
        self._index_dtype = np.dtype(np.uint8)
        if self.output_kind == "class_ids":
            self._bind_ids()

    @property
    def description(self) -> str:
        return f"{self.backend} engine ({self.source})"

    # ------------------------------------------------------------------ output contract
    def bind_channels(self, channels: int) -> None:
        """Check ``channels`` output channels against the classes; build the channel table.

        Raises EngineLoadError naming the mismatch (e.g. 20 channels for 19 classes).
        """
        if self.channels == channels:
            return
        try:
            table = self.spec.channel_lookup(channels, self.label_set.unlabeled_id)
        except ModelSpecError as error:
            raise EngineLoadError(f"{self.source}: {error}") from None
        self.channels = channels
        self._index_dtype = np.dtype(np.uint8 if channels <= 256 else np.uint16)
        identity = np.array_equal(table, np.arange(channels)) and (
            channels <= 255 or self.label_set.dtype == np.uint16
        )
        self._table = None if identity else table.astype(self.label_set.dtype)

    def _bind_ids(self) -> None:
        """Class-id outputs: a table over every id the spec can name; others -> unlabeled."""
        spec, labels = self.spec, self.label_set
        top = max([*labels.ids, *spec.void, *spec.remap.keys(), 0])
        size = top + 1
        table = np.full(size, labels.unlabeled_id, dtype=np.int64)
        known = set(labels.ids)
        for value in range(size):
            target = spec.remap.get(value, value)
            if value not in spec.void and target in known:
                table[value] = target
        # One more entry, unlabeled, for every id the model may emit beyond the table.
        self._table = np.append(table, labels.unlabeled_id).astype(labels.dtype)
        self._index_dtype = np.dtype(np.int64)

    def _to_labels(self, index: np.ndarray) -> np.ndarray:
        """Channel indices (or output ids) -> published class ids."""
        if self._table is None:
            return index.astype(self.label_set.dtype, copy=False)
        if self.output_kind == "class_ids":
            last = len(self._table) - 1
            index = np.where((index >= 0) & (index < last), index, last)
        return self._table[index]

    # ------------------------------------------------------------------ running
    @abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """(1, 3, h, w) float32 (or the spec's layout/dtype) -> (C, h', w') scores, or
        (h', w') class ids.

        GPU backends may return a torch tensor on their device instead of a numpy array;
        post-processing then runs on that device.
        """

    def _postprocess(self, output: np.ndarray, box: Letterbox) -> Segmentation:
        if self.output_kind != "class_ids":
            self.bind_channels(int(output.shape[0]))
        if not isinstance(output, np.ndarray):
            # A device tensor (torch on CUDA, TensorRT): post-process where it lives and
            # bring back only the (H, W) maps.
            from seg_perception.engines.torch_postprocess import postprocess_on_device

            result = postprocess_on_device(output, box, self._index_dtype, self.output_kind)
            return Segmentation(self._to_labels(result.labels), result.confidence)
        if self.output_kind == "class_ids":
            ids = class_ids_to_labels(output, box, np.dtype(np.int64))
            return Segmentation(self._to_labels(ids), None)
        if self.output_kind == "probabilities":
            try:
                index, confidence = probabilities_to_labels(output, box, self._index_dtype)
            except ValueError as error:  # values outside [0, 1]: not probabilities
                raise EngineRunError(f"{self.source}: {error}") from None
        else:
            index, confidence = logits_to_labels(output, box, self._index_dtype)
        return Segmentation(self._to_labels(index), confidence)

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

    def warm_up(self, height: int = 480, width: int = 640) -> None:
        """One inference on a gray image, so a model that cannot run fails at start-up.

        The error names the size and the spec in use, which is what a user needs to fix it
        (a stride that must divide the input: set multiple_of; a fixed size: input_size).
        """
        image = np.full((height, width, 3), 128, dtype=np.uint8)
        try:
            self.segment(image)
        except EngineLoadError:
            raise
        except Exception as error:
            text = " ".join(str(error).split())[:300]
            raise EngineLoadError(
                f"{self.description} cannot segment a {width}x{height} test image: {text} "
                f"(its spec: {self.spec.describe()}); if it needs sizes divisible by its "
                "stride, set multiple_of; if it needs a fixed size, set input_size"
            ) from None

    def logits(self, image: np.ndarray) -> np.ndarray:
        """The raw network output for an image (for parity checks and debugging)."""
        batch, _ = self.preprocessor(image)
        return self._infer(batch)
