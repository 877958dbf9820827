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
(beyond a depth tolerance) lie above, below, left and right of it within a window, and
its pixel shows the class of one of them (:func:`.fusion_search.judge` also covers the gaps
between an occluder's outermost beam or column and its real edge).

The window follows the sensor: it must span a beam gap in pixels, which is 5 px for
KITTI's HDL-64E but ~17 px for a 32-beam sensor behind the same camera (and ~29 px behind
a nuScenes camera). By default (``occlusion_window="auto"``) the beam gaps are measured
on each cloud (:func:`measure_beam_spacing`, ~0.3 ms) or given
(``beam_spacing_deg``), and turned into a window per camera with its focal length
(:func:`occlusion_window_for`).

Speed (issue 12: six cameras with occlusion in a quarter of a LiDAR period): all cameras'
frusta are culled in one matrix product over the cloud, so only points that may land in
an image are projected exactly (:mod:`.fusion_view`); the occlusion test min-filters each
depth buffer once with OpenCV and reads every directional search at a shifted index
(:mod:`.occlusion`), in one compiled pass over the points where numba is installed
(:mod:`.fusion_kernels`); large temporaries live in per-thread scratch buffers
(:mod:`.fusion_scratch`); ``FusionConfig.workers`` labels cameras in parallel threads.
None of it changes a result: test/test_fusion_exact.py holds the output array-equal to
fusion as it was before (test/fusion_reference.py), and bench/bench_fusion.py times both.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.fusion_scratch import SCRATCH, settle_allocator
from seg_perception.core.fusion_view import camera_view, cull, frustum_planes
from seg_perception.core.instances import (
    CameraSegments,
    border_segments,
    frame_ids,
    link_cameras,
    segment_keys,
)
from seg_perception.core.instances import instance_scores as score_instances
from seg_perception.core.occlusion import MAX_BEAM_LEVEL, Tolerance, occluded
from seg_perception.core.occlusion import MAX_LEVEL as MAX_LEVEL  # re-exported: public before

MultiCameraRule = Literal["highest_confidence", "nearest", "first"]
NO_CAMERA = 255
#: Half width (px) of the column band searched above/below a point for occluders.
ANGLE_BAND_PX = 2
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
    #: Threads that label cameras in parallel (1: all in the calling thread). Results do
    #: not depend on it; see the ``workers`` measurements in bench/bench_fusion.py.
    workers: int = 1

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
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {self.workers!r}")
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
    #: A panoptic model's segment id per pixel (0: no instance, e.g. road or sky) and each
    #: segment's score: points get instance ids (:mod:`.instances`). None: classes only.
    instances: np.ndarray | None = None
    instance_scores: Mapping[int, float] | None = None


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
    #: Per point: the frame-wide object id (0: none), when a camera gave instances.
    instance: np.ndarray | None = None
    #: Object id -> score (the best of its cameras' segments).
    instance_scores: dict[int, float] = field(default_factory=dict)

    @property
    def points_labeled(self) -> int:
        return int(np.count_nonzero(self.camera != NO_CAMERA))


