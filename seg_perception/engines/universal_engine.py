"""Universal segmenters (Mask2Former, OneFormer) behind the one engine interface.

One network, one forward pass, several readouts (:mod:`~seg_perception.engines.panoptic`):
``segment(image)`` gives semantic labels and confidence at the image's resolution like every
engine, so replay, evaluation and the nodes need no special case; ``segment_panoptic(image)``
adds an instance id per pixel with each segment's class and score.

What each family needs, as transformers' own processors do it:

* **Mask2Former**: masks are first resized to 384x384 (``post_process_*`` does so "for all
  models"), then to the image; its processor resizes the short side to ``shortest_edge``
  (long side capped at ``longest_edge``) and each side up to a multiple of 32.
* **OneFormer**: the network is told its task as text, "the task is semantic" (or
  panoptic), tokenized by its CLIP tokenizer (padded to ``task_seq_len``, pads as 0).
  The tokenizer files are read from the model folder, never downloaded; ``segment`` runs
  the semantic task, ``segment_panoptic`` the panoptic one (and reads semantic labels from
  the same pass). Its processor resizes panoptic masks with torchvision, i.e. antialiased.

Models come from a local Hugging Face folder, a hub id (cache first), or ``random:`` specs
(:mod:`~seg_perception.engines.random_models`). PyTorch only: there is no ONNX export of
these families here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.pipeline import Segmentation
from seg_perception.engines.base import EngineLoadError, SegmentationEngine
from seg_perception.engines.config import EngineConfig
from seg_perception.engines.hf_resize import preprocessor_for
from seg_perception.engines.panoptic import PanopticSegment, PanopticSegmentation
from seg_perception.engines.preprocess import Letterbox
from seg_perception.engines.spec import ModelSpecError, from_hf_preprocessor, resolve_for_config
from seg_perception.engines.torch_engine import (
    PROCESSOR_KEYS,
    _import_torch,
    _quiet_transformers,
    label_set_of,
)

LOG = logging.getLogger(__name__)
#: Mask2Former's post-processing resizes masks to this first, whatever the input size.
MASK2FORMER_MASK_SIZE = (384, 384)
#: transformers' defaults for the panoptic readout.
MASK_THRESHOLD = 0.5
OVERLAP_THRESHOLD = 0.8


def processor_fields(processor: Any) -> dict[str, Any]:
    """An image processor's effective settings (as torch_engine reads a folder's)."""
    settings = {key: getattr(processor, key, None) for key in PROCESSOR_KEYS}
    settings["image_processor_type"] = type(processor).__name__
    return settings


def folder_settings(folder: Path) -> tuple[dict[str, Any], str]:
    """(processor settings, the file they came from) of a model folder: transformers' own
    processor class (its defaults where the file is silent), else the file as written.
    Older checkpoints keep them in preprocessor_config.json, newer processors (OneFormer,
    CLIPSeg saved by transformers 5) under ``image_processor`` in processor_config.json."""
    names = ("preprocessor_config.json", "processor_config.json")
    path = next((folder / name for name in names if (folder / name).is_file()), None)
    if path is None:
        LOG.warning("%s has no processor config: transformers' defaults assumed", folder)
        return {}, str(folder)
    from transformers import AutoImageProcessor

    try:
        with _quiet_transformers():
            processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        return processor_fields(processor), str(path)
    except Exception as error:  # e.g. OneFormer's class metadata is on the hub: read the file
        LOG.info("reading %s as written (%s)", path, type(error).__name__)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EngineLoadError(f"{path} cannot be read as JSON: {error}") from None
    return dict(data.get("image_processor", data)), str(path)


def model_folder(config: EngineConfig) -> Path:
    """The local folder of ``config.model``: the folder itself, or a hub snapshot (the
    cache first, else downloaded); EngineLoadError when neither works."""
    if config.model_kind == "folder":
        return Path(config.model)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise EngineLoadError(
            "hub models need huggingface_hub: pip install huggingface_hub"
        ) from None
    try:
        return Path(snapshot_download(config.model, local_files_only=True))
    except Exception:
        LOG.info("downloading %s from the Hugging Face hub", config.model)
    try:
        return Path(snapshot_download(config.model))
    except Exception as error:
        raise EngineLoadError(
            f"could not load hub model '{config.model}': not in the local cache and the hub is "
            f"unreachable or has no such model ({type(error).__name__}); download it on a "
            "connected machine and pass its folder"
        ) from None


def task_tokens(tokenizer: Any, task: str, length: int) -> Any:
    """OneFormer's task input: "the task is <task>" as token ids padded with 0 to ``length``
    (OneFormerProcessor multiplies the ids by the attention mask)."""
    import torch

    encoded = tokenizer([f"the task is {task}"], padding="max_length", max_length=length,
                        truncation=True)  # fmt: skip
    ids = torch.tensor(encoded["input_ids"]) * torch.tensor(encoded["attention_mask"])
    return ids


def load_tokenizer(folder: Path) -> Any:
    """The CLIP tokenizer saved with a model, from its folder only (no network).

    Its files are required: without them transformers would build a CLIPTokenizer of
    three special tokens, which turns every text into "unknown" without a word."""
    from transformers import AutoTokenizer

    if not (folder / "tokenizer.json").is_file() and not (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    ):
        raise EngineLoadError(
            f"{folder}: the model's CLIP tokenizer is missing: save it with the model "
            "(tokenizer.json, or vocab.json + merges.txt; processor.save_pretrained does)"
        )
    try:
        with _quiet_transformers():
            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as error:
        raise EngineLoadError(
            f"{folder}: the model's CLIP tokenizer cannot be loaded from the folder "
            f"(tokenizer.json, or vocab.json + merges.txt, saved with the model): "
            f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
        ) from None


def load_universal(config: EngineConfig) -> tuple[Any, dict[str, Any], Any, str]:
    """(model, processor settings, tokenizer or None, where) of ``config.model``."""
    if config.model_kind == "random":
        from seg_perception.engines.random_models import build_random_model

        model, processor, tokenizer = build_random_model(config.model, config.seed)
        images = getattr(processor, "image_processor", processor)
        return model, processor_fields(images), tokenizer, f"{config.model} (random weights)"
    if config.model_kind in ("onnx", "tensorrt"):
        raise EngineLoadError(f"{config.model}: universal models run from Hugging Face folders")
    from transformers import AutoModelForUniversalSegmentation

    folder = model_folder(config)
    try:
        with _quiet_transformers():
            model = AutoModelForUniversalSegmentation.from_pretrained(
                str(folder), local_files_only=True
            ).eval()
    except (OSError, ValueError) as error:
        raise EngineLoadError(f"cannot load the model in {folder}: {error}") from None
    settings, where = folder_settings(folder)
    tokenizer = load_tokenizer(folder) if model.config.model_type == "oneformer" else None
    return model, settings, tokenizer, where


def check_torch_config(torch: Any, config: EngineConfig, family: str) -> None:
    """The device and precision checks every PyTorch-only family shares."""
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineLoadError(f"device {config.device} requested but torch sees no CUDA GPU")
    if config.precision == "int8":
        raise EngineLoadError(f"{family} has no int8 mode; use fp32 or fp16 (CUDA)")


def place_model(
    torch: Any, model: Any, config: EngineConfig, cast_half: bool = True
) -> tuple[Any, Any, bool]:
    """(model on its device, the device, whether fp16) for a PyTorch-only family: moved to
    ``config.device``, cast to fp16 for ``precision: fp16`` (unless the engine autocasts
    instead), and torch's CPU threads set from ``num_threads``."""
    device = torch.device(config.device)
    model = model.to(device)
    half = config.precision == "fp16"
    if half and cast_half:
        model.half()
    if config.num_threads and device.type == "cpu":
        torch.set_num_threads(config.num_threads)
    return model, device, half


