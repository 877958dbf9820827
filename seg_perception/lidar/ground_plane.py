"""The floor under the sensor: its height below the LiDAR and its tilt, from the cloud.

Why estimate: a grid ground segmenter needs the sensor's height to anchor the ground
under the vehicle, and a level frame to compare heights across metres. Users get neither
right for free: a robot's LiDAR is not at KITTI's 1.73 m, and sensors are mounted pitched
down to see the floor close by. A height that is off by a metre labels walls or nothing;
a 10 deg pitch puts the floor 1.7 m "up" 10 m ahead.

How: the lowest point of every 1 m cell within :data:`ESTIMATE_RANGE` (a subsample of the
cloud is enough) is a floor candidate. Planes through random triples of them (RANSAC,
a fixed seed, so results are deterministic) are scored by the candidates they fit minus
those clearly *below* them: a table top or shelf deck fits many candidates too, but the
floor patches around it lie below it, while nothing (except rare multipath returns) lies
below the floor. The best plane is refined by least squares over its inliers. Planes
tilted more than ``max_tilt_deg`` are never candidates, so a wall is not a floor.

When no plane with enough support lies below the sensor (a wall right in front of it, a
cloud of the sky, a sensor mounted upside down or with z pointing down), there is no
floor estimate and the caller says so instead of guessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Floor candidates are the lowest points of cells of this size (m) ...
ESTIMATE_CELL = 1.0
#: ... within this horizontal range (m), where the floor is seen densely.
ESTIMATE_RANGE = 30.0
#: At most this many points are binned (a regular subsample of larger clouds).
ESTIMATE_POINTS = 8192
#: Below this tilt (deg) the cloud is used as it is: the local slope limits absorb it,
#: and a road's camber would otherwise read as a tilt of a degree or two.
LEVEL_TOLERANCE_DEG = 2.0
#: Tilt tolerance (deg) of the floor search that only estimates the height.
HEIGHT_SEARCH_TILT_DEG = 5.0
#: RANSAC hypotheses (triples of candidates).
HYPOTHESES = 64
#: Hypotheses are scored on at most this many candidates.
SCORED_CANDIDATES = 600
#: A candidate this far below a plane (m) counts against it: nothing but rare multipath
#: returns lies below a floor, while a sidewalk's plane has the road below it.
BELOW = 0.12
#: A plane needs this many inlier cells to be a floor.
MIN_SUPPORT = 6
#: A floor's inliers spread at least this wide across their narrowest direction (m).
MIN_WIDTH = 0.8
#: A floor this well supported is not second-guessed by a search above the sensor.
CONFIDENT_SUPPORT = 60


@dataclass(frozen=True)
class FloorPlane:
    """The floor in the sensor frame: ``normal . p = -height`` for floor points p.

    ``normal`` is the unit up vector (z >= 0 component towards the sensor side), ``height``
    the sensor origin's distance above the plane, ``support`` the inlier cells.
    """

    normal: np.ndarray
    height: float
    support: int
    width: float = 0.0
    """Twice the standard deviation of the inliers across their narrowest direction (m):
    a floor spreads around the sensor; the lowest points along a wall form a line."""

    @property
    def tilt_deg(self) -> float:
        """Angle between the floor's normal and the sensor's z axis (deg)."""
        return math.degrees(math.acos(min(1.0, float(self.normal[2]))))

    def roll_pitch_deg(self) -> tuple[float, float]:
        """The sensor's roll and pitch relative to the floor (REP-103, deg; pitch > 0:
        looking down) that this floor implies."""
        nx, ny, nz = (float(v) for v in self.normal)
        pitch = -math.atan2(nx, math.hypot(ny, nz))
        roll = math.atan2(ny, nz)
        return math.degrees(roll), math.degrees(pitch)


@dataclass(frozen=True)
class PlaneSearch:
    """Result of :func:`estimate_floor`: the floor (None: none found) and, when the
    largest horizontal surface lies *above* the sensor, that surface's support."""

    floor: FloorPlane | None
    above_support: int = 0


