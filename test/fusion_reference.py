"""Reference copy of ``label_points`` as it was before issue 12 (commit ef62f82).

Why it is here: the fast fusion (seg_perception/core/fusion.py) must compute exactly what
this did; test/test_fusion_exact.py and bench/bench_fusion.py compare the two array-equal.
It is our own code, kept verbatim (only this docstring is new) so that a later change of
the fast path can never move the reference along with it. Do not optimize it.

Original module docstring follows.

Camera -> LiDAR label fusion with occlusion handling.

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
(beyond a depth tolerance) lie above, below, left and right of it within a window, and
its pixel shows the class of one of them (:func:`_judge` also covers the gaps between an
occluder's outermost beam or column and its real edge).

The window follows the sensor: it must span a beam gap in pixels, which is 5 px for
KITTI's HDL-64E but ~17 px for a 32-beam sensor behind the same camera (and ~29 px behind
a nuScenes camera). By default (``occlusion_window="auto"``) the beam gaps are measured
on each cloud (:func:`measure_beam_spacing`, ~0.3 ms) or given
(``beam_spacing_deg``), and turned into a window per camera with its focal length
(:func:`occlusion_window_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.transforms import transform_points

MultiCameraRule = Literal["highest_confidence", "nearest", "first"]
NO_CAMERA = 255
#: Half width (px) of the column band searched above/below a point for occluders.
ANGLE_BAND_PX = 2
#: Coarsest occluder level: points up to 2^MAX_LEVEL times sparser than far ones...
MAX_LEVEL = 3
#: ...plus up to this many levels for beams with wider gaps than the typical one.
MAX_BEAM_LEVEL = 1
#: An automatic window spans this many beam gaps (pixels) each way...
WINDOW_MARGIN = 1.3
#: ...within these bounds (rows, cols)...
MIN_WINDOW = (3, 6)
MAX_WINDOW = (64, 64)
#: ...and is the window tuned on KITTI's HDL-64E when the cloud shows no beam structure.
FALLBACK_WINDOW = (8, 6)
#: Sorted elevations further apart than this (deg) belong to different beams.
_BAND_SPLIT_DEG = 0.05


class FusionInputError(ValueError):
    """Fusion inputs that do not fit together (label image size vs calibration...)."""


@dataclass(frozen=True)
class FusionConfig:
    """How points take labels from cameras.

    ``occlusion_window`` is (rows, cols): how many image rows above/below a point, and
    columns to each side, are searched for nearer points; rows must exceed the LiDAR's
    vertical beam gap in pixels and cols its horizontal one. ``"auto"`` (the default)
    derives them per camera from the beam gaps (``beam_spacing_deg`` (vertical,
    horizontal); 0 = measured on each cloud) and the camera's focal lengths, see
    :func:`occlusion_window_for`. The depth tolerance is
    ``depth_tolerance_m + depth_tolerance_ratio * depth``.
    """

    occlusion: bool = True
    occlusion_window: tuple[int, int] | Literal["auto"] = "auto"
    beam_spacing_deg: tuple[float, float] = (0.0, 0.0)
    depth_tolerance_m: float = 0.5
    depth_tolerance_ratio: float = 0.05
    min_range_m: float = 0.0
    max_range_m: float = float("inf")
    min_confidence: float = 0.0
    multi_camera: MultiCameraRule = "highest_confidence"

    def __post_init__(self) -> None:
        window = self.occlusion_window
        if isinstance(window, str):
            if window != "auto":
                raise ValueError(f"occlusion_window must be 'auto' or (rows, cols), got {window!r}")
        elif len(window) != 2 or window[0] < 1 or window[1] < 0:
            raise ValueError(
                f"occlusion_window must be 'auto' or (rows >= 1, cols >= 0), got {window}"
            )
        spacing = self.beam_spacing_deg
        if len(spacing) != 2 or not all(0.0 <= v < 45.0 for v in spacing):
            raise ValueError(
                "beam_spacing_deg must be (vertical, horizontal) in [0, 45) degrees "
                f"(0 = measure), got {spacing}"
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
    """Per-camera counts; ``occlusion_window`` is the (rows, cols) the occlusion test used."""

    name: str
    points_in_view: int = 0
    points_occluded: int = 0
    points_labeled: int = 0
    points_won: int = 0
    occlusion_window: tuple[int, int] | None = None


@dataclass(frozen=True)
class BeamSpacing:
    """Angular gaps of a spinning LiDAR: between adjacent beams (``vertical_deg``) and
    between adjacent firings of one beam (``horizontal_deg``). ``source`` says where they
    came from: ``given`` (configured), ``measured`` (from the cloud) or ``unknown`` (the
    cloud showed no beam structure: the window falls back to FALLBACK_WINDOW)."""

    vertical_deg: float
    horizontal_deg: float
    source: Literal["given", "measured", "unknown"] = "measured"
    #: Measured non-uniform layouts only (VLP-32C: 0.33 deg at the horizon, 9 deg at the
    #: bottom): (band elevations, the larger gap beside each band), deg, ascending. Points
    #: of beams with much wider gaps than ``vertical_deg`` are searched on coarser grids.
    profile: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def vertical_gap_at(self, sin_elevation: np.ndarray) -> np.ndarray:
        """Vertical gap (deg) of the beam nearest each elevation (given as its sine)."""
        if self.profile is None:
            return np.full(np.shape(sin_elevation), self.vertical_deg)
        elevations, gaps = (np.asarray(v) for v in self.profile)
        edges = np.sin(np.deg2rad(0.5 * (elevations[1:] + elevations[:-1])))
        return gaps[np.searchsorted(edges, sin_elevation)]


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
    beam_spacing: BeamSpacing | None = None

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

    # The beam gaps size each camera's occlusion window; measured once per cloud.
    spacing = beam_spacing_for(candidate_columns.T, config) if config.occlusion else None
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
            candidate_columns, cam, config, unlabeled_id, cam_stats, spacing
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
        beam_spacing=spacing,
    )


def measure_beam_spacing(points: np.ndarray, wedge_deg: float = 1.0) -> BeamSpacing:
    """The beam gaps of a spinning LiDAR, measured on one (N, 3) cloud.

    Only two thin wedges of the sweep are looked at (ahead and behind, +-``wedge_deg``
    of azimuth; about 1% of the points), each on its own (a tilted sensor shifts their
    elevations apart): elevations fall into bands, one per beam, and the median gap
    between band centers is the vertical spacing; the median azimuth step between
    neighbours within a band is the horizontal one. Returns ``source="unknown"`` (zeros)
    when the cloud shows no such structure.
    """
    x, y, z = (np.asarray(points[:, i]) for i in range(3))
    with np.errstate(invalid="ignore"):
        pick = np.flatnonzero(np.abs(y) < np.tan(np.deg2rad(wedge_deg)) * np.abs(x))
    x, y, z = (v[pick].astype(np.float64) for v in (x, y, z))
    keep = np.isfinite(x + y + z) & (np.abs(x) > 0.5)
    x, y, z = x[keep], y[keep], z[keep]
    elevation = np.arctan2(z, np.hypot(x, y))
    azimuth = np.arctan2(y * np.sign(x), np.abs(x))  # both wedges around 0
    gaps, steps, bands, local = [], [], [], []
    for wedge in (x > 0, x < 0):
        if np.count_nonzero(wedge) >= 16:
            centers, wedge_steps = _wedge_spacing(elevation[wedge], azimuth[wedge])
            steps.append(wedge_steps)
            if centers.size >= 4:
                wedge_gaps = np.diff(centers)
                gaps.append(wedge_gaps)
                bands.append(centers)
                # The larger of the gaps above and below each band.
                local.append(
                    np.maximum(np.r_[wedge_gaps[0], wedge_gaps], np.r_[wedge_gaps, wedge_gaps[-1]])
                )
    gaps = np.concatenate(gaps) if gaps else np.zeros(0)
    steps = np.concatenate(steps) if steps else np.zeros(0)
    if gaps.size < 3 or steps.size < 3:
        return BeamSpacing(0.0, 0.0, "unknown")
    vertical = float(np.rad2deg(np.median(gaps)))
    bands, local = np.rad2deg(np.concatenate(bands)), np.rad2deg(np.concatenate(local))
    order = np.argsort(bands)
    profile = (tuple(bands[order].tolist()), tuple(local[order].tolist()))
    if np.quantile(local, 0.9) < 2.0 * vertical:
        profile = None  # uniform (up to the scatter of real beams): one gap for all
    return BeamSpacing(vertical, float(np.rad2deg(np.median(steps))), "measured", profile)


def _wedge_spacing(elevation: np.ndarray, azimuth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centers of the beams' elevation bands, and azimuth steps within the bands."""
    order = np.argsort(elevation)
    sorted_el = elevation[order]
    # A new band starts where sorted elevations jump by more than real beams scatter.
    starts = np.flatnonzero(np.diff(sorted_el) > np.deg2rad(_BAND_SPLIT_DEG)) + 1
    bounds = np.concatenate([[0], starts, [sorted_el.size]])
    sizes = np.diff(bounds)
    band = np.repeat(np.arange(sizes.size), sizes)
    sums = np.add.reduceat(sorted_el, bounds[:-1])
    real = sizes >= 3  # a stray point or two is not a beam
    sums, sizes = sums[real], sizes[real]
    centers = sums / sizes
    gaps = np.diff(centers)
    if gaps.size >= 3:
        # Real beams scatter with range (KITTI's HDL-64E: each laser sits off the sensor's
        # axis), which can split one beam into two bands; a gap far below the typical one
        # is such a split: merge it.
        joins = np.concatenate([[False], gaps < 0.5 * np.median(gaps)])
        group = np.cumsum(~joins) - 1
        centers = np.bincount(group, sums) / np.bincount(group, sizes)
    step_order = np.lexsort((azimuth[order], band))
    steps = np.diff(azimuth[order][step_order])
    steps = steps[(np.diff(band[step_order]) == 0) & (steps > 1e-6)]
    return centers, steps


