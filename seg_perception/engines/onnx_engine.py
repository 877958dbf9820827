"""ONNX Runtime backend: any ONNX segmentation model, SegFormer's default on the CPU.

The model's contract comes from its spec (configuration, sidecar YAML, the metadata our
export writes: ``engines/spec.py``); the tensors it names are checked against the model's
own (name, layout, type, rank) when the session is created, and the output channels
against the classes as soon as their count is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.engines.base import EngineLoadError, EngineRunError, SegmentationEngine
from seg_perception.engines.config import EngineConfig
from seg_perception.engines.spec import (
    META_LABEL_SET,
    META_PREPROCESS,
    ModelSpec,
    ModelSpecError,
    resolve_for_config,
)

__all__ = ["META_LABEL_SET", "META_PREPROCESS", "OnnxRuntimeEngine"]


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
        metadata = self.session.get_modelmeta().custom_metadata_map
        try:
            spec = resolve_for_config(config, onnx_metadata=metadata)
        except ModelSpecError as error:
            raise EngineLoadError(str(error)) from None
        self.input_name, self.output_name = self._check_io(spec, path)
        super().__init__(spec, str(path))
        channels = self._static_channels()
        if channels is not None and self.output_kind != "class_ids":
            self.bind_channels(channels)

    def _check_io(self, spec: ModelSpec, path: Path) -> tuple[str, str]:
        """The input/output tensors the spec names, checked against the model's own."""
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        input_name = spec.input_name or next(iter(inputs))
        output_name = spec.output_name or next(iter(outputs))
        if input_name not in inputs:
            raise EngineLoadError(
                f"{path.name}: the model has no input '{input_name}' "
                f"({spec.source('input_name')}); its inputs are {list(inputs)}: fix input.name"
            )
        if output_name not in outputs:
            raise EngineLoadError(
                f"{path.name}: the model has no output '{output_name}' "
                f"({spec.source('output_name')}); its outputs are {list(outputs)}: fix "
                "output.name"
            )
        shape = inputs[input_name].shape
        axis = 1 if spec.layout == "NCHW" else 3
        if len(shape) != 4 or shape[axis] not in (3, "3"):
            raise EngineLoadError(
                f"{path.name}: input '{input_name}' has shape {shape}, but layout "
                f"{spec.layout} ({spec.source('layout')}) needs 3 channels at axis {axis}: "
                "fix input.layout"
            )
        wanted = "tensor(uint8)" if spec.input_dtype == "uint8" else "tensor(float)"
        if inputs[input_name].type != wanted:
            raise EngineLoadError(
                f"{path.name}: input '{input_name}' is {inputs[input_name].type}, but dtype "
                f"{spec.input_dtype} ({spec.source('input_dtype')}) needs {wanted}: fix "
                "input.dtype"
            )
        self._output_shape = outputs[output_name].shape
        rank = len(self._output_shape)
        expected = 3 if spec.output_kind == "class_ids" else 4
        if rank != expected:
            raise EngineLoadError(
                f"{path.name}: output '{output_name}' has rank {rank} but output kind "
                f"'{spec.output_kind}' ({spec.source('output_kind')}) expects {expected} "
                "((N, C, h, w) logits/probabilities or (N, h, w) class ids): fix output.kind"
            )
        return input_name, output_name

    def _static_channels(self) -> int | None:
        """The output's channel count when the model declares it (else known at run time)."""
        if len(self._output_shape) == 4 and isinstance(self._output_shape[1], int):
            return int(self._output_shape[1])
        return None

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        try:
            output = self.session.run([self.output_name], {self.input_name: batch})[0]
        except Exception as error:
            raise EngineRunError(
                f"ONNX Runtime failed on a {batch.shape} input: {str(error).splitlines()[0][:300]}"
            ) from None
        return output[0]
