"""Which LiDAR points one camera sees, and at which pixel: frustum culling, then the exact
projection of what is left.

Why cull first: a spinning LiDAR's sweep lies mostly behind or beside any one camera, and
the exact projection (float64, through the lens model) costs several passes per point.
Four planes through the camera's optical center bound everything it can image; testing
them for all cameras is one matrix product over the cloud, in its own precision, and
leaves each camera's exact projection a sixth of the points or less. Rectified cameras
get the planes from
their pixel matrix, raw (distorted) ones from the rectangle of undistorted coordinates
their lens can image (:meth:`CameraModel.normalized_bounds`), so no point pays for the
distortion polynomial unless it may land in the image.

The planes keep a margin of a couple of pixels, far above float32 rounding, so culling
never drops a point the exact projection keeps: what fusion computes does not depend on
it. The points that survive are projected with the arithmetic of
:func:`transform_points` and :meth:`CameraModel.project`, so pixels and depths are
bit-for-bit those of the plain projection of the whole cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.fusion_scratch import SCRATCH
from seg_perception.core.transforms import transform_points

#: Margin (pixels) of the culling planes beyond the image border.
CULL_MARGIN_PX = 2.0
#: Points culled per matrix product: 24 plane rows of this many float32 stay in cache.
_CULL_CHUNK = 32768
#: Camera views this small are culled the old way (depth, or pixel bounds in the cloud's
#: precision): a one-point product goes through another BLAS routine whose last bit may
#: differ, so tiny views keep exactly the point set they always projected.
_SMALL_VIEW = 4


@dataclass
class View:
    """The points (indices into the culled columns) a camera images, with their pixel
    (row, col) and depth along its optical axis."""

    index: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    depth: np.ndarray


def frustum_planes(model: CameraModel, T_cam_from_lidar: np.ndarray) -> np.ndarray:
    """(P, 4) float64 planes with ``plane . [x y z 1] >= 0`` (LiDAR frame) for every point
    the camera can project into its image, ``CULL_MARGIN_PX`` wide of its border; a raw
    camera whose lens images an unbounded cone gets only its front half space."""
    transform = np.asarray(T_cam_from_lidar, dtype=np.float64)
    pixel = model.pixel_matrix()
    margin = CULL_MARGIN_PX
    if pixel is not None:
        a = pixel @ transform  # rows: u w, v w, w
        width, height = model.image_size
        planes = [
            a[0] + (0.5 + margin) * a[2],
            (width - 0.5 + margin) * a[2] - a[0],
            a[1] + (0.5 + margin) * a[2],
            (height - 0.5 + margin) * a[2] - a[1],
        ]
    else:
        optical = transform[:3]  # rows: x, y, z of the optical frame
        bounds = model.normalized_bounds()
        if bounds is None:
            planes = [optical[2]]
        else:
            # Widen by the margin in normalized units (the smaller focal length: widest).
            slack = margin / min(float(model.K[0, 0]), float(model.K[1, 1]))
            x_min, x_max, y_min, y_max = bounds
            planes = [
                optical[0] - (x_min - slack) * optical[2],
                (x_max + slack) * optical[2] - optical[0],
                optical[1] - (y_min - slack) * optical[2],
                (y_max + slack) * optical[2] - optical[1],
            ]
    planes = np.array(planes)
    # Unit normals: plane values are distances in metres, the same scale for every plane.
    return planes / np.linalg.norm(planes[:, :3], axis=1, keepdims=True)


def cull(homogeneous: np.ndarray, plane_sets: list[np.ndarray]) -> list[np.ndarray]:
    """For each camera's planes, the indices of the (4, N) ``homogeneous`` points
    [x y z 1] on the inner side of all of them.

    One matrix product for all cameras (BLAS is several times slower on four rows than on
    twenty-four), a chunk of points at a time so that its plane values stay in cache, in
    the cloud's precision; then each camera's minimum over its planes.
    """
    planes = np.vstack(plane_sets).astype(homogeneous.dtype)
    bounds = np.cumsum([0] + [len(p) for p in plane_sets])
    count = homogeneous.shape[1]
    chunk = max(min(count, _CULL_CHUNK), 1)
    values = SCRATCH.array("plane_values", (len(planes), chunk), planes.dtype)
    nearest = SCRATCH.array("plane_nearest", (chunk,), planes.dtype)
    inside = SCRATCH.array("plane_inside", (len(plane_sets), count), bool)
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        block, low = values[:, : stop - start], nearest[: stop - start]
        np.matmul(planes, homogeneous[:, start:stop], out=block)
        for camera, (first, last) in enumerate(pairwise(bounds)):
            rows = (
                block[first]
                if last - first == 1
                else np.minimum.reduce(block[first:last], axis=0, out=low)
            )
            np.greater_equal(rows, 0, out=inside[camera, start:stop])
    return [np.flatnonzero(row) for row in inside]


def _cull_as_before(
    columns: np.ndarray, model: CameraModel, T_cam_from_lidar: np.ndarray
) -> np.ndarray:
    """The cull fusion used before frustum planes (pixel bounds for rectified cameras,
    depth only for raw ones), in the cloud's precision; see ``_SMALL_VIEW``."""
    transform = np.asarray(T_cam_from_lidar, dtype=np.float64)
    pixel = model.pixel_matrix()
    rows = (model.depth_axis @ transform[:3])[None, :] if pixel is None else pixel @ transform
    rows = rows.astype(columns.dtype)
    projected = rows[:, :3] @ columns
    projected += rows[:, 3:4]
    w = projected[-1]
    keep = w > 0
    if pixel is not None:
        margin = 2.0
        for axis, limit in ((0, model.image_size[0]), (1, model.image_size[1])):
            value = projected[axis]
            keep &= (value >= (-0.5 - margin) * w) & (value <= (limit - 0.5 + margin) * w)
    return np.flatnonzero(keep)


