"""Promptable segmentation (SAM): the mask of the object at a click or in a box.

SAM has no classes, so it cannot serve ``segment(image)`` (labels per pixel, what the nodes,
replay and evaluation read): that call refuses with one sentence naming what to use.
:meth:`SamEngine.segment_prompt` takes an image with points (positive/negative) and/or a box
in the camera's pixels and returns one boolean mask at the camera's full resolution, the
model's predicted IoU for it, and how many candidates it was chosen from.

Everything around the network is transformers' own, not a copy: ``SamProcessor`` resizes
the image (longest edge to 1024, padded to 1024x1024), normalizes it and maps the prompt's
pixel coordinates onto the resized image; ``post_process_masks`` removes the padding and
upsamples the mask to the image. So a mask here is the mask transformers' documented
pipeline gives (tested pixel for pixel on a KITTI-sized image).

Efficiency: SAM is built for interaction, a heavy image encoder (ViT) run once per image and
a light prompt decoder run per prompt. The image embedding of the last image is kept, keyed
by the array's identity, shape and a CRC-32 of its pixels (0.2 ms for a 1242x375 frame), so
several clicks on one frame run the encoder once, while a new frame -- even one written
into the same buffer -- is encoded again. Only the chosen mask is upsampled to the image.

Models come from a local Hugging Face folder, a hub id (cache first) or ``random:sam``
(:mod:`~seg_perception.engines.random_models`); PyTorch only, CPU or CUDA. SAM 2 is not run
(:mod:`~seg_perception.engines.families` says why).
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import Segmentation
from seg_perception.engines.base import EngineLoadError, EngineTimings, SegmentationEngine
from seg_perception.engines.config import EngineConfig
from seg_perception.engines.preprocess import EngineInputError, check_image
from seg_perception.engines.spec import HF_RESAMPLE, ModelSpec, SizePolicy
from seg_perception.engines.torch_engine import _import_torch, _quiet_transformers
from seg_perception.engines.universal_engine import (
    check_torch_config,
    model_folder,
    place_model,
)

LOG = logging.getLogger(__name__)
#: What a SAM mask means, for the base class's label set (SAM itself has no classes).
MASK_LABELS = LabelSet("sam_mask", (0, 1), ("background", "object"), ((0, 0, 0), (255, 255, 255)))
#: The processor settings that only make its call skip the image work (prompt mapping only).
_PROMPTS_ONLY = {"do_resize": False, "do_rescale": False, "do_normalize": False, "do_pad": False}


class PromptableOnlyError(EngineLoadError):
    """``segment(image)`` asked of a promptable model, which segments only at prompts.

    An EngineLoadError: a node that needs labels per pixel cannot run such a model at all,
    so its start-up check (``warm_up``) stops it with this message."""


class PromptInputError(EngineInputError):
    """A prompt SAM cannot take: none at all, a point or box outside the image, mismatched
    labels; the message names the value and what is accepted."""


@dataclass(frozen=True)
class PromptMask:
    """The mask of one prompt: ``mask`` (H, W) bool at the image's resolution, ``score`` the
    model's predicted IoU of that mask, ``candidates`` how many masks it was chosen from."""

    mask: np.ndarray
    score: float
    candidates: int


@dataclass(frozen=True)
class _Embedding:
    """The encoder's output for one image, with the sizes post-processing needs."""

    key: tuple[Any, ...]
    embeddings: Any
    original_sizes: Any
    reshaped_input_sizes: Any


def load_sam(config: EngineConfig) -> tuple[Any, Any, str]:
    """(SamModel, SamProcessor, where they came from) of ``config.model``."""
    if config.model_kind == "random":
        from seg_perception.engines.random_models import build_random_model

        model, processor, _ = build_random_model(config.model, config.seed)
        return model, processor, f"{config.model} (random weights)"
    if config.model_kind in ("onnx", "tensorrt"):
        raise EngineLoadError(f"{config.model}: SAM runs from Hugging Face folders")
    from transformers import SamModel, SamProcessor

    folder = model_folder(config)
    try:
        with _quiet_transformers():
            model = SamModel.from_pretrained(str(folder), local_files_only=True).eval()
    except (OSError, ValueError) as error:
        raise EngineLoadError(f"cannot load the SAM model in {folder}: {error}") from None
    try:
        with _quiet_transformers():
            processor = SamProcessor.from_pretrained(str(folder), local_files_only=True)
    except Exception as error:  # missing or unreadable processor config
        text = " ".join(str(error).split())[:200]
        raise EngineLoadError(
            f"{folder}: SAM's processor config cannot be loaded ({type(error).__name__}: "
            f"{text}); save the SamProcessor with the model (processor.save_pretrained)"
        ) from None
    return model, processor, str(folder)


