"""The sensors of the sample scenes: spinning LiDAR models, cameras (pinhole or plumb_bob
lenses), how they are mounted on the ego vehicle, and how the ego moves.

Everything here is plain numpy and exact: the scene generator ray casts with these
models, and tests compare the project's own camera model and fusion against them.

Conventions (shared with :mod:`.scene`):

* LiDAR frame, REP-103: x forward, y left, z up. Ring 0 is the top beam (range-image
  row 0). A sweep starts behind the sensor (azimuth pi) and turns clockwise seen from
  above, like a Velodyne; column ``k`` fires at ``k / (num_columns * rotation_hz)``
  seconds after the sweep start, all rings of a column at once (like an Ouster).
* Camera body x forward; images use the optical frame (z forward, x right, y down).
  ``distortion`` holds plumb_bob coefficients (k1, k2, p1, p2, k3) of the raw image; the
  rectified image of the same camera is the pinhole image of K (P = [K | 0], R = I).
* Times are seconds after the sweep start (the cloud's header stamp).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from seg_perception.core.camera_model import CameraModel

TimeField = Literal["time", "t"]
ImageProjection = Literal["rectified", "raw"]


# ----------------------------------------------------------------------------- LiDAR

#: Velodyne VLP-32C beam elevations (deg), top first: dense around the horizon.
VLP32C_ELEVATIONS_DEG = (
    15.0, 10.333, 7.0, 4.667, 3.333, 2.333, 1.667, 1.333, 1.0, 0.667, 0.333, 0.0,
    -0.333, -0.667, -1.0, -1.333, -1.667, -2.0, -2.333, -2.667, -3.0, -3.333, -3.667,
    -4.0, -4.667, -5.333, -6.148, -7.254, -8.843, -11.31, -15.639, -25.0,
)  # fmt: skip


@dataclass(frozen=True)
class LidarSpec:
    """A spinning multi-beam LiDAR; defaults resemble the Velodyne HDL-64E of KITTI.

    Beams are evenly spaced between ``fov_up_deg`` and ``fov_down_deg`` unless
    ``elevations_deg`` lists them (top first; ``num_beams`` must then match). Hits beyond
    ``max_range`` or closer than ``min_range`` are dropped like real no-returns.
    ``range_noise_sigma`` (m) adds gaussian noise along the beam *after* the truth
    (class, visibility) has been computed on the exact surface point. The sensor turns at
    ``rotation_hz``; ``time_field`` names the per-point time of its clouds: ``time``
    (float32 seconds, Velodyne drivers) or ``t`` (uint32 nanoseconds, Ouster drivers),
    both counted from the sweep start. :meth:`model` gives common sensors.
    """

    num_beams: int = 64
    fov_up_deg: float = 2.0
    fov_down_deg: float = -24.8
    horizontal_resolution_deg: float = 0.2
    max_range: float = 120.0
    min_range: float = 0.9
    range_noise_sigma: float = 0.0
    mount_height: float = 1.73
    elevations_deg: tuple[float, ...] | None = None
    rotation_hz: float = 10.0
    time_field: TimeField = "time"
    name: str = "hdl64-like"

    def __post_init__(self) -> None:
        if self.elevations_deg is not None:
            table = np.asarray(self.elevations_deg, dtype=float)
            if table.size != self.num_beams:
                raise ValueError(
                    f"elevations_deg lists {table.size} beams but num_beams is {self.num_beams}"
                )
            if np.any(np.diff(table) >= 0):
                raise ValueError("elevations_deg must be strictly decreasing (ring 0 on top)")
        if self.num_beams < 1 or self.horizontal_resolution_deg <= 0 or self.rotation_hz <= 0:
            raise ValueError("need num_beams >= 1, horizontal_resolution_deg > 0, rotation_hz > 0")
        if self.time_field not in ("time", "t"):
            raise ValueError(f"time_field must be 'time' or 't', not {self.time_field!r}")

    @classmethod
    def model(cls, name: str, **overrides: object) -> LidarSpec:
        """A preset from :data:`LIDAR_MODELS` (e.g. ``"hdl32"``, ``"os1-128"``), with any
        field overridden."""
        if name not in LIDAR_MODELS:
            raise ValueError(f"unknown LiDAR model {name!r}; known: {', '.join(LIDAR_MODELS)}")
        return replace(LIDAR_MODELS[name], **overrides)

    @property
    def num_columns(self) -> int:
        return round(360.0 / self.horizontal_resolution_deg)

    @property
    def sweep_period(self) -> float:
        """Seconds per revolution."""
        return 1.0 / self.rotation_hz

    def beam_elevations(self) -> np.ndarray:
        """Elevation (rad) per ring, ring 0 first (top beam)."""
        if self.elevations_deg is not None:
            return np.deg2rad(np.asarray(self.elevations_deg, dtype=float))
        return np.deg2rad(np.linspace(self.fov_up_deg, self.fov_down_deg, self.num_beams))

    def column_azimuths(self) -> np.ndarray:
        """Azimuth (rad, counter-clockwise from +x) per column, starting behind the sensor
        and sweeping clockwise like a Velodyne seen from above."""
        k = np.arange(self.num_columns)
        return np.pi - k * (2.0 * np.pi / self.num_columns)

    def column_times(self) -> np.ndarray:
        """Firing time (s after the sweep start) per column."""
        return np.arange(self.num_columns) / (self.num_columns * self.rotation_hz)


def _uniform(name: str, beams: int, up: float, down: float, **kw) -> LidarSpec:
    return LidarSpec(num_beams=beams, fov_up_deg=up, fov_down_deg=down, name=name, **kw)


_OUSTER = {"horizontal_resolution_deg": 360.0 / 1024, "time_field": "t", "max_range": 120.0}
#: Spinning LiDARs with their published beam layouts (10 Hz). Velodyne models publish a
#: float32 ``time``, Ouster models a uint32 ``t`` in nanoseconds.
LIDAR_MODELS: dict[str, LidarSpec] = {
    "hdl64": LidarSpec(name="hdl64"),  # KITTI-like, the generator's default
    "vlp16": _uniform("vlp16", 16, 15.0, -15.0),
    "hdl32": _uniform("hdl32", 32, 10.67, -30.67, horizontal_resolution_deg=0.16),
    "vlp32c": LidarSpec(
        num_beams=32,
        fov_up_deg=15.0,
        fov_down_deg=-25.0,
        elevations_deg=VLP32C_ELEVATIONS_DEG,
        name="vlp32c",
    ),
    "os1-32": _uniform("os1-32", 32, 22.5, -22.5, **_OUSTER),
    "os1-64": _uniform("os1-64", 64, 22.5, -22.5, **_OUSTER),
    "os1-128": _uniform("os1-128", 128, 22.5, -22.5, **_OUSTER),
    "os2-128": _uniform("os2-128", 128, 11.25, -11.25, **_OUSTER),
}


# ----------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera, optionally with a plumb_bob lens; defaults are KITTI's rectified
    left color camera.

    ``distortion`` is (k1, k2, p1, p2, k3) of the *raw* image; empty means none. The
    rectified image of the camera is the pinhole image of K.
    """

    width: int = 1242
    height: int = 375
    fx: float = 721.5
    fy: float = 721.5
    cx: float = 609.6
    cy: float = 172.9
    distortion: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.distortion) not in (0, 4, 5):
            raise ValueError(
                f"distortion holds plumb_bob (k1, k2, p1, p2[, k3]), got {self.distortion}"
            )

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the CameraInfo / OpenCV name
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def D(self) -> np.ndarray:  # noqa: N802 - the CameraInfo name
        d = np.zeros(5)
        d[: len(self.distortion)] = self.distortion
        return d

    def scaled(self, factor: float) -> CameraSpec:
        """The same field of view at ``factor`` times the resolution (pixel centers kept)."""
        return replace(
            self,
            width=round(self.width * factor),
            height=round(self.height * factor),
            fx=self.fx * factor,
            fy=self.fy * factor,
            cx=(self.cx + 0.5) * factor - 0.5,
            cy=(self.cy + 0.5) * factor - 0.5,
        )


