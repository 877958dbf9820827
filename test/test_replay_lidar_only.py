"""LiDAR-only replay: a robot with a LiDAR and no camera can use replay too.

An organized 64 x 2048 Ouster-like cloud with nine fields (x, y, z, intensity, t, reflectivity,
ring, ambient, range; NaN where there is no return) goes through replay with no camera: the
output ``segmented_points`` keeps every input field, their values and the organized layout,
and appends the LiDAR segmenter's classes, equal to running the segmenter directly.
"""

from __future__ import annotations

import numpy as np

from seg_perception.bag import messages as bagmsg
from seg_perception.bag.io import BagWriter, open_bag, typestore
from seg_perception.bag.replay import ReplayConfig, replay
from seg_perception.lidar.segmenter import GeometricCloudSegmenter
from seg_perception.ros.pointcloud2 import cloud_xyz, pointcloud2_to_array

OUSTER = [
    ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("t", "<u4"),
    ("reflectivity", "<u2"), ("ring", "<u2"), ("ambient", "<u2"), ("range", "<u4"),
]  # fmt: skip


def ouster_cloud(seed: int) -> np.ndarray:
    """A 64 x 2048 organized sweep over a ground plane with a wall, NaN for sky returns."""
    rows, cols = 64, 2048
    elevation = np.deg2rad(np.linspace(-22.5, 22.5, rows))[:, None]
    azimuth = np.linspace(-np.pi, np.pi, cols, endpoint=False)[None, :]
    height = 1.8
    with np.errstate(divide="ignore"):
        distance = np.where(elevation < 0, height / np.sin(-elevation), np.inf)
    distance = np.minimum(distance, np.where(np.abs(azimuth) < 0.3, 12.0, np.inf))
    distance = np.broadcast_to(distance, (rows, cols)).copy()
    cloud = np.zeros((rows, cols), dtype=OUSTER)
    finite = np.isfinite(distance) & (distance < 80)
    x = distance * np.cos(elevation) * np.cos(azimuth)
    y = distance * np.cos(elevation) * np.sin(azimuth)
    z = distance * np.sin(elevation)
    for name, values in (("x", x), ("y", y), ("z", z)):
        cloud[name] = np.where(finite, values, np.nan)
    rng = np.random.default_rng(seed)
    cloud["intensity"] = rng.random((rows, cols))
    cloud["t"] = np.arange(cols, dtype=np.uint32)[None, :] * 48_828
    cloud["reflectivity"] = rng.integers(0, 1000, (rows, cols))
    cloud["ring"] = np.arange(rows, dtype=np.uint16)[:, None]
    cloud["ambient"] = rng.integers(0, 500, (rows, cols))
    cloud["range"] = np.where(finite, distance * 1000, 0).astype(np.uint32)
    return cloud


def test_lidar_only_replay_keeps_fields_and_layout(tmp_path):
    store = typestore()
    bag = tmp_path / "ouster"
    clouds = [ouster_cloud(seed) for seed in range(2)]
    with BagWriter(bag, store) as writer:
        for k, cloud in enumerate(clouds):
            stamp = 1_000_000_000 + k * 100_000_000
            header = bagmsg.header(store, stamp, "os_sensor")
            writer.write("/os/points", bagmsg.pointcloud2(store, cloud, header), stamp)
    summary = replay(bag, tmp_path / "out", ReplayConfig(), None, GeometricCloudSegmenter())
    assert summary.lidar_only and summary.clouds_processed == 2 and summary.accounted
    with open_bag(tmp_path / "out") as reader:
        outputs = [
            (reader.deserialize(raw, c.msgtype))
            for c, _, raw in reader.messages()
            if c.topic == "/seg_perception/segmented_points"
        ]
    assert len(outputs) == 2
    for message, cloud in zip(outputs, clouds, strict=True):
        assert (message.height, message.width) == (64, 2048)
        got = pointcloud2_to_array(message)
        assert got.shape == (64, 2048)
        assert list(got.dtype.names) == [n for n, _ in OUSTER] + ["lidar_class", "cluster"]
        for name, _ in OUSTER:
            np.testing.assert_array_equal(got[name], cloud[name])  # NaN kept in place
        expected = GeometricCloudSegmenter().segment(cloud_xyz(cloud))
        np.testing.assert_array_equal(got["lidar_class"].ravel(), expected.lidar_class)
        assert {1, 2} <= set(np.unique(got["lidar_class"]).tolist())  # ground and the wall