def check_prompt(
    points: Any, point_labels: Any, box: Any, height: int, width: int
) -> dict[str, Any]:
    """SamProcessor's prompt arguments for one image, or PromptInputError naming the fault.

    Coordinates are the camera's pixels, x = u (column), y = v (row), continuous: a point
    may lie anywhere on the image, 0 <= x <= width and 0 <= y <= height; a box is its corners
    (x0, y0, x1, y1) with x0 < x1 and y0 < y1 on the image. Labels: 1 positive (on the
    object), 0 negative (not on it); all positive when not given, as SAM assumes. Empty
    ``points`` count as none (a box alone).
    """
    extent = f"the {width}x{height} image (x in [0, {width}], y in [0, {height}])"
    kwargs: dict[str, Any] = {}
    count = 0
    if points is not None:
        array = _floats(points, "points")
        if array.size == 0:  # an empty list: no points
            array = array.reshape(0, 2)
        if array.ndim != 2 or array.shape[1] != 2:
            raise PromptInputError(
                f"points must be a (K, 2) array of pixel (x, y) = (u, v), e.g. [[620, 200]]; "
                f"got shape {array.shape}"
            )
        outside = np.flatnonzero(
            (array[:, 0] < 0) | (array[:, 0] > width) | (array[:, 1] < 0) | (array[:, 1] > height)
        )
        if len(outside):
            x, y = array[outside[0]]
            raise PromptInputError(
                f"point {outside[0]} at (x={x:g}, y={y:g}) is outside {extent}: points are "
                "pixel (x, y) = (u, v) of this image"
            )
        count = len(array)
        if count:
            kwargs["input_points"] = [array.tolist()]
    if point_labels is not None:
        labels = np.asarray(point_labels)
        if count == 0:
            raise PromptInputError("point_labels given without points: give a point per label")
        if labels.ndim != 1 or len(labels) != count:
            raise PromptInputError(
                f"point_labels has shape {labels.shape} for {count} point(s): give one label "
                "per point (1 positive, 0 negative)"
            )
        if labels.dtype.kind not in "biuf" or not np.isin(labels, (0, 1)).all():
            raise PromptInputError(
                f"point_labels must be 1 (positive: on the object) or 0 (negative: not on it), "
                f"got {labels.tolist()}"
            )
        kwargs["input_labels"] = [labels.astype(np.int64).tolist()]
    elif count:
        kwargs["input_labels"] = [[1] * count]
    if box is not None:
        corners = _floats(box, "box")
        if corners.shape != (4,):
            raise PromptInputError(
                f"box must be 4 numbers (x0, y0, x1, y1) in pixels, got shape {corners.shape}"
            )
        x0, y0, x1, y1 = corners.tolist()
        if x1 <= x0 or y1 <= y0:
            raise PromptInputError(
                f"box (x0={x0:g}, y0={y0:g}, x1={x1:g}, y1={y1:g}) is empty or inverted: it "
                "needs x1 > x0 and y1 > y0 (top-left corner first)"
            )
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise PromptInputError(
                f"box (x0={x0:g}, y0={y0:g}, x1={x1:g}, y1={y1:g}) reaches outside {extent}"
            )
        kwargs["input_boxes"] = [[corners.tolist()]]
    if "input_points" not in kwargs and "input_boxes" not in kwargs:
        raise PromptInputError(
            "no prompt: SAM segments at a prompt; give points (K, 2) pixel (x, y) with "
            "point_labels (1 positive, 0 negative), a box (x0, y0, x1, y1), or both"
        )
    return kwargs


