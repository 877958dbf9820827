"""Camera -> LiDAR label fusion with occlusion handling.

Each LiDAR point takes the class and confidence of the pixel it projects to. The hard
part is occlusion: the LiDAR and the camera sit at different places, so the LiDAR sees
surfaces the camera does not (the wall behind a parked car, seen over its roof). Those
points project *inside* the car's silhouette and would be labeled "car". Autoware's
fusion ignores this; we reject them with a depth test against the cloud itself.

Why a directional test and not a plain min-filtered z-buffer: LiDAR points are sparse in
the image (beams are several pixels apart), so the depth buffer must look at a window
around each point. A symmetric window marks far ground as occluded by the nearer ground
ring just below it (depth grows quickly per row on a slanted surface). A point hidden
behind an object has that object's points on all sides of it in the image, while a point
on the far ground only has nearer points below. So a point is occluded when nearer points
(beyond a depth tolerance) lie above, below, left and right of it within a window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.transforms import transform_points

MultiCameraRule = Literal["highest_confidence", "nearest", "first"]
NO_CAMERA = 255
#: Half width (px) of the column band searched above/below a point for occluders.
ANGLE_BAND_PX = 2
#: Coarsest occluder level: points up to 2^MAX_LEVEL times sparser than far ones.
MAX_LEVEL = 3


class FusionInputError(ValueError):
    """Fusion inputs that do not fit together (label image size vs calibration...)."""


@dataclass(frozen=True)
class FusionConfig:
    """How points take labels from cameras.

    ``occlusion_window`` is (rows, cols): how many image rows above/below a point, and
    columns to each side, are searched for nearer points. Rows should exceed the LiDAR's
    vertical beam spacing in pixels (f * beam angle: ~5 px for an HDL-64E in KITTI).
    The depth tolerance is ``depth_tolerance_m + depth_tolerance_ratio * depth``.
    """

    occlusion: bool = True
    occlusion_window: tuple[int, int] = (8, 6)
    depth_tolerance_m: float = 0.5
    depth_tolerance_ratio: float = 0.05
    min_range_m: float = 0.0
    max_range_m: float = float("inf")
    min_confidence: float = 0.0
    multi_camera: MultiCameraRule = "highest_confidence"

    def __post_init__(self) -> None:
        rows, cols = self.occlusion_window
        if rows < 1 or cols < 0:
            raise ValueError(
                f"occlusion_window must be (rows >= 1, cols >= 0), got {self.occlusion_window}"
            )
        if self.depth_tolerance_m < 0 or self.depth_tolerance_ratio < 0:
            raise ValueError("depth tolerances must be >= 0")
        if not 0 <= self.min_range_m < self.max_range_m:
            raise ValueError(
                f"need 0 <= min_range_m < max_range_m, got {self.min_range_m}, {self.max_range_m}"
            )
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.multi_camera not in ("highest_confidence", "nearest", "first"):
            raise ValueError(
                "multi_camera must be highest_confidence, nearest or first, "
                f"not {self.multi_camera!r}"
            )


@dataclass
class CameraLabels:
    """One camera's label image with what is needed to project into it."""

    name: str
    model: CameraModel
    T_cam_from_lidar: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray | None = None
    #: The camera's index in the configured list: the value of a point's ``camera`` field.
    #: None: its position among the cameras of this frame (right only when none is missing).
    index: int | None = None


@dataclass
class CameraStats:
    name: str
    points_in_view: int = 0
    points_occluded: int = 0
    points_labeled: int = 0
    points_won: int = 0


@dataclass
class FusionResult:
    """Per-point output: class id (``unlabeled_id`` if none), confidence, camera index."""

    label: np.ndarray
    confidence: np.ndarray
    camera: np.ndarray
    points_total: int
    points_finite: int
    points_in_range: int
    cameras: list[CameraStats] = field(default_factory=list)

    @property
    def points_labeled(self) -> int:
        return int(np.count_nonzero(self.camera != NO_CAMERA))


