"""Pre- and post-processing shared by every backend, so they all see and return the same.

Preprocessing follows the model's spec: resize, color order, scale, mean/std, layout.
How the image meets the network (``resize``):

* ``stretch``: resized to the network's fixed ``input_size`` (SegFormer's, BEiT's and
  DPT's processors: ``size`` {height, width});
* ``keep_aspect_pad``: resized without distortion to fit ``input_size``, padded
  bottom/right with the mean color (zero after normalization), as Isaac ROS' encoder can;
* ``none``: the camera's own size (SegFormer accepts any size), padded bottom/right up to
  a multiple of ``multiple_of`` for CNNs whose strides must divide the input;
* ``shortest_edge``: the short side resized to ``shortest_edge``, the long side to
  ``int(shortest_edge * long / short)`` (transformers' rule: MobileViT, MobileNetV2);
* ``keep_aspect``: DPT's ``keep_aspect_ratio``: the one scale of ``input_size`` /
  image (height's or width's) nearest 1 applied to both sides, each rounded to a
  multiple of ``ensure_multiple_of``.

``resample`` picks the filter: ``linear`` is OpenCV's bilinear (fast, the default);
``bilinear_pil``, ``bicubic_pil`` (and ``nearest_pil``, ``lanczos_pil``, ``box_pil``,
``hamming_pil``) are Pillow's ``Image.resize`` on the uint8 image, which is what
transformers' PIL image processors do (antialiased when shrinking: Pillow widens the
filter by the scale factor, OpenCV's INTER_LINEAR does not), so a Hugging Face model
sees exactly the pixels its processor would give it.

Postprocessing (``engines/postprocess.py``) maps the network's logits back onto the
camera's pixels through the :class:`Letterbox`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

ResizeMode = Literal["stretch", "keep_aspect_pad", "none"]
#: Every way the Preprocessor resizes (ResizeMode: those an EngineConfig can choose).
RESIZE_MODES = ("stretch", "keep_aspect_pad", "none", "shortest_edge", "keep_aspect")
#: Resampling filters: OpenCV's bilinear, or Pillow's filters as transformers uses them.
PIL_FILTERS = {
    "nearest_pil": 0,  # PIL.Image.Resampling.NEAREST
    "lanczos_pil": 1,
    "bilinear_pil": 2,
    "bicubic_pil": 3,
    "box_pil": 4,
    "hamming_pil": 5,
}
RESAMPLES = ("linear", *PIL_FILTERS)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UINT8 = np.dtype(np.uint8)


class EngineInputError(ValueError):
    """An image an engine cannot segment (wrong shape, dtype, empty)."""


@dataclass(frozen=True)
class Letterbox:
    """Where the camera image sits inside the network input.

    The image (``image_size`` h, w) was resized to ``resized`` (h, w) and placed at the
    top-left of a ``network_size`` (h, w) input; the rest is padding.
    """

    image_size: tuple[int, int]
    resized: tuple[int, int]
    network_size: tuple[int, int]


def check_image(image: np.ndarray) -> np.ndarray:
    """The image as (H, W, 3) uint8, or a specific error saying what is wrong with it."""
    if not isinstance(image, np.ndarray):
        raise EngineInputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise EngineInputError(f"image must be H x W x 3 (RGB), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise EngineInputError(f"image is empty: shape {image.shape}")
    if image.dtype != np.uint8:
        raise EngineInputError(f"image must be uint8 RGB, got dtype {image.dtype}")
    return image


@dataclass(frozen=True)
class Preprocessor:
    """Camera image (H, W, 3 uint8 RGB) -> network input (1, 3, h, w) float32 by default.

    ``layout`` NHWC gives (1, h, w, 3); ``input_dtype`` uint8 gives the raw pixels (no
    scale, mean or std: networks with normalization inside). ``resize`` and
    ``resample``: see the module docstring. With ``resize`` "none" or "shortest_edge"
    the input is padded bottom/right up to a multiple of ``multiple_of`` (fully
    convolutional CNNs whose strides must divide the input).
    """

    input_size: tuple[int, int] | None = (512, 1024)
    resize: ResizeMode | Literal["shortest_edge", "keep_aspect"] = "stretch"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0 / 255.0
    channel_order: Literal["rgb", "bgr"] = "rgb"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    input_dtype: Literal["float32", "uint8"] = "float32"
    multiple_of: int = 1
    resample: str = "linear"
    shortest_edge: int = 0
    ensure_multiple_of: int = 1

    def __post_init__(self) -> None:
        if self.multiple_of < 1 or self.ensure_multiple_of < 1:
            raise ValueError(
                f"multiple_of and ensure_multiple_of must be >= 1, got {self.multiple_of}, "
                f"{self.ensure_multiple_of}"
            )
        if self.resample not in RESAMPLES:
            raise ValueError(
                f"resample must be one of {', '.join(RESAMPLES)}, not {self.resample!r}"
            )
        if self.resize == "shortest_edge" and self.shortest_edge < 1:
            raise ValueError(
                f"resize 'shortest_edge' needs shortest_edge >= 1, got {self.shortest_edge}"
            )
        if self.layout not in ("NCHW", "NHWC") or self.input_dtype not in ("float32", "uint8"):
            raise ValueError(
                f"layout must be NCHW or NHWC and dtype float32 or uint8, got {self.layout}, "
                f"{self.input_dtype}"
            )
        if self.resize not in RESIZE_MODES:
            raise ValueError(
                f"resize must be one of {', '.join(RESIZE_MODES)}, not {self.resize!r}"
            )
        if self.resize in ("stretch", "keep_aspect_pad", "keep_aspect") and (
            self.input_size is None or min(self.input_size) <= 0 or len(self.input_size) != 2
        ):
            raise ValueError(
                f"resize '{self.resize}' needs input_size (h, w) > 0, got {self.input_size}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0; got {self.mean}, {self.std}")

    @classmethod
    def from_spec(cls, spec: Any) -> Preprocessor:
        """The preprocessing a :class:`~seg_perception.engines.spec.ModelSpec` describes."""
        size = spec.size
        if size.kind == "shortest_longest":  # transformers' Mask2Former/OneFormer resize
            from seg_perception.engines.hf_resize import preprocessor_for

            return preprocessor_for(spec)
        resize = {
            "fixed": spec.resize,
            "shortest_edge": "shortest_edge",
            "keep_aspect": "keep_aspect",
        }
        return cls(
            input_size=tuple(size.size) if size.kind in ("fixed", "keep_aspect") else None,
            resize=resize.get(size.kind, "none"),  # type: ignore[arg-type]
            mean=tuple(spec.mean),
            std=tuple(spec.std),
            scale=spec.scale,
            channel_order=spec.color,
            layout=spec.layout,
            input_dtype=spec.input_dtype,
            multiple_of=size.multiple_of if size.kind in ("multiple", "shortest_edge") else 1,
            resample=getattr(spec, "resample", "linear"),
            shortest_edge=size.edge if size.kind == "shortest_edge" else 0,
            ensure_multiple_of=getattr(size, "ensure_multiple_of", 1),
        )

    def letterbox(self, height: int, width: int) -> Letterbox:
        if self.resize in ("none", "shortest_edge", "keep_aspect"):
            if self.resize == "shortest_edge":
                resized = shortest_edge_size(height, width, self.shortest_edge)
            elif self.resize == "keep_aspect":
                target: tuple[int, int] = self.input_size  # type: ignore[assignment]
                resized = keep_aspect_size(height, width, target, self.ensure_multiple_of)
            else:
                resized = (height, width)
            step = self.multiple_of
            padded = (-(-resized[0] // step) * step, -(-resized[1] // step) * step)
            return Letterbox((height, width), resized, padded)
        net_h, net_w = self.input_size  # type: ignore[misc]
        if self.resize == "stretch":
            return Letterbox((height, width), (net_h, net_w), (net_h, net_w))
        ratio = min(net_h / height, net_w / width)
        resized = (
            max(1, min(net_h, round(height * ratio))),
            max(1, min(net_w, round(width * ratio))),
        )
        return Letterbox((height, width), resized, (net_h, net_w))

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        image = check_image(image)
        box = self.letterbox(image.shape[0], image.shape[1])
        if box.resized != box.image_size:
            image = resize_image(image, box.resized, self.resample)
        if self.channel_order == "bgr":
            image = image[..., ::-1]
        if self.input_dtype == "uint8":
            return self._raw(image, box), box
        # (x * scale - mean) / std in one multiply-add per channel.
        gain = np.float32(self.scale) / np.asarray(self.std, dtype=np.float32)
        offset = np.asarray(self.mean, dtype=np.float32) / np.asarray(self.std, dtype=np.float32)
        batch = np.zeros((1, 3, *box.network_size), dtype=np.float32)
        h, w = box.resized
        for channel in range(3):
            plane = batch[0, channel, :h, :w]
            np.multiply(image[..., channel], gain[channel], out=plane, casting="unsafe")
            plane -= offset[channel]
        if self.layout == "NHWC":
            batch = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
        return batch, box

    def _raw(self, image: np.ndarray, box: Letterbox) -> np.ndarray:
        """uint8 pixels, padded with zeros, in the network's layout."""
        h, w = box.resized
        batch = np.zeros((1, *box.network_size, 3), dtype=np.uint8)
        batch[0, :h, :w] = image
        if self.layout == "NCHW":
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        return batch