def _floats(value: Any, name: str) -> np.ndarray:
    """``value`` as a float64 array of finite numbers, or PromptInputError."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PromptInputError(f"{name} must be numbers, got {value!r}") from None
    if not np.isfinite(array).all():
        raise PromptInputError(f"{name} must be finite, got {array.tolist()}")
    return array


def image_key(image: np.ndarray) -> tuple[Any, ...]:
    """What identifies an image for the embedding cache: the array's identity and shape and
    a CRC-32 of its pixels, so a new frame written into the same buffer is not mistaken for
    the last one (the CRC costs 0.2 ms for 1242x375; the encoder it saves, seconds)."""
    pixels = np.ascontiguousarray(image)
    return (id(image), image.shape, zlib.crc32(pixels))


class SamEngine(SegmentationEngine):
    """SAM through PyTorch: ``segment_prompt`` gives the mask at a point/box prompt."""

    backend = "torch"

    def __init__(self, config: EngineConfig) -> None:
        torch = _import_torch()
        self._torch = torch
        check_torch_config(torch, config, "SAM")
        stated = sorted(config.explicit_spec())
        if stated or config.spec:
            what = ", ".join(stated) if stated else f"spec {config.spec}"
            raise EngineLoadError(
                f"{config.model}: SAM's input is prepared by its own processor and it outputs a "
                f"mask per prompt, not classes: remove {what} from the engine configuration"
            )
        model, processor, where = load_sam(config)
        self.edge = _check_sizes(model, processor, config.model)
        super().__init__(_spec(processor.image_processor, self.edge), config.model)
        self.where = where
        self.processor = processor
        self.model, self.device, self.half = place_model(torch, model, config)
        self.encoder_timings = EngineTimings()
        self._cached: _Embedding | None = None

    @property
    def description(self) -> str:
        return f"torch sam engine ({self.where}, input {self.edge}x{self.edge})"

    # ------------------------------------------------------------------ semantic interface
    def segment(self, image: np.ndarray) -> Segmentation:
        """Refused: SAM has no classes to label pixels with (module docstring)."""
        raise self._refusal()

    def _infer(self, batch: np.ndarray) -> Any:
        raise self._refusal()

    def _refusal(self) -> PromptableOnlyError:
        return PromptableOnlyError(
            f"{self.source}: a promptable model (SAM) segments at prompts: call "
            "segment_prompt(image, points=..., point_labels=..., box=...) for the mask of the "
            "object at a point or in a box; for a class per pixel (segment, the nodes, replay, "
            "evaluation) use a semantic (SegFormer), universal (Mask2Former, OneFormer) or "
            "open-vocabulary (CLIPSeg) model"
        )

    def warm_up(self, height: int = 480, width: int = 640) -> None:
        """One prompt (the center of a gray image), so a model that cannot run stops a node
        at start-up, not at the first click; the cached embedding is dropped after."""
        image = np.full((height, width, 3), 128, dtype=np.uint8)
        try:
            self.segment_prompt(image, points=np.array([[width / 2, height / 2]]))
        except Exception as error:
            text = " ".join(str(error).split())[:300]
            raise EngineLoadError(f"{self.source}: a test prompt failed: {text}") from error
        finally:
            self.clear_cache()

    # ------------------------------------------------------------------ prompts
    def embed(self, image: np.ndarray) -> Any:
        """The image embedding of ``image``: the last image's when it is the same (cached),
        else the encoder's (timed in ``encoder_timings``)."""
        return self._embedding(check_image(image))[0].embeddings

    def clear_cache(self) -> None:
        """Forget the last image's embedding (the next prompt runs the encoder)."""
        self._cached = None

    def _embedding(self, image: np.ndarray) -> tuple[_Embedding, bool]:
        """(the embedding of ``image``, whether the encoder ran for it)."""
        key = image_key(image)
        if self._cached is not None and self._cached.key == key:
            return self._cached, False
        self._cached = None  # the old embedding's memory is free while the new one is made
        torch = self._torch
        start = time.perf_counter()
        inputs = self.processor(images=image, input_data_format="channels_last",
                                return_tensors="pt")  # fmt: skip
        prepared = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            pixels = inputs["pixel_values"].to(self.device)
            embeddings = self.model.get_image_embeddings(pixels.half() if self.half else pixels)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        done = time.perf_counter()
        self.encoder_timings.preprocess = (prepared - start) * 1e3
        self.encoder_timings.network = (done - prepared) * 1e3
        self._cached = _Embedding(
            key, embeddings, inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )
        return self._cached, True

    def _autocast(self) -> Any:
        torch = self._torch
        if self.half:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def segment_prompt(
        self,
        image_rgb: np.ndarray,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ) -> PromptMask:
        """The mask of the object at ``points`` (K, 2) pixel (x, y) with ``point_labels``
        (K,) 1 positive / 0 negative, and/or in ``box`` (x0, y0, x1, y1), on ``image_rgb``
        (H, W, 3) uint8; PromptInputError (a ValueError) for a prompt it cannot take.

        SAM's decoder proposes three masks per prompt (multimask output: whole object, part,
        sub-part) and predicts each one's IoU with the true object; the one with the highest
        predicted IoU is returned. Why: a single click is ambiguous (a wheel or the car?),
        and SAM's single-mask output is trained as an average over those readings, which
        the authors found worse for one click; choosing by the model's own quality score is
        what SAM's predictor and automatic mask generator do. Only the chosen mask is
        upsampled to the image (the upsampling is per mask, so the result is the same).
        """
        image = check_image(image_rgb)
        height, width = image.shape[:2]
        prompt = check_prompt(points, point_labels, box, height, width)
        torch = self._torch
        cached, ran = self._embedding(image)
        encoded = time.perf_counter()
        # The processor maps the prompt's pixels onto the resized image; its image work is
        # switched off: the coordinates depend only on the image's size, and the encoder's
        # input was made (and cached) above.
        inputs = self.processor(images=image, input_data_format="channels_last",
                                return_tensors="pt", **prompt, **_PROMPTS_ONLY)  # fmt: skip
        prepared = time.perf_counter()
        names = ("input_points", "input_labels", "input_boxes")
        tensors = {name: inputs[name].to(self.device) for name in names if name in inputs}
        with torch.inference_mode(), self._autocast():
            output = self.model(
                image_embeddings=cached.embeddings, multimask_output=True, **tensors
            )
            scores = output.iou_scores[0, 0].float()
            best = int(torch.argmax(scores))
            chosen = output.pred_masks[:, :, best : best + 1].float()
        inferred = time.perf_counter()
        masks = self.processor.post_process_masks(
            chosen, cached.original_sizes, cached.reshaped_input_sizes
        )
        mask = masks[0][0, 0].cpu().numpy()
        done = time.perf_counter()
        encoder = self.encoder_timings if ran else EngineTimings()
        self.timings.preprocess = encoder.preprocess + (prepared - encoded) * 1e3
        self.timings.network = encoder.network + (inferred - prepared) * 1e3
        self.timings.postprocess = (done - inferred) * 1e3
        return PromptMask(mask, float(scores[best]), int(scores.shape[0]))


