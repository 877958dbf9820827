"""The model spec: a segmentation network's contract, read from where it already lives.

A network only gives right labels when it is fed the way it was trained (tensor name and
layout, color order, scale, mean, std, size) and its outputs are read the way they were
meant (logits, probabilities or class ids; which channel is which class; which channels
mean "void"). Guessing any of it gives confident garbage: a BGR Cityscapes CNN run with
SegFormer's RGB ImageNet normalization agreed with its authors' pipeline on 1.3 % of the
pixels. So the contract is one record, :class:`ModelSpec`, resolved field by field from,
in this order of precedence:

1. explicit configuration (``EngineConfig`` fields, i.e. CLI flags and ``engine.*``
   parameters);
2. a sidecar YAML next to the model (``model.onnx`` -> ``model.yaml``) or named by
   ``engine.spec``;
3. the ONNX metadata that ``seg-perception export`` writes (``seg_perception.spec``);
4. a Hugging Face folder's own ``preprocessor_config.json`` and ``config.json``;
5. defaults (SegFormer's: RGB, 1/255, ImageNet mean/std), which are *reported* as
   assumed, never silently used.

Every resolved field remembers where it came from (:attr:`ModelSpec.sources`), so a
start-up log line can say "mean from model.yaml, std assumed". The sidecar schema (all keys
optional; unknown keys are errors)::

    input:
      name: images            # tensor name (default: the model's first input)
      layout: NCHW            # NCHW | NHWC
      dtype: float32          # float32 | uint8 (uint8: raw pixels, no scale/mean/std)
      color: bgr              # rgb | bgr: channel order the network expects
      scale: 0.00392156862745 # x = pixel * scale, then (x - mean) / std per channel
      mean: [0.406, 0.456, 0.485]
      std: [0.225, 0.224, 0.229]
      size: dynamic           # dynamic | [h, w] (fixed) | {multiple_of: 32}
                              # | {shortest_edge: 512} (aspect kept; + multiple_of: pad)
                              # | {shortest_edge: 800, longest_edge: 1333, size_divisor: 32}
                              #   (Mask2Former's and OneFormer's rule; see hf_resize.py)
                              # | {height: 384, width: 384, keep_aspect_ratio: true,
                              #    ensure_multiple_of: 32} (DPT's rule)
      resize: stretch         # stretch | keep_aspect_pad (how images meet a fixed size)
      resample: linear        # linear (OpenCV) | bilinear_pil | bicubic_pil | nearest_pil
                              # | lanczos_pil | box_pil | hamming_pil (Pillow, as
                              # transformers' image processors resize)
    output:
      name: logits            # tensor name (default: the model's first output)
      kind: logits            # logits | probabilities | class_ids
    name: my_cnn              # the label set's name (a label-set file is a valid spec)
    classes: cityscapes       # or a label-set YAML path, or a list of {id, name, color}
                              # (or a label set: {name, classes: [...]})
    void: [19]                # output channels (or ids) that mean "no class": unlabeled
    remap: {7: 0}             # output channel (or id) -> published class id

Output channel ``c`` (or output id ``c``) becomes class ``remap.get(c, c)``, unless ``c``
is void; every non-void channel must land on a class of ``classes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seg_perception.core.labels import LabelSet, LabelSetError
from seg_perception.engines.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RESAMPLES,
    keep_aspect_size,
)

#: ONNX metadata key of the full spec (the sidecar schema as JSON), written by export.
META_SPEC = "seg_perception.spec"
#: Older export metadata, still read.
META_LABEL_SET = "seg_perception.label_set"
META_PREPROCESS = "seg_perception.preprocess"

LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "uint8")
COLORS = ("rgb", "bgr")
RESIZES = ("stretch", "keep_aspect_pad")
KINDS = ("logits", "probabilities", "class_ids")
_INPUT_KEYS = ("name", "layout", "dtype", "color", "scale", "mean", "std", "size", "resize")
_SCHEMA: dict[str, tuple[str, ...] | None] = {
    "name": None,
    "input": (*_INPUT_KEYS, "resample"),
    "output": ("name", "kind"),
    "classes": None,
    "void": None,
    "remap": None,
}


class ModelSpecError(ValueError):
    """A spec that is malformed or contradicts the model: the text names file, key, fix."""


@dataclass(frozen=True)
class SizePolicy:
    """How the network's input size relates to the camera image.

    ``dynamic``: any size (the camera's own); ``fixed``: exactly ``size`` (h, w), the
    image resized to it; ``multiple``: any size padded up to a multiple of ``multiple_of``
    (fully convolutional CNNs with a fixed stride); ``shortest_edge``: the short side
    resized to ``edge``, the aspect ratio kept (transformers' ``size: {shortest_edge}``),
    then padded to a multiple of ``multiple_of``; ``keep_aspect``: DPT's
    ``keep_aspect_ratio``: the scale of ``size`` per side that is nearer 1 applied to
    both, each side rounded to a multiple of ``ensure_multiple_of``; ``shortest_longest``:
    the short side to ``edge`` unless the long side would pass ``longest`` (then the long
    side is capped), each side then stretched up to a multiple of ``size_divisor``
    (Mask2Former, OneFormer: :mod:`~seg_perception.engines.hf_resize`).
    """

    kind: str = "dynamic"
    size: tuple[int, int] | None = None
    multiple_of: int = 1
    edge: int = 0
    ensure_multiple_of: int = 1
    longest: int = 0
    size_divisor: int = 1

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"fixed {self.size[0]}x{self.size[1]}"  # type: ignore[index]
        if self.kind == "multiple":
            return f"any size padded to a multiple of {self.multiple_of}"
        if self.kind == "shortest_edge":
            padded = f", padded to a multiple of {self.multiple_of}" if self.multiple_of > 1 else ""
            return f"shortest edge {self.edge}, aspect kept{padded}"
        if self.kind == "keep_aspect":
            h, w = self.size  # type: ignore[misc]
            return (
                f"aspect kept, scaled toward {h}x{w}, sides multiples of {self.ensure_multiple_of}"
            )
        if self.kind == "shortest_longest":
            cap = f", longest edge at most {self.longest}" if self.longest else ""
            up = f", sides rounded up to multiples of {self.size_divisor}"
            return f"shortest edge {self.edge}{cap}, aspect kept" + (
                up if self.size_divisor > 1 else ""
            )
        return "dynamic (the camera's own size)"

    def to_dict(self) -> Any:
        """The sidecar schema's ``input.size`` for this policy."""
        if self.kind == "fixed":
            return list(self.size)  # type: ignore[arg-type]
        if self.kind == "multiple":
            return {"multiple_of": self.multiple_of}
        if self.kind == "shortest_edge":
            out = {"shortest_edge": self.edge}
            return out | ({"multiple_of": self.multiple_of} if self.multiple_of > 1 else {})
        if self.kind == "keep_aspect":
            h, w = self.size  # type: ignore[misc]
            return {
                "height": h,
                "width": w,
                "keep_aspect_ratio": True,
                "ensure_multiple_of": self.ensure_multiple_of,
            }
        if self.kind == "shortest_longest":
            out = {"shortest_edge": self.edge, "longest_edge": self.longest}
            return out | ({"size_divisor": self.size_divisor} if self.size_divisor > 1 else {})
        return "dynamic"


@dataclass(frozen=True)
class ModelSpec:
    """A network's contract; see the module docstring for each field's meaning."""

    input_name: str | None = None
    layout: str = "NCHW"
    input_dtype: str = "float32"
    color: str = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    size: SizePolicy = field(default_factory=SizePolicy)
    resize: str = "stretch"
    resample: str = "linear"
    output_name: str | None = None
    output_kind: str = "logits"
    label_set: LabelSet | None = None
    void: tuple[int, ...] = ()
    remap: Mapping[int, int] = field(default_factory=dict)
    #: field name -> where its value came from ("default" where nothing said it).
    sources: Mapping[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    @property
    def assumed(self) -> list[str]:
        """The normalization fields nothing stated (defaults in use)."""
        fields = ("color", "scale", "mean", "std")
        if self.input_dtype == "uint8":
            fields = ("color",)
        return [name for name in fields if self.source(name) == "default"]

    def describe(self) -> str:
        """One line for the start-up log: what the network gets and where that came from."""
        parts = [
            f"{self.layout} {self.input_dtype} {self.color.upper()}",
            f"scale {self.scale:.6g} ({self.source('scale')})",
            f"mean {tuple(round(m, 4) for m in self.mean)} ({self.source('mean')})",
            f"std {tuple(round(s, 4) for s in self.std)} ({self.source('std')})",
            f"size {self.size.describe()} ({self.source('size')})",
            f"resample {self.resample} ({self.source('resample')})",
            f"output {self.output_kind} ({self.source('output_kind')})",
        ]
        if self.label_set is not None:
            parts.append(f"{len(self.label_set)} classes ({self.source('label_set')})")
        if self.void:
            parts.append(f"void channels {list(self.void)}")
        return ", ".join(parts)

    def channel_lookup(self, channels: int, unlabeled_id: int) -> np.ndarray:
        """Output channel (or id) -> published class id, for ``channels`` outputs.

        Void channels map to ``unlabeled_id``. Raises ModelSpecError when a channel lands
        on no class of the label set, or a void channel does not exist.
        """
        label_set = self.label_set
        for channel in self.void:
            if not 0 <= channel < channels:
                raise ModelSpecError(
                    f"void channel {channel} is out of range: the model has {channels} output "
                    f"channels (0-{channels - 1})"
                )
        table = np.array([self.remap.get(c, c) for c in range(channels)], dtype=np.int64)
        table[list(self.void)] = unlabeled_id
        if label_set is not None:
            known = set(label_set.ids) | {unlabeled_id}
            orphans = [c for c in range(channels) if int(table[c]) not in known]
            if orphans:
                shown = ", ".join(str(c) for c in orphans[:8]) + (
                    " ..." if len(orphans) > 8 else ""
                )
                raise ModelSpecError(
                    f"the model has {channels} output channels but channel(s) {shown} map to no "
                    f"class of label set '{label_set.name}' ({len(label_set)} classes, ids "
                    f"{min(label_set.ids)}-{max(label_set.ids)}): give classes for them, mark "
                    "them void, or remap them"
                )
        return table


# --------------------------------------------------------------------------- reading
def sidecar_path(model: str | Path, explicit: str = "") -> Path | None:
    """The sidecar YAML: ``explicit`` (must exist) or ``<model stem>.yaml`` beside it."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ModelSpecError(f"engine.spec names {path}, which does not exist")
        return path
    model_path = Path(model)
    if not model or not model_path.suffix:
        return None
    for candidate in (model_path.with_suffix(".yaml"), model_path.with_suffix(".yml")):
        if candidate.is_file():
            return candidate
    return None


def load_sidecar(path: Path) -> dict[str, Any]:
    """The spec fields a sidecar YAML states, checked; errors name the file and key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ModelSpecError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    return parse_spec(data, str(path), base=path.parent)


def parse_spec(data: Any, where: str, base: Path | None = None) -> dict[str, Any]:
    """Spec fields (ModelSpec names) from the sidecar schema; ``where`` names the origin."""
    if not isinstance(data, Mapping):
        raise ModelSpecError(f"{where}: a spec is a mapping, got {type(data).__name__}")
    _check_keys(data, _SCHEMA, where)
    out: dict[str, Any] = {}
    section = data.get("input") or {}
    _check_keys(section, {k: None for k in _SCHEMA["input"]}, f"{where}: input")  # type: ignore[union-attr]
    if "name" in section:
        out["input_name"] = _text(section["name"], where, "input.name")
    if "layout" in section:
        out["layout"] = _choice(str(section["layout"]).upper(), LAYOUTS, where, "input.layout")
    if "dtype" in section:
        out["input_dtype"] = _choice(str(section["dtype"]), DTYPES, where, "input.dtype")
    if "color" in section:
        out["color"] = _choice(str(section["color"]).lower(), COLORS, where, "input.color")
    if "scale" in section:
        out["scale"] = _positive(section["scale"], where, "input.scale")
    for key in ("mean", "std"):
        if key in section:
            out[key] = _triple(section[key], where, f"input.{key}", positive=key == "std")
    if "size" in section:
        out["size"] = _size(section["size"], where)
    if "resize" in section:
        out["resize"] = _choice(str(section["resize"]), RESIZES, where, "input.resize")
    if "resample" in section:
        out["resample"] = _choice(str(section["resample"]), RESAMPLES, where, "input.resample")
    output = data.get("output") or {}
    _check_keys(output, {k: None for k in _SCHEMA["output"]}, f"{where}: output")  # type: ignore[union-attr]
    if "name" in output:
        out["output_name"] = _text(output["name"], where, "output.name")
    if "kind" in output:
        out["output_kind"] = _choice(str(output["kind"]), KINDS, where, "output.kind")
    if "classes" in data:
        name = str(data.get("name") or Path(where).stem)
        out["label_set"] = _classes(data["classes"], where, base, name)
    if "void" in data:
        out["void"] = _void(data["void"], where)
    if "remap" in data:
        out["remap"] = _remap(data["remap"], where)
    return out


def _check_keys(data: Any, schema: Mapping[str, Any], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ModelSpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in schema)
    if unknown:
        raise ModelSpecError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(schema)}"
        )


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ModelSpecError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _choice(value: str, choices: tuple[str, ...], where: str, key: str) -> str:
    if value not in choices:
        raise ModelSpecError(f"{where}: {key} is {value!r}; expected one of {', '.join(choices)}")
    return value


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ModelSpecError(f"{where}: {key} must be a finite number, got {value!r}")
    return float(value)


def _positive(value: Any, where: str, key: str) -> float:
    number = _number(value, where, key)
    if number <= 0:
        raise ModelSpecError(f"{where}: {key} must be > 0, got {value!r}")
    return number


def _triple(value: Any, where: str, key: str, positive: bool) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ModelSpecError(f"{where}: {key} needs 3 numbers (one per channel), got {value!r}")
    check = _positive if positive else _number
    return tuple(check(v, where, key) for v in value)  # type: ignore[return-value]


def _size(value: Any, where: str) -> SizePolicy:
    if value == "dynamic":
        return SizePolicy("dynamic")
    if isinstance(value, list | tuple) and len(value) == 2:
        h, w = (int(_positive(v, where, "input.size")) for v in value)
        return SizePolicy("fixed", (h, w))
    if isinstance(value, Mapping) and set(value) == {"multiple_of"}:
        return SizePolicy("multiple", None, _count(value, "multiple_of", where))
    if isinstance(value, Mapping) and "longest_edge" in value:
        keys = {"shortest_edge": None, "longest_edge": None, "size_divisor": None}
        _check_keys(value, keys, f"{where}: input.size")
        return SizePolicy(
            "shortest_longest",
            edge=_count(value, "shortest_edge", where),
            longest=_count(value, "longest_edge", where),
            size_divisor=_count(value, "size_divisor", where),
        )
    if isinstance(value, Mapping) and "shortest_edge" in value:
        _check_keys(value, {"shortest_edge": None, "multiple_of": None}, f"{where}: input.size")
        edge = _count(value, "shortest_edge", where)
        return SizePolicy("shortest_edge", None, _count(value, "multiple_of", where), edge=edge)
    if isinstance(value, Mapping) and {"height", "width"} <= set(value):
        keys = {
            "height": None,
            "width": None,
            "keep_aspect_ratio": None,
            "ensure_multiple_of": None,
        }
        _check_keys(value, keys, f"{where}: input.size")
        h, w = _count(value, "height", where), _count(value, "width", where)
        multiple = _count(value, "ensure_multiple_of", where)
        keep = value.get("keep_aspect_ratio", False)
        if not isinstance(keep, bool):
            raise ModelSpecError(f"{where}: input.size.keep_aspect_ratio must be true or false")
        if keep:
            return SizePolicy("keep_aspect", (h, w), ensure_multiple_of=multiple)
        return SizePolicy("fixed", keep_aspect_size(h, w, (h, w), multiple))
    raise ModelSpecError(
        f"{where}: input.size is {value!r}; expected dynamic, [height, width], "
        "{multiple_of: N}, {shortest_edge: N} or {height: H, width: W, keep_aspect_ratio: "
        "true, ensure_multiple_of: N}"
    )


def _count(value: Mapping[str, Any], key: str, where: str) -> int:
    """An integer >= 1 under ``key`` (1 when absent)."""
    number = value.get(key, 1)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ModelSpecError(f"{where}: input.size.{key} must be an integer >= 1, got {number!r}")
    return number


def _classes(value: Any, where: str, base: Path | None, name: str = "") -> LabelSet:
    try:
        if isinstance(value, str):
            if value == "cityscapes":
                return LabelSet.cityscapes()
            path = Path(value)
            if not path.is_absolute() and base is not None:
                path = base / path
            return LabelSet.from_yaml(path)
        if isinstance(value, Mapping):  # a whole label set: {name, classes: [...]}
            return LabelSet.from_dict(dict(value), default_name=Path(where).stem)
        if isinstance(value, list):
            ids = [entry.get("id", i) for i, entry in enumerate(value) if isinstance(entry, dict)]
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ModelSpecError(f"{where}: classes: id(s) {duplicates} appear twice")
            return LabelSet.from_dict({"name": name or Path(where).stem, "classes": value})
    except (LabelSetError, ValueError, TypeError) as error:
        if isinstance(error, ModelSpecError):
            raise
        raise ModelSpecError(f"{where}: classes: {error}") from None
    raise ModelSpecError(
        f"{where}: classes must be 'cityscapes', a label-set YAML path or a list of "
        f"{{id, name, color}}, got {type(value).__name__}"
    )


def _void(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise ModelSpecError(f"{where}: void must be a list of channel numbers >= 0, got {value!r}")
    return tuple(sorted(set(value)))


def _remap(value: Any, where: str) -> dict[int, int]:
    if not isinstance(value, Mapping):
        raise ModelSpecError(f"{where}: remap must map channel -> class id, got {value!r}")
    out = {}
    for key, target in value.items():
        try:
            out[int(key)] = int(target)
        except (TypeError, ValueError):
            raise ModelSpecError(
                f"{where}: remap entry {key!r}: {target!r} is not channel -> class id"
            ) from None
    return out


def from_onnx_metadata(metadata: Mapping[str, str], where: str) -> dict[str, Any]:
    """Spec fields from the metadata our export writes (and its older form)."""
    if META_SPEC in metadata:
        try:
            data = json.loads(metadata[META_SPEC])
        except json.JSONDecodeError as error:
            raise ModelSpecError(f"{where}: metadata {META_SPEC} is not JSON: {error}") from None
        return parse_spec(data, f"{where} (metadata {META_SPEC})")
    out: dict[str, Any] = {}
    if META_LABEL_SET in metadata:
        try:
            out["label_set"] = LabelSet.from_dict(json.loads(metadata[META_LABEL_SET]))
        except (ValueError, LabelSetError) as error:
            raise ModelSpecError(
                f"{where}: metadata {META_LABEL_SET} is invalid: {error}"
            ) from None
    if META_PREPROCESS in metadata:
        try:
            old = json.loads(metadata[META_PREPROCESS])
            out["mean"] = tuple(float(v) for v in old["mean"])
            out["std"] = tuple(float(v) for v in old["std"])
            out["scale"] = float(old["scale"])
            out["color"] = "rgb"  # the exporter only ever wrote RGB models
        except (ValueError, KeyError, TypeError) as error:
            raise ModelSpecError(
                f"{where}: metadata {META_PREPROCESS} is invalid: {error}"
            ) from None
    return out


def to_onnx_metadata(spec: ModelSpec) -> str:
    """The spec as the sidecar schema in JSON, for :data:`META_SPEC`."""
    data: dict[str, Any] = {
        "input": {
            "layout": spec.layout,
            "dtype": spec.input_dtype,
            "color": spec.color,
            "scale": spec.scale,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "resize": spec.resize,
            "size": spec.size.to_dict(),
        },
        "output": {"kind": spec.output_kind},
    }
    if spec.resample != "linear":  # absent: readers of older versions still accept the file
        data["input"]["resample"] = spec.resample
    if spec.input_name:
        data["input"]["name"] = spec.input_name
    if spec.output_name:
        data["output"]["name"] = spec.output_name
    if spec.label_set is not None:
        data["classes"] = spec.label_set.to_dict()
    if spec.void:
        data["void"] = list(spec.void)
    if spec.remap:
        data["remap"] = {str(k): v for k, v in spec.remap.items()}
    return json.dumps(data)


# --------------------------------------------------------------------------- resolving
def resolve(layers: list[tuple[str, Mapping[str, Any]]]) -> ModelSpec:
    """Merge spec fields by precedence: ``layers`` is [(source name, fields)], first wins."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, fields in layers:
        for name, value in fields.items():
            if name not in values and value is not None:
                values[name] = value
                sources[name] = source
    spec = replace(ModelSpec(), **values)
    return replace(spec, sources=sources)


def resolve_for_config(
    config: Any,
    onnx_metadata: Mapping[str, str] | None = None,
    hf_fields: tuple[str, Mapping[str, Any]] | None = None,
) -> ModelSpec:
    """The spec of ``config``'s model: configuration > sidecar > ONNX metadata > HF folder.

    ``onnx_metadata`` is the model's custom metadata map (ONNX Runtime, TensorRT sidecar);
    ``hf_fields`` is (where, fields) read from a Hugging Face folder or model config.
    """
    layers: list[tuple[str, Mapping[str, Any]]] = [("configuration", config.explicit_spec())]
    kind = getattr(config, "model_kind", "")
    sidecar = sidecar_path(config.model if kind in ("onnx", "tensorrt") else "", config.spec)
    if sidecar is not None:
        layers.append((str(sidecar), load_sidecar(sidecar)))
    if onnx_metadata:
        layers.append(("ONNX metadata", from_onnx_metadata(onnx_metadata, str(config.model))))
    if hf_fields is not None:
        layers.append(hf_fields)
    return resolve(layers)


#: transformers' ``resample`` (PIL.Image.Resampling values) -> the spec's Pillow filter.
HF_RESAMPLE = {0: "nearest_pil", 1: "lanczos_pil", 2: "bilinear_pil", 3: "bicubic_pil",
               4: "box_pil", 5: "hamming_pil"}  # fmt: skip


def from_hf_preprocessor(data: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """Spec fields from a Hugging Face image processor's settings and what they cannot say.

    ``data`` holds the processor's effective attributes (``AutoImageProcessor``: the class
    defaults where the JSON is silent; see ``torch_engine._processor_settings``), with
    ``image_processor_type`` its class name. What transformers' PIL processors do
    (``image_processing_pil_*.py``, transformers 5) and how the spec says it:

    * ``do_rescale``/``rescale_factor`` -> scale; ``do_normalize``/``image_mean``/
      ``image_std`` -> mean/std (none: 0 and 1; MobileViT's default is none);
      ``do_flip_channel_order`` -> BGR (MobileViT).
    * ``resample`` -> the same Pillow filter on the uint8 image (``bilinear_pil``,
      ``bicubic_pil``, ...): BEiT, DPT, MobileViT and ConvNeXt default to bicubic,
      SegFormer to bilinear. Pillow antialiases when it shrinks; OpenCV's bilinear does
      not, which with a 1242-wide camera and a 512-wide network changes the pixels a lot.
    * ``size`` {height, width} -> a fixed size the image is stretched to (SegFormer,
      UperNet, BEiT, DPT); with DPT's ``ensure_multiple_of`` each side is rounded to that
      multiple, and with its ``keep_aspect_ratio`` the ``keep_aspect`` policy.
    * ``size`` {shortest_edge} -> the ``shortest_edge`` policy (MobileViT, MobileNetV2).
      ConvNeXt's processor reads it its own way: >= 384 stretches to a square of that
      side; below, the short side goes to ``shortest_edge / crop_pct`` before its crop.
    * ``do_center_crop`` is **not** reproduced, on purpose: apple/deeplabv3-mobilevit-*
      resize a 1242x375 camera image to 1801x544 and keep the central 512x512, 27 % of
      the scene, and transformers' ``post_process_semantic_segmentation`` then stretches
      the crop's labels over the whole image. The whole image is segmented at the
      resize's scale instead (what the processor gives with ``do_center_crop=False``); a
      note says so.
    * DPT's ``do_pad``/``size_divisor`` (centered padding that post-processing never
      removes) and sizes given as ``longest_edge`` or ``max_height``/``max_width`` are
      not reproduced either: notes.
    """
    out: dict[str, Any] = {}
    notes: list[str] = []
    scale = float(data.get("rescale_factor", 1 / 255)) if data.get("do_rescale", True) else 1.0
    out["scale"] = scale
    # Give ``data`` the processor's attributes (AutoImageProcessor), not the raw JSON:
    # an absent do_normalize means the class default, which differs between families
    # (MobileViT: none, though its config lists a mean and std).
    if data.get("do_normalize") and data.get("image_mean") is not None:
        out["mean"] = _triple(_per_channel(data["image_mean"]), where, "image_mean", False)
        out["std"] = _triple(_per_channel(data["image_std"]), where, "image_std", True)
    else:
        out["mean"], out["std"] = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    out["color"] = "bgr" if data.get("do_flip_channel_order", False) else "rgb"
    if data.get("do_resize", True):
        policy, note = _hf_size(data, where)
        if note:
            notes.append(note)
        if policy is not None:
            out["size"] = policy
            out["resize"] = "stretch"
            resample, note = _hf_resample(data.get("resample"), where)
            out["resample"] = resample
            if note:
                notes.append(note)
    if data.get("do_center_crop", False):
        crop = _size_dict(data.get("crop_size"))
        shape = f" (to {crop['height']}x{crop['width']})" if crop and "height" in crop else ""
        notes.append(
            f"{where}: the processor's center crop is not reproduced{shape}: the whole image "
            "is segmented at the resized scale (as the processor does with "
            "do_center_crop=False)"
        )
    if data.get("do_pad", False) and data.get("size_divisor"):
        notes.append(
            f"{where}: the processor's centered padding to a multiple of "
            f"{data['size_divisor']} is not reproduced"
        )
    return out, notes


def _per_channel(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value] * 3


def _size_dict(size: Any) -> dict[str, Any] | None:
    """transformers' ``size`` (a SizeDict in transformers 5, a dict in the JSON) as a dict;
    None for anything else (an old integer size)."""
    if isinstance(size, Mapping):
        return {k: v for k, v in size.items() if v is not None}
    if size is not None and not isinstance(size, int | float | str) and hasattr(size, "__iter__"):
        try:
            return {k: v for k, v in dict(size).items() if v is not None}  # SizeDict
        except (TypeError, ValueError):
            return None
    return None


def _hf_size(data: Mapping[str, Any], where: str) -> tuple[SizePolicy | None, str]:
    """The size policy of a processor's resize, or (None, a note) where it has none."""
    size = _size_dict(data.get("size"))
    kind = str(data.get("image_processor_type") or "")
    if size is None:
        return None, (
            f"{where}: resize {data.get('size')!r} is not understood, not reproduced: the "
            "network runs at the camera's size unless input_size is set"
        )
    if "height" in size and "width" in size and set(size) <= {"height", "width"}:
        h, w = int(size["height"]), int(size["width"])
        multiple = int(data.get("ensure_multiple_of") or 1)
        if data.get("keep_aspect_ratio", False):
            return SizePolicy("keep_aspect", (h, w), ensure_multiple_of=multiple), ""
        return SizePolicy("fixed", keep_aspect_size(h, w, (h, w), multiple)), ""
    if set(size) == {"shortest_edge", "longest_edge"}:
        # get_size_with_aspect_ratio; only Mask2Former's/MaskFormer's resize then rounds
        # each side up to size_divisor (DETR-like processors pad instead).
        rounds_up = kind.startswith(("Mask2Former", "MaskFormer"))
        divisor = int(data.get("size_divisor") or 1) if rounds_up else 1
        edge, longest = int(size["shortest_edge"]), int(size["longest_edge"])
        return SizePolicy("shortest_longest", edge=edge, longest=longest,
                          size_divisor=divisor), ""  # fmt: skip
    if set(size) == {"shortest_edge"}:
        edge = int(size["shortest_edge"])
        if kind.startswith("ConvNext"):  # its own resize (image_processing_pil_convnext.py)
            if edge >= 384:
                return SizePolicy("fixed", (edge, edge)), ""
            crop_pct = float(data.get("crop_pct") or 224 / 256)
            return SizePolicy("shortest_edge", edge=int(edge / crop_pct)), (
                f"{where}: ConvNeXt's crop of the resized image to {edge}x{edge} is not "
                "reproduced: the whole image is segmented"
            )
        return SizePolicy("shortest_edge", edge=edge), ""
    return None, (
        f"{where}: resize {size} is not reproduced: the network runs at the camera's size "
        "unless input_size is set"
    )


def _hf_resample(value: Any, where: str) -> tuple[str, str]:
    """(the spec's resample, a note or "") for a processor's ``resample``."""
    if value is None:  # PilBackend.resize: None means bilinear
        return "bilinear_pil", ""
    name = getattr(value, "value", value)
    if isinstance(name, str):  # torchvision's InterpolationMode (the "fast" processors)
        filters = {"nearest": "nearest_pil", "bilinear": "bilinear_pil",
                   "bicubic": "bicubic_pil", "lanczos": "lanczos_pil"}  # fmt: skip
        if name in filters:
            return filters[name], ""
    else:
        try:
            return HF_RESAMPLE[int(name)], ""
        except (KeyError, TypeError, ValueError):
            pass
    return "bilinear_pil", f"{where}: resample {value!r} is unknown here: bilinear is used"