class UniversalEngine(SegmentationEngine):
    """Mask2Former / OneFormer through PyTorch: semantic and panoptic readouts."""

    backend = "torch"

    def __init__(self, config: EngineConfig) -> None:
        torch = _import_torch()
        self._torch = torch
        check_torch_config(torch, config, "universal models")
        model, settings, self.tokenizer, where = load_universal(config)
        self.model_type = str(model.config.model_type)
        self.model, self.device, self.half = place_model(torch, model, config)
        read, notes = from_hf_preprocessor(settings, where) if settings else ({}, [])
        for note in notes:
            LOG.warning(note)
        fields = {**read, "label_set": label_set_of(model), "output_kind": "logits"}
        try:
            spec = resolve_for_config(config, hf_fields=(where, fields))
        except ModelSpecError as error:
            raise EngineLoadError(str(error)) from None
        if spec.output_kind != "logits":
            raise EngineLoadError(
                f"{config.model}: output_kind {spec.output_kind} does not apply to a "
                f"{self.model_type} model (it outputs query classes and masks)"
            )
        super().__init__(spec, config.model)
        self.preprocessor = preprocessor_for(spec)
        channels = int(model.config.num_labels)
        self.bind_channels(channels)
        wrong = [c for c in config.stuff_channels if c >= channels]
        if wrong:
            raise EngineLoadError(
                f"stuff_channels {wrong} do not exist: {config.model} has {channels} classes "
                f"(channels 0-{channels - 1})"
            )
        self.threshold = config.panoptic_threshold
        self.stuff = frozenset(config.stuff_channels)
        #: ``panoptic: true``: :meth:`segment` carries the instances too (the nodes, replay
        #: and fusion then give points instance ids); its labels are the same pass's.
        self.panoptic = config.panoptic
        self._tasks: dict[str, Any] = {}
        if self.model_type == "oneformer":
            length = int(model.config.task_seq_len)
            for task in ("semantic", "panoptic"):
                self._tasks[task] = task_tokens(self.tokenizer, task, length).to(self.device)

    @property
    def description(self) -> str:
        return f"torch {self.model_type} engine ({self.source})"

    # ------------------------------------------------------------------ network
    def model_output(self, batch: np.ndarray, task: str = "semantic") -> Any:
        """transformers' output object for one network input (OneFormer: told ``task``)."""
        torch = self._torch
        with torch.inference_mode():
            pixels = torch.from_numpy(batch).to(self.device, non_blocking=True)
            inputs = {"pixel_values": pixels.half() if self.half else pixels}
            if self.model_type == "oneformer":
                inputs["task_inputs"] = self._tasks[task]
            autocast = (
                torch.autocast("cuda", dtype=torch.float16)
                if self.half
                else contextlib.nullcontext()
            )
            with autocast:
                return self.model(**inputs)

    def queries(self, output: Any) -> tuple[Any, Any]:
        """(Q, C+1) class logits and (Q, h, w) mask probabilities, float32, of an output
        (Mask2Former's masks at 384x384, as its post-processing resizes them first)."""
        torch = self._torch
        with torch.inference_mode():
            classes = output.class_queries_logits.float()
            masks = output.masks_queries_logits.float()
            if self.model_type == "mask2former":
                masks = torch.nn.functional.interpolate(
                    masks, size=MASK2FORMER_MASK_SIZE, mode="bilinear", align_corners=False
                )
            return classes[0], masks.sigmoid()[0]

    def forward(self, batch: np.ndarray, task: str = "semantic") -> tuple[Any, Any]:
        """:meth:`queries` of :meth:`model_output`."""
        return self.queries(self.model_output(batch, task))

    def _infer(self, batch: np.ndarray) -> Any:
        from seg_perception.engines.mask_readout import semantic_scores

        scores = semantic_scores(*self.forward(batch, "semantic"))
        return scores.numpy() if self.device.type == "cpu" else scores

    # ------------------------------------------------------------------ readouts
    def _postprocess(self, output: Any, box: Letterbox) -> Segmentation:
        """Semantic labels (argmax of the resampled scores) and the winning share."""
        from seg_perception.engines.mask_readout import (
            resampled_chunks,
            resampled_max,
            share_confidence,
        )
        from seg_perception.engines.postprocess import logits_to_labels

        torch = self._torch
        self.bind_channels(int(output.shape[0]))
        scores = torch.from_numpy(output) if isinstance(output, np.ndarray) else output
        share = share_confidence(scores)[None]
        confidence = next(resampled_chunks(share, box))[1][0].cpu().numpy()
        if isinstance(output, np.ndarray):  # exact torch-equal argmax, fast on the CPU
            index, _ = logits_to_labels(output, box, self._index_dtype)
        else:
            index = resampled_max(scores, box)[1].cpu().numpy().astype(self._index_dtype)
        return Segmentation(self._to_labels(index), confidence.astype(np.float32, copy=False))

    def segment(self, image: np.ndarray) -> Segmentation:
        """Semantic labels, with thing instances attached when ``panoptic`` is set."""
        if self.panoptic:
            return self.segment_panoptic(image).as_segmentation()
        return super().segment(image)

    def segment_panoptic(self, image: np.ndarray) -> PanopticSegmentation:
        """Panoptic and semantic readouts of one forward pass, at the image's resolution."""
        start = time.perf_counter()
        batch, box = self.preprocessor(image)
        prepared = time.perf_counter()
        classes, probs = self.forward(batch, "panoptic")
        inferred = time.perf_counter()
        result = self.readouts(classes, probs, box)
        done = time.perf_counter()
        self.timings.preprocess = (prepared - start) * 1e3
        self.timings.network = (inferred - prepared) * 1e3
        self.timings.postprocess = (done - inferred) * 1e3
        return result

    def readouts(self, classes: Any, probs: Any, box: Letterbox) -> PanopticSegmentation:
        """Both readouts of :meth:`queries`' outputs, for the image ``box`` describes."""
        from seg_perception.engines.mask_readout import panoptic_readout, semantic_scores

        scores = semantic_scores(classes, probs)
        semantic = self._postprocess(scores.numpy() if self.device.type == "cpu" else scores, box)
        ids, raw = panoptic_readout(
            classes, probs, box, self.threshold, MASK_THRESHOLD, OVERLAP_THRESHOLD,
            self.stuff, antialias=self.model_type == "oneformer",
        )  # fmt: skip
        published = self._to_labels(np.array([c for _, c, _, _ in raw], dtype=np.int64))
        segments = tuple(
            PanopticSegment(segment, int(class_id), score, fused)
            for (segment, _, score, fused), class_id in zip(raw, published, strict=True)
        )
        return PanopticSegmentation(semantic, ids, segments)
