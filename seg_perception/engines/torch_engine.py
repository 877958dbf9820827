"""PyTorch backend: Hugging Face ``transformers`` SegFormer on CPU or CUDA (fp16 on CUDA).

Models come from a local Hugging Face folder, a hub id (cache first, then the network), or
``random:segformer-bN`` (random weights, seeded: for tests and benchmarks, since no hub is
reachable on the build machines).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.labels import LabelSet
from seg_perception.engines.base import EngineLoadError, SegmentationEngine
from seg_perception.engines.config import RANDOM_PREFIX, EngineConfig
from seg_perception.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD
from seg_perception.engines.spec import ModelSpecError, from_hf_preprocessor, resolve_for_config

LOG = logging.getLogger(__name__)

#: SegFormer variants (hidden sizes, depths, decoder width) from the paper / HF configs.
SEGFORMER_VARIANTS: dict[str, dict[str, Any]] = {
    "b0": {"hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b1": {"hidden_sizes": [64, 128, 320, 512], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b2": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 4, 6, 3], "decoder_hidden_size": 768},
    "b3": {
        "hidden_sizes": [64, 128, 320, 512],
        "depths": [3, 4, 18, 3],
        "decoder_hidden_size": 768,
    },
    "b4": {
        "hidden_sizes": [64, 128, 320, 512],
        "depths": [3, 8, 27, 3],
        "decoder_hidden_size": 768,
    },
    "b5": {
        "hidden_sizes": [64, 128, 320, 512],
        "depths": [3, 6, 40, 3],
        "decoder_hidden_size": 768,
    },
}


def _import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as error:
        raise EngineLoadError(
            "the torch backend needs torch and transformers: pip install torch transformers "
            f"({error})"
        ) from None
    return torch


def random_segformer(spec: str, num_labels: int = 19, seed: int = 0) -> Any:
    """``random:segformer-b0`` -> a SegformerForSemanticSegmentation with seeded random weights."""
    torch = _import_torch()
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    variant = spec[len(RANDOM_PREFIX) :].removeprefix("segformer-").lower()
    if variant not in SEGFORMER_VARIANTS:
        raise EngineLoadError(
            f"unknown random model '{spec}': use random:segformer-b0 ... random:segformer-b5"
        )
    labels = LabelSet.cityscapes() if num_labels == 19 else None
    id2label = (
        {i: n for i, n in zip(labels.ids, labels.names, strict=True)}
        if labels
        else {i: f"class_{i}" for i in range(num_labels)}
    )
    config = SegformerConfig(
        num_labels=num_labels,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        **SEGFORMER_VARIANTS[variant],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SegformerForSemanticSegmentation(config).eval()


def load_segformer(config: EngineConfig) -> Any:
    """The transformers model named by ``config.model`` (random spec, folder or hub id)."""
    _import_torch()
    # Any transformers semantic-segmentation family (SegFormer, MobileViT/DeepLabV3, BEiT,
    # DPT, UperNet, ...): they all return (N, C, h, w) logits.
    from transformers import AutoModelForSemanticSegmentation as SegmentationModel

    kind = config.model_kind
    if kind == "random":
        return random_segformer(config.model, seed=config.seed)
    if kind in ("onnx", "tensorrt"):
        raise EngineLoadError(
            f"the torch backend needs a Hugging Face model, not {config.model}; use backend "
            "onnxruntime (.onnx) or tensorrt (.engine)"
        )
    if kind == "folder" and not (Path(config.model) / "config.json").is_file():
        raise EngineLoadError(f"{config.model} has no config.json: not a Hugging Face model folder")
    try:
        # Local files (a folder or the hub cache) first: works offline, never waits.
        return SegmentationModel.from_pretrained(config.model, local_files_only=True).eval()
    except (OSError, ValueError) as local_error:
        if kind == "folder":
            raise EngineLoadError(
                f"cannot load the model in {config.model}: {local_error}"
            ) from None
    try:
        LOG.info("downloading %s from the Hugging Face hub", config.model)
        return SegmentationModel.from_pretrained(config.model).eval()
    except Exception as error:
        raise EngineLoadError(
            f"could not load hub model '{config.model}': not in the local cache and the hub is "
            f"unreachable or has no such model ({type(error).__name__}). On a connected machine "
            f"run `huggingface-cli download {config.model} --local-dir DIR` and pass model:=DIR, "
            "or export it to ONNX there (seg-perception export)."
        ) from None


def label_set_of(model: Any) -> LabelSet:
    """The label set a transformers model predicts, with Cityscapes colors where they match."""
    id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
    cityscapes = LabelSet.cityscapes()
    if [id2label.get(i) for i in cityscapes.ids] == list(cityscapes.names) and len(id2label) == 19:
        return cityscapes
    return LabelSet.from_dict(
        {
            "name": getattr(model.config, "name_or_path", "") or "model",
            "classes": [{"id": i, "name": n} for i, n in sorted(id2label.items())],
        }
    )


def hf_spec_fields(config: EngineConfig, model: Any) -> tuple[str, dict[str, Any]]:
    """(where, spec fields) of a transformers model: its folder's preprocessor config and
    its classes. ``random:`` models take SegFormer's processor defaults but no fixed size."""
    where = f"{config.model} (Hugging Face configs)"
    fields: dict[str, Any] = {"label_set": label_set_of(model), "output_kind": "logits"}
    if config.model_kind == "random":
        fields.update(scale=1 / 255, mean=IMAGENET_MEAN, std=IMAGENET_STD, color="rgb")
        return where, fields
    folder = Path(config.model) if config.model_kind == "folder" else None
    if folder is None:
        folder = Path(getattr(model.config, "_name_or_path", "") or "")
    path = folder / "preprocessor_config.json"
    if path.is_file():
        read, notes = from_hf_preprocessor(_processor_settings(folder, path), str(path))
        fields.update(read)
        for note in notes:
            LOG.warning(note)
    return where, fields