def estimate_floor(x: np.ndarray, y: np.ndarray, z: np.ndarray, max_tilt_deg: float) -> PlaneSearch:
    """The floor plane of the valid points ``x, y, z`` (float32 arrays, sensor frame)."""
    step = max(1, math.ceil(len(x) / ESTIMATE_POINTS))
    xs, ys, zs = x[::step], y[::step], z[::step]
    near = xs * xs + ys * ys <= np.float32(ESTIMATE_RANGE**2)
    xs, ys, zs = xs[near], ys[near], zs[near]
    if len(xs) < 3:
        return PlaneSearch(None)
    n_side = int(2 * ESTIMATE_RANGE / ESTIMATE_CELL) + 1
    ix = ((xs + np.float32(ESTIMATE_RANGE)) * np.float32(1 / ESTIMATE_CELL)).astype(np.intp)
    iy = ((ys + np.float32(ESTIMATE_RANGE)) * np.float32(1 / ESTIMATE_CELL)).astype(np.intp)
    cell = np.clip(ix, 0, n_side - 1) * n_side + np.clip(iy, 0, n_side - 1)
    lowest = np.full(n_side * n_side, np.inf, np.float32)
    np.minimum.at(lowest, cell, zs)
    # The lowest point itself (x, y of the point, not of the cell centre).
    is_lowest = zs <= lowest[cell]
    first = np.full(n_side * n_side, -1, np.intp)
    first[cell[is_lowest][::-1]] = np.flatnonzero(is_lowest)[::-1]
    pick = first[first >= 0]
    candidates = np.column_stack([xs[pick], ys[pick], zs[pick]]).astype(np.float64)
    if len(candidates) < MIN_SUPPORT:
        return PlaneSearch(None)
    if len(candidates) > SCORED_CANDIDATES:  # scoring a regular subset is as good
        candidates = candidates[:: math.ceil(len(candidates) / SCORED_CANDIDATES)]
    below = _best_plane(candidates, max_tilt_deg, below_sensor=True)
    if below is not None and below.support >= CONFIDENT_SUPPORT:
        return PlaneSearch(below)  # a well-supported floor: no need to look above
    above = _best_plane(candidates, max_tilt_deg, below_sensor=False)
    above_support = above.support if above is not None else 0
    return PlaneSearch(below, above_support)


def _best_plane(points: np.ndarray, max_tilt_deg: float, below_sensor: bool) -> FloorPlane | None:
    """RANSAC over ``points`` (M, 3) for the best near-horizontal plane on one side of the
    sensor; None when no plane has :data:`MIN_SUPPORT` inliers."""
    rng = np.random.default_rng(0)
    m = len(points)
    triples = rng.integers(0, m, size=(HYPOTHESES, 3))
    p0, p1, p2 = (points[triples[:, k]] for k in range(3))
    normal = np.cross(p1 - p0, p2 - p0)
    length = np.linalg.norm(normal, axis=1)
    normal = normal / np.where(length > 1e-9, length, 1.0)[:, None]
    normal *= np.where(normal[:, 2] < 0, -1.0, 1.0)[:, None]
    offset = -np.einsum("ij,ij->i", normal, p0)  # normal . p + offset = height above plane
    cos_tilt = math.cos(math.radians(max_tilt_deg))
    usable = (length > 1e-6) & (normal[:, 2] >= cos_tilt - 1e-9)
    # offset = the sensor origin's height above the plane.
    usable &= offset > 0.05 if below_sensor else offset < -0.05
    if not usable.any():
        return None
    normal, offset = normal[usable], offset[usable]
    heights = points @ normal.T + offset  # (M, H): each candidate's height above each plane
    reach = np.hypot(points[:, 0], points[:, 1])[:, None]
    inlier = np.abs(heights) <= _tolerance(reach)
    if below_sensor:
        score = inlier.sum(axis=0) - 2 * (heights < -BELOW).sum(axis=0)
    else:
        score = inlier.sum(axis=0)
    best = int(np.argmax(score))
    if inlier[:, best].sum() < MIN_SUPPORT:
        return None
    plane = _refine(points, inlier[:, best])
    if plane is None or (plane.height <= 0.05 if below_sensor else plane.height >= -0.05):
        return None
    if plane.width < MIN_WIDTH:  # the foot of a wall: a line, not a floor
        return None
    if plane.normal[2] < cos_tilt - 1e-9:
        return None
    return plane