#: A nuScenes-like surround camera: 1600x900, ~65 deg horizontal field of view, a mild
#: barrel lens on the raw image.
SURROUND_CAMERA = CameraSpec(
    width=1600,
    height=900,
    fx=1266.0,
    fy=1266.0,
    cx=799.5,
    cy=449.5,
    distortion=(-0.12, 0.05, 0.0006, -0.0004, -0.01),
)


def distort(x: np.ndarray, y: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """plumb_bob: undistorted normalized coordinates -> distorted ones (OpenCV's model)."""
    k1, k2, p1, p2, k3 = (float(v) for v in D[:5])
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def undistort(
    xd: np.ndarray, yd: np.ndarray, D: np.ndarray, iterations: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`distort` by Newton's method (vectorized; exact to ~1e-12 for real
    lenses inside their image)."""
    k1, k2, p1, p2, k3 = (float(v) for v in D[:5])
    x, y = xd.astype(np.float64).copy(), yd.astype(np.float64).copy()
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        d_radial = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r2
        fx_, fy_ = distort(x, y, D)
        ex, ey = fx_ - xd, fy_ - yd
        j11 = radial + 2 * x * x * d_radial + 2 * p1 * y + 6 * p2 * x
        j12 = 2 * x * y * d_radial + 2 * p1 * x + 2 * p2 * y
        j22 = radial + 2 * y * y * d_radial + 6 * p1 * y + 2 * p2 * x
        det = j11 * j22 - j12 * j12
        x -= (j22 * ex - j12 * ey) / det
        y -= (j11 * ey - j12 * ex) / det
    return x, y


@dataclass(frozen=True, eq=False)
class CameraIntrinsics:
    """CameraInfo-style intrinsics of a rendered camera (identity R, P = [K | 0]).

    :meth:`to_camera_info_fields` gives the keyword arguments of
    ``CameraModel.from_fields`` so the scene can be turned into the project's camera model
    (or a ``sensor_msgs/CameraInfo``) without this module depending on it.
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray
    distortion_model: str = "plumb_bob"

    def to_camera_info_fields(self) -> dict:
        return {
            "width": int(self.width),
            "height": int(self.height),
            "K": self.K.copy(),
            "D": self.D.copy(),
            "R": self.R.copy(),
            "P": self.P.copy(),
            "distortion_model": self.distortion_model,
            "binning_x": 0,
            "binning_y": 0,
            "roi": None,
        }

    def to_camera_model(self, mode: str = "auto") -> CameraModel:
        """Build the project's ``seg_perception.core.camera_model.CameraModel``; ``mode``
        is its projection mode (``raw`` for the raw image of a camera with a lens,
        ``rectified`` for its rectified image; ``auto`` picks by D).

        Imported lazily so the sample generator stays usable on its own.
        """
        from seg_perception.core.camera_model import CameraModel

        return CameraModel.from_fields(**self.to_camera_info_fields(), mode=mode)

    @classmethod
    def from_spec(cls, spec: CameraSpec) -> CameraIntrinsics:
        K = spec.K
        return cls(
            width=spec.width,
            height=spec.height,
            K=K,
            D=spec.D,
            R=np.eye(3),
            P=np.hstack([K, np.zeros((3, 1))]),
        )


# ------------------------------------------------------------------------ mounting


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll), the REP-103 fixed-axis convention."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


