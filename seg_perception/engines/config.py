"""Engine configuration: one dataclass the factory, the CLI and the nodes all fill.

``model`` says where the network comes from:

* a ``.onnx`` file -> ONNX Runtime (or TensorRT, which builds an engine from it);
* a ``.engine`` / ``.plan`` file -> a serialized TensorRT engine;
* a local Hugging Face folder (with ``config.json``) -> PyTorch / transformers;
* ``random:segformer-b0`` (b0-b5) -> a SegFormer with random weights, for tests and
  benchmarks where no trained weights can be downloaded;
* anything else -> a Hugging Face hub id
  (e.g. ``nvidia/segformer-b0-finetuned-cityscapes-1024-1024``), taken from the local
  cache or downloaded when online.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from seg_perception.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessor, ResizeMode

Backend = Literal["auto", "onnxruntime", "torch", "tensorrt"]
Precision = Literal["fp32", "fp16", "int8"]
BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
RANDOM_PREFIX = "random:"


class EngineConfigError(ValueError):
    """An engine configuration that cannot work (unknown backend, bad sizes...)."""


@dataclass(frozen=True)
class EngineConfig:
    """Everything needed to build a segmentation engine."""

    model: str = "random:segformer-b0"
    backend: Backend = "auto"
    device: str = "cpu"
    precision: Precision = "fp32"
    #: Network input (h, w); None with resize "none" runs at the camera's size.
    input_size: tuple[int, int] | None = (512, 1024)
    resize: ResizeMode = "stretch"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0 / 255.0
    channel_order: Literal["rgb", "bgr"] = "rgb"
    #: ONNX/TensorRT tensor names; None = the model's first input / output.
    input_name: str | None = None
    output_name: str | None = None
    output_kind: Literal["logits", "class_ids"] = "logits"
    #: "cityscapes", a label-set YAML path, or "" to take it from the model.
    label_set: str = ""
    num_threads: int = 0
    #: Where exported ONNX files and TensorRT engines are cached ("" = next to the model,
    #: or ~/.cache/seg_perception for hub models).
    cache_dir: str = ""
    #: TensorRT dynamic-shape profile (h, w) min / opt / max; None = fixed input_size.
    min_shape: tuple[int, int] | None = None
    opt_shape: tuple[int, int] | None = None
    max_shape: tuple[int, int] | None = None
    #: Folder of images for int8 calibration (TensorRT).
    calibration_images: str = ""
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise EngineConfigError(
                f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}"
            )
        if self.precision not in PRECISIONS:
            raise EngineConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"
            )
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise EngineConfigError(
                f"device must be 'cpu', 'cuda' or 'cuda:N', not {self.device!r}"
            )
        if self.precision != "fp32" and self.device == "cpu" and self.backend != "tensorrt":
            raise EngineConfigError(
                f"precision {self.precision} needs a GPU (device cuda); on the CPU use fp32 "
                "(fp16/int8 on CPU were slower or changed the argmax in our measurements)"
            )
        if self.num_threads < 0:
            raise EngineConfigError(f"num_threads must be >= 0, got {self.num_threads}")
        try:
            self.preprocessor()
        except ValueError as error:
            raise EngineConfigError(str(error)) from None

    def preprocessor(self) -> Preprocessor:
        return Preprocessor(
            input_size=tuple(self.input_size) if self.input_size else None,  # type: ignore[arg-type]
            resize=self.resize,
            mean=tuple(self.mean),  # type: ignore[arg-type]
            std=tuple(self.std),  # type: ignore[arg-type]
            scale=self.scale,
            channel_order=self.channel_order,
        )

    @property
    def model_kind(self) -> Literal["onnx", "tensorrt", "random", "folder", "hub"]:
        """What ``model`` refers to (see the module docstring)."""
        if self.model.startswith(RANDOM_PREFIX):
            return "random"
        suffix = Path(self.model).suffix.lower()
        if suffix == ".onnx":
            return "onnx"
        if suffix in (".engine", ".plan", ".trt"):
            return "tensorrt"
        if Path(self.model).is_dir():
            return "folder"
        return "hub"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EngineConfig:
        """Build from a parameter mapping, rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise EngineConfigError(
                f"unknown engine parameter(s): {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        converted = dict(values)
        for key in ("input_size", "min_shape", "max_shape", "opt_shape", "mean", "std"):
            if converted.get(key) is not None:
                converted[key] = tuple(converted[key])
        return cls(**converted)
