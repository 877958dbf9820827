"""Build the right engine from an :class:`EngineConfig`.

``backend: auto`` picks: ``.onnx`` -> ONNX Runtime; ``.engine``/``.plan`` -> TensorRT; a
Hugging Face model (folder, hub id, random spec) -> PyTorch on CUDA, and on the CPU an ONNX
export (cached, verified against PyTorch) run by ONNX Runtime, which is 2.6-2.9x faster than
PyTorch eager there with the same argmax.

A Hugging Face model's ``model_type`` (``engines/families.py``) decides first: universal
models (Mask2Former, OneFormer), open-vocabulary ones (CLIPSeg) and promptable ones (SAM) get
their own PyTorch engines; a family this package does not run is refused with one message.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from seg_perception.engines.base import EngineLoadError, SegmentationEngine
from seg_perception.engines.config import EngineConfig

LOG = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "seg_perception"


def cached_onnx_path(config: EngineConfig, key: dict[str, Any] | None = None) -> Path:
    """Where the CPU auto path keeps the ONNX export of a Hugging Face model.

    The name carries a digest of everything the exported file depends on (``key``, by
    default :func:`_export_key`), so new weights saved into the same folder, a new snapshot
    of a hub model or other export settings get an export of their own, never a stale one.
    """
    cache = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    key = _export_key(config) if key is None else key
    canonical = json.dumps(key, sort_keys=True, default=str)
    tag = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    stem = config.model.replace("/", "--").replace(":", "-")
    return cache / "onnx" / f"{stem}.{tag}.onnx"


def _export_key(config: EngineConfig) -> dict[str, Any]:
    """What an export of ``config.model`` depends on: the weights and config by content
    (a random spec: the spec and its seed), the opset, the torch/transformers versions that
    trace it, and every engine setting except those that only matter after the export (a
    setting the exporter starts to read, e.g. into the file's metadata, is thus covered
    without anyone remembering to add it here). ``weights`` is None for a hub model that
    is not in the local cache (yet).

    A folder's (or a hub snapshot's) ``*.safetensors``, ``*.bin``, ``config.json`` and
    ``preprocessor_config.json`` are hashed (sha256, streamed) every time, not cached by
    (path, size, mtime): new weights of the same architecture have the same size, and copies
    that keep mtimes (``cp -p``, rsync, tar, reproducible-build stores) can give them the
    same mtime too. Hashing costs 0.3 s per 500 MB here (SegFormer-B5 weights: 340 MB),
    once per engine creation.
    """
    # Where and how the export is run, not what it contains; the seed only picks the
    # verification inputs, except for a random spec, whose weights it draws.
    runtime_only = {"backend", "device", "precision", "num_threads", "cache_dir", "min_shape",
                    "opt_shape", "max_shape", "calibration_images", "seed"}  # fmt: skip
    # Readouts of universal/open-vocabulary models, which are never exported: kept out so
    # adding them did not rename every existing export.
    runtime_only |= {"prompts", "background_threshold", "panoptic", "panoptic_threshold",
                     "stuff_channels"}  # fmt: skip
    settings = {k: v for k, v in asdict(config).items() if k not in runtime_only}
    # "exporter": bump when the export itself changes what it writes (v2: the model spec in
    # the metadata, Pillow filters and sizes of HF processors, adaptive pooling as products).
    key: dict[str, Any] = {"settings": settings, "opset": 17, "exporter": 2}
    for package in ("torch", "transformers"):
        try:
            key[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            key[package] = None
    kind = config.model_kind
    if kind == "random":
        key["seed"] = config.seed
        return key
    folder: Path | None = Path(config.model) if kind == "folder" else None
    if kind == "hub":
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(config.model, local_files_only=True))
        except Exception:  # not cached (yet), not a valid repo id, no huggingface_hub
            folder = None
    if folder is None:
        key["weights"] = None
        return key
    names = {"config.json", "preprocessor_config.json"}
    weights = {}
    for file in sorted(folder.iterdir()):
        if file.is_file() and (file.name in names or file.suffix in (".safetensors", ".bin")):
            digest = hashlib.sha256()
            with file.open("rb") as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
            weights[file.name] = digest.hexdigest()
    key["weights"] = weights
    return key


def create_engine(config: EngineConfig) -> SegmentationEngine:
    """The engine ``config`` describes, or EngineLoadError saying what is wrong."""
    engine = _family_engine(config)
    if engine is not None:
        return engine
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


def _family_engine(config: EngineConfig) -> SegmentationEngine | None:
    """The engine of a universal, open-vocabulary or promptable model; None for a semantic one.

    Readouts a model cannot give are refused here, before anything loads: panoptic from a
    semantic model, CLIPSeg or SAM, text prompts for a model whose classes are not text.
    """
    from seg_perception.engines.families import family_of

    family = family_of(config)
    if config.prompts and family == "promptable":
        raise EngineLoadError(
            f"prompts are the classes of an open-vocabulary model (CLIPSeg); {config.model} is "
            "a promptable model (SAM), prompted per image with points and boxes "
            "(segment_prompt): remove prompts"
        )
    if config.prompts and family != "open_vocabulary":
        raise EngineLoadError(
            f"prompts are the classes of an open-vocabulary model (CLIPSeg); {config.model} "
            "has fixed classes: remove prompts"
        )
    if config.panoptic and family != "universal":
        what = {"open_vocabulary": "an open-vocabulary", "promptable": "a promptable"}.get(
            family, "a semantic"
        )
        raise EngineLoadError(
            f"panoptic readout requested, but {config.model} is {what} segmentation model "
            "without one: panoptic needs a universal model (Mask2Former or OneFormer), or "
            "set panoptic false"
        )
    if family == "semantic":
        return None
    if config.backend in ("onnxruntime", "tensorrt"):
        raise EngineLoadError(
            f"{config.model} is a {family.replace('_', '-')} model, which runs on the torch "
            f"backend only (backend auto or torch, not {config.backend})"
        )
    if family == "universal":
        from seg_perception.engines.universal_engine import UniversalEngine

        return UniversalEngine(config)
    if family == "promptable":
        from seg_perception.engines.sam_engine import SamEngine

        return SamEngine(config)
    from seg_perception.engines.clipseg_engine import CLIPSegEngine

    return CLIPSegEngine(config)


def _export_cached(config: EngineConfig) -> Path:
    """The cached ONNX export of ``config.model``, exported (and verified) when missing.

    The model's files are hashed again after an export: when they changed meanwhile (new
    weights saved while we exported) nobody knows which weights the file holds, so it is
    thrown away. A hub model that the export downloaded is filed under its files' hash.
    """
    key = _export_key(config)
    path = cached_onnx_path(config, key)
    if path.is_file():
        return path
    from seg_perception.engines.export import export_onnx

    LOG.info("exporting %s to ONNX once, cached at %s", config.model, path)
    export_onnx(config, path, opset=key["opset"])
    settled = cached_onnx_path(config)
    if settled != path:
        if key.get("weights") is not None:
            path.unlink(missing_ok=True)
            raise EngineLoadError(
                f"the model files of {config.model} changed while they were exported to ONNX; "
                "try again once they are written"
            )
        path.replace(settled)
    return settled


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
