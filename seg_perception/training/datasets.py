"""Training data: folders of images and label PNGs, paired, checked, and read.

Three layouts are recognized (``--layout auto`` tries them in this order):

* ``cityscapes``: ``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` with
  ``gtFine/<split>/<city>/<name>_gtFine_<kind>.png``, ``kind`` = ``labelTrainIds`` by
  default (``--labels labelIds`` with ``--label-set cityscapes-labelids``);
* ``kitti``: the KITTI semantic benchmark's ``image_2/`` with ``semantic/`` (labelIds) or
  another label folder (``--labels semantic_trainIds``);
* ``plain``: ``images/`` with ``labels/`` (what ``make-images`` writes).

Images and labels are paired by name. Everything that would make training silently wrong
is found here, before the first step, and reported in one line: a folder without images,
images without labels (or the reverse), labels whose size differs from their image,
colour label pictures instead of id PNGs, and ids the label set does not cover.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg_perception.training.labels import TrainLabels

LAYOUTS = ("auto", "cityscapes", "kitti", "plain")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: (image folder, default label folder) of the folder layouts.
FOLDERS = {"kitti": ("image_2", "semantic"), "plain": ("images", "labels")}
CITYSCAPES_IMAGE = "_leftImg8bit"


class DataError(ValueError):
    """Training data that cannot be used as it is; the text names the files and the fix."""


@dataclass(frozen=True)
class Sample:
    """One image and its label PNG."""

    name: str
    image: Path
    label: Path


@dataclass(frozen=True)
class DataSource:
    """A data folder and how to read it (the ``train`` flags)."""

    folder: Path
    layout: str = "auto"
    labels: str = ""  # label folder (kitti, plain) or gtFine kind (cityscapes)
    split: str = ""  # cityscapes: leftImg8bit/<split> (default: train if present, else all)


def detect_layout(folder: Path) -> str:
    if (folder / "leftImg8bit").is_dir() and (folder / "gtFine").is_dir():
        return "cityscapes"
    for layout, (images, _) in FOLDERS.items():
        if (folder / images).is_dir():
            return layout
    raise DataError(
        f"{folder} has none of the known layouts: leftImg8bit/ + gtFine/ (Cityscapes), "
        "image_2/ + semantic/ (KITTI semantics) or images/ + labels/"
    )


def find_samples(source: DataSource) -> tuple[str, list[Sample]]:
    """(layout, samples sorted by name) of ``source``; DataError when it cannot be used."""
    folder = Path(source.folder)
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    layout = detect_layout(folder) if source.layout == "auto" else source.layout
    if layout not in LAYOUTS[1:]:
        raise DataError(f"--layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if layout == "cityscapes":
        return layout, _cityscapes(folder, source.labels or "labelTrainIds", source.split)
    image_dir, default_labels = FOLDERS[layout]
    images = _files(folder / image_dir, IMAGE_SUFFIXES, recursive=False)
    label_dir = folder / (source.labels or default_labels)
    if not label_dir.is_dir():
        raise DataError(f"{folder}: no label folder {label_dir.name}/ beside {image_dir}/")
    labels = _files(label_dir, (".png",), recursive=False)
    image_by = {p.stem: p for p in images}
    label_by = {p.stem: p for p in labels}
    _check_pairs(folder, image_by, label_by, lambda n: f"{label_dir.name}/{n}.png")
    return layout, [Sample(n, image_by[n], label_by[n]) for n in sorted(image_by)]


def _cityscapes(folder: Path, kind: str, split: str) -> list[Sample]:
    if not split and (folder / "leftImg8bit" / "train").is_dir():
        split = "train"  # a full Cityscapes root: train on train (val validates, see run.py)
    images_root = folder / "leftImg8bit" / split if split else folder / "leftImg8bit"
    if not images_root.is_dir():
        raise DataError(f"{folder}: no split {split!r} in leftImg8bit/")
    images = [
        p
        for p in _files(images_root, (".png",), recursive=True)
        if p.stem.endswith(CITYSCAPES_IMAGE)
    ]
    if not images:
        raise DataError(f"{images_root} holds no *{CITYSCAPES_IMAGE}.png images")
    suffix = f"_gtFine_{kind}"
    image_by, label_by, expected = {}, {}, {}
    for path in images:
        relative = path.relative_to(folder / "leftImg8bit")
        name = str(relative.parent / path.stem[: -len(CITYSCAPES_IMAGE)])
        image_by[name] = path
        expected[name] = folder / "gtFine" / relative.parent / f"{Path(name).name}{suffix}.png"
    labels_root = folder / "gtFine" / split if split else folder / "gtFine"
    for path in _files(labels_root, (".png",), recursive=True) if labels_root.is_dir() else []:
        if path.stem.endswith(suffix):
            relative = path.relative_to(folder / "gtFine")
            label_by[str(relative.parent / path.stem[: -len(suffix)])] = path
    _check_pairs(
        folder, image_by, label_by, lambda n: str(expected[n].relative_to(folder)), f"*{suffix}"
    )
    return [Sample(n, image_by[n], label_by[n]) for n in sorted(image_by)]


def _files(folder: Path, suffixes: tuple[str, ...], recursive: bool) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist")
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in found if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise DataError(f"{folder} is empty: no {'/'.join(suffixes)} files")
    return files


def _check_pairs(
    folder: Path, images: dict, labels: dict, expected_label: object, what: str = ""
) -> None:
    """One line naming images without a label and labels without an image, if any."""
    lonely_images = sorted(set(images) - set(labels))
    lonely_labels = sorted(set(labels) - set(images))
    if not lonely_images and not lonely_labels:
        return
    parts = []
    if lonely_images:
        first = lonely_images[0]
        parts.append(
            f"{len(lonely_images)} image(s) without a label{' ' + what if what else ''} "
            f"(e.g. {images[first].relative_to(folder)}: no {expected_label(first)})"  # type: ignore[operator]
        )
    if lonely_labels:
        parts.append(
            f"{len(lonely_labels)} label(s) without an image "
            f"(e.g. {labels[lonely_labels[0]].relative_to(folder)})"
        )
    raise DataError(f"{folder}: image and label names do not match: " + "; ".join(parts))


# --------------------------------------------------------------------------- reading
def read_label(path: Path) -> np.ndarray:
    """A single-channel id PNG (8/16 bit, or palette indices) as an (H, W) integer array."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                raise DataError(
                    f"{path} is a {image.mode} picture: labels must be single-channel id PNGs "
                    "(e.g. Cityscapes labelTrainIds), not colour renderings"
                )
            return np.asarray(image)
    except OSError as error:
        raise DataError(f"cannot read label {path}: {error}") from None