# Optical axes expressed in the camera body frame: optical z = body x, x = -body y,
# y = -body z.
R_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_pose(
    camera_offset: Sequence[float], camera_rpy_deg: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (optical -> LiDAR) and position of the camera in the LiDAR frame."""
    r_lidar_body = rpy_matrix(*np.deg2rad(np.asarray(camera_rpy_deg, dtype=float)))
    return r_lidar_body @ R_BODY_FROM_OPTICAL, np.asarray(camera_offset, dtype=np.float64)


@dataclass(frozen=True)
class CameraMount:
    """One camera of a rig: its lens, where it sits on the LiDAR (``offset`` m, body
    ``rpy_deg``), when it exposes (``time_offset`` s after the sweep start) and which
    image it publishes (``raw``: through the lens, ``rectified``: the pinhole image of K).
    """

    name: str = "front"
    spec: CameraSpec = CameraSpec()
    offset: tuple[float, float, float] = (1.5, 0.0, -1.0)
    rpy_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    time_offset: float = 0.0
    projection: ImageProjection = "rectified"

    def __post_init__(self) -> None:
        if self.projection not in ("rectified", "raw"):
            raise ValueError(f"projection must be 'rectified' or 'raw', not {self.projection!r}")


SURROUND_NAMES = ("front", "front_left", "back_left", "back", "back_right", "front_right")


def surround_rig(
    spec: CameraSpec = SURROUND_CAMERA,
    count: int = 6,
    radius: float = 0.8,
    height: float = -0.35,
    time_offsets: Sequence[float] | None = None,
    projection: ImageProjection | Sequence[ImageProjection] = "rectified",
) -> tuple[CameraMount, ...]:
    """``count`` cameras looking out every 360/count deg (counter-clockwise from the
    front), each ``radius`` m out from the LiDAR along its view and ``height`` m below it
    (a nuScenes-like layout). ``time_offsets`` default to evenly spread over 0-50 ms."""
    if time_offsets is None:
        time_offsets = np.linspace(0.0, 0.05, count) if count > 1 else [0.0]
    if len(time_offsets) != count:
        raise ValueError(f"need {count} time offsets, got {len(time_offsets)}")
    projections = [projection] * count if isinstance(projection, str) else list(projection)
    names = SURROUND_NAMES if count == 6 else tuple(f"cam{i}" for i in range(count))
    mounts = []
    for i in range(count):
        yaw = 360.0 * i / count
        rad = np.deg2rad(yaw)
        mounts.append(
            CameraMount(
                name=names[i],
                spec=spec,
                offset=(radius * float(np.cos(rad)), radius * float(np.sin(rad)), height),
                rpy_deg=(0.0, 0.0, yaw if yaw <= 180.0 else yaw - 360.0),
                time_offset=float(time_offsets[i]),
                projection=projections[i],
            )
        )
    return tuple(mounts)


# ---------------------------------------------------------------------------- motion


@dataclass(frozen=True)
class EgoMotion:
    """Planar constant-velocity motion of the LiDAR: ``speed`` m/s along its x axis and
    ``yaw_rate`` rad/s (counter-clockwise), from its pose at the sweep start (t = 0)."""

    speed: float = 0.0
    yaw_rate: float = 0.0

    @property
    def is_static(self) -> bool:
        return self.speed == 0.0 and self.yaw_rate == 0.0

    def delta(self, t: np.ndarray | float) -> np.ndarray:
        """``T_start_from_t``: the LiDAR pose at time(s) ``t`` in its frame at t = 0;
        (4, 4) for a scalar ``t``, (M, 4, 4) for M times. Exact (arcs, not steps)."""
        times = np.asarray(t, dtype=np.float64)
        flat = np.atleast_1d(times)
        yaw = self.yaw_rate * flat
        if self.yaw_rate == 0.0:
            x, y = self.speed * flat, np.zeros_like(flat)
        else:
            radius = self.speed / self.yaw_rate
            x, y = radius * np.sin(yaw), radius * (1.0 - np.cos(yaw))
        out = np.zeros((flat.size, 4, 4))
        c, s = np.cos(yaw), np.sin(yaw)
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -s, s, c
        out[:, 2, 2] = out[:, 3, 3] = 1.0
        out[:, 0, 3], out[:, 1, 3] = x, y
        return out[0] if times.ndim == 0 else out
