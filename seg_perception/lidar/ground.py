"""Ground segmentation for roads, rooms and warehouses: a levelled, slope-limited height
grid that refuses steep faces. No learned weights.

Ground, here, is a surface a robot could stand on: locally near-horizontal, continuous
with the floor under the sensor and never far above it. Established methods fit the
ground *locally* (Patchwork++ a plane per polar bin checked for slope and height,
Autoware's scan_ground_filter a walk along each ray with slope limits, linefit lines per
angular segment); this module computes their shared ideas on 2D grids with whole-array
operations, so a 120k-point scan costs a few milliseconds on one core:

1. **Level the cloud.** The floor plane under the sensor is estimated from the lowest
   points of 1 m cells (:mod:`.ground_plane`), which gives the sensor height (unless
   ``sensor_height`` is set) and its tilt (up to ``max_tilt_deg``, after the known mount
   ``roll_deg`` / ``pitch_deg``); the cloud is rotated level when tilted by more than
   :data:`~.ground_plane.LEVEL_TOLERANCE_DEG`. No floor below the sensor (a wall in front of it, a
   sensor upside down): no ground, and a warning (logged once, and in the result).
2. **Refuse steep faces.** Beams that hit a wall, a curb riser or a table leg land at the
   same x, y one above the other; on a floor they land metres apart. Columns of
   ``cell_size / 4`` whose points rise more than ``tan(max_face_deg)`` times their
   diagonal within ``face_band`` (growing with range) of their lowest point are faces
   (:func:`~.ground_grid.face_points`): their points are never ground and never define
   it. A height grid alone calls the bottom of every wall and cabinet "floor" indoors.
3. Bin the remaining points into ``cell_size`` cells, keep each cell's lowest point, drop
   points below a global cone (``-sensor_height - tan(max_global_slope) * r -
   height_margin``) and *pits* (multipath returns under the road, far below their
   neighbours).
4. The highest surface under all lowest points that rises at most ``tan(max_slope)`` per
   metre (a slope-limited lower envelope anchored under the sensor; four running minima
   compute it exactly). A cell is ground when its lowest point lies within
   ``step_tolerance`` of it (a curb is, a car roof is not) and under the global cone, or
   when a chain of small steps joins it to the floor around the sensor or to the floor
   plane's level (:func:`~.ground_grid.connected_to_seeds`): the upper side of a drop
   (a loading dock, a platform beside its ramp) is floor too.
5. A ground cell's surface height is the mean of its points within ``seed_band`` of its
   lowest point; other cells borrow from ground cells within ``fill_radius``.
6. Every point is compared with the bilinear interpolation of that surface: within
   ``distance_threshold`` (+ ``distance_threshold_per_m`` * range) above it is ground,
   higher is obstacle, more than ``below_ground_threshold`` below is unknown. Face
   points are obstacles, except at the foot of a face standing on floor, where floor and
   face cannot be told apart: unknown.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

from seg_perception.core.cloud import cloud_xyz
from seg_perception.lidar import ground_grid as gg
from seg_perception.lidar.classes import GROUND, OBSTACLE, UNKNOWN
from seg_perception.lidar.ground_plane import level_cloud

#: The largest grid (cells) a parameter set may ask for: (2 * max_range / cell_size)^2.
MAX_GRID_CELLS = 16_000_000
#: Faces are looked for in columns of cell_size / FACE_SPLIT ...
FACE_SPLIT = 4
#: ... within this horizontal range (m): farther, beams hit a face too rarely to tell.
FACE_RANGE = 30.0
#: The face band grows by this per metre of range (m/m): beams' vertical gaps grow.
FACE_BAND_PER_M = 0.04

#: Ground cells this close to the floor plane (m) and the sensor (m) seed the floor
#: that smooth steps connect (:func:`~.ground_grid.connected_to_seeds`).
SEED_HEIGHT = 0.3
SEED_RANGE = 10.0
#: Cells anywhere at the floor plane's level (within this + this per metre, m) seed it
#: too: the far rim of a sunken bay is floor, though the bay's floor is lower and near.
LEVEL_HEIGHT = 0.1
LEVEL_HEIGHT_PER_M = 0.005

_log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class GroundParams:
    """Tuning of :func:`segment_ground`. The defaults serve roads (KITTI), rooms and
    warehouses alike: the sensor height and tilt are estimated from each cloud.

    Set ``sensor_height`` (the LiDAR's height above the floor) where the floor may be
    hidden; for sparser sensors (16/32 beams) a larger ``cell_size`` keeps enough points
    per cell; for noisier ones raise ``distance_threshold``.
    """

    sensor_height: float = 0.0
    """Height of the LiDAR origin above the ground under it (m); 0: estimated from each
    cloud."""
    max_tilt_deg: float = 20.0
    """Largest tilt of the floor (deg) estimated from each cloud, beyond roll_deg and
    pitch_deg; 0: the cloud is level once rotated by those."""
    roll_deg: float = 0.0
    """Known roll of the LiDAR mount (deg, REP-103), corrected before anything else."""
    pitch_deg: float = 0.0
    """Known pitch of the LiDAR mount (deg, REP-103; > 0: looking down)."""
    cell_size: float = 0.5
    """Grid cell edge (m): small enough to separate a curb from the road next to it."""
    max_slope_deg: float = 12.0
    """Local slope limit between cells (deg); ramps up to ~21 % grade pass."""
    max_face_deg: float = 35.0
    """Faces steeper than this (deg: walls, curb risers, furniture legs) are never ground."""
    face_band: float = 0.35
    """Height above a column's lowest point (m) within which a rise is a face, not an
    overhang such as a table top."""
    step_tolerance: float = 0.1
    """How far a cell's lowest point may sit above the slope-limited envelope (m): curbs."""
    max_global_slope_deg: float = 10.0
    """Global cone: ground lies within ``tan(this) * range + height_margin`` of the floor
    plane, whatever the local slopes add up to."""
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
        positive = ("cell_size", "seed_band", "distance_threshold", "max_range", "face_band")
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
        for name in ("max_slope_deg", "max_global_slope_deg", "max_tilt_deg"):
            value = getattr(self, name)
            if not 0 <= value < 90:
                raise ValueError(f"GroundParams.{name} must be in [0, 90) degrees, got {value}")
        if not 0 < self.max_face_deg <= 90:
            raise ValueError(
                f"GroundParams.max_face_deg must be in (0, 90], got {self.max_face_deg}"
            )
        for name in ("roll_deg", "pitch_deg"):
            if abs(getattr(self, name)) > 180:
                raise ValueError(f"GroundParams.{name} must be in [-180, 180] degrees")
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
    """Per-point output of :func:`segment_ground` (flat, one entry per input point), and
    what the segmenter found out about the sensor."""

    lidar_class: np.ndarray
    """uint8 ``UNKNOWN`` / ``GROUND`` / ``OBSTACLE`` (see :mod:`.classes`)."""
    height: np.ndarray
    """float32 height above the estimated ground (m); NaN where the point is invalid."""
    sensor_height: float | None = None
    """The sensor height used (m): the given one, or the estimate; None: no floor found."""
    tilt_deg: tuple[float, float] = (0.0, 0.0)
    """The sensor's roll and pitch relative to the floor (deg): given plus estimated (the
    cloud is levelled by the estimate only beyond :data:`~.ground_plane.LEVEL_TOLERANCE_DEG`)."""
    warnings: tuple[str, ...] = ()
    """Why there may be no ground (no floor below the sensor, upside down...)."""

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
    no_returns = ["the cloud has no valid returns (empty, NaN/inf, or out of range): no ground"]
    if n == 0:
        return _result(lidar_class, height, params.sensor_height or None, (0.0, 0.0), no_returns)

    x, y, z = columns
    with np.errstate(invalid="ignore", over="ignore"):
        range_sq = x * x + y * y + z * z
        valid = (range_sq >= params.min_range**2) & (range_sq <= params.max_range**2)
    index = None
    if not valid.all():  # NaN compares False above, so it is dropped here too
        index = np.flatnonzero(valid)
        x, y, z = x[index], y[index], z[index]
    if x.size == 0:
        return _result(lidar_class, height, params.sensor_height or None, (0.0, 0.0), no_returns)

    x, y, z, sensor_height, tilt, warnings = _level(x, y, z, params)
    if sensor_height is None:  # no floor: every valid point is something, none is ground
        classes = np.full(x.shape, OBSTACLE, dtype=np.uint8)
        above = np.full(x.shape, np.nan, dtype=np.float32)
    else:
        horizontal = np.sqrt(x * x + y * y)
        above, face, on_floor = _height_above_ground(x, y, z, horizontal, sensor_height, params)
        threshold = params.distance_threshold + params.distance_threshold_per_m * horizontal
        classes = np.full(above.shape, GROUND, dtype=np.uint8)
        low = above <= threshold
        classes[~low | face] = OBSTACLE
        # At the foot of a face standing on floor, floor and face cannot be told apart:
        # unknown, neither ground nor obstacle.
        classes[face & on_floor & low] = UNKNOWN
        classes[above < -params.below_ground_threshold] = UNKNOWN
    if index is None:
        lidar_class, height = classes, above
    else:
        lidar_class[index] = classes
        height[index] = above
    return _result(lidar_class, height, sensor_height, tilt, warnings)


def _result(lidar_class, height, sensor_height, tilt, warnings) -> GroundSegmentation:
    for text in warnings:
        if text not in _warned:  # once per process: clouds arrive at 10-20 Hz
            _warned.add(text)
            _log.warning("ground segmentation: %s", text)
    return GroundSegmentation(lidar_class, height, sensor_height, tilt, tuple(warnings))


# --------------------------------------------------------------------------- internals


def _xyz_columns(points: np.ndarray) -> np.ndarray:
    """(3, N) contiguous float32 x, y, z rows: row-wise math is several times faster.

    A plain (N, >=3) array is transposed in one copy; structured clouds go through
    :func:`cloud_xyz` (the one place that knows their layout) first.
    """
    array = np.asarray(points)
    if array.dtype.names is None and array.ndim == 2 and array.shape[1] >= 3:
        return np.ascontiguousarray(array[:, :3].T, dtype=np.float32)
    if array.dtype.names is not None and {"x", "y", "z"} <= set(array.dtype.names):
        out = np.empty((3, array.size), np.float32)  # one copy per field, (H, W) or (N,)
        for row, name in enumerate("xyz"):
            out[row] = array[name].reshape(-1)
        return out
    return np.ascontiguousarray(cloud_xyz(array, np.float32).T)  # its clear errors


def _level(x, y, z, params: GroundParams):
    """The points in a level frame, the sensor height (None: no floor), the roll and
    pitch (deg), and warnings (:func:`~.ground_plane.level_cloud`)."""
    return level_cloud(
        x, y, z, params.sensor_height or None, params.max_tilt_deg,
        (params.roll_deg, params.pitch_deg),
    )  # fmt: skip


def _height_above_ground(x, y, z, horizontal, sensor_height: float, params: GroundParams):
    """Height of each (valid, levelled) point above the estimated local ground surface,
    and whether it lies on a steep face."""
    c = params.cell_size
    tan_global = math.tan(math.radians(params.max_global_slope_deg))
    slope = math.tan(math.radians(params.max_slope_deg))
    floor = -sensor_height - params.height_margin - np.float32(tan_global) * horizontal
    candidate = z >= floor
    fine = c / FACE_SPLIT
    rise = min(fine * math.sqrt(2) * math.tan(math.radians(params.max_face_deg)), params.face_band)
    band = (params.face_band, FACE_BAND_PER_M)
    lift = params.distance_threshold / 2
    grid = gg.Grid.around(x, y, c)
    window = (
        max(grid.x0, -FACE_RANGE),
        max(grid.y0, -FACE_RANGE),
        min(grid.x0 + grid.nx * c, FACE_RANGE),
        min(grid.y0 + grid.ny * c, FACE_RANGE),
    )
    face = gg.face_points(x, y, z, horizontal, candidate, window, fine, rise, band, lift)
    candidate &= ~face

    inv = np.float32(1.0 / c)
    fx = (x - np.float32(grid.x0)) * inv  # continuous cell coordinates
    fy = (y - np.float32(grid.y0)) * inv
    # Flat cell index, computed in float32 (exact: the grid has < 2**24 cells) and cast once.
    cell = (np.floor(fx) * np.float32(grid.ny) + np.floor(fy)).astype(np.intp)
    size = grid.nx * grid.ny

    lowest = gg.lowest(cell, z, candidate, size)
    pit_floor = gg.pit_floor(lowest.reshape(grid.nx, grid.ny), slope * c, params.pit_depth)
    pits = lowest < pit_floor  # cells whose lowest point is a pit: find their next lowest
    if pits.any():
        again = candidate & pits[cell]
        again &= z >= pit_floor[cell]
        lowest[pits] = np.inf
        np.minimum.at(lowest, cell[again], z[again])
    lowest_2d = lowest.reshape(grid.nx, grid.ny)

    # The slope-limited envelope under all lowest points, anchored under the sensor.
    anchored = lowest_2d.copy()
    ox, oy = int(-grid.x0 / c), int(-grid.y0 / c)
    anchored[ox, oy] = min(anchored[ox, oy], -sensor_height)
    envelope = gg.slope_envelope(anchored, np.float32(slope * c))
    reach = grid.centers_range()
    ceiling = -sensor_height + params.height_margin + tan_global * reach
    with np.errstate(invalid="ignore"):  # inf - inf = NaN compares False: empty cells
        under = lowest_2d <= ceiling
        classic = (lowest_2d - envelope <= params.step_tolerance) & under
        connected = gg.connected_to_seeds(
            lowest_2d,
            np.float32(params.step_tolerance + slope * c),
            (classic & (np.abs(lowest_2d + sensor_height) <= SEED_HEIGHT) & (reach <= SEED_RANGE))
            | (np.abs(lowest_2d + sensor_height) <= LEVEL_HEIGHT + LEVEL_HEIGHT_PER_M * reach),
        )
    ground_cell = (classic | (connected & under)).reshape(-1)

    # Surface height of ground cells: mean of the seed band above the lowest point.
    base = lowest[cell]  # pit points lie below it (and faces are not candidates)
    seed = candidate & ground_cell[cell] & (z >= base) & (z <= base + np.float32(params.seed_band))
    seed_cells = cell[seed]
    count = np.bincount(seed_cells, minlength=size).astype(np.float32)
    total = np.bincount(seed_cells, weights=z[seed], minlength=size).astype(np.float32)
    has_seed = count > 0
    surface = np.where(has_seed, total / np.maximum(count, 1), 0).reshape(grid.nx, grid.ny)
    weight = has_seed.astype(np.float32).reshape(grid.nx, grid.ny)
    surface = gg.fill(surface, weight, envelope, int(params.fill_radius))

    above = z - gg.bilinear(surface, fx - np.float32(0.5), fy - np.float32(0.5))
    # Faces standing on real floor (a ground cell within fill_radius): their foot.
    radius = int(params.fill_radius)
    floor_near = cv2.dilate(weight, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0
    on_floor = np.zeros_like(face)
    on_floor[face] = floor_near.reshape(-1)[cell[face]]
    return above, face, on_floor
