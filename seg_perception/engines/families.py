"""Which kind of segmentation network a model is, from its Hugging Face ``model_type``.

Four kinds run behind the one engine interface, each needing different post-processing:

* **semantic** (SegFormer, BEiT, DPT, MobileViT, UperNet, ...): (C, h, w) logits; the
  families are transformers' own ``AutoModelForSemanticSegmentation`` list;
* **universal** (Mask2Former, OneFormer): per-query class scores and masks, from which
  semantic and panoptic readouts are made (``universal_engine.py``);
* **open vocabulary** (CLIPSeg): a mask per text prompt (``clipseg_engine.py``);
* **promptable** (SAM): one mask per point/box prompt, no classes (``sam_engine.py``); it
  has no per-pixel labels to give, so its ``segment`` refuses and ``segment_prompt`` is used.

SAM 2 (``sam2``) is not run: transformers 5.23 has no PIL image processor for it, only a
torchvision one, and there is no CPU torchvision wheel here, so its own preprocessing (which
this package uses instead of a copy) cannot run where the package is built and tested.

Anything else (a classifier, a detector, MaskFormer, DETR) is refused with one message
naming what is supported, instead of failing somewhere inside transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from seg_perception.engines.base import EngineLoadError
from seg_perception.engines.config import RANDOM_PREFIX, EngineConfig

Family = Literal["semantic", "universal", "open_vocabulary", "promptable"]
UNIVERSAL_TYPES = ("mask2former", "oneformer")
OPEN_VOCABULARY_TYPES = ("clipseg",)
PROMPTABLE_TYPES = ("sam",)
#: Model types refused with a reason of their own rather than the generic list.
_REFUSED = {
    "sam2": "SAM 2's image processor needs torchvision (transformers 5.23 has no PIL one for "
    "it) and there is no CPU torchvision wheel; use a SAM (model_type sam) checkpoint, e.g. "
    "facebook/sam-vit-base",
}
#: transformers 5.23's AutoModelForSemanticSegmentation families, if it cannot be asked.
_SEMANTIC_FALLBACK = ("beit", "data2vec-vision", "dpt", "mobilenet_v2", "mobilevit",
                      "mobilevitv2", "segformer", "upernet")  # fmt: skip


def semantic_types() -> tuple[str, ...]:
    """The model types transformers' AutoModelForSemanticSegmentation loads."""
    try:
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES as NAMES,
        )
    except ImportError:
        return _SEMANTIC_FALLBACK
    return tuple(sorted(NAMES))


def model_type(config: EngineConfig) -> str | None:
    """The ``model_type`` of ``config.model`` where it can be known without loading it:
    a random spec, a folder's config.json, a hub model's cached config.json. None: unknown
    here (a file or an uncached hub id), left to the backend to load or refuse."""
    kind = config.model_kind
    if kind == "random":
        from seg_perception.engines.random_models import random_model_type

        name = config.model[len(RANDOM_PREFIX) :].lower()
        if name.startswith("segformer"):
            return "segformer"
        found = random_model_type(config.model)
        if found is None:
            raise EngineLoadError(
                f"unknown random model '{config.model}': use random:segformer-b0 ... b5, "
                "random:mask2former[-swin-tiny], random:oneformer[-swin-tiny], "
                "random:clipseg[-rd64] or random:sam[-vit-base]"
            )
        return found
    if kind == "folder":
        return _read_type(Path(config.model) / "config.json")
    if kind == "hub":
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(config.model, "config.json")
        except Exception:  # no huggingface_hub, or not a valid repo id
            return None
        return _read_type(Path(cached)) if isinstance(cached, str) else None
    return None


def _read_type(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EngineLoadError(f"{path} cannot be read as JSON: {error}") from None
    value = data.get("model_type") if isinstance(data, dict) else None
    return str(value) if value else None


def family_of(config: EngineConfig) -> Family:
    """The kind of network ``config.model`` is; EngineLoadError for an unsupported one."""
    found = model_type(config)
    if found is None or found in semantic_types():
        return "semantic"
    if found in UNIVERSAL_TYPES:
        return "universal"
    if found in OPEN_VOCABULARY_TYPES:
        return "open_vocabulary"
    if found in PROMPTABLE_TYPES:
        return "promptable"
    if found in _REFUSED:
        raise EngineLoadError(f"{config.model}: model_type '{found}' is not run: {_REFUSED[found]}")
    raise EngineLoadError(
        f"{config.model}: model_type '{found}' is not a segmentation family this package "
        f"runs. Supported: semantic ({', '.join(semantic_types())}), universal "
        f"({', '.join(UNIVERSAL_TYPES)}), open-vocabulary ({', '.join(OPEN_VOCABULARY_TYPES)}) "
        f"and promptable ({', '.join(PROMPTABLE_TYPES)})"
    )
