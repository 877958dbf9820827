"""``seg-perception make-images``: generated street scenes as a training folder.

The scene generator (:mod:`seg_perception.sample`) renders a camera image with an exact
per-pixel label image for any seed, so a network for the demo can be trained without any
licensed data set. This writes them in the plain layout ``train`` reads (``images/`` and
``labels/``, same file names) with the label set the generator's ids follow (Cityscapes'
19 train ids), so generated data goes through the same checks and code as a user's own.

Only the camera is needed: the LiDAR sweep is cast with a single coarse beam (the camera
image and labels do not depend on it, which :mod:`test.test_train_data` checks), which
makes a scene about 3x cheaper to generate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from seg_perception.core.labels import LabelSet

#: The LiDAR the images are generated with: one beam, 10 degree steps (see the docstring).
_CHEAP_LIDAR = {"num_beams": 1, "horizontal_resolution_deg": 10.0}


def generator_label_set() -> LabelSet:
    """The classes of the generator's label images: Cityscapes' 19 train ids, same names."""
    from seg_perception.sample import CLASS_NAMES

    label_set = LabelSet.cityscapes()
    if tuple(label_set.names) != tuple(CLASS_NAMES):
        raise RuntimeError("the scene generator's classes are no longer Cityscapes' train ids")
    return label_set


def scaled_camera(scale: float) -> Any:
    """The default (KITTI-like) camera with its image ``scale`` times as large (tests)."""
    from seg_perception.sample import CameraSpec

    camera = CameraSpec()
    if scale == 1.0:
        return camera
    # Pixel centers scale about the image corner: u' + 0.5 = s (u + 0.5).
    return replace(
        camera,
        width=max(8, round(camera.width * scale)),
        height=max(8, round(camera.height * scale)),
        fx=camera.fx * scale,
        fy=camera.fy * scale,
        cx=(camera.cx + 0.5) * scale - 0.5,
        cy=(camera.cy + 0.5) * scale - 0.5,
    )


def generated_frames(
    seeds: list[int], scale: float = 1.0
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(seed, RGB image, label image) of each seed's scene, as the demo's camera sees it."""
    from seg_perception.sample import LidarSpec, generate_scene

    lidar = LidarSpec(**_CHEAP_LIDAR)
    camera = scaled_camera(scale)
    for seed in seeds:
        scene = generate_scene(seed, lidar=lidar, camera=camera)
        yield seed, scene.image, scene.label_image


def write_generated_images(
    out: str | Path, scenes: int, first_seed: int = 0, scale: float = 1.0, progress: bool = True
) -> Path:
    """Write ``scenes`` generated frames (seeds ``first_seed`` ...) to ``out`` in the plain
    layout, plus ``label_set.yaml``. Refuses a folder that already holds images."""
    if scenes < 1:
        raise ValueError(f"--scenes must be >= 1, got {scenes}")
    if not 0.05 <= scale <= 1.0:
        raise ValueError(f"--scale must be in [0.05, 1], got {scale}")
    out = Path(out)
    images, labels = out / "images", out / "labels"
    for folder in (images, labels):
        if folder.is_dir() and any(folder.iterdir()):
            raise ValueError(f"{folder} is not empty: pick a new folder or remove it")
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    label_set = generator_label_set()
    data = label_set.to_dict() | {"ignore": [label_set.unlabeled_id]}
    header = (
        "# Classes of the scene generator's label images (Cityscapes train ids), written by\n"
        "# seg-perception make-images; 'ignore' lists ids that are no class (no loss).\n"
    )
    (out / "label_set.yaml").write_text(
        header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
    )
    seeds = list(range(first_seed, first_seed + scenes))
    frames = generated_frames(seeds, scale)
    if progress:
        from seg_perception.training.progress import progress_bar

        frames = progress_bar(frames, total=len(seeds), desc="generating scenes", unit="scene")
    for seed, image, label_image in frames:
        name = f"scene_{seed:06d}.png"
        cv2.imwrite(str(images / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(labels / name), label_image)
    return out
