"""Engine configuration: one dataclass the factory, the CLI and the nodes all fill.

``model`` says where the network comes from:

* a ``.onnx`` file -> ONNX Runtime (or TensorRT, which builds an engine from it);
* a ``.engine`` / ``.plan`` file -> a serialized TensorRT engine;
* a local Hugging Face folder (with ``config.json``) -> PyTorch / transformers;
* ``random:segformer-b0`` (b0-b5) -> a SegFormer with random weights, for tests and
  benchmarks where no trained weights can be downloaded; ``random:mask2former``,
  ``random:oneformer``, ``random:clipseg`` (tiny) and their full-size variants
  (``engines/random_models.py``) likewise;
* anything else -> a Hugging Face hub id
  (e.g. ``nvidia/segformer-b0-finetuned-cityscapes-1024-1024``), taken from the local
  cache or downloaded when online.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from seg_perception.engines.preprocess import Preprocessor, ResizeMode

Backend = Literal["auto", "onnxruntime", "torch", "tensorrt"]
Precision = Literal["fp32", "fp16", "int8"]
BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
RANDOM_PREFIX = "random:"


class EngineConfigError(ValueError):
    """An engine configuration that cannot work (unknown backend, bad sizes...)."""


@dataclass(frozen=True)
class EngineConfig:
    """Everything needed to build a segmentation engine.

    The fields after ``spec`` describe the network's contract (``engines/spec.py``); left
    unset (None, empty) they come from the model's own spec: a sidecar YAML, the ONNX
    metadata of our export, or a Hugging Face folder's configs. Each field's docstring is
    its CLI help, ROS parameter description and YAML comment (``engines/options.py``).
    """

    model: str = "random:segformer-b0"
    """ONNX file, TensorRT engine, Hugging Face folder or hub id, or random:segformer-b0
    (random weights, for tests)."""
    backend: Backend = "auto"
    """Inference backend; auto: .onnx -> onnxruntime, .engine -> tensorrt, Hugging Face ->
    torch on CUDA, an ONNX export on the CPU."""
    device: str = "cpu"
    """cpu, cuda or cuda:N."""
    precision: Precision = "fp32"
    """fp16/int8 need a GPU."""
    spec: str = ""
    """Model spec YAML (the network's contract); empty: <model>.yaml beside the model if
    it exists."""
    input_size: tuple[int, int] | None = None
    """Network input (height, width): a fixed size the image is resized to (unset: the
    spec's)."""
    resize: ResizeMode | None = None
    """How images meet a fixed input_size; none: run at the camera's own size (unset: the
    spec's)."""
    multiple_of: int = 0
    """Pad the image up to a multiple of this (fully convolutional CNNs); 0: the spec's."""
    resample: Literal[
        "linear", "bilinear_pil", "bicubic_pil", "nearest_pil", "lanczos_pil", "box_pil",
        "hamming_pil",
    ] | None = None  # fmt: skip
    """Resize filter: linear (OpenCV) or a Pillow filter as transformers' processors use
    (unset: the spec's, else linear)."""
    mean: tuple[float, float, float] | None = None
    """Per-channel mean subtracted after scaling, in the network's channel order (unset:
    the spec's)."""
    std: tuple[float, float, float] | None = None
    """Per-channel std divided by, in the network's channel order (unset: the spec's)."""
    scale: float | None = None
    """Pixel values are multiplied by this first, e.g. 1/255 (unset: the spec's)."""
    channel_order: Literal["rgb", "bgr"] | None = None
    """Channel order the network expects (unset: the spec's)."""
    layout: Literal["NCHW", "NHWC"] | None = None
    """Input tensor layout (unset: the spec's)."""
    input_dtype: Literal["float32", "uint8"] | None = None
    """Input tensor type; uint8: raw pixels, no scale/mean/std (unset: the spec's)."""
    input_name: str | None = None
    """Input tensor name (unset: the spec's, else the model's first input)."""
    output_name: str | None = None
    """Output tensor name (unset: the spec's, else the model's first output)."""
    output_kind: Literal["logits", "probabilities", "class_ids"] | None = None
    """What the output holds (unset: the spec's, else logits)."""
    label_set: str = ""
    """Classes of the output channels: cityscapes or a label-set YAML (empty: the spec's,
    else the model's own)."""
    void_channels: tuple[int, ...] = ()
    """Output channels (or ids) that mean void/ignore: published as unlabeled (empty: the
    spec's)."""
    num_threads: int = 0
    """CPU threads for inference (0: the runtime's default)."""
    cache_dir: str = ""
    """Where ONNX exports and TensorRT engines are cached (empty: next to the model, or
    ~/.cache/seg_perception)."""
    min_shape: tuple[int, int] | None = None
    """TensorRT dynamic-shape profile: smallest (height, width) (unset: fixed input_size)."""
    opt_shape: tuple[int, int] | None = None
    """TensorRT dynamic-shape profile: the (height, width) to optimize for."""
    max_shape: tuple[int, int] | None = None
    """TensorRT dynamic-shape profile: largest (height, width)."""
    calibration_images: str = ""
    """Folder of images for TensorRT int8 calibration."""
    seed: int = 0
    """Seed of random:* weights."""
    prompts: tuple[str, ...] = ()
    """Open-vocabulary models (CLIPSeg): one text prompt per class, class id i = prompt i;
    'text=#rrggbb' sets its color (empty: the names of label_set's classes)."""
    background_threshold: float = 0.5
    """Open-vocabulary models: a pixel whose best prompt's probability is below this is
    unlabeled ("none of these"); 0 gives every pixel a prompt."""
    panoptic: bool = False
    """Require a panoptic readout (an instance id per pixel): only universal models
    (Mask2Former, OneFormer) are accepted."""
    panoptic_threshold: float = 0.5
    """Panoptic readout: a query whose class score is not above this makes no segment
    (transformers' threshold)."""
    stuff_channels: tuple[int, ...] = ()
    """Panoptic readout: output channels of stuff classes (road, sky): all their instances
    form one segment (transformers' label_ids_to_fuse)."""
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
        if self.resize not in (None, "stretch", "keep_aspect_pad", "none"):
            raise EngineConfigError(
                f"resize must be stretch, keep_aspect_pad or none, not {self.resize!r}"
            )
        if self.resize in ("stretch", "keep_aspect_pad") and not self.input_size:
            raise EngineConfigError(f"resize '{self.resize}' needs input_size (height, width)")
        if self.multiple_of < 0:
            raise EngineConfigError(f"multiple_of must be >= 0, got {self.multiple_of}")
        self._check_readouts()
        try:
            self.explicit_spec()
        except ValueError as error:
            raise EngineConfigError(str(error)) from None

    def _check_readouts(self) -> None:
        """Prompts, thresholds and stuff channels (open-vocabulary and panoptic readouts)."""
        from seg_perception.engines.prompts import PromptError, check_prompts

        try:
            check_prompts(self.prompts)
        except PromptError as error:
            raise EngineConfigError(f"prompts: {error}") from None
        if self.prompts and self.label_set:
            raise EngineConfigError(
                "give the classes of an open-vocabulary model once: prompts, or label_set "
                "(whose class names are then the prompts), not both"
            )
        if not 0.0 <= self.background_threshold <= 1.0:
            raise EngineConfigError(
                f"background_threshold must be in [0, 1], got {self.background_threshold}"
            )
        if not 0.0 <= self.panoptic_threshold < 1.0:
            raise EngineConfigError(
                f"panoptic_threshold must be in [0, 1), got {self.panoptic_threshold}"
            )
        if any(channel < 0 for channel in self.stuff_channels):
            raise EngineConfigError(f"stuff_channels must be >= 0, got {self.stuff_channels}")

    def explicit_spec(self) -> dict[str, Any]:
        """The model-spec fields this configuration states (the highest precedence)."""
        from seg_perception.engines.spec import parse_spec

        section: dict[str, Any] = {}
        for key, value in (
            ("name", self.input_name), ("layout", self.layout), ("dtype", self.input_dtype),
            ("resample", self.resample),
            ("color", self.channel_order), ("scale", self.scale),
            ("mean", list(self.mean) if self.mean else None),
            ("std", list(self.std) if self.std else None),
        ):  # fmt: skip
            if value is not None:
                section[key] = value
        if self.resize == "none":
            section["size"] = (
                {"multiple_of": self.multiple_of} if self.multiple_of > 1 else "dynamic"
            )
        elif self.input_size:
            section["size"] = [int(v) for v in self.input_size]
            section["resize"] = self.resize or "stretch"
        elif self.multiple_of:
            section["size"] = {"multiple_of": self.multiple_of}
        data: dict[str, Any] = {"input": section, "output": {}}
        if self.output_name:
            data["output"]["name"] = self.output_name
        if self.output_kind:
            data["output"]["kind"] = self.output_kind
        if self.label_set:
            data["classes"] = self.label_set
        if self.void_channels:
            data["void"] = list(self.void_channels)
        return parse_spec(data, "the engine configuration")

    def preprocessor(self) -> Preprocessor:
        """The preprocessing of this configuration's resolved spec (explicit + sidecar)."""
        from seg_perception.engines.spec import resolve_for_config

        return Preprocessor.from_spec(resolve_for_config(self))

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
        for key in (
            "input_size",
            "min_shape",
            "max_shape",
            "opt_shape",
            "mean",
            "std",
            "void_channels",
            "prompts",
            "stuff_channels",
        ):
            if converted.get(key) is not None:
                converted[key] = tuple(converted[key])
        return cls(**converted)