def label_points(
    points: np.ndarray,
    cameras: list[CameraLabels],
    config: FusionConfig | None = None,
    unlabeled_id: int = 255,
) -> FusionResult:
    """Give each of the (N, 3) LiDAR-frame ``points`` a label from the ``cameras``.

    Non-finite points and points outside the range limits stay unlabeled. Where several
    cameras label a point, ``config.multi_camera`` decides (highest confidence by default,
    ties to the lower camera index).
    """
    config = config or FusionConfig()
    xyz = np.asarray(points)
    if xyz.ndim != 2 or xyz.shape[1] < 3:
        raise FusionInputError(f"points must have shape (N, 3), got {xyz.shape}")
    if len(cameras) >= NO_CAMERA:
        raise FusionInputError(f"at most {NO_CAMERA - 1} cameras are supported")
    n = xyz.shape[0]
    label_dtype = np.uint8 if unlabeled_id <= 255 else np.uint16
    label = np.full(n, unlabeled_id, dtype=label_dtype)
    confidence = np.zeros(n, dtype=np.float32)
    camera = np.full(n, NO_CAMERA, dtype=np.uint8)

    # Work on contiguous x, y, z rows: (N, 3) row reductions are several times slower.
    columns = np.ascontiguousarray(xyz[:, :3].T)
    with np.errstate(over="ignore", invalid="ignore"):
        squared_range = columns[0] * columns[0] + columns[1] * columns[1] + columns[2] * columns[2]
        finite = np.isfinite(squared_range)  # NaN/inf in any coordinate propagates here
        in_range = finite & (squared_range >= config.min_range_m**2)
        in_range &= squared_range <= config.max_range_m**2
    candidates = np.flatnonzero(in_range)
    # A clean sweep needs no gather: every point is a candidate.
    candidate_columns = columns if candidates.size == n else columns[:, candidates]

    # Per candidate: the best score so far (confidence, or -depth for "nearest").
    best_score = np.full(candidates.size, -np.inf)
    stats: list[CameraStats] = []
    for position, cam in enumerate(cameras):
        index = position if cam.index is None else cam.index
        if not 0 <= index < NO_CAMERA:
            raise FusionInputError(f"camera '{cam.name}': index {index} out of range")
        cam_stats = CameraStats(cam.name)
        stats.append(cam_stats)
        hit, hit_label, hit_conf, hit_depth = _label_in_camera(
            candidate_columns, cam, config, unlabeled_id, cam_stats
        )
        if hit.size == 0:
            continue
        if config.multi_camera == "highest_confidence":
            score = hit_conf.astype(np.float64)
        elif config.multi_camera == "nearest":
            score = -hit_depth
        else:
            score = np.zeros(hit.size)  # "first": any later camera never beats the first
        better = (
            score > best_score[hit]
            if config.multi_camera != "first"
            else np.isneginf(best_score[hit])
        )
        winners = hit[better]
        best_score[winners] = score[better]
        target = candidates[winners]
        label[target] = hit_label[better]
        confidence[target] = hit_conf[better]
        camera[target] = index

    for position, (cam, cam_stats) in enumerate(zip(cameras, stats, strict=True)):
        index = position if cam.index is None else cam.index
        cam_stats.points_won = int(np.count_nonzero(camera == index))
    return FusionResult(
        label=label,
        confidence=confidence,
        camera=camera,
        points_total=n,
        points_finite=int(np.count_nonzero(finite)),
        points_in_range=int(candidates.size),
        cameras=stats,
    )


