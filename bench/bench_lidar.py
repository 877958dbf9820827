"""LiDAR segmentation speed on real KITTI scans, on one core, against linefit.

Prints, measured in this one run for the KITTI raw frame 0 (~114k points) and the
SemanticKITTI scan 00/000000 (~125k points): our ground segmentation, the obstacle
clustering alone (on that scan's obstacle points), the whole LiDAR segmentation (ground +
clusters, what the ``Pipeline`` runs), linefit (PyPI; its own KITTI configuration, one
thread) on the same points, and the ratio linefit / ours. linefit is timed through its
public Python API, which includes its conversion of the result to a Python list.

Run: ``python bench/bench_lidar.py`` (needs ../shared/data; linefit is optional).
"""

from __future__ import annotations

import sys

from _common import DATA, KITTI_RAW, kitti_scan, median_ms, pin_one_core

pin_one_core()

import numpy as np

from seg_perception.lidar.classes import NO_CLUSTER
from seg_perception.lidar.clustering import cluster_points
from seg_perception.lidar.evaluation import (
    LINEFIT_KITTI,
    LinefitGround,
    linefit_available,
    read_scan,
)
from seg_perception.lidar.ground import segment_ground
from seg_perception.lidar.segmenter import GeometricCloudSegmenter

TARGET_MS = 50.0


def bench_scan(name: str, points: np.ndarray, linefit: LinefitGround | None) -> bool:
    segmenter = GeometricCloudSegmenter()
    xyz = points[:, :3]
    ground = segment_ground(xyz)
    obstacle = ground.obstacle
    result = segmenter.segment(xyz)
    clusters = int(result.cluster_id.max()) + 1
    clustered = int(np.count_nonzero(result.cluster_id != NO_CLUSTER))

    ground_ms = median_ms(lambda: segment_ground(xyz))
    cluster_ms = median_ms(lambda: cluster_points(xyz, obstacle))
    total_ms = median_ms(lambda: segmenter.segment(xyz))

    print(f"{name}: {len(xyz)} points, one core")
    print(
        f"  ground {int(ground.ground.sum())}, obstacle {int(obstacle.sum())}, "
        f"unknown {int((ground.lidar_class == 0).sum())}; {clusters} clusters "
        f"({clustered} points)"
    )
    print(f"  ground segmentation (ours)          {ground_ms:8.2f} ms")
    print(f"  obstacle clustering                 {cluster_ms:8.2f} ms")
    print(f"  whole LiDAR segmentation (ours)     {total_ms:8.2f} ms")
    if linefit is not None:
        linefit_ms = median_ms(lambda: linefit(xyz), runs=21)
        print(f"  linefit ground segmentation         {linefit_ms:8.2f} ms")
        print(f"  ratio linefit / ours (ground)       {linefit_ms / ground_ms:8.2f} x")
        print(f"  ratio linefit / ours (ground+clusters) {linefit_ms / total_ms:5.2f} x")
    met = total_ms < TARGET_MS
    print(
        f"  target: whole LiDAR segmentation under {TARGET_MS:g} ms:", "met" if met else "NOT met"
    )
    return met


def main() -> int:
    scans = []
    raw = kitti_scan(0)
    if raw is not None:
        scans.append(("KITTI raw 2011_09_26 frame 0", raw))
    semantic = DATA / "semantickitti/sequences/00/velodyne/000000.bin"
    if semantic.is_file():
        scans.append(("SemanticKITTI 00/000000", read_scan(semantic)))
    if not scans:
        print(f"needs the KITTI scans in {KITTI_RAW} or {semantic.parent}", file=sys.stderr)
        return 1
    linefit = LinefitGround(LINEFIT_KITTI) if linefit_available() else None
    if linefit is None:
        print("linefit is not installed (pip install linefit): no comparison")
    met = [bench_scan(name, points, linefit) for name, points in scans]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
