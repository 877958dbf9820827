"""Fusion speed on a real KITTI frame (~114k points, 1242x375), on one core.

Prints, measured in this one run: camera->LiDAR label fusion with occlusion handling, the
same without it, one plain numpy (N,4)@(4,4) transform of the same points (the floor any
projection pays), and their ratios; the label image is a real KITTI label map of the same
size (kitti_semantics 000000_10, another drive: its content only matters for timing).
Then the automatic occlusion window: what measuring the cloud's beam gaps costs, the
window each camera got, and fusion times on generated 32/64/128-beam sweeps seen by a
6-camera surround rig (half the nuScenes resolution, truth label images).

Run: ``python bench/bench_fusion.py`` (needs ../shared/data for the KITTI part).
"""

from __future__ import annotations

import sys
from functools import partial

import cv2
import numpy as np
from _common import DATA, KITTI_RAW, kitti_scan, median_ms, pin_one_core

pin_one_core()

from seg_perception.core.fusion import (
    CameraLabels,
    FusionConfig,
    label_points,
    measure_beam_spacing,
)
from seg_perception.core.kitti import raw_drive_camera


def main() -> int:
    points = kitti_scan(0)
    if points is None:
        print(f"needs the KITTI raw frames in {KITTI_RAW}", file=sys.stderr)
        return 1
    model, T_cam_from_velo = raw_drive_camera(KITTI_RAW)
    label_path = DATA / "kitti_semantics/training/semantic_trainIds/000000_10.png"
    labels = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.shape != (375, 1242):
        labels = np.random.default_rng(0).integers(0, 19, (375, 1242)).astype(np.uint8)
    camera = CameraLabels("image_02", model, T_cam_from_velo, labels)
    xyz = points[:, :3]
    homogeneous = np.column_stack([xyz, np.ones(len(xyz), np.float32)])
    T32 = T_cam_from_velo.astype(np.float32)

    with_occlusion = median_ms(lambda: label_points(xyz, [camera], FusionConfig()))
    without = median_ms(lambda: label_points(xyz, [camera], FusionConfig(occlusion=False)))
    transform = median_ms(lambda: homogeneous @ T32.T)
    result = label_points(xyz, [camera], FusionConfig())
    stats = result.cameras[0]

    print(f"KITTI raw 2011_09_26 frame 0: {len(xyz)} points, image 1242x375, one core")
    print(
        f"  in view {stats.points_in_view}, occluded {stats.points_occluded}, "
        f"labeled {stats.points_labeled}"
    )
    print(f"fusion with occlusion handling      {with_occlusion:8.2f} ms")
    print(f"fusion without occlusion handling   {without:8.2f} ms")
    print(f"plain (N,4)@(4,4) float32 transform {transform:8.2f} ms")
    print(f"ratio fusion (occlusion) / transform {with_occlusion / transform:7.1f} x")
    print(f"ratio occlusion on / off             {with_occlusion / without:7.2f} x")
    print("target: fusion under 15 ms on one core:", "met" if with_occlusion < 15 else "NOT met")
    measure = median_ms(lambda: measure_beam_spacing(xyz))
    spacing = result.beam_spacing
    print(
        f"beam gaps measured {spacing.vertical_deg:.3f} x {spacing.horizontal_deg:.3f} deg in "
        f"{measure:.2f} ms ({100 * measure / with_occlusion:.1f}% of fusion); "
        f"window {stats.occlusion_window}"
    )
    fixed = median_ms(lambda: label_points(xyz, [camera], FusionConfig(occlusion_window=(8, 6))))
    print(f"fusion with a fixed 8x6 window        {fixed:8.2f} ms")
    return rigs()


def rigs() -> int:
    from seg_perception.sample import SURROUND_CAMERA, LidarSpec, generate_scene, surround_rig

    rig = surround_rig(SURROUND_CAMERA.scaled(0.5))
    print("\ngenerated sweeps, 6 cameras 800x450 (f 633 px), truth label images, one core:")
    for model in ("hdl32", "hdl64", "os1-128"):
        scene = generate_scene(0, lidar=LidarSpec.model(model), cameras=rig)
        xyz = scene.points[:, :3]
        cameras = [
            CameraLabels(v.name, v.camera_model(), v.T_cam_from_lidar, v.label_image)
            for v in scene.cameras
        ]
        fused = median_ms(partial(label_points, xyz, cameras, FusionConfig()), runs=11)
        plain = median_ms(
            partial(label_points, xyz, cameras, FusionConfig(occlusion=False)), runs=11
        )
        measure = median_ms(partial(measure_beam_spacing, xyz))
        result = label_points(xyz, cameras, FusionConfig())
        windows = sorted({c.occlusion_window for c in result.cameras})
        print(
            f"  {model:8s} {len(xyz):7d} points: fusion {fused:6.2f} ms (no occlusion "
            f"{plain:6.2f} ms), gaps measured in {measure:.2f} ms "
            f"({100 * measure / fused:.1f}%), windows {windows}, occluded "
            f"{[c.points_occluded for c in result.cameras]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