def camera_view(
    homogeneous: np.ndarray,
    model: CameraModel,
    T_cam_from_lidar: np.ndarray,
    front: np.ndarray | None = None,
) -> View:
    """The points of the (4, N) ``homogeneous`` [x y z 1] columns (LiDAR frame, the
    cloud's dtype) that fall in the camera's image.

    ``front`` is what :func:`cull` kept for this camera, if known. Clouds that are not
    float32/float64 are culled the old way (their precision cannot hold the planes).
    """
    columns = homogeneous[:3]
    if homogeneous.dtype in (np.float32, np.float64):
        if front is None:
            front = cull(homogeneous, [frustum_planes(model, T_cam_from_lidar)])[0]
        if front.size <= _SMALL_VIEW:
            front = _cull_as_before(columns, model, T_cam_from_lidar)
    else:
        front = _cull_as_before(columns, model, T_cam_from_lidar)
    transform = np.asarray(T_cam_from_lidar, dtype=np.float64)
    if front.size <= _SMALL_VIEW:
        # A one-point product takes another BLAS path: keep the call it always made.
        x, y, z = np.ascontiguousarray(transform_points(transform, columns[:, front].T).T)
    else:
        # R @ X on (3, n) columns: bit-identical to transform_points' (n, 3) @ R.T for
        # n >= 2 (same dot products in BLAS; test_fusion_exact checks it), with no
        # transposed copies.
        x, y, z = transform[:3, :3] @ columns[:, front].astype(np.float64)
        x += transform[0, 3]
        y += transform[1, 3]
        z += transform[2, 3]
    u, v, depth, valid = model.project_columns(x, y, z)
    return View(
        index=front[valid],
        rows=np.floor(v[valid] + 0.5).astype(np.intp),
        cols=np.floor(u[valid] + 0.5).astype(np.intp),
        depth=depth[valid],
    )