def _refine(points: np.ndarray, inlier: np.ndarray) -> FloorPlane | None:
    """Least-squares plane ``z = a x + b y + c`` through the inliers, twice (the second
    time over the points within 0.1 m of the first fit)."""
    chosen = inlier
    for _ in range(2):
        p = points[chosen]
        if len(p) < 3:
            return None
        design = np.column_stack([p[:, 0], p[:, 1], np.ones(len(p))])
        (a, b, c), *_ = np.linalg.lstsq(design, p[:, 2], rcond=None)
        residual = points[:, 2] - (a * points[:, 0] + b * points[:, 1] + c)
        reach = np.hypot(points[:, 0], points[:, 1])
        chosen = np.abs(residual) <= _tolerance(reach)
    scale = math.sqrt(a * a + b * b + 1.0)
    normal = np.array([-a, -b, 1.0]) / scale
    spread = np.cov(points[chosen, :2].T) if chosen.sum() > 2 else np.zeros((2, 2))
    width = 2.0 * math.sqrt(max(float(np.linalg.eigvalsh(spread)[0]), 0.0))
    return FloorPlane(normal, float(-c / scale), int(chosen.sum()), width)


def _tolerance(reach: np.ndarray) -> np.ndarray:
    """How far (m) a floor candidate may lie off the plane at horizontal range ``reach``:
    less than a curb, plus the lowest point's spread in a far, sparsely hit cell."""
    return 0.05 + 0.005 * reach


def leveling_rotation(normal: np.ndarray) -> np.ndarray:
    """The rotation (3, 3) that turns ``normal`` into +z with the smallest turn (the
    cloud's x axis stays in the vertical plane it spanned)."""
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    axis = np.cross(n, [0.0, 0.0, 1.0])
    s, c = np.linalg.norm(axis), float(n[2])
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * (kx @ kx)


def mount_rotation(roll_deg: float, pitch_deg: float) -> np.ndarray:
    """Sensor frame -> level frame for a mount rolled and pitched by these angles
    (REP-103: R = Ry(pitch) Rx(roll))."""
    r, p = math.radians(roll_deg), math.radians(pitch_deg)
    cr, sr, cp, sp = math.cos(r), math.sin(r), math.cos(p), math.sin(p)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    return ry @ rx


def rotate(rotation: np.ndarray, x, y, z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rotation @ (x, y, z)`` on float32 coordinate rows."""
    r = rotation.astype(np.float32)
    return (
        r[0, 0] * x + r[0, 1] * y + r[0, 2] * z,
        r[1, 0] * x + r[1, 1] * y + r[1, 2] * z,
        r[2, 0] * x + r[2, 1] * y + r[2, 2] * z,
    )


def level_cloud(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    sensor_height: float | None,
    max_tilt_deg: float,
    mount_deg: tuple[float, float] = (0.0, 0.0),
):
    """Rotate the points by the known mount (roll, pitch) and by the floor's estimated
    tilt (up to ``max_tilt_deg``; 0: none) into a level frame.

    Returns ``x, y, z, height, (roll, pitch), warnings``: ``height`` is ``sensor_height``
    when given, else the estimate; None when there is no floor to stand on (then the
    warnings say why). The floor is searched for even when the height is given, for the
    tilt and for a sensor mounted upside down.
    """
    warnings: list[str] = []
    tilt = mount_deg
    if mount_deg[0] or mount_deg[1]:
        x, y, z = rotate(mount_rotation(*mount_deg), x, y, z)
    if sensor_height is not None and max_tilt_deg == 0:
        return x, y, z, sensor_height, tilt, warnings
    # Without tilt estimation the height still comes from a plane search, a few degrees wide.
    search = estimate_floor(x, y, z, max(max_tilt_deg, HEIGHT_SEARCH_TILT_DEG))
    floor = search.floor
    if floor is not None and search.above_support > 3 * floor.support:
        warnings.append(
            "the largest flat surface lies above the sensor and little below it: is the "
            "LiDAR mounted upside down, or its z axis pointing down? No ground labelled"
        )
        return x, y, z, None, tilt, warnings
    if floor is None:
        if sensor_height is None:
            warnings.append(
                "no floor found below the sensor (a wall in front of it, or no returns from "
                "the ground?) and sensor_height is not set: no ground labelled"
            )
        return x, y, z, sensor_height, tilt, warnings
    if max_tilt_deg > 0:
        roll, pitch = floor.roll_pitch_deg()  # reported even when too small to level
        tilt = (tilt[0] + roll, tilt[1] + pitch)
        if floor.tilt_deg > LEVEL_TOLERANCE_DEG:
            x, y, z = rotate(leveling_rotation(floor.normal), x, y, z)
    height = sensor_height if sensor_height is not None else floor.height
    return x, y, z, height, tilt, warnings