def _label_in_camera(
    columns: np.ndarray,
    cam: CameraLabels,
    config: FusionConfig,
    unlabeled_id: int,
    stats: CameraStats,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices (into the (3, M) ``columns``) of points this camera labels, with their
    label, confidence and depth."""
    width, height = cam.model.image_size
    labels = np.asarray(cam.labels)
    if labels.shape != (height, width):
        raise FusionInputError(
            f"camera '{cam.name}': label image has shape {labels.shape} (rows, cols) but its "
            f"calibration describes a {width}x{height} image; give one label per pixel"
        )
    conf_image = None
    if cam.confidence is not None:
        conf_image = np.asarray(cam.confidence)
        if conf_image.shape != labels.shape:
            raise FusionInputError(
                f"camera '{cam.name}': confidence image shape {conf_image.shape} differs from "
                f"label image shape {labels.shape}"
            )
    front = _cull(columns, cam, (width, height))
    transform = np.asarray(cam.T_cam_from_lidar, dtype=np.float64)
    projection = cam.model.project(transform_points(transform, columns[:, front].T))
    visible = front[projection.valid]
    rows, cols = projection.pixel_indices()
    depth = projection.depth[projection.valid]
    stats.points_in_view = int(visible.size)
    if visible.size == 0:
        empty = np.zeros(0)
        return visible, empty.astype(labels.dtype), empty.astype(np.float32), empty

    if config.occlusion:
        lidar_range = np.sqrt(np.einsum("ij,ij->i", columns[:, visible].T, columns[:, visible].T))
        occluded = _occluded(rows, cols, depth, lidar_range, (height, width), config)
        stats.points_occluded = int(np.count_nonzero(occluded))
        keep = ~occluded
        visible, rows, cols, depth = visible[keep], rows[keep], cols[keep], depth[keep]

    point_labels = labels[rows, cols]
    if conf_image is not None:
        point_conf = conf_image[rows, cols].astype(np.float32)
    else:
        point_conf = np.ones(visible.size, dtype=np.float32)
    usable = (point_labels != unlabeled_id) & (point_conf >= config.min_confidence)
    stats.points_labeled = int(np.count_nonzero(usable))
    return visible[usable], point_labels[usable], point_conf[usable], depth[usable]


def _cull(columns: np.ndarray, cam: CameraLabels, size: tuple[int, int]) -> np.ndarray:
    """Indices of points that may fall in the image, found in the input precision.

    Most of a spinning LiDAR's sweep is behind or beside a camera; culling it with one
    3x4 product (float32 for float32 clouds) leaves the exact float64 projection a
    fraction of the points. The 2 px margin dwarfs float32 rounding, so no point that is
    in the image is lost. Distorted (raw) cameras are culled by depth only.
    """
    transform = np.asarray(cam.T_cam_from_lidar, dtype=np.float64)
    pixel = cam.model.pixel_matrix()
    # Without a linear pixel matrix (distorted raw images) only the depth row is used.
    rows = (cam.model.depth_axis @ transform[:3])[None, :] if pixel is None else pixel @ transform
    rows = rows.astype(columns.dtype)
    # One small matrix product (BLAS) beats a dozen elementwise passes over the cloud.
    projected = rows[:, :3] @ columns
    projected += rows[:, 3:4]
    w = projected[-1]
    keep = w > 0
    if pixel is not None:
        margin = 2.0
        for axis, limit in ((0, size[0]), (1, size[1])):
            value = projected[axis]
            keep &= (value >= (-0.5 - margin) * w) & (value <= (limit - 0.5 + margin) * w)
    return np.flatnonzero(keep)


def _band_min(grid: np.ndarray, axis: int, half_width: int) -> np.ndarray:
    """Nearest depth within +-half_width cells along ``axis`` (a separable min filter).

    Edges of ``grid`` are left partly unfiltered: callers pad it by more than half_width.
    """
    band = grid.copy()
    for shift in range(1, half_width + 1):
        if axis == 1:
            np.minimum(band[:, shift:], grid[:, :-shift], out=band[:, shift:])
            np.minimum(band[:, :-shift], grid[:, shift:], out=band[:, :-shift])
        else:
            np.minimum(band[shift:], grid[:-shift], out=band[shift:])
            np.minimum(band[:-shift], grid[shift:], out=band[:-shift])
    return band


def _outside_is_nearer(band: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Mark cells beyond the image border as -inf (nearer than anything), in place.

    What lies beyond the border is unknown; counting it as an occluder in the search
    direction judges a point behind an object that runs out of the picture by its other
    sides. It is applied after the band filter so it never spreads sideways.
    """
    band[rows] = -np.inf
    band[:, cols] = -np.inf
    return band


def _nearest_at(grid: np.ndarray, flat: np.ndarray, offsets: list[int]) -> np.ndarray:
    """Nearest depth over the cells at ``flat + offset`` for every offset."""
    grid = grid.reshape(-1)
    nearest = np.full(flat.size, np.inf, dtype=np.float32)
    for offset in offsets:
        np.minimum(nearest, grid[flat + offset], out=nearest)
    return nearest


def _nearest_along(band: np.ndarray, flat: np.ndarray, step: int, reach: int) -> np.ndarray:
    """Nearest depth over 1..reach cells from each flat index in direction ``step`` (a flat
    offset), gathered only at the points: cheaper than filtering the whole grid."""
    band = band.reshape(-1)
    nearest = band[flat + step]
    for distance in range(2, reach + 1):
        np.minimum(nearest, band[flat + step * distance], out=nearest)
    return nearest


def _occluded(
    rows: np.ndarray,
    cols: np.ndarray,
    depth: np.ndarray,
    lidar_range: np.ndarray,
    shape: tuple[int, int],
    config: FusionConfig,
) -> np.ndarray:
    """True for points surrounded by nearer points: above, below, left and right of them.

    Occluders are binned into levels by how sparse they are in the image. A surface's
    LiDAR samples are ``lidar_range * beam angle`` apart, which the camera sees as
    ``f * beam angle * lidar_range / depth`` pixels: objects much nearer to the camera than
    to the LiDAR (a bumper camera next to a parked car) are sampled several times more
    sparsely than the window expects. Level k holds points about 2^k times sparser and is
    searched on a grid pooled by 2^k, so the same window spans their wider gaps.
    """
    limit = depth - (config.depth_tolerance_m + config.depth_tolerance_ratio * depth)
    with np.errstate(divide="ignore", invalid="ignore"):
        sparsity = lidar_range / depth
    level = np.clip(np.floor(np.log2(np.maximum(sparsity * 1.5, 1.0))), 0, MAX_LEVEL).astype(int)
    occluded = np.zeros(rows.size, dtype=bool)
    for k in range(MAX_LEVEL + 1):
        members = level == k
        if not members.any():
            continue
        pending = np.flatnonzero(~occluded)
        occluded[pending] = _surrounded(
            rows >> k,
            cols >> k,
            depth,
            members,
            pending,
            limit,
            (-(-shape[0] // 2**k), -(-shape[1] // 2**k)),
            config.occlusion_window,
        )
    return occluded


def _surrounded(
    rows: np.ndarray,
    cols: np.ndarray,
    depth: np.ndarray,
    members: np.ndarray,
    queries: np.ndarray,
    limit: np.ndarray,
    shape: tuple[int, int],
    window: tuple[int, int],
) -> np.ndarray:
    """For the ``queries`` points: are there ``members`` nearer than ``limit`` on all four
    sides (within the window) on this grid?

    The depth buffer only covers the members' bounding box plus the window, so its size
    follows the points rather than the image.
    """
    reach_rows, reach_cols = window
    pad_rows, pad_cols = reach_rows + 1, max(reach_cols, ANGLE_BAND_PX) + 1
    top, bottom = rows[members].min(), rows[members].max()
    left, right = cols[members].min(), cols[members].max()
    grid_rows = np.arange(top - pad_rows, bottom + pad_rows + 1)
    grid_cols = np.arange(left - pad_cols, right + pad_cols + 1)
    grid = np.full((grid_rows.size, grid_cols.size), np.inf, dtype=np.float32)
    outside_rows = (grid_rows < 0) | (grid_rows >= shape[0])
    outside_cols = (grid_cols < 0) | (grid_cols >= shape[1])
    width = grid_cols.size
    origin = (top - pad_rows) * width + (left - pad_cols)
    flat_members = rows[members] * width + cols[members] - origin
    np.minimum.at(grid.reshape(-1), flat_members, depth[members].astype(np.float32))

    hidden = np.zeros(queries.size, dtype=bool)
    inside = (rows[queries] >= top) & (rows[queries] <= bottom)
    inside &= (cols[queries] >= left) & (cols[queries] <= right)
    queries = queries[inside]
    flat = rows[queries] * width + cols[queries] - origin
    query_limit = limit[queries]

    # Above/below: up to reach_rows rows away, in a band a few columns wide (points of
    # one beam are a pixel or two apart horizontally). Each test only runs on the
    # points that passed the previous ones.
    band = _outside_is_nearer(_band_min(grid, 1, ANGLE_BAND_PX), outside_rows, outside_cols)
    grid_border = _outside_is_nearer(grid, outside_rows, outside_cols)
    surrounded = _nearest_along(band, flat, -width, reach_rows) < query_limit
    keep = np.flatnonzero(surrounded)
    surrounded[keep] = _nearest_along(band, flat[keep], width, reach_rows) < query_limit[keep]
    if reach_cols > 0:
        # Left/right: up to reach_cols columns away, in a band half a beam gap tall. Few
        # points are still candidates here, so gather the window directly.
        half = max(reach_rows // 2, 1)
        for side in (-1, 1):
            keep = np.flatnonzero(surrounded)
            offsets = [
                dr * width + side * dc
                for dr in range(-half, half + 1)
                for dc in range(1, reach_cols + 1)
            ]
            nearest = _nearest_at(grid_border, flat[keep], offsets)
            surrounded[keep] = nearest < query_limit[keep]
    hidden[np.flatnonzero(inside)] = surrounded
    return hidden