def warm_up(config: FusionConfig | None = None) -> None:
    """Fuse a small synthetic frame (a wall behind an occluder, one camera, float32 and
    float64 points), so one-time costs are paid at start-up, not on the first real cloud:
    loading or compiling the compiled occlusion search (0.5 s from numba's cache, ~2 s when
    it compiles) and the allocator settling. Measured: without it a fusion node started in
    a fresh checkout lost its first two clouds at 10 Hz."""
    camera = CameraModel.pinhole(200, 100, 100.0, 100.0, 99.5, 49.5)
    optical_from_lidar = np.eye(4)
    optical_from_lidar[:3, :3] = [[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]
    ys, zs = np.meshgrid(np.linspace(-5, 5, 80), np.linspace(-2, 2, 40))
    wall = np.column_stack([np.full(ys.size, 10.0), ys.ravel(), zs.ravel()])
    occluder = wall[np.abs(wall[:, 1]) < 1.0] * [0.5, 0.5, 0.5]
    labels = (np.arange(200 * 100) % 7).astype(np.uint8).reshape(100, 200)
    view = CameraLabels("warm_up", camera, optical_from_lidar, labels)
    for dtype in (np.float32, np.float64):
        label_points(np.vstack([wall, occluder]).astype(dtype), [view], config or FusionConfig())


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
    settle_allocator()
    if len(cameras) >= NO_CAMERA:
        raise FusionInputError(f"at most {NO_CAMERA - 1} cameras are supported")
    n = xyz.shape[0]
    label_dtype = np.uint8 if unlabeled_id <= 255 else np.uint16
    label = np.full(n, unlabeled_id, dtype=label_dtype)
    confidence = np.zeros(n, dtype=np.float32)
    camera = np.full(n, NO_CAMERA, dtype=np.uint8)

    # Contiguous x, y, z rows ((N, 3) row reductions are several times slower) and a row
    # of ones, so that each camera's culling planes are one matrix product.
    cloud = _scratch_or_new("cloud", (4, n), xyz.dtype)
    cloud[:3] = xyz[:, :3].T
    cloud[3] = 1
    columns = cloud[:3]
    with np.errstate(over="ignore", invalid="ignore"):
        squared_range = _squared_norm(columns)
        finite = np.isfinite(squared_range, out=_scratch_or_new("finite", (n,), bool))
        in_range = finite
        if config.min_range_m > 0 or config.max_range_m < np.inf:
            in_range = finite & (squared_range >= config.min_range_m**2)
            in_range &= squared_range <= config.max_range_m**2
    points_finite = int(np.count_nonzero(finite))
    # A clean sweep needs no gather: every point is a candidate (candidates None).
    candidates = None if points_finite == n and in_range is finite else np.flatnonzero(in_range)
    if candidates is not None:
        cloud, squared_range = cloud[:, candidates], squared_range[candidates]
    points_in_range = n if candidates is None else int(candidates.size)

    indices = [_check_camera(position, cam) for position, cam in enumerate(cameras)]
    # The beam gaps size each camera's occlusion window; measured once per cloud.
    spacing = beam_spacing_for(cloud[:3].T, config) if config.occlusion else None
    # Every camera's frustum culled in one pass over the cloud (float clouds; the others
    # are culled per camera as they always were).
    fronts: list[np.ndarray | None] = [None] * len(cameras)
    if cameras and cloud.dtype in (np.float32, np.float64):
        fronts = cull(cloud, [frustum_planes(c.model, c.T_cam_from_lidar) for c in cameras])
    work = partial(
        _label_in_camera,
        cloud,
        squared_range,
        config=config,
        unlabeled_id=unlabeled_id,
        spacing=spacing,
    )
    # Per candidate: the best score so far (confidence, or -depth for "nearest").
    best_score = SCRATCH.array("best_score", (points_in_range,), np.float64)
    best_score.fill(-np.inf)
    stats: list[CameraStats] = []
    panoptic = any(c.instances is not None for c in cameras)
    segments: list[CameraSegments] = []
    winner_key = np.zeros(points_in_range if panoptic else 0, dtype=np.int64)
    # Cameras in parallel (numpy and OpenCV release the GIL) when configured; merged here
    # in camera order either way, so the result does not depend on the thread count.
    if config.workers > 1 and len(cameras) > 1:
        pool = _pool(config.workers)
        futures = [pool.submit(work, *job) for job in zip(cameras, fronts, strict=True)]
        outputs = (future.result() for future in futures)
    else:
        futures, outputs = [], map(work, cameras, fronts)
    try:
        for position, (
            index,
            (hit, hit_label, hit_conf, hit_depth, hit_segment, cam_stats),
        ) in enumerate(zip(indices, outputs, strict=True)):
            stats.append(cam_stats)
            if hit.size == 0:
                continue
            if panoptic and hit_segment is None:
                hit_segment = np.zeros(hit.size, dtype=np.int64)
            if panoptic:
                cam = cameras[position]
                segments.append(CameraSegments(
                    position, hit, hit_segment, hit_label, cam.instance_scores,
                    border_segments(np.asarray(cam.instances)) if cam.instances is not None
                    else frozenset(),
                ))  # fmt: skip
            if config.multi_camera == "highest_confidence":
                score = hit_conf  # float32: compared and stored in float64, exactly
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
            target = winners if candidates is None else candidates[winners]
            label[target] = hit_label[better]
            confidence[target] = hit_conf[better]
            camera[target] = index
            if panoptic:
                winner_key[winners] = segment_keys(position, hit_segment[better])
    finally:
        # A camera that failed must not leave others running on this thread's buffers.
        wait(futures)

    won: dict[int, int] = {}
    for index, cam_stats in zip(indices, stats, strict=True):
        if index not in won:
            won[index] = int(np.count_nonzero(camera == index))
        cam_stats.points_won = won[index]
    result = FusionResult(
        label=label,
        confidence=confidence,
        camera=camera,
        points_total=n,
        points_finite=points_finite,
        points_in_range=points_in_range,
        cameras=stats,
        beam_spacing=spacing,
    )
    if panoptic:
        ids, id_of_key = frame_ids(winner_key, link_cameras(cloud[:3].T, segments))
        result.instance_scores = score_instances(id_of_key, segments)
        result.instance = np.zeros(n, dtype=np.uint32)
        result.instance[slice(None) if candidates is None else candidates] = ids
    return result


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
    pick = _wedges(x, y, np.tan(np.deg2rad(wedge_deg)))
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


def _wedges(x: np.ndarray, y: np.ndarray, tan_half: np.float64) -> np.ndarray:
    """Indices of the points with |y| < tan_half |x| (in float64), in order.

    float32 clouds are screened first in float32 with a slightly wider wedge (the
    screen keeps every point the float64 test keeps, except points with |x| so small
    that they underflow, which measure_beam_spacing drops anyway), in scratch buffers:
    a full-cloud pass in float64 would cost as much as the rest of the measurement.
    """
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        if x.dtype == np.float32 and y.dtype == np.float32 and x.ndim == 1:
            size = x.shape
            wide = np.abs(x, out=SCRATCH.array("wedge_x", size, np.float32))
            wide *= np.float32(tan_half * (1.0 + 1e-4))
            off_axis = np.abs(y, out=SCRATCH.array("wedge_y", size, np.float32))
            screened = np.flatnonzero(
                np.less(off_axis, wide, out=SCRATCH.array("wedge_in", size, bool))
            )
            return screened[np.abs(y[screened]) < tan_half * np.abs(x[screened])]
        return np.flatnonzero(np.abs(y) < tan_half * np.abs(x))


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


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """One long-lived thread pool per worker count: starting threads per frame would cost
    more than the work they share."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="fusion")
        return pool


def _label_in_camera(
    cloud: np.ndarray,
    squared_range: np.ndarray,
    cam: CameraLabels,
    front: np.ndarray | None,
    config: FusionConfig,
    unlabeled_id: int,
    spacing: BeamSpacing | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None,
           CameraStats]:  # fmt: skip
    """Indices (into the (4, M) homogeneous ``cloud``) of points this camera labels, with
    their label, confidence, depth (None unless ``multi_camera`` is "nearest") and segment
    id (None without the camera's ``instances``), and the camera's counts.
    ``squared_range`` is each point's x^2 + y^2 + z^2 in the cloud's precision, ``front``
    what culling kept for the camera (None: cull here). Inputs are checked beforehand
    (:func:`_check_camera`). Runs in a worker thread when ``config.workers > 1``: it only
    reads shared arrays, and sets its own floating-point error state."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _label_in_camera_quietly(
            cloud, squared_range, cam, front, config, unlabeled_id, spacing
        )


def _label_in_camera_quietly(
    cloud: np.ndarray,
    squared_range: np.ndarray,
    cam: CameraLabels,
    front: np.ndarray | None,
    config: FusionConfig,
    unlabeled_id: int,
    spacing: BeamSpacing | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None,
           CameraStats]:  # fmt: skip
    stats = CameraStats(cam.name)
    labels = np.asarray(cam.labels)
    height, width = labels.shape
    view = camera_view(cloud, cam.model, cam.T_cam_from_lidar, front)
    visible, rows, cols, depth = view.index, view.rows, view.cols, view.depth
    stats.points_in_view = int(visible.size)
    if visible.size == 0:
        empty = np.zeros(0)
        segment = None if cam.instances is None else empty.astype(np.int64)
        return visible, empty.astype(labels.dtype), empty.astype(np.float32), empty, segment, stats

    pixel = rows * width + cols  # one flat gather beats labels[rows, cols]
    point_labels = _gather(labels, pixel, rows, cols)
    if config.occlusion:
        lidar_range = _lidar_range(cloud, squared_range, visible)
        spacing = spacing or BeamSpacing(0.0, 0.0, "unknown")
        window, band = occlusion_window_for(cam.model, spacing)
        beam_level = None
        if config.occlusion_window != "auto":
            window = tuple(config.occlusion_window)
        elif spacing.profile is not None:
            # Points of beams with wider gaps than the typical one (a VLP-32C's outer
            # beams) are sparser occluders: search them on coarser grids.
            sin_elevation = cloud[2, visible] / np.maximum(lidar_range, 1e-9)
            ratio = spacing.vertical_gap_at(sin_elevation) / spacing.vertical_deg
            beam_level = np.clip(np.ceil(np.log2(ratio) - 0.6), 0, MAX_BEAM_LEVEL)
            beam_level = beam_level.astype(np.intp)
        stats.occlusion_window = window
        hidden = occluded(
            rows,
            cols,
            depth,
            lidar_range,
            beam_level,
            point_labels,
            (height, width),
            window,
            band,
            Tolerance(config.depth_tolerance_m, config.depth_tolerance_ratio),
        )
        stats.points_occluded = int(np.count_nonzero(hidden))

    if cam.confidence is not None:
        point_conf = _gather(np.asarray(cam.confidence), pixel, rows, cols).astype(np.float32)
    else:
        point_conf = np.ones(visible.size, dtype=np.float32)
    usable = (point_labels != unlabeled_id) & (point_conf >= config.min_confidence)
    if stats.points_occluded:
        usable &= ~hidden  # one gather per output below, not one per array here
    stats.points_labeled = int(np.count_nonzero(usable))
    hit_depth = depth[usable] if config.multi_camera == "nearest" else None
    hit_segment = None
    if cam.instances is not None:
        hit_segment = _gather(np.asarray(cam.instances), pixel, rows, cols)[usable]
    return visible[usable], point_labels[usable], point_conf[usable], hit_depth, hit_segment, stats


def _lidar_range(cloud: np.ndarray, squared_range: np.ndarray, visible: np.ndarray):
    """The LiDAR range of the ``visible`` points, as the occlusion test always took it
    (float32 clouds: the square root of x^2 + y^2 + z^2 summed in that order, which is what
    einsum gives, read from the cloud's own squared ranges)."""
    if cloud.dtype == np.float32:
        return np.sqrt(squared_range[visible])
    seen = cloud[:3, visible].T
    return np.sqrt(np.einsum("ij,ij->i", seen, seen))


def _squared_norm(columns: np.ndarray) -> np.ndarray:
    """x*x + y*y + z*z of (3, N) ``columns`` in their dtype, into a scratch buffer."""
    squared = _scratch_or_new("squared_range", columns.shape[1:], columns.dtype)
    np.multiply(columns[0], columns[0], out=squared)
    term = _scratch_or_new("squared_term", columns.shape[1:], columns.dtype)
    np.multiply(columns[1], columns[1], out=term)
    squared += term
    np.multiply(columns[2], columns[2], out=term)
    squared += term
    return squared


def _scratch_or_new(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A scratch buffer for plain numeric dtypes, a new array otherwise."""
    if np.dtype(dtype).kind in "biuf":
        return SCRATCH.array(name, shape, dtype)
    return np.empty(shape, dtype)


def _gather(image: np.ndarray, pixel: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    """``image[rows, cols]``, through the flat ``pixel`` index when the image is contiguous."""
    if image.flags.c_contiguous:
        return image.reshape(-1)[pixel]
    return image[rows, cols]


def _check_camera(position: int, cam: CameraLabels) -> int:
    """The camera's index (its ``camera`` field value), after checking what it brings."""
    index = position if cam.index is None else cam.index
    if not 0 <= index < NO_CAMERA:
        raise FusionInputError(f"camera '{cam.name}': index {index} out of range")
    width, height = cam.model.image_size
    labels = np.asarray(cam.labels)
    if labels.shape != (height, width):
        raise FusionInputError(
            f"camera '{cam.name}': label image has shape {labels.shape} (rows, cols) but its "
            f"calibration describes a {width}x{height} image; give one label per pixel"
        )
    if cam.instances is not None:
        segments = np.asarray(cam.instances)
        if segments.shape != labels.shape or segments.dtype.kind not in "iu":
            raise FusionInputError(
                f"camera '{cam.name}': instance image must be integer ids of the label "
                f"image's shape {labels.shape}, got {segments.dtype} {segments.shape}"
            )
    if cam.confidence is not None:
        conf_image = np.asarray(cam.confidence)
        if conf_image.shape != labels.shape:
            raise FusionInputError(
                f"camera '{cam.name}': confidence image shape {conf_image.shape} differs from "
                f"label image shape {labels.shape}"
            )
    return index