def _check_sizes(model: Any, processor: Any, source: str) -> int:
    """SAM's processor edge, after checking it fits the model: the processor resizes the
    longest edge to ``size.longest_edge`` and pads to ``pad_size``, and the model's position
    embeddings and mask post-processing assume both equal its ``image_size``."""
    images = processor.image_processor
    edge = int(images.size["longest_edge"])
    pad = (int(images.pad_size["height"]), int(images.pad_size["width"]))
    expected = int(model.config.vision_config.image_size)
    if edge != expected or pad != (expected, expected) or not images.do_pad:
        raise EngineLoadError(
            f"{source}: SAM's processor resizes to a longest edge of {edge} and pads to "
            f"{pad[1]}x{pad[0]} (do_pad {images.do_pad}), but the model takes "
            f"{expected}x{expected} images: save the processor that belongs to the model"
        )
    return edge


def _spec(images: Any, edge: int) -> ModelSpec:
    """What SamProcessor does, as a spec, for the log (SamProcessor itself does it)."""
    normalize = bool(images.do_normalize)
    resample = getattr(images.resample, "value", images.resample)
    pil_filter = "bilinear_pil" if resample is None else HF_RESAMPLE.get(int(resample))
    fields = ("color", "scale", "mean", "std", "size", "resize", "resample", "output_kind")
    return ModelSpec(
        scale=float(images.rescale_factor) if images.do_rescale else 1.0,
        mean=tuple(float(v) for v in images.image_mean) if normalize else (0.0, 0.0, 0.0),
        std=tuple(float(v) for v in images.image_std) if normalize else (1.0, 1.0, 1.0),
        size=SizePolicy("fixed", (edge, edge)),
        resize="keep_aspect_pad",
        resample=pil_filter or "bilinear_pil",
        label_set=MASK_LABELS,
        sources={**{name: "SamProcessor" for name in fields}, "label_set": "SAM mask"},
    )