def read_image(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.height, image.width
    except OSError as error:
        raise DataError(f"cannot read image {path}: {error}") from None


@dataclass(frozen=True)
class LabelCounts:
    """What one read of every label found: pixels per class (loss weights) and which
    classes each image holds (repeat-factor sampling), samples in the order given."""

    pixels: np.ndarray  # (classes,) int64
    present: np.ndarray  # (samples, classes) bool


def check_labels(samples: Sequence[Sample], labels: TrainLabels) -> LabelCounts:
    """Read every label once: sizes must match the images and every id must be a class,
    ignored or remapped. Returns the class counts (for weights, sampling and the log)."""

    def scan(sample: Sample) -> tuple[Sample, np.ndarray, np.ndarray, tuple, tuple]:
        label = read_label(sample.label)
        ids, counts = np.unique(label, return_counts=True)
        return sample, ids, counts, label.shape, image_size(sample.image)

    table = labels.lookup()
    histogram = np.zeros(labels.num_classes, dtype=np.int64)
    present = np.zeros((len(samples), labels.num_classes), dtype=bool)
    offenders: dict[int, list[str]] = {}
    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        for row, (sample, ids, counts, shape, size) in enumerate(pool.map(scan, samples)):
            if tuple(shape) != tuple(size):
                raise DataError(
                    f"{sample.label} is {shape[1]}x{shape[0]} but its image {sample.image} is "
                    f"{size[1]}x{size[0]}"
                )
            for bad in labels.unknown(ids):
                offenders.setdefault(bad, []).append(str(sample.label))
            mapped = table[ids.astype(np.int64)]
            keep = (mapped >= 0) & (mapped < labels.num_classes)
            np.add.at(histogram, mapped[keep], counts[keep])
            present[row, mapped[keep]] = True
    if offenders:
        ids = sorted(offenders)
        files = sorted({f for i in ids for f in offenders[i]})
        shown = ", ".join(map(str, ids[:12])) + (" ..." if len(ids) > 12 else "")
        more = f" and {len(files) - 1} more file(s)" if len(files) > 1 else ""
        raise DataError(
            f"label id(s) {shown} in {files[0]}{more} are not classes of {labels.describe()} "
            f"({labels.source}), nor ignored nor remapped: add them to its 'ignore' or "
            "'remap' (PNGs of Cityscapes labelIds: --label-set cityscapes-labelids)"
        )
    return LabelCounts(histogram, present)


def split_holdout(
    samples: list[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """(train, validation): ``fraction`` of the samples (at least one) held out, seeded."""
    if len(samples) < 2:
        raise DataError(
            f"only {len(samples)} training image(s): give a validation folder (--val) or more "
            "images, so there is one to hold out for validation"
        )
    count = min(len(samples) - 1, max(1, round(len(samples) * fraction)))
    order = np.random.default_rng(seed).permutation(len(samples))
    held = set(order[:count].tolist())
    train = [s for i, s in enumerate(samples) if i not in held]
    return train, [s for i, s in enumerate(samples) if i in held]