def resize_image(image: np.ndarray, size: tuple[int, int], resample: str = "linear") -> np.ndarray:
    """(H, W, 3) uint8 -> ``size`` (h, w), with OpenCV's bilinear or a Pillow filter."""
    if resample == "linear":
        return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    from PIL import Image

    # transformers' PIL processors resize the uint8 image itself (rounded to uint8), then
    # rescale: the same call here gives the same pixels.
    resized = Image.fromarray(np.ascontiguousarray(image)).resize(
        (size[1], size[0]), resample=PIL_FILTERS[resample]
    )
    return np.asarray(resized)


def shortest_edge_size(height: int, width: int, edge: int) -> tuple[int, int]:
    """transformers' ``shortest_edge`` resize: the short side becomes ``edge``, the long
    side ``int(edge * long / short)`` (truncated, as ``get_resize_output_image_size``)."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(edge * long / short)
    return (new_long, edge) if width <= height else (edge, new_long)


def keep_aspect_size(
    height: int, width: int, target: tuple[int, int], multiple: int = 1
) -> tuple[int, int]:
    """DPT's ``keep_aspect_ratio`` resize: of the scales target / image per side, the one
    nearer 1 is applied to both; each side is then rounded to the nearest multiple of
    ``multiple`` (transformers' ``constrain_to_multiple_of``, Python's ``round``)."""
    scale_h, scale_w = target[0] / height, target[1] / width
    if abs(1 - scale_w) < abs(1 - scale_h):
        scale_h = scale_w
    else:
        scale_w = scale_h

    def constrain(value: float) -> int:
        rounded = round(value / multiple) * multiple
        if rounded < 1:  # transformers' min_val=0 would allow 0; an image needs a pixel
            rounded = math.ceil(value / multiple) * multiple
        return int(rounded)

    return constrain(scale_h * height), constrain(scale_w * width)
