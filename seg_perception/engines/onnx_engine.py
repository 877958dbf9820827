"""ONNX Runtime backend: any ONNX segmentation model, SegFormer's default on the CPU.

Inputs and outputs are found by name (configurable, defaulting to the model's first input
and output), their ranks and channel counts are checked when the session is created, and
settings the exporter wrote into the model's metadata (label set, normalization, network
size) are used unless the configuration overrides them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.labels import LabelSet, LabelSetError
from seg_perception.engines.base import EngineLoadError, SegmentationEngine
from seg_perception.engines.config import EngineConfig

#: Keys of the ONNX metadata written by :mod:`seg_perception.engines.export`.
META_LABEL_SET = "seg_perception.label_set"
META_PREPROCESS = "seg_perception.preprocess"


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise EngineLoadError("the onnxruntime backend needs: pip install onnxruntime") from None
    return onnxruntime


def _providers(ort: Any, device: str) -> list[Any]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise EngineLoadError(
            f"device {device} requested but this onnxruntime has no CUDA provider "
            f"(available: {available}); install onnxruntime-gpu or use device cpu"
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


class OnnxRuntimeEngine(SegmentationEngine):
    """Runs an ONNX model with ONNX Runtime; logits (N, C, h, w) or class ids (N, h, w)."""

    backend = "onnxruntime"

    def __init__(self, config: EngineConfig) -> None:
        ort = _import_ort()
        path = Path(config.model)
        if not path.is_file():
            raise EngineLoadError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        if config.num_threads:
            options.intra_op_num_threads = config.num_threads
        options.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: the engine shares the cores with the
        # LiDAR segmenter, fusion and DDS in a node, where spinning only steals their time.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=_providers(ort, config.device)
            )
        except EngineLoadError:
            raise
        except Exception as error:
            raise EngineLoadError(
                f"ONNX Runtime cannot load {path}: {str(error).splitlines()[0][:300]} "
                "(is the file complete and a valid ONNX model?)"
            ) from None
        self.input_name, self.output_name = self._check_io(config)
        metadata = self.session.get_modelmeta().custom_metadata_map
        label_set = self._label_set(config, metadata)
        super().__init__(config.preprocessor(), label_set, config.output_kind, str(path))

    def _check_io(self, config: EngineConfig) -> tuple[str, str]:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        input_name = config.input_name or next(iter(inputs))
        output_name = config.output_name or next(iter(outputs))
        if input_name not in inputs:
            raise EngineLoadError(
                f"ONNX model has no input '{input_name}'; its inputs are {list(inputs)} "
                "(set input_name)"
            )
        if output_name not in outputs:
            raise EngineLoadError(
                f"ONNX model has no output '{output_name}'; its outputs are {list(outputs)} "
                "(set output_name)"
            )
        shape = inputs[input_name].shape
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise EngineLoadError(
                f"ONNX input '{input_name}' has shape {shape}; expected (N, 3, H, W) images"
            )
        rank = len(outputs[output_name].shape)
        expected = 4 if config.output_kind == "logits" else 3
        if rank != expected:
            raise EngineLoadError(
                f"ONNX output '{output_name}' has rank {rank} but output_kind "
                f"'{config.output_kind}' expects {expected} ((N, C, h, w) logits or (N, h, w) "
                "class ids)"
            )
        return input_name, output_name

    @staticmethod
    def _label_set(config: EngineConfig, metadata: dict[str, str]) -> LabelSet:
        if config.label_set:
            return LabelSet.from_name_or_path(config.label_set)
        if META_LABEL_SET in metadata:
            try:
                return LabelSet.from_dict(json.loads(metadata[META_LABEL_SET]))
            except (ValueError, LabelSetError) as error:
                raise EngineLoadError(
                    f"the model's label-set metadata is invalid: {error}"
                ) from None
        return LabelSet.cityscapes()

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        try:
            output = self.session.run([self.output_name], {self.input_name: batch})[0]
        except Exception as error:
            raise EngineLoadError(
                f"ONNX Runtime failed on a {batch.shape} input: {str(error).splitlines()[0][:300]}"
            ) from None
        return output[0]