def beam_spacing_for(points: np.ndarray, config: FusionConfig) -> BeamSpacing:
    """The configured beam gaps, with any left at 0 measured on ``points``."""
    vertical, horizontal = config.beam_spacing_deg
    if vertical > 0 and horizontal > 0:
        return BeamSpacing(vertical, horizontal, "given")
    measured = measure_beam_spacing(points)
    if measured.source == "unknown":
        return BeamSpacing(vertical, horizontal, "given" if vertical or horizontal else "unknown")
    return BeamSpacing(
        vertical or measured.vertical_deg,
        horizontal or measured.horizontal_deg,
        "measured",
        None if vertical else measured.profile,
    )


def focal_lengths(model: CameraModel) -> tuple[float, float]:
    """(fx, fy) in pixels of the images ``model`` projects into (ROI/binning applied)."""
    matrix = model.K if model.mode == "raw" else model.P
    return float(matrix[0, 0]) / model.binning_x, float(matrix[1, 1]) / model.binning_y


def occlusion_window_for(model: CameraModel, spacing: BeamSpacing) -> tuple[tuple[int, int], int]:
    """The automatic occlusion window of one camera and its above/below band half width.

    A beam gap of angle a spans ``f * tan(a)`` pixels at the principal point; the window
    reaches WINDOW_MARGIN gaps each way (rows from the vertical gap and fy, cols from the
    horizontal gap and fx), bounded by MIN_WINDOW and MAX_WINDOW; FALLBACK_WINDOW stands
    in for a gap that is unknown (0). The column band searched above/below a point holds
    at least one firing of each beam: half a horizontal gap each side, ANGLE_BAND_PX at
    least.
    """
    fx, fy = focal_lengths(model)
    rows, cols = FALLBACK_WINDOW  # for a gap that is unknown (0)
    band = ANGLE_BAND_PX
    if spacing.vertical_deg > 0:
        gap_rows = fy * np.tan(np.deg2rad(spacing.vertical_deg))
        rows = int(np.clip(round(WINDOW_MARGIN * gap_rows), MIN_WINDOW[0], MAX_WINDOW[0]))
    if spacing.horizontal_deg > 0:
        gap_cols = fx * np.tan(np.deg2rad(spacing.horizontal_deg))
        cols = int(np.clip(round(WINDOW_MARGIN * gap_cols), MIN_WINDOW[1], MAX_WINDOW[1]))
        band = int(min(max(ANGLE_BAND_PX, np.ceil(0.5 * gap_cols + 0.5)), MAX_WINDOW[1]))
    return (rows, cols), band


