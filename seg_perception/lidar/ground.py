"""Ground segmentation for real roads: a slope-limited height grid, no learned weights.

Why not one RANSAC plane: roads bank, climb and dip, sidewalks sit a curb higher than the
road, and one plane fits none of that. Established methods fit the ground *locally*:
Patchwork/Patchwork++ fit a plane per polar bin and check its slope and height, Autoware's
scan_ground_filter walks each ray outwards with a global and a local slope limit, and
Himmelsbach et al. (linefit) fit lines per angular segment. This module takes their shared
ideas (lowest points as ground candidates, local slope limits, a global height cone
around the sensor, a distance threshold to a local surface) and computes them on a 2D
grid with whole-array operations, so a 120k-point scan costs a few milliseconds in numpy:

1. Bin the valid points into ``cell_size`` cells of a horizontal grid and keep each cell's
   lowest point (``np.minimum.at``). Points below a *global cone*
   (``-sensor_height - tan(max_global_slope) * r - height_margin``) never count.
2. Reject *pits*: lowest points far below their neighbourhood (below the lowest
   neighbour, or below a morphological closing of the lowest-point map) are multipath
   reflections under the road, not ground; left in, one would drag the ground down for
   metres around it. Cells fall back to their next-lowest points.
3. Compute the highest surface under all lowest points that rises at most
   ``tan(max_slope)`` per metre (a slope-limited lower envelope, anchored at the ground
   under the sensor). It is a min-plus convolution with a cone, separable under the L1
   metric, so four ``np.minimum.accumulate`` passes compute it exactly. A cell is ground
   when its lowest point lies within ``step_tolerance`` of that envelope (so a curb is
   ground and a car roof is not) and inside the global cone.
4. A ground cell's surface height is the mean of its points within ``seed_band`` of its
   lowest point (Patchwork's seed idea); cells without ground borrow the mean of nearby
   ground cells (normalized convolution), else the envelope.
5. Every point is compared with the bilinear interpolation of that surface: within
   ``distance_threshold`` (+ ``distance_threshold_per_m`` * range) above it is ground,
   higher is obstacle, more than ``below_ground_threshold`` below is unknown.

The grid is horizontal in the cloud's frame: give clouds in a frame whose z axis is close
to vertical (a LiDAR mounted level, or after the mounting rotation). Slopes and tilts up
to ``max_slope_deg`` are handled locally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

from seg_perception.core.cloud import cloud_xyz
from seg_perception.lidar.classes import GROUND, OBSTACLE, UNKNOWN

#: The largest grid (cells) a parameter set may ask for: (2 * max_range / cell_size)^2.
MAX_GRID_CELLS = 16_000_000


@dataclass(frozen=True)
class GroundParams:
    """Tuning of :func:`segment_ground`. Defaults suit a roof-mounted 64-beam LiDAR (KITTI).

    For another vehicle set ``sensor_height`` first (the LiDAR's height above the road);
    for sparser sensors (16/32 beams) a larger ``cell_size`` keeps enough points per cell;
    for noisier ones raise ``distance_threshold``.
    """

    sensor_height: float = 1.73
    """Height of the LiDAR origin above the ground under the vehicle (m)."""
    cell_size: float = 0.5
    """Grid cell edge (m): small enough to separate a curb from the road next to it."""
    max_slope_deg: float = 12.0
    """Local slope limit between cells (deg); ramps up to ~21 % grade pass."""
    step_tolerance: float = 0.1
    """How far a cell's lowest point may sit above the slope-limited envelope (m): curbs."""
    max_global_slope_deg: float = 10.0
    """Global cone: ground lies within ``tan(this) * range + height_margin`` of the sensor
    height, whatever the local slopes add up to."""
    height_margin: float = 0.5
    """Height allowance of the global cone at the sensor (m)."""
    seed_band: float = 0.1
    """Points this far above a cell's lowest point estimate its surface height (m)."""
    distance_threshold: float = 0.08
    """Points up to this far above the local surface are ground (m)."""
    distance_threshold_per_m: float = 0.0
    """Added to ``distance_threshold`` per metre of horizontal range, for noisy far rings."""
    below_ground_threshold: float = 0.5
    """Points more than this below the surface are reflections: ``UNKNOWN`` (m)."""
    pit_depth: float = 0.2
    """A lowest point this much below every neighbour (beyond the slope) is a pit (m)."""
    fill_radius: int = 2
    """Cells without ground borrow the surface of ground cells this many cells away."""
    min_range: float = 0.5
    """Closer returns (3D range, m) are the vehicle itself or "no return" zeros: unknown."""
    max_range: float = 120.0
    """Farther returns (3D range, m) are unknown; it also bounds the grid."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"GroundParams.{item.name} must be a finite number, got {value!r}")
        positive = ("cell_size", "seed_band", "distance_threshold", "max_range")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"GroundParams.{name} must be > 0, got {getattr(self, name)}")
        non_negative = (
            "sensor_height",
            "step_tolerance",
            "height_margin",
            "distance_threshold_per_m",
            "below_ground_threshold",
            "pit_depth",
            "fill_radius",
            "min_range",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"GroundParams.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_slope_deg", "max_global_slope_deg"):
            value = getattr(self, name)
            if not 0 <= value < 90:
                raise ValueError(f"GroundParams.{name} must be in [0, 90) degrees, got {value}")
        if self.min_range >= self.max_range:
            raise ValueError(
                f"GroundParams needs min_range < max_range, got {self.min_range}, {self.max_range}"
            )
        if (2 * self.max_range / self.cell_size + 2) ** 2 > MAX_GRID_CELLS:
            raise ValueError(
                f"cell_size {self.cell_size} m over max_range {self.max_range} m needs more than "
                f"{MAX_GRID_CELLS} grid cells: use a larger cell_size or a smaller max_range"
            )
        if not float(self.fill_radius).is_integer():
            raise ValueError("GroundParams.fill_radius must be a whole number of cells")


@dataclass
class GroundSegmentation:
    """Per-point output of :func:`segment_ground` (flat, one entry per input point)."""

    lidar_class: np.ndarray
    """uint8 ``UNKNOWN`` / ``GROUND`` / ``OBSTACLE`` (see :mod:`.classes`)."""
    height: np.ndarray
    """float32 height above the estimated ground (m); NaN where the point is invalid."""

    @property
    def ground(self) -> np.ndarray:
        return self.lidar_class == GROUND

    @property
    def obstacle(self) -> np.ndarray:
        return self.lidar_class == OBSTACLE


class GroundSegmenter:
    """Callable holder of :class:`GroundParams` (validated once)."""

    def __init__(self, params: GroundParams | None = None) -> None:
        self.params = params or GroundParams()

    def segment(self, points: np.ndarray) -> GroundSegmentation:
        return segment_ground(points, self.params)


def segment_ground(points: np.ndarray, params: GroundParams | None = None) -> GroundSegmentation:
    """Classify every point of ``points`` as ground, obstacle or unknown.

    ``points`` is anything :func:`~seg_perception.core.cloud.cloud_xyz` reads: an (N, >=3)
    array or a structured (possibly organized, NaN-holed) cloud with x, y, z fields. The
    result is flat, in the input's point order.
    """
    params = params or GroundParams()
    columns = _xyz_columns(points)
    n = columns.shape[1]
    lidar_class = np.full(n, UNKNOWN, dtype=np.uint8)
    height = np.full(n, np.nan, dtype=np.float32)
    if n == 0:
        return GroundSegmentation(lidar_class, height)

    x, y, z = columns
    with np.errstate(invalid="ignore", over="ignore"):
        horizontal_sq = x * x + y * y
        range_sq = horizontal_sq + z * z
        valid = (range_sq >= params.min_range**2) & (range_sq <= params.max_range**2)
    index = None
    if not valid.all():  # NaN compares False above, so it is dropped here too
        index = np.flatnonzero(valid)
        if index.size == 0:
            return GroundSegmentation(lidar_class, height)
        x, y, z, horizontal_sq = x[index], y[index], z[index], horizontal_sq[index]
    horizontal = np.sqrt(horizontal_sq)

    above = _height_above_ground(x, y, z, horizontal, params)
    threshold = params.distance_threshold + params.distance_threshold_per_m * horizontal
    classes = np.full(above.shape, GROUND, dtype=np.uint8)
    classes[above > threshold] = OBSTACLE
    classes[above < -params.below_ground_threshold] = UNKNOWN
    if index is None:
        lidar_class, height = classes, above
    else:
        lidar_class[index] = classes
        height[index] = above
    return GroundSegmentation(lidar_class, height)


# --------------------------------------------------------------------------- internals


def _xyz_columns(points: np.ndarray) -> np.ndarray:
    """(3, N) contiguous float32 x, y, z rows: row-wise math is several times faster.

    A plain (N, >=3) array is transposed in one copy; structured clouds go through
    :func:`cloud_xyz` (the one place that knows their layout) first.
    """
    array = np.asarray(points)
    if array.dtype.names is None and array.ndim == 2 and array.shape[1] >= 3:
        return np.ascontiguousarray(array[:, :3].T, dtype=np.float32)
    return np.ascontiguousarray(cloud_xyz(array, np.float32).T)


@dataclass(frozen=True)
class _Grid:
    x0: float
    y0: float
    nx: int
    ny: int
    cell: float

    @classmethod
    def around(cls, x: np.ndarray, y: np.ndarray, cell: float) -> _Grid:
        """A grid covering the points and the sensor (whose cell anchors the envelope)."""
        x0 = math.floor(min(float(x.min()), 0.0) / cell) * cell
        y0 = math.floor(min(float(y.min()), 0.0) / cell) * cell
        nx = max(int((max(float(x.max()), 0.0) - x0) / cell) + 2, 2)
        ny = max(int((max(float(y.max()), 0.0) - y0) / cell) + 2, 2)
        return cls(x0, y0, nx, ny, cell)

    def centers_range(self) -> np.ndarray:
        """Horizontal distance of every cell centre from the sensor, (nx, ny) float32."""
        cx = (self.x0 + (np.arange(self.nx, dtype=np.float32) + 0.5) * self.cell)[:, None]
        cy = (self.y0 + (np.arange(self.ny, dtype=np.float32) + 0.5) * self.cell)[None, :]
        return np.sqrt(cx * cx + cy * cy)


def _height_above_ground(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    horizontal: np.ndarray,
    params: GroundParams,
) -> np.ndarray:
    """Height of each (valid) point above the estimated local ground surface."""
    c = params.cell_size
    grid = _Grid.around(x, y, c)
    inv = np.float32(1.0 / c)
    fx = (x - np.float32(grid.x0)) * inv  # continuous cell coordinates
    fy = (y - np.float32(grid.y0)) * inv
    # Flat cell index, computed in float32 (exact: the grid has < 2**24 cells) and cast once.
    cell = (np.floor(fx) * np.float32(grid.ny) + np.floor(fy)).astype(np.intp)
    size = grid.nx * grid.ny

    tan_global = math.tan(math.radians(params.max_global_slope_deg))
    slope = math.tan(math.radians(params.max_slope_deg))
    floor = -params.sensor_height - params.height_margin - np.float32(tan_global) * horizontal
    candidate = z >= floor

    lowest = _lowest(cell, z, candidate, size)
    pit_floor = _pit_floor(lowest.reshape(grid.nx, grid.ny), slope * c, params.pit_depth)
    candidate &= z >= pit_floor[cell]
    lowest = _lowest(cell, z, candidate, size)
    lowest_2d = lowest.reshape(grid.nx, grid.ny)

    # The slope-limited envelope under all lowest points, anchored under the sensor.
    anchored = lowest_2d.copy()
    ox, oy = int(-grid.x0 / c), int(-grid.y0 / c)
    anchored[ox, oy] = min(anchored[ox, oy], -params.sensor_height)
    envelope = _slope_envelope(anchored, np.float32(slope * c))
    ceiling = -params.sensor_height + params.height_margin + tan_global * grid.centers_range()
    ground_cell = (lowest_2d - envelope <= params.step_tolerance) & (lowest_2d <= ceiling)
    ground_cell = ground_cell.reshape(-1)  # inf - inf = NaN compares False: empty cells

    # Surface height of ground cells: mean of the seed band above the lowest point.
    seed = candidate & ground_cell[cell] & (z <= lowest[cell] + np.float32(params.seed_band))
    seed_cells = cell[seed]
    count = np.bincount(seed_cells, minlength=size).astype(np.float32)
    total = np.bincount(seed_cells, weights=z[seed], minlength=size).astype(np.float32)
    has_seed = count > 0
    surface = np.where(has_seed, total / np.maximum(count, 1), 0).reshape(grid.nx, grid.ny)
    weight = has_seed.astype(np.float32).reshape(grid.nx, grid.ny)
    surface = _fill(surface, weight, envelope, int(params.fill_radius))

    return z - _bilinear(surface, fx - np.float32(0.5), fy - np.float32(0.5))


def _lowest(cell: np.ndarray, z: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """Lowest ``z`` per cell over the points in ``mask`` (+inf where none).

    Masked-out points become +inf rather than being gathered out: cheaper, same result.
    """
    lowest = np.full(size, np.inf, dtype=np.float32)
    np.minimum.at(lowest, cell, np.where(mask, z, np.float32(np.inf)))
    return lowest


def _pit_floor(lowest: np.ndarray, step: float, depth: float) -> np.ndarray:
    """Per cell, the height below which a lowest point is a pit (flat, float32).

    Three tests, the highest floor wins: lower than the lowest of the 8 neighbours, or of
    the 16 cells around those, by more than the slope allows plus ``depth`` (one- and
    two-cell pits); and lower than the grey-level closing (dilate, then erode, 5x5 cells)
    of the lowest points by more than ``depth`` plus the slope over 4 cells: a closing
    fills any pit narrower than the window, such as a whole ring segment of multipath
    returns lying under the road, which the ring tests miss because its cells neighbour
    each other. Empty cells take no part (-inf for the dilation, +inf for the erosion).

    A pit must be *surrounded*: each test needs half of its neighbourhood occupied. In
    sparse far areas a ground cell may have only a wall or a bush beside it, and is lower
    than all of those without being a pit.
    """
    occupied = np.isfinite(lowest)
    support = occupied.astype(np.float32)
    floors = []
    for kernel, slope_cells in ((_ring_kernel(1), 1.5), (_ring_kernel(2), 2.9)):
        neighbours = cv2.filter2D(support, -1, kernel.astype(np.float32),
                                  borderType=cv2.BORDER_CONSTANT)  # fmt: skip
        floor = _erode(lowest, kernel) - np.float32(slope_cells * step + depth)
        floors.append(np.where(neighbours >= kernel.sum() / 2, floor, -np.inf))
    window = np.ones((5, 5), np.uint8)
    dilated = cv2.dilate(
        np.where(occupied, lowest, np.float32(-np.inf)),
        window,
        borderType=cv2.BORDER_CONSTANT,
        borderValue=-np.inf,
    )
    dilated[np.isneginf(dilated)] = np.inf
    closed = _erode(dilated, window) - np.float32(4 * step + depth)
    neighbours = cv2.boxFilter(support, -1, (5, 5), normalize=False, borderType=cv2.BORDER_CONSTANT)
    floors.append(np.where(neighbours >= 12.5, closed, -np.inf))
    floor = np.maximum(np.maximum(floors[0], floors[1]), floors[2]).astype(np.float32)
    return floor.reshape(-1)


def _ring_kernel(radius: int) -> np.ndarray:
    """Square ring of cells at Chebyshev distance ``radius`` (1: the 8 neighbours; 2: the
    16 cells around them)."""
    size = 2 * radius + 1
    kernel = np.ones((size, size), np.uint8)
    kernel[1:-1, 1:-1] = 0
    return kernel


def _erode(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Minimum over ``kernel``; outside the grid counts as empty (+inf)."""
    return cv2.erode(image, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=np.inf)


def _slope_envelope(heights: np.ndarray, step: np.float32) -> np.ndarray:
    """``min over cells c' of heights[c'] + step * L1(c, c')``: the highest surface below
    every cell that rises at most ``step`` per cell along the grid axes.

    Separable: along each axis, ``min_j h[j] + step * |i - j|`` is a forward and a backward
    running minimum of ``h -/+ step * j``.
    """
    return _envelope_axis0(_envelope_axis0(heights.T, step).T, step)


def _envelope_axis0(heights: np.ndarray, step: np.float32) -> np.ndarray:
    """The 1D envelope along axis 0 (running minima along axis 0 vectorize over rows)."""
    heights = np.ascontiguousarray(heights)
    ramp = (np.arange(heights.shape[0], dtype=np.float32) * step)[:, None]
    forward = np.minimum.accumulate(heights - ramp, axis=0) + ramp
    backward = np.minimum.accumulate((heights + ramp)[::-1], axis=0)[::-1] - ramp
    return np.minimum(forward, backward)


def _fill(surface: np.ndarray, weight: np.ndarray, envelope: np.ndarray, radius: int) -> np.ndarray:
    """Give cells without ground the mean surface of ground cells within ``radius`` cells
    (normalized convolution), never above the envelope; the envelope where none is near."""
    if radius > 0:
        k = (2 * radius + 1, 2 * radius + 1)
        num = cv2.blur(surface * weight, k, borderType=cv2.BORDER_CONSTANT)
        den = cv2.blur(weight, k, borderType=cv2.BORDER_CONSTANT)
        with np.errstate(invalid="ignore", divide="ignore"):
            borrowed = np.where(den > 1e-6, np.minimum(num / den, envelope), envelope)
    else:
        borrowed = envelope
    return np.where(weight > 0, surface, borrowed).astype(np.float32, copy=False)


def _bilinear(grid: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``grid`` (values at cell centres) at continuous indices.

    float32 throughout and ``intp`` gathers: a stray float64 or int32 index doubles the
    cost of this, the most point-heavy step.
    """
    nx, ny = grid.shape
    u0 = np.clip(np.floor(u), 0, nx - 2)
    v0 = np.clip(np.floor(v), 0, ny - 2)
    a = np.clip(u - u0, 0, 1)
    b = np.clip(v - v0, 0, 1)
    i00 = (u0 * np.float32(ny) + v0).astype(np.intp)  # exact: the grid has < 2**24 cells
    flat = grid.reshape(-1)
    h00 = np.take(flat, i00)
    h01 = np.take(flat, i00 + 1)
    h10 = np.take(flat, i00 + ny)
    h11 = np.take(flat, i00 + (ny + 1))
    top = h00 + (h01 - h00) * b
    bottom = h10 + (h11 - h10) * b
    return top + (bottom - top) * a