#: The image processor settings that make a model spec.
PROCESSOR_KEYS = (
    "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std",
    "do_flip_channel_order", "do_resize", "size", "resample", "do_center_crop", "crop_size",
    "crop_pct", "keep_aspect_ratio", "ensure_multiple_of", "do_pad", "size_divisor",
)  # fmt: skip


def _processor_settings(folder: Path, path: Path) -> dict[str, Any]:
    """The processor's effective settings: transformers' own class with its defaults where
    the JSON is silent (the library is the reference), else the JSON as written."""
    try:
        from transformers import AutoImageProcessor

        with _quiet_transformers():
            processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        settings = {key: getattr(processor, key, None) for key in PROCESSOR_KEYS}
        # The class decides what some settings mean (ConvNeXt's shortest_edge).
        settings["image_processor_type"] = type(processor).__name__
        return settings
    except Exception as error:  # an unknown processor class: read the file itself
        LOG.info("reading %s as written (%s)", path, type(error).__name__)
        return json.loads(path.read_text(encoding="utf-8"))


@contextlib.contextmanager
def _quiet_transformers() -> Any:
    """Silence transformers' 'torchvision not installed, using PIL' notice."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


class TorchEngine(SegmentationEngine):
    """SegFormer through PyTorch eager; fp16 autocast on CUDA."""

    backend = "torch"

    def __init__(self, config: EngineConfig, model: Any | None = None) -> None:
        torch = _import_torch()
        self._torch = torch
        if config.device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineLoadError(f"device {config.device} requested but torch sees no CUDA GPU")
        self.model = model if model is not None else load_segformer(config)
        self.device = torch.device(config.device)
        self.model.to(self.device)
        self.half = config.precision == "fp16"
        if config.precision == "int8":
            raise EngineLoadError("the torch backend has no int8 mode; use tensorrt for int8")
        if self.half:
            self.model.half()
        if config.num_threads and self.device.type == "cpu":
            torch.set_num_threads(config.num_threads)
        try:
            spec = resolve_for_config(config, hf_fields=hf_spec_fields(config, self.model))
        except ModelSpecError as error:
            raise EngineLoadError(str(error)) from None
        super().__init__(spec, config.model)
        self.bind_channels(int(self.model.config.num_labels))

    def _infer(self, batch: np.ndarray) -> Any:
        torch = self._torch
        with torch.inference_mode():
            tensor = torch.from_numpy(batch).to(self.device, non_blocking=True)
            if self.half:
                tensor = tensor.half()
            autocast = (
                torch.autocast("cuda", dtype=torch.float16)
                if self.half
                else contextlib.nullcontext()
            )
            with autocast:
                logits = self.model(pixel_values=tensor).logits[0]
        if self.device.type == "cpu":
            return logits.float().numpy()
        return logits  # post-processed on the GPU (see base.py)
