"""Benchmark PointCloud2 <-> numpy on a ~120k-point LiDAR scan.

Prints the time to build a PointCloud2 from a structured array next to a raw copy of the
same bytes (the floor for any builder), their ratio, the time to read a message as a
structured view, and the time to append label/confidence/camera fields; each figure is
the median of several runs. It also shows what assigning other buffer types to rclpy's
generated ``data`` setter would cost, which is why the builders hand it an array.array.

Run: ``python bench/bench_pointcloud2.py`` (uses the KITTI scan in ../shared/data when
present, else a synthetic cloud of the same size).
"""

from __future__ import annotations

import time

from _common import kitti_scan, median_ms, pin_one_core

pin_one_core()

import numpy as np
from sensor_msgs.msg import PointCloud2

from seg_perception.ros.pointcloud2 import (
    append_pointcloud2_fields,
    array_to_pointcloud2,
    cloud_xyz,
    pointcloud2_to_array,
)

FIELDS = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4")]


def load_points() -> tuple[np.ndarray, str]:
    """The KITTI scan as x, y, z, intensity float32 records, or a synthetic stand-in."""
    raw = kitti_scan(0)
    source = "KITTI raw 2011_09_26 frame 0"
    if raw is None:
        raw = np.random.default_rng(0).standard_normal((120_000, 4)).astype(np.float32)
        source = "synthetic (KITTI scan not found)"
    return np.ascontiguousarray(raw).view(FIELDS).reshape(-1), source


def setter_ms(value: object) -> float:
    """One assignment of ``value`` to a PointCloud2's data (slow cases run once)."""
    msg = PointCloud2()
    start = time.perf_counter()
    msg.data = value
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    points, source = load_points()
    n = points.size
    msg = array_to_pointcloud2(points)
    labels = (np.arange(n) % 20).astype(np.uint8)
    confidence = np.linspace(0, 1, n, dtype=np.float32)
    camera = np.zeros(n, np.uint8)

    build = median_ms(lambda: array_to_pointcloud2(points))
    build_dense_given = median_ms(lambda: array_to_pointcloud2(points, is_dense=True))
    raw_copy = median_ms(points.tobytes)
    read = median_ms(lambda: pointcloud2_to_array(msg))
    append = median_ms(
        lambda: append_pointcloud2_fields(
            msg, {"label": labels, "confidence": confidence, "camera": camera}
        )
    )
    xyz = median_ms(lambda: cloud_xyz(pointcloud2_to_array(msg)))

    print(f"cloud: {source}, {n} points, {points.nbytes / 1e6:.2f} MB, point_step 16")
    print(f"build PointCloud2 (numpy -> msg)      {build:8.3f} ms")
    print(f"raw copy of the same bytes (tobytes)  {raw_copy:8.3f} ms")
    print(f"ratio build / raw copy                {build / raw_copy:8.2f} x")
    print(f"build with is_dense given (no scan)   {build_dense_given:8.3f} ms")
    print(f"read (msg -> structured view)         {read:8.3f} ms")
    print(f"append label, confidence, camera      {append:8.3f} ms")
    print(f"cloud_xyz (view -> (N, 3) float32)    {xyz:8.3f} ms")
    print("rclpy PointCloud2.data setter, 1.8 MB (default field checks off):")
    data = msg.data
    used = float(np.median([setter_ms(data) for _ in range(31)]))
    print(f"  array.array('B') (used)             {used:8.3f} ms")
    print(f"  bytes                               {setter_ms(points.tobytes()):8.3f} ms")
    print(
        f"  memoryview                          {setter_ms(memoryview(points.tobytes())):8.3f} ms"
    )
    print(f"  numpy uint8 array                   {setter_ms(points.view(np.uint8)):8.3f} ms")


if __name__ == "__main__":
    main()
