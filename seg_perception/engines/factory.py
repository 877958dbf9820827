"""Build the right engine from an :class:`EngineConfig`.

``backend: auto`` picks: ``.onnx`` -> ONNX Runtime; ``.engine``/``.plan`` -> TensorRT; a
Hugging Face model (folder, hub id, random spec) -> PyTorch on CUDA, and on the CPU an ONNX
export (cached, verified against PyTorch) run by ONNX Runtime, which is 2.6-2.9x faster than
PyTorch eager there with the same argmax.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

from seg_perception.engines.base import EngineLoadError, SegmentationEngine
from seg_perception.engines.config import EngineConfig

LOG = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "seg_perception"


def cached_onnx_path(config: EngineConfig) -> Path:
    """Where the CPU auto path keeps the ONNX export of a Hugging Face model."""
    cache = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    tag = hashlib.sha256(f"{config.model}|{config.seed}".encode()).hexdigest()[:12]
    stem = config.model.replace("/", "--").replace(":", "-")
    return cache / "onnx" / f"{stem}.{tag}.onnx"


def create_engine(config: EngineConfig) -> SegmentationEngine:
    """The engine ``config`` describes, or EngineLoadError saying what is wrong."""
    backend = config.backend
    kind = config.model_kind
    if backend == "auto":
        if kind == "onnx":
            backend = "onnxruntime"
        elif kind == "tensorrt":
            backend = "tensorrt"
        elif config.device.startswith("cuda"):
            backend = "torch"
        else:
            return _onnx_from_huggingface(config)
    if backend == "onnxruntime":
        if kind != "onnx":
            if kind == "tensorrt":
                raise EngineLoadError(f"{config.model} is a TensorRT engine; use backend tensorrt")
            return _onnx_from_huggingface(config)
        from seg_perception.engines.onnx_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(config)
    if backend == "torch":
        from seg_perception.engines.torch_engine import TorchEngine

        return TorchEngine(config)
    from seg_perception.engines.tensorrt_engine import TensorRTEngine

    if kind not in ("onnx", "tensorrt"):
        onnx_path = _export_cached(config)
        config = replace(config, model=str(onnx_path))
    return TensorRTEngine(config)


def _export_cached(config: EngineConfig) -> Path:
    path = cached_onnx_path(config)
    if not path.is_file():
        from seg_perception.engines.export import export_onnx

        LOG.info("exporting %s to ONNX once, cached at %s", config.model, path)
        export_onnx(config, path)
    return path


def _onnx_from_huggingface(config: EngineConfig) -> SegmentationEngine:
    from seg_perception.engines.onnx_engine import OnnxRuntimeEngine

    path = _export_cached(config)
    engine = OnnxRuntimeEngine(replace(config, model=str(path)))
    engine.source = f"{config.model} (ONNX export {path.name})"
    return engine


#: The SegFormer the demo uses when it is in the local Hugging Face cache.
DEFAULT_HUB_MODEL = "nvidia/segformer-b0-finetuned-cityscapes-1024-1024"


def find_default_model() -> tuple[str | None, str]:
    """A trained model available without asking the network, and where it was looked for.

    ``$SEG_PERCEPTION_MODEL`` (a path or hub id) first, then the Cityscapes SegFormer-B0 in
    the local Hugging Face cache. Returns (model or None, a sentence saying what happened).
    """
    import os

    configured = os.environ.get("SEG_PERCEPTION_MODEL", "")
    if configured:
        return configured, f"using $SEG_PERCEPTION_MODEL={configured}"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None, "no trained model found: huggingface_hub is not installed"
    cached = try_to_load_from_cache(DEFAULT_HUB_MODEL, "config.json")
    if isinstance(cached, str):
        return DEFAULT_HUB_MODEL, f"using {DEFAULT_HUB_MODEL} from the Hugging Face cache"
    return None, (
        f"no trained model found ($SEG_PERCEPTION_MODEL unset, {DEFAULT_HUB_MODEL} not in the "
        "Hugging Face cache); pass --model PATH|HUB_ID to segment the camera image with one"
    )
