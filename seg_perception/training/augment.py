"""Training samples: the deployed preprocessing plus the standard augmentations.

Each image first meets the network exactly as the engines will feed it at run time (the
model spec's size policy and resampling filter, :class:`Preprocessor`), so a network
trained here sees objects at the scale it will see them on the vehicle. On top of that,
per sample: random scale (``scale_range`` of that size), a random crop (padded with
"ignore" where the scaled image is smaller), a horizontal flip and photometric changes
(brightness, contrast, saturation, hue, a colour cast, gamma and sensor noise: the
lighting a rendered or recorded data set does not vary by itself). Finally the spec's
scale, mean, std and channel order, as :class:`Preprocessor` applies them.

Randomness is drawn from ``(seed, epoch, index)``, so a sample is the same whichever
loader worker makes it and a resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from seg_perception.engines.preprocess import Preprocessor, resize_image
from seg_perception.training.datasets import Sample, read_image, read_label
from seg_perception.training.labels import IGNORE_INDEX, TrainLabels


@dataclass(frozen=True)
class AugmentConfig:
    """What varies between the samples of one image."""

    crop: tuple[int, int] = (512, 512)
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    photometric: bool = True
    #: Share of crops centred on a pixel of a class drawn uniformly from the image's
    #: classes (nnU-Net's foreground oversampling, per class): rare classes, which random
    #: crops mostly miss, are seen as often as common ones. 0: random crops only.
    balanced_crops: float = 0.0

    def __post_init__(self) -> None:
        if min(self.crop) < 8:
            raise ValueError(f"--crop must be at least 8x8, got {self.crop}")
        if not 0.0 <= self.balanced_crops <= 1.0:
            raise ValueError(f"--balanced-crops must be in [0, 1], got {self.balanced_crops}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"--scale-range needs 0 < LOW <= HIGH, got {low} {high}")


def base_resize(
    image: np.ndarray, label: np.ndarray, preprocessor: Preprocessor
) -> tuple[np.ndarray, np.ndarray]:
    """The image as the engine resizes it (its spec's size policy and filter); the label
    with nearest neighbours onto the same grid."""
    box = preprocessor.letterbox(image.shape[0], image.shape[1])
    if box.resized == box.image_size:
        return image, label
    height, width = box.resized
    image = resize_image(image, box.resized, preprocessor.resample)
    label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
    return image, label


def scale_and_crop(
    image: np.ndarray,
    label: np.ndarray,
    config: AugmentConfig,
    rng: np.random.Generator,
    fill: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Random scale, then a random ``config.crop`` window (padded with ``fill`` / ignore)."""
    factor = rng.uniform(*config.scale_range)
    height = max(1, round(image.shape[0] * factor))
    width = max(1, round(image.shape[1] * factor))
    if (height, width) != image.shape[:2]:
        shrink = factor < 1
        image = cv2.resize(
            image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
        label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
    crop_h, crop_w = config.crop
    pad_h, pad_w = max(0, crop_h - height), max(0, crop_w - width)
    if pad_h or pad_w:
        padded = np.empty((height + pad_h, width + pad_w, 3), dtype=image.dtype)
        padded[:] = fill.astype(image.dtype)
        padded[:height, :width] = image
        image = padded
        label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
    top, left = _crop_corner(label, config, rng)
    return image[top : top + crop_h, left : left + crop_w], label[
        top : top + crop_h, left : left + crop_w
    ]


def _crop_corner(
    label: np.ndarray, config: AugmentConfig, rng: np.random.Generator
) -> tuple[int, int]:
    """Top-left corner of the crop: random, or (``balanced_crops`` of the time) placed
    at random around a random pixel of a class drawn uniformly from the label's classes."""
    crop_h, crop_w = config.crop
    max_top, max_left = label.shape[0] - crop_h, label.shape[1] - crop_w
    if config.balanced_crops and rng.random() < config.balanced_crops:
        classes = np.unique(label)
        classes = classes[classes != IGNORE_INDEX]
        if classes.size:
            rows, cols = np.nonzero(label == rng.choice(classes))
            pick = int(rng.integers(len(rows)))
            top = int(rows[pick]) - int(rng.integers(crop_h))
            left = int(cols[pick]) - int(rng.integers(crop_w))
            return min(max(top, 0), max_top), min(max(left, 0), max_left)
    return int(rng.integers(0, max_top + 1)), int(rng.integers(0, max_left + 1))


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting and sensor changes, each with its own chance: brightness, contrast,
    saturation, hue, a colour cast, gamma and noise. uint8 in, float32 out.

    The ranges are milder than mmsegmentation's PhotoMetricDistortion (brightness +-32,
    contrast and saturation 0.5-1.5, hue +-18 degrees): surface colour is a strong cue,
    and a small network trained for half an hour should still see it on most samples.
    """
    pixels = image.astype(np.float32)
    if rng.random() < 0.5:  # brightness
        pixels += rng.uniform(-20, 20)
    if rng.random() < 0.5:  # contrast, about the image's mean
        mean = pixels.mean()
        pixels = (pixels - mean) * rng.uniform(0.75, 1.25) + mean
    saturate, shift_hue = rng.random() < 0.3, rng.random() < 0.3
    if saturate or shift_hue:
        hsv = cv2.cvtColor(np.clip(pixels, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
        hsv = hsv.astype(np.float32)
        if saturate:
            hsv[..., 1] *= rng.uniform(0.75, 1.25)
        if shift_hue:
            hsv[..., 0] = (hsv[..., 0] + rng.uniform(-3, 3)) % 180  # OpenCV hue: 0-180
        hsv = np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8)
        pixels = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    if rng.random() < 0.3:  # colour cast: warm / cold light
        pixels *= rng.uniform(0.92, 1.08, size=3).astype(np.float32)
    if rng.random() < 0.3:  # gamma: dusk, overexposure
        gamma = rng.uniform(0.8, 1.25)
        pixels = 255.0 * (np.clip(pixels, 0, 255) / 255.0) ** gamma
    if rng.random() < 0.3:  # sensor noise
        pixels += rng.normal(0.0, rng.uniform(1, 4), size=pixels.shape).astype(np.float32)
    return np.clip(pixels, 0, 255)


def normalize(image: np.ndarray, preprocessor: Preprocessor) -> np.ndarray:
    """(H, W, 3) RGB pixels -> (3, H, W) float32 network input, as the engines compute it."""
    if preprocessor.channel_order == "bgr":
        image = image[..., ::-1]
    gain = np.float32(preprocessor.scale) / np.asarray(preprocessor.std, np.float32)
    offset = np.asarray(preprocessor.mean, np.float32) / np.asarray(preprocessor.std, np.float32)
    out = image.astype(np.float32) * gain - offset
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def mean_pixel(preprocessor: Preprocessor) -> np.ndarray:
    """The RGB pixel value that normalizes to zero: what padding is filled with."""
    mean = np.asarray(preprocessor.mean, np.float32) / np.float32(preprocessor.scale)
    return mean[::-1] if preprocessor.channel_order == "bgr" else mean


class SegmentationDataset:
    """Map-style data set of (network input (3, h, w) float32, class ids (h, w) int64)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        labels: TrainLabels,
        preprocessor: Preprocessor,
        augment: AugmentConfig,
        seed: int = 0,
        repeat: np.ndarray | None = None,
    ) -> None:
        self.samples = list(samples)
        #: Repeat factor per sample (:mod:`.sampling`); None: each sample once per epoch.
        self.repeat = repeat
        self._plan: np.ndarray | None = None
        self.labels = labels
        self.preprocessor = preprocessor
        self.augment = augment
        self.seed = seed
        self._table = labels.lookup()
        self._fill = mean_pixel(preprocessor)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draws come from (seed, epoch, position); with repeat factors, also the epoch's
        plan (which image each position shows; its length is the same every epoch)."""
        from seg_perception.training.sampling import epoch_plan

        self.epoch = epoch
        if self.repeat is not None:
            self._plan = epoch_plan(self.repeat, self.seed, epoch)

    def __len__(self) -> int:
        return len(self.samples) if self._plan is None else len(self._plan)

    def __getitem__(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        # A repeated image's copies differ: the draw is per position, not per image.
        index = position if self._plan is None else int(self._plan[position])
        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, position])
        image = read_image(sample.image)
        label = self.labels.to_train_ids(read_label(sample.label), self._table)
        image, label = base_resize(image, label, self.preprocessor)
        image, label = scale_and_crop(image, label, self.augment, rng, self._fill)
        if self.augment.flip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        pixels = photometric(image, rng) if self.augment.photometric else image
        return normalize(pixels, self.preprocessor), np.ascontiguousarray(label, dtype=np.int64)