def _label_in_camera(
    columns: np.ndarray,
    cam: CameraLabels,
    config: FusionConfig,
    unlabeled_id: int,
    stats: CameraStats,
    spacing: BeamSpacing | None = None,
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

    point_labels = labels[rows, cols]
    if config.occlusion:
        lidar_range = np.sqrt(np.einsum("ij,ij->i", columns[:, visible].T, columns[:, visible].T))
        spacing = spacing or BeamSpacing(0.0, 0.0, "unknown")
        window, band = occlusion_window_for(cam.model, spacing)
        beam_level = np.zeros(visible.size, dtype=np.intp)
        if config.occlusion_window != "auto":
            window = tuple(config.occlusion_window)
        elif spacing.profile is not None:
            # Points of beams with wider gaps than the typical one (a VLP-32C's outer
            # beams) are sparser occluders: search them on coarser grids.
            sin_elevation = columns[2, visible] / np.maximum(lidar_range, 1e-9)
            ratio = spacing.vertical_gap_at(sin_elevation) / spacing.vertical_deg
            beam_level = np.clip(np.ceil(np.log2(ratio) - 0.6), 0, MAX_BEAM_LEVEL)
        stats.occlusion_window = window
        occluded = _occluded(
            rows,
            cols,
            depth,
            lidar_range,
            beam_level.astype(np.intp),
            point_labels,
            (height, width),
            window,
            band,
            config,
        )
        stats.points_occluded = int(np.count_nonzero(occluded))
        keep = ~occluded
        visible, rows, cols, depth = visible[keep], rows[keep], cols[keep], depth[keep]
        point_labels = point_labels[keep]

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


#: Label-grid value of cells with no point, and of cells beyond the image border.
_EMPTY, _OUTSIDE = -1, -2
#: Top-edge rule: the point lies this many times deeper than the occluder below it...
_TOP_EDGE_DEPTH_RATIO = 1.6
#: ...and that occluder is upright: what lies further below is no nearer than it by
#: more than this ratio of its depth plus this many metres.
_UPRIGHT_SLACK = (0.05, 0.3)


def _band_min(grid: np.ndarray, half_width: int) -> np.ndarray:
    """Nearest depth within +-half_width columns (a separable min filter).

    Edges of ``grid`` are left partly unfiltered: callers pad it by more than half_width.
    """
    band = grid.copy()
    for shift in range(1, half_width + 1):
        np.minimum(band[:, shift:], grid[:, :-shift], out=band[:, shift:])
        np.minimum(band[:, :-shift], grid[:, shift:], out=band[:, :-shift])
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


def _nearest_along(band: np.ndarray, flat: np.ndarray, step: int, first: int, last: int):
    """Nearest depth over first..last cells from each flat index in direction ``step`` (a
    flat offset), gathered only at the points: cheaper than filtering the whole grid."""
    return _nearest_at(band, flat, [step * d for d in range(first, last + 1)])


def _label_of_nearest(
    grid: np.ndarray, label_grid: np.ndarray, flat: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """The label of the nearest cell among ``flat + offsets`` (one row per point)."""
    cells = flat[:, None] + offsets[None, :]
    nearest = np.argmin(grid.reshape(-1)[cells], axis=1)
    return label_grid.reshape(-1)[cells[np.arange(flat.size), nearest]]


def _occluded(
    rows: np.ndarray,
    cols: np.ndarray,
    depth: np.ndarray,
    lidar_range: np.ndarray,
    beam_level: np.ndarray,
    pixel_label: np.ndarray,
    shape: tuple[int, int],
    window: tuple[int, int],
    band_half: int,
    config: FusionConfig,
) -> np.ndarray:
    """True for points hidden behind nearer points (see :func:`_judge` for the test).

    Occluders are binned into levels by how sparse they are in the image. A surface's
    LiDAR samples are ``lidar_range * beam angle`` apart, which the camera sees as
    ``f * beam angle * lidar_range / depth`` pixels: objects much nearer to the camera than
    to the LiDAR (a bumper camera next to a parked car) are sampled several times more
    sparsely than the window expects. Level k holds points about 2^k times sparser and is
    searched on a grid pooled by 2^k, so the same window spans their wider gaps. A
    point's ``beam_level`` adds to its level likewise: its beam's gaps are about
    2^beam_level times the typical gap the window was sized for.
    """
    limit = depth - (config.depth_tolerance_m + config.depth_tolerance_ratio * depth)
    with np.errstate(divide="ignore", invalid="ignore"):
        sparsity = lidar_range / depth
    level = np.clip(np.floor(np.log2(np.maximum(sparsity * 1.5, 1.0))), 0, MAX_LEVEL).astype(int)
    level += beam_level
    labels = pixel_label.astype(np.int32)
    occluded = np.zeros(rows.size, dtype=bool)
    for k in range(MAX_LEVEL + MAX_BEAM_LEVEL + 1):
        members = level == k
        if not members.any():
            continue
        pending = np.flatnonzero(~occluded)
        occluded[pending] = _surrounded(
            rows >> k,
            cols >> k,
            depth,
            labels,
            members,
            pending,
            limit,
            (-(-shape[0] // 2**k), -(-shape[1] // 2**k)),
            window,
            band_half,
        )
    return occluded


def _surrounded(
    rows: np.ndarray,
    cols: np.ndarray,
    depth: np.ndarray,
    labels: np.ndarray,
    members: np.ndarray,
    queries: np.ndarray,
    limit: np.ndarray,
    shape: tuple[int, int],
    window: tuple[int, int],
    band_half: int,
) -> np.ndarray:
    """For the ``queries`` points: are they hidden behind ``members`` on this grid?

    The depth buffer (with the label of each cell's nearest point) only covers the
    members' bounding box plus the window, so its size follows the points rather than the
    image; the points are then judged by :func:`_judge`.
    """
    reach_rows, reach_cols = window
    pad_rows, pad_cols = 2 * reach_rows + 1, max(reach_cols, band_half) + 1
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
    member_depth = depth[members].astype(np.float32)
    np.minimum.at(grid.reshape(-1), flat_members, member_depth)
    nearest_member = member_depth == grid.reshape(-1)[flat_members]
    band = _outside_is_nearer(_band_min(grid, band_half), outside_rows, outside_cols)
    grid = _outside_is_nearer(grid, outside_rows, outside_cols)
    buffers = _Buffers(
        grid,
        band,
        width,
        band_half,
        (flat_members[nearest_member], labels[members][nearest_member]),
        (outside_rows, outside_cols),
    )

    hidden = np.zeros(queries.size, dtype=bool)
    inside = (rows[queries] >= top) & (rows[queries] <= bottom)
    inside &= (cols[queries] >= left) & (cols[queries] <= right)
    points = queries[inside]
    hidden[inside] = _judge(
        buffers,
        rows[points] * width + cols[points] - origin,
        limit[points],
        depth[points],
        labels[points],
        window,
    )
    return hidden


@dataclass
class _Buffers:
    """One level's depth buffer: nearest depth per cell (``grid``), the same min-filtered
    over +-``band_half`` columns (``band``), and (built when first needed) the label of
    each cell's nearest point; cells beyond the image border are -inf (nearer than
    anything) and _OUTSIDE."""

    grid: np.ndarray
    band: np.ndarray
    width: int
    band_half: int
    nearest: tuple[np.ndarray, np.ndarray]  # flat cells and labels of their nearest points
    outside: tuple[np.ndarray, np.ndarray]  # rows and columns beyond the image

    @cached_property
    def labels(self) -> np.ndarray:
        cells, labels = self.nearest
        small = labels.size == 0 or int(labels.max()) < np.iinfo(np.int16).max
        cell_labels = np.full(self.grid.shape, _EMPTY, dtype=np.int16 if small else np.int32)
        cell_labels.reshape(-1)[cells] = labels
        cell_labels[self.outside[0]] = _OUTSIDE
        cell_labels[:, self.outside[1]] = _OUTSIDE
        return cell_labels


def _judge(
    buffers: _Buffers,
    flat: np.ndarray,
    query_limit: np.ndarray,
    query_depth: np.ndarray,
    own: np.ndarray,
    window: tuple[int, int],
) -> np.ndarray:
    """Are the points at ``flat`` hidden? A point is, when occluders nearer than its
    ``query_limit`` lie, within the (rows, cols) ``window``:

    * on all four sides, and its pixel shows the class of one of them (the label image
      agrees that the camera sees an occluder there);
    * above, below and on one side only, and three of them show its pixel's class: it
      sits in the gap between an occluder's last sampled column and its real side edge;
    * below and beside it but not above, where the occluder below is upright, shows its
      pixel's class and is at most 1/_TOP_EDGE_DEPTH_RATIO of its depth: it sits in the gap
      between the occluder's top beam and its real top edge (up to one beam gap: the
      whole window's height for a 32-beam sensor). Upright keeps far ground, which only
      has nearer ground below it, out.

    Each test only runs on the points that are still candidates.
    """
    reach_rows, reach_cols = window
    grid, band, width = buffers.grid, buffers.band, buffers.width
    hidden = np.zeros(flat.size, dtype=bool)
    # Above/below: up to reach_rows rows away, in a band a few columns wide (one beam's
    # firings are a horizontal gap apart).
    below_depth = _nearest_along(band, flat, width, 1, reach_rows)
    cand = np.flatnonzero(below_depth < query_limit)
    flat, query_limit, below_depth = flat[cand], query_limit[cand], below_depth[cand]
    query_depth, own = query_depth[cand], own[cand]
    above = _nearest_along(band, flat, -width, 1, reach_rows) < query_limit
    # Only points above a much nearer occluder can be in its top-edge gap.
    sides_for = np.flatnonzero(above | (query_depth >= _TOP_EDGE_DEPTH_RATIO * below_depth))
    # Left/right: up to reach_cols columns away, in a band half a window tall.
    half = max(reach_rows // 2, 1)
    side_offsets = []
    side = []
    for direction in (-1, 1):
        offsets = np.array(
            [
                dr * width + direction * dc
                for dr in range(-half, half + 1)
                for dc in range(1, reach_cols + 1)
            ],
            dtype=np.intp,
        )
        side_offsets.append(offsets)
        found = np.zeros(cand.size, dtype=bool)
        if offsets.size:
            found[sides_for] = (
                _nearest_at(grid, flat[sides_for], list(offsets)) < query_limit[sides_for]
            )
        side.append(found)
    four_sides = above & side[0] & side[1]
    side_edge = above & (side[0] ^ side[1])
    top_edge = ~above & (side[0] | side[1])
    judged = np.flatnonzero(four_sides | side_edge | top_edge)
    if judged.size == 0:
        return hidden

    # The labels of the nearest occluder in each direction, for the judged points only.
    at, own = flat[judged], own[judged]
    columns = np.arange(-buffers.band_half, buffers.band_half + 1)
    vertical = (np.arange(1, reach_rows + 1)[:, None] * width + columns[None, :]).ravel()
    below_label = _label_of_nearest(grid, buffers.labels, at, vertical)
    above_label = _label_of_nearest(grid, buffers.labels, at, -vertical)
    matches = (below_label == own).astype(np.intp)
    matches += above[judged] & (above_label == own)
    for found, offsets in zip(side, side_offsets, strict=True):
        if offsets.size:
            label = _label_of_nearest(grid, buffers.labels, at, offsets)
            matches += found[judged] & (label == own)

    ratio, metres = _UPRIGHT_SLACK
    deep = below_depth[judged]
    further = _nearest_along(band, at, width, reach_rows + 1, 2 * reach_rows)
    with np.errstate(invalid="ignore"):
        upright = further >= deep - (ratio * deep + metres)
    result = (four_sides[judged] & (matches >= 1)) | (side_edge[judged] & (matches >= 3))
    result |= (
        top_edge[judged]
        & (below_label == own)
        & upright
        & (query_depth[judged] >= _TOP_EDGE_DEPTH_RATIO * deep)
    )
    hidden[cand[judged]] = result
    return hidden
