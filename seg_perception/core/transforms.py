"""Rigid transforms as 4x4 homogeneous matrices, with ROS quaternion order (x, y, z, w).

Naming follows the "target_from_source" convention: ``T_cam_from_lidar @ p_lidar`` gives the
point in the camera frame. It is the same direction as a tf2 lookup
``lookup_transform(target_frame=cam, source_frame=lidar)`` and as a ``TransformStamped``
whose ``header.frame_id`` is the camera and ``child_frame_id`` the LiDAR.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np


class TransformError(ValueError):
    """A transform that is not a rigid motion, or a frame that cannot be reached."""


def quaternion_to_matrix(q: Iterable[float]) -> np.ndarray:
    """3x3 rotation from a quaternion (x, y, z, w); normalizes, rejects zero/NaN."""
    x, y, z, w = (float(v) for v in q)
    norm = np.sqrt(x * x + y * y + z * z + w * w)
    if not np.isfinite(norm) or norm < 1e-9:
        raise TransformError(f"quaternion ({x}, {y}, {z}, {w}) is zero or not finite")
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Quaternion (x, y, z, w) with w >= 0 from a 3x3 rotation (Shepperd's method)."""
    m = np.asarray(rotation, dtype=np.float64)[:3, :3]
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    quat = np.array(q)
    quat /= np.linalg.norm(quat)
    return -quat if quat[3] < 0 else quat


def make_transform(
    rotation: np.ndarray | None = None, translation: Iterable[float] = (0, 0, 0)
) -> np.ndarray:
    """4x4 transform from a 3x3 rotation (or identity) and a translation."""
    transform = np.eye(4)
    if rotation is not None:
        transform[:3, :3] = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    transform[:3, 3] = np.asarray(list(translation), dtype=np.float64)
    return transform


def transform_from_translation_quaternion(
    translation: Iterable[float], quaternion: Iterable[float]
) -> np.ndarray:
    """4x4 transform from a translation (x, y, z) and a quaternion (x, y, z, w)."""
    return make_transform(quaternion_to_matrix(quaternion), translation)


def check_rigid(transform: np.ndarray, name: str = "transform", tol: float = 1e-6) -> np.ndarray:
    """Return ``transform`` as float64 4x4 after checking it is a proper rigid motion."""
    t = np.asarray(transform, dtype=np.float64)
    if t.shape != (4, 4):
        raise TransformError(f"{name} must be 4x4, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise TransformError(f"{name} contains NaN or infinite values")
    rotation = t[:3, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=tol) or np.linalg.det(rotation) < 0:
        raise TransformError(f"{name} rotation is not orthonormal with det +1")
    if not np.allclose(t[3], [0, 0, 0, 1]):
        raise TransformError(f"{name} last row must be [0, 0, 0, 1], got {t[3].tolist()}")
    return t


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (R^T, -R^T t), exact and cheap."""
    t = np.asarray(transform, dtype=np.float64)
    inverse = np.eye(4)
    inverse[:3, :3] = t[:3, :3].T
    inverse[:3, 3] = -t[:3, :3].T @ t[:3, 3]
    return inverse


def compose(*transforms: np.ndarray) -> np.ndarray:
    """Chain transforms left to right: ``compose(T_a_b, T_b_c)`` is ``T_a_c``."""
    result = np.eye(4)
    for transform in transforms:
        result = result @ np.asarray(transform, dtype=np.float64)
    return result


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (N, 3) points; returns float64 (N, 3)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"points must have shape (N, 3), got {pts.shape}")
    t = np.asarray(transform, dtype=np.float64)
    return pts[:, :3].astype(np.float64, copy=False) @ t[:3, :3].T + t[:3, 3]


class TransformTree:
    """Static transforms between named frames, looked up along any path.

    A small stand-in for a tf2 buffer of ``/tf_static`` that needs no ROS: bag replay and
    parameter-given extrinsics use it, and it works on the TransformStamped messages of
    rclpy or rosbags alike (same field names).
    """

    def __init__(self) -> None:
        self._edges: dict[str, dict[str, np.ndarray]] = {}

    def add(self, parent: str, child: str, T_parent_from_child: np.ndarray) -> None:
        """Record that ``T_parent_from_child`` maps points in ``child`` into ``parent``."""
        parent, child = _strip(parent), _strip(child)
        transform = check_rigid(T_parent_from_child, f"transform {parent} <- {child}")
        self._edges.setdefault(parent, {})[child] = transform
        self._edges.setdefault(child, {})[parent] = invert_transform(transform)

    def add_transform_stamped(self, message: object) -> None:
        """Add a ``geometry_msgs/TransformStamped`` (rclpy or rosbags message)."""
        t = message.transform  # type: ignore[attr-defined]
        self.add(
            message.header.frame_id,  # type: ignore[attr-defined]
            message.child_frame_id,  # type: ignore[attr-defined]
            transform_from_translation_quaternion(
                (t.translation.x, t.translation.y, t.translation.z),
                (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w),
            ),
        )

    @property
    def frames(self) -> list[str]:
        return sorted(self._edges)

    def lookup(self, target: str, source: str) -> np.ndarray:
        """``T_target_from_source`` through the shortest chain of known transforms."""
        target, source = _strip(target), _strip(source)
        if target == source:
            return np.eye(4)
        if source not in self._edges or target not in self._edges:
            missing = [f for f in (source, target) if f not in self._edges]
            raise TransformError(
                f"no transform from '{source}' to '{target}': unknown frame(s) {missing}; "
                f"known frames: {self.frames}"
            )
        # Breadth-first search over frames; chains are a handful of frames long.
        previous: dict[str, str] = {source: source}
        queue = deque([source])
        while queue:
            frame = queue.popleft()
            if frame == target:
                break
            for neighbor in self._edges[frame]:
                if neighbor not in previous:
                    previous[neighbor] = frame
                    queue.append(neighbor)
        if target not in previous:
            raise TransformError(f"frames '{source}' and '{target}' are not connected")
        result = np.eye(4)
        frame = target
        while frame != source:
            parent = previous[frame]
            result = result @ self._edges[frame][parent]
            frame = parent
        return result


def _strip(frame_id: str) -> str:
    """tf2 ignores a leading slash in frame ids; so do we."""
    return frame_id[1:] if frame_id.startswith("/") else frame_id
