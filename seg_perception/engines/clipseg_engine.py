"""Open-vocabulary segmentation (CLIPSeg) behind the one engine interface: classes are text.

The classes come from configuration, as prompts (``prompts: [road, car=#0000ff]``) or as a
label set whose class names are the prompts (with its ids and colors); class i is prompt i,
and the published label set (the class map nodes latch) is built from them, so replay,
evaluation and the nodes treat the model like any other. CLIPSeg scores each prompt
independently (a sigmoid per prompt, not a softmax over them), so "none of these" is a
threshold: a pixel whose best prompt's probability is below ``background_threshold`` is
unlabeled. Labels: the argmax over prompts of the bilinearly resampled logits; confidence:
the sigmoid of that maximum (below the threshold on unlabeled pixels).

Efficiency: the prompts are fixed, so their text embeddings are computed once at load, and
the image goes through the ViT once per frame, its activations shared by every prompt.
(transformers' ``forward`` wants one copy of the image per prompt and runs the ViT on each:
with 8 prompts, 8 times the vision cost.) The result equals that forward's logits (tested).

The prompts are tokenized by the CLIP tokenizer saved with the model, never downloaded.
The decoder assumes a square token grid, so the input size must be square (the processor's
352x352, stretched, as transformers does).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

import numpy as np

from seg_perception.core.pipeline import Segmentation
from seg_perception.engines.base import EngineLoadError, SegmentationEngine
from seg_perception.engines.config import EngineConfig
from seg_perception.engines.hf_resize import preprocessor_for
from seg_perception.engines.preprocess import Letterbox
from seg_perception.engines.prompts import PromptError, prompt_label_set
from seg_perception.engines.spec import (
    ModelSpec,
    ModelSpecError,
    from_hf_preprocessor,
    resolve_for_config,
)
from seg_perception.engines.torch_engine import _import_torch, _quiet_transformers
from seg_perception.engines.universal_engine import (
    check_torch_config,
    folder_settings,
    load_tokenizer,
    model_folder,
    place_model,
    processor_fields,
)

LOG = logging.getLogger(__name__)


def load_clipseg(config: EngineConfig) -> tuple[Any, dict[str, Any], Any, str]:
    """(model, processor settings, tokenizer, where) of ``config.model``."""
    if config.model_kind == "random":
        from seg_perception.engines.random_models import build_random_model

        model, processor, tokenizer = build_random_model(config.model, config.seed)
        settings = processor_fields(processor.image_processor)
        return model, settings, tokenizer, f"{config.model} (random weights)"
    from transformers import CLIPSegForImageSegmentation

    folder = model_folder(config)
    try:
        with _quiet_transformers():
            model = CLIPSegForImageSegmentation.from_pretrained(
                str(folder), local_files_only=True
            ).eval()
    except (OSError, ValueError) as error:
        raise EngineLoadError(f"cannot load the CLIPSeg model in {folder}: {error}") from None
    settings, where = folder_settings(folder)
    return model, settings, load_tokenizer(folder), where


def prompt_classes(config: EngineConfig, spec: ModelSpec) -> tuple[ModelSpec, list[str]]:
    """The spec with the prompts' label set (or the configured one's ids as a remap), and
    the prompt texts in channel order; EngineLoadError when no classes are given."""
    if spec.label_set is not None:  # label_set (configuration or spec YAML): names are prompts
        if config.prompts:
            raise EngineLoadError(
                f"{config.model}: classes given twice, as prompts and by the spec's classes "
                f"({spec.source('label_set')}): keep one"
            )
        labels = spec.label_set
        remap = {channel: class_id for channel, class_id in enumerate(labels.ids)}
        return replace(spec, remap=remap), list(labels.names)
    try:
        labels = prompt_label_set(config.prompts)
    except PromptError as error:
        raise EngineLoadError(f"{config.model} is an open-vocabulary model: {error}") from None
    sources = {**spec.sources, "label_set": "prompts"}
    return replace(spec, label_set=labels, sources=sources), list(labels.names)


class CLIPSegEngine(SegmentationEngine):
    """CLIPSeg through PyTorch: one class per text prompt, a threshold for "none"."""

    backend = "torch"

    def __init__(self, config: EngineConfig) -> None:
        torch = _import_torch()
        self._torch = torch
        check_torch_config(torch, config, "CLIPSeg")
        if config.precision != "fp32" and not config.device.startswith("cuda"):
            raise EngineLoadError("CLIPSeg runs in fp32 on the CPU")
        model, settings, tokenizer, where = load_clipseg(config)
        read, notes = from_hf_preprocessor(settings, where) if settings else ({}, [])
        for note in notes:
            LOG.warning(note)
        try:
            spec = resolve_for_config(config, hf_fields=(where, {**read, "output_kind": "logits"}))
        except ModelSpecError as error:
            raise EngineLoadError(str(error)) from None
        spec, self.prompts = prompt_classes(config, spec)
        size = spec.size
        if size.kind != "fixed" or size.size[0] != size.size[1]:  # type: ignore[index]
            raise EngineLoadError(
                f"{config.model}: CLIPSeg's decoder needs a square input, but the input size "
                f"is {size.describe()}; set input_size to e.g. [352, 352]"
            )
        if spec.output_kind != "logits":
            raise EngineLoadError(f"{config.model}: CLIPSeg outputs logits, not {spec.output_kind}")
        super().__init__(spec, config.model)
        self.preprocessor = preprocessor_for(spec)
        # fp16 by autocast, not by casting the weights.
        self.model, self.device, self.half = place_model(torch, model, config, cast_half=False)
        self.threshold = config.background_threshold
        self.bind_channels(len(self.prompts))
        self.conditional = self._embed(tokenizer)

    @property
    def description(self) -> str:
        return f"torch clipseg engine ({self.source}, {len(self.prompts)} prompts)"

    def _embed(self, tokenizer: Any) -> Any:
        """The prompts' conditional embeddings (P, projection_dim), once."""
        torch = self._torch
        length = int(self.model.config.text_config.max_position_embeddings)
        tokens = tokenizer(self.prompts, padding=True, truncation=True, max_length=length,
                           return_tensors="pt")  # fmt: skip
        with torch.inference_mode():
            return self.model.get_conditional_embeddings(
                batch_size=len(self.prompts),
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )

    def _infer(self, batch: np.ndarray) -> Any:
        """(1, 3, s, s) -> (P, s, s) logits: the ViT once, the decoder per prompt."""
        torch = self._torch
        model = self.model
        autocast = (
            torch.autocast("cuda", dtype=torch.float16) if self.half else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            pixels = torch.from_numpy(batch).to(self.device, non_blocking=True)
            vision = model.clip.get_image_features(
                pixel_values=pixels, interpolate_pos_encoding=True, output_hidden_states=True
            )
            count = len(self.prompts)
            activations = [vision.hidden_states[i + 1].expand(count, -1, -1)
                           for i in model.extract_layers]  # fmt: skip
            logits = model.decoder(activations, self.conditional).logits.float()
        logits = logits.reshape(count, *logits.shape[-2:])
        return logits.numpy() if self.device.type == "cpu" else logits

    def _postprocess(self, output: Any, box: Letterbox) -> Segmentation:
        from seg_perception.engines.mask_readout import resampled_max

        torch = self._torch
        logits = torch.from_numpy(output) if isinstance(output, np.ndarray) else output
        self.bind_channels(int(logits.shape[0]))
        best, index = resampled_max(logits, box)
        probability = torch.sigmoid(best).cpu().numpy()
        labels = self._to_labels(index.cpu().numpy().astype(self._index_dtype))
        labels[probability < self.threshold] = self.label_set.unlabeled_id
        return Segmentation(labels, probability.astype(np.float32, copy=False))
