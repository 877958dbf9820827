"""Moving vehicles: transforms at a time, and each camera seeing the sweep where it was.

A camera exposed 30 ms after the LiDAR sweep's stamp, on a car at 10 m/s, sees the world
30 cm further on; projecting the sweep with the static extrinsics puts labels tens of pixels
off (measured 14-39 px median on a 32-beam rig at 9 m/s). With a fixed frame ``F`` (``odom``,
``map``) and the LiDAR's pose in it over time, a point ``p`` of the sweep at ``t_l`` is seen
by camera ``C`` at ``t_c`` at::

    T_C_L @ inv(T_F_L(t_c)) @ T_F_L(t_l) @ p

:class:`TransformHistory` is the ROS-free stand-in of a tf2 buffer that replay needs for
this: ``/tf_static`` edges forever, ``/tf`` edges as time series interpolated like tf2
(linear translation, spherical rotation), no extrapolation beyond a small margin.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from seg_perception.core.transforms import (
    TransformError,
    TransformTree,
    invert_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
    transform_from_translation_quaternion,
)


def slerp(q0: np.ndarray, q1: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (x, y, z, w), the short way round."""
    q0, q1 = np.asarray(q0, float), np.asarray(q1, float)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear is exact enough and stable
        q = q0 + fraction * (q1 - q0)
        return q / np.linalg.norm(q)
    angle = np.arccos(dot)
    return (np.sin((1 - fraction) * angle) * q0 + np.sin(fraction * angle) * q1) / np.sin(angle)


def interpolate(t0: np.ndarray, t1: np.ndarray, fraction: float) -> np.ndarray:
    """The rigid transform ``fraction`` of the way from ``t0`` to ``t1``."""
    q = slerp(matrix_to_quaternion(t0[:3, :3]), matrix_to_quaternion(t1[:3, :3]), fraction)
    translation = t0[:3, 3] + fraction * (t1[:3, 3] - t0[:3, 3])
    out = np.eye(4)
    out[:3, :3] = quaternion_to_matrix(q)
    out[:3, 3] = translation
    return out


@dataclass
class _Series:
    stamps: list[int]
    transforms: list[np.ndarray]


class TransformHistory:
    """Static and time-stamped transforms, looked up at a time (see the module docstring).

    ``tolerance_ns`` is how far before the first / after the last sample a lookup may
    still use that sample (tf2 itself refuses any extrapolation; a few ms of slack absorbs
    stamp jitter between a 100 Hz /tf and a sensor).
    """

    def __init__(self, tolerance_ns: int = 5_000_000) -> None:
        self.static = TransformTree()
        self._series: dict[tuple[str, str], _Series] = {}
        self.tolerance_ns = tolerance_ns

    def add_static(self, parent: str, child: str, transform: np.ndarray) -> None:
        self.static.add(parent, child, transform)

    def add(self, parent: str, child: str, stamp_ns: int, transform: np.ndarray) -> None:
        """A ``/tf`` sample: ``transform`` maps ``child`` into ``parent`` at ``stamp_ns``."""
        key = (parent.lstrip("/"), child.lstrip("/"))
        series = self._series.setdefault(key, _Series([], []))
        index = bisect.bisect(series.stamps, stamp_ns)
        if index and series.stamps[index - 1] == stamp_ns:  # a repeat: the later one wins
            series.transforms[index - 1] = transform
            return
        series.stamps.insert(index, stamp_ns)
        series.transforms.insert(index, transform)

    def add_transform_stamped(self, message: object, static: bool) -> None:
        """A ``geometry_msgs/TransformStamped`` (rclpy or rosbags) from /tf or /tf_static."""
        t = message.transform  # type: ignore[attr-defined]
        transform = transform_from_translation_quaternion(
            (t.translation.x, t.translation.y, t.translation.z),
            (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w),
        )
        parent = message.header.frame_id  # type: ignore[attr-defined]
        child = message.child_frame_id  # type: ignore[attr-defined]
        if static:
            self.add_static(parent, child, transform)
        else:
            stamp = message.header.stamp  # type: ignore[attr-defined]
            self.add(parent, child, int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec), transform)

    @property
    def dynamic(self) -> bool:
        return bool(self._series)

    def _at(self, key: tuple[str, str], stamp_ns: int) -> np.ndarray:
        series = self._series[key]
        stamps = series.stamps
        index = bisect.bisect_left(stamps, stamp_ns)
        if index < len(stamps) and stamps[index] == stamp_ns:
            return series.transforms[index]
        if index == 0 or index == len(stamps):
            edge = 0 if index == 0 else len(stamps) - 1
            if abs(stamps[edge] - stamp_ns) <= self.tolerance_ns:
                return series.transforms[edge]
            where = "before the first" if index == 0 else "after the last"
            raise TransformError(
                f"no transform {key[0]} <- {key[1]} at {stamp_ns / 1e9:.6f}: "
                f"{abs(stamps[edge] - stamp_ns) / 1e6:.1f} ms {where} of its "
                f"{len(stamps)} samples (no extrapolation)"
            )
        before, after = stamps[index - 1], stamps[index]
        fraction = (stamp_ns - before) / (after - before)
        return interpolate(series.transforms[index - 1], series.transforms[index], fraction)

    def tree_at(self, stamp_ns: int) -> TransformTree:
        """Every transform as it was at ``stamp_ns`` (static ones included)."""
        tree = TransformTree()
        tree._edges = {frame: dict(edges) for frame, edges in self.static._edges.items()}
        for key in self._series:
            tree.add(key[0], key[1], self._at(key, stamp_ns))
        return tree

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """``T_target_from_source`` at ``stamp_ns``."""
        return self.tree_at(stamp_ns).lookup(target, source)


def motion_delta(
    history: TransformHistory, fixed: str, lidar: str, cloud_ns: int, camera_ns: int
) -> np.ndarray:
    """``inv(T_F_L(t_c)) @ T_F_L(t_l)``: the sweep's points (LiDAR frame at ``t_l``) in
    the LiDAR frame at the camera's time ``t_c``, via the fixed frame ``F``."""
    at_cloud = history.lookup(fixed, lidar, cloud_ns)
    at_camera = history.lookup(fixed, lidar, camera_ns)
    return invert_transform(at_camera) @ at_cloud


def describe_motion(delta: np.ndarray) -> tuple[float, float]:
    """(metres, degrees) a correction moves and turns: what fusion_status reports."""
    cosine = (np.trace(delta[:3, :3]) - 1.0) / 2.0
    return float(np.linalg.norm(delta[:3, 3])), float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))
