"""2D semantic segmentation engines behind one interface (see :mod:`.base`).

``create_engine(EngineConfig(...))`` builds a PyTorch, ONNX Runtime or TensorRT engine;
every engine's ``segment(image)`` returns class ids and confidence at the image's size.
Universal models (Mask2Former, OneFormer) also give a panoptic readout
(``segment_panoptic(engine, image)``); CLIPSeg takes its classes as text prompts.
"""

from seg_perception.engines.base import EngineLoadError, EngineRunError, SegmentationEngine
from seg_perception.engines.config import EngineConfig, EngineConfigError
from seg_perception.engines.factory import create_engine
from seg_perception.engines.panoptic import (
    PanopticSegment,
    PanopticSegmentation,
    PanopticUnsupportedError,
    segment_panoptic,
)
from seg_perception.engines.preprocess import EngineInputError, Preprocessor

__all__ = [
    "EngineConfig",
    "EngineConfigError",
    "EngineInputError",
    "EngineLoadError",
    "EngineRunError",
    "PanopticSegment",
    "PanopticSegmentation",
    "PanopticUnsupportedError",
    "Preprocessor",
    "SegmentationEngine",
    "create_engine",
    "segment_panoptic",
]
