"""What instance ids cost in fusion (issue 15, part 2), on one core.

Fusion of generated scenes with their true label images, with and without the true
panoptic instance images (a panoptic model's output): the front KITTI-like camera, and the
6-camera surround rig at half resolution (where objects cut by image borders are joined
through the cloud). Plain and panoptic calls are interleaved in rounds and their median
CPU times printed with the ratio, plus the 3D object list's time (``instances_3d``).

Run: ``python bench/bench_instances.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_one_core

pin_one_core()

import numpy as np

from seg_perception.core.fusion import CameraLabels, label_points, warm_up
from seg_perception.core.instances import instances_3d
from seg_perception.sample import SURROUND_CAMERA, generate_scene, surround_rig

ROUNDS, BLOCK = 9, 5


def cameras(scene, panoptic: bool) -> list[CameraLabels]:
    return [
        CameraLabels(v.name, v.camera_model(), v.T_cam_from_lidar, v.label_image, index=i,
                     instances=v.instance_image if panoptic else None)
        for i, v in enumerate(scene.cameras)
    ]  # fmt: skip


def cpu_ms(func) -> float:
    start = time.thread_time()
    for _ in range(BLOCK):
        func()
    return (time.thread_time() - start) * 1e3 / BLOCK


def main() -> None:
    warm_up()
    scenes = {
        "front camera, 64 beams": generate_scene(0),
        "6-camera rig (800x450), 64 beams": generate_scene(
            3, cameras=surround_rig(SURROUND_CAMERA.scaled(0.5))
        ),
    }
    print(f"{'scene':34s} {'plain ms':>9s} {'instances ms':>13s} {'ratio':>6s} {'objects':>8s}"
          f" {'3D list ms':>11s}")  # fmt: skip
    for name, scene in scenes.items():
        xyz = scene.points[:, :3]
        plain, panoptic = cameras(scene, False), cameras(scene, True)
        times: dict[str, list[float]] = {"plain": [], "panoptic": []}
        for _ in range(ROUNDS):
            times["plain"].append(cpu_ms(lambda c=plain, p=xyz: label_points(p, c)))
            times["panoptic"].append(cpu_ms(lambda c=panoptic, p=xyz: label_points(p, c)))
        result = label_points(xyz, panoptic)
        listing = cpu_ms(lambda r=result, p=xyz: instances_3d(p, r.instance, r.label))
        a, b = np.median(times["plain"]), np.median(times["panoptic"])
        objects = len(np.unique(result.instance[result.instance > 0]))
        print(f"{name:34s} {a:9.1f} {b:13.1f} {b / a:6.2f} {objects:8d} {listing:11.2f}")


if __name__ == "__main__":
    main()
