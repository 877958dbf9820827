"""Readers for KITTI calibration and Velodyne files, for tests, benchmarks and evaluation.

KITTI's rectified camera images are projected with ``P_rect_0X @ R_rect_00 @ Tr_velo_to_cam``
(raw drives) or ``P2 @ R0_rect @ Tr_velo_to_cam`` (object benchmark). We express that as a
rectified :class:`CameraModel` built from ``P`` plus one rigid LiDAR -> camera transform
that folds in the rectifying rotation, which is also how a ROS driver publishes it
(CameraInfo with P, and the rotation in TF).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.transforms import make_transform


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """Parse ``key: v1 v2 ...`` lines into float arrays; non-numeric lines are skipped."""
    values: dict[str, np.ndarray] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            values[key.strip()] = np.array([float(v) for v in rest.split()])
        except ValueError:
            continue  # e.g. calib_time: 09-Jan-2012 13:57:47
    return values


def load_velodyne_bin(path: str | Path) -> np.ndarray:
    """(N, 4) float32 x, y, z, reflectance from a KITTI ``.bin`` scan."""
    data = np.fromfile(path, dtype=np.float32)
    if data.size % 4:
        raise ValueError(f"{path}: size {data.size * 4} bytes is not a multiple of 16 (x,y,z,r)")
    return data.reshape(-1, 4)


def raw_drive_camera(
    calib_dir: str | Path, camera: int = 2, image_size: tuple[int, int] | None = None
) -> tuple[CameraModel, np.ndarray]:
    """Rectified camera model and ``T_cam_from_velo`` of a KITTI raw drive.

    ``T_cam_from_velo = R_rect_00 @ [R|T]_velo_to_cam``; the rectified camera is cam 0's
    rectified frame, so ``P_rect_0X`` (with its baseline column) completes the projection.
    """
    calib_dir = Path(calib_dir)
    cam = read_calib_file(calib_dir / "calib_cam_to_cam.txt")
    velo = read_calib_file(calib_dir / "calib_velo_to_cam.txt")
    p = cam[f"P_rect_0{camera}"].reshape(3, 4)
    size = cam[f"S_rect_0{camera}"].astype(int) if image_size is None else np.array(image_size)
    r_rect = make_transform(cam["R_rect_00"].reshape(3, 3))
    t_velo = make_transform(velo["R"].reshape(3, 3), velo["T"])
    model = CameraModel.from_fields(int(size[0]), int(size[1]), p[:, :3], [], np.eye(3), p)
    return model, r_rect @ t_velo


def object_frame_camera(
    calib_file: str | Path, image_size: tuple[int, int]
) -> tuple[CameraModel, np.ndarray]:
    """Rectified camera 2 model and ``T_cam_from_velo`` of a KITTI object-benchmark frame."""
    calib = read_calib_file(calib_file)
    p = calib["P2"].reshape(3, 4)
    r_rect = make_transform(calib["R0_rect"].reshape(3, 3))
    t_velo = np.vstack([calib["Tr_velo_to_cam"].reshape(3, 4), [0, 0, 0, 1]])
    model = CameraModel.from_fields(image_size[0], image_size[1], p[:, :3], [], np.eye(3), p)
    return model, r_rect @ t_velo


def reference_projection(
    P: np.ndarray, T_cam_from_velo: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The devkit's formula, written out: ``x = P @ T @ [X 1]``; returns (uv, z_cam)."""
    homogeneous = np.column_stack([points[:, :3].astype(np.float64), np.ones(len(points))])
    cam = homogeneous @ T_cam_from_velo.T
    image = cam @ np.asarray(P, dtype=np.float64).reshape(3, 4).T
    return image[:, :2] / image[:, 2:3], cam[:, 2]
