"""Transforms at a time (interpolated like tf2) and motion compensation, against motion
written down in closed form: a vehicle driving and turning at known constant rates."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.core.motion import (
    TransformHistory,
    describe_motion,
    interpolate,
    motion_delta,
)
from seg_perception.core.transforms import (
    TransformError,
    invert_transform,
    make_transform,
    transform_points,
)

NS = 1_000_000_000
SPEED, YAW_RATE = 10.0, 0.2  # m/s, rad/s


def pose_at(seconds: float) -> np.ndarray:
    """odom <- base_link of a vehicle on a circle: exact for any time."""
    yaw = YAW_RATE * seconds
    radius = SPEED / YAW_RATE
    x, y = radius * np.sin(yaw), radius * (1 - np.cos(yaw))
    return make_transform([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0],
                           [0, 0, 1]], [x, y, 0.0])  # fmt: skip


def history_of(stamps_s: np.ndarray) -> TransformHistory:
    history = TransformHistory()
    for t in stamps_s:
        history.add("odom", "base_link", round(t * NS), pose_at(t))
    lidar_in_base = make_transform(np.eye(3), [1.2, 0.0, 1.7])
    history.add_static("base_link", "velodyne", lidar_in_base)
    return history


def test_interpolation_between_samples_follows_the_motion():
    history = history_of(np.arange(0.0, 1.0, 0.01))  # /tf at 100 Hz
    for t in (0.123, 0.5, 0.987):
        got = history.lookup("odom", "base_link", round(t * NS))
        # Linear translation between samples: the chord, not the arc (sagitta L^2 / 8R = 2.5e-5 m).
        np.testing.assert_allclose(got, pose_at(t), atol=3e-5)


def test_no_extrapolation_beyond_the_samples():
    history = history_of(np.arange(0.0, 1.0, 0.01))
    with pytest.raises(TransformError, match="after the last of its 100 samples"):
        history.lookup("odom", "base_link", 2 * NS)
    history.lookup("odom", "base_link", round(0.992 * NS))  # within the 5 ms margin


def test_motion_delta_moves_points_where_the_camera_sees_them():
    history = history_of(np.arange(0.0, 1.0, 0.01))
    cloud_t, camera_t = 0.400, 0.435  # the camera exposes 35 ms after the sweep's stamp
    world = np.array([[20.0, 3.0, 0.5], [35.0, -4.0, 1.0]])
    lidar_at = {t: history.lookup("odom", "velodyne", round(t * NS)) for t in (cloud_t, camera_t)}
    seen_at_cloud = transform_points(invert_transform(lidar_at[cloud_t]), world)
    seen_at_camera = transform_points(invert_transform(lidar_at[camera_t]), world)
    delta = motion_delta(history, "odom", "velodyne", round(cloud_t * NS), round(camera_t * NS))
    np.testing.assert_allclose(transform_points(delta, seen_at_cloud), seen_at_camera, atol=1e-4)
    metres, degrees = describe_motion(delta)
    assert metres == pytest.approx(SPEED * 0.035, rel=0.05)
    assert degrees == pytest.approx(np.degrees(YAW_RATE * 0.035), rel=1e-3)


def test_interpolate_halfway():
    a = make_transform(np.eye(3), [0.0, 0.0, 0.0])
    b = pose_at(1.0)
    half = interpolate(a, b, 0.5)
    assert describe_motion(half)[1] == pytest.approx(np.degrees(YAW_RATE / 2), rel=1e-6)
