"""A procedural, labelled street scene seen by a spinning LiDAR and a pinhole camera.

Real driving data (KITTI, Cityscapes) cannot live in the repository, yet the demo and the
tests need frames with *exact* truth: per-point classes, a per-pixel label image, which
LiDAR points the camera can really see, and the calibration that ties them together. This
module builds such a frame from analytic primitives (:mod:`.raycast`): both sensors are
ray cast against the same geometry, so the LiDAR truth, the camera truth and the
occlusion truth agree by construction.

Frames and conventions:

* World: z up, the street runs along +x, the ego vehicle drives at the origin in the
  right-hand lane. The LiDAR frame (REP-103: x forward, y left, z up) is the world frame
  translated to the LiDAR's mount point (the ego has no yaw), so road points sit at
  ``z = -mount_height`` in the LiDAR frame.
* The camera body (x forward) is placed at ``camera_offset`` in the LiDAR frame and
  rotated by ``camera_rpy_deg``; images use the optical frame (z forward, x right, y
  down). By default it is a bumper camera 1.5 m ahead of and 1.0 m below the roof LiDAR,
  so the LiDAR sees over and behind cars and people where the camera cannot: exactly the
  case that occlusion-aware fusion must handle.
* Classes are the 19 Cityscapes train ids; 255 is unlabeled, sky (10) is a camera ray
  that hits nothing. LiDAR rays that hit nothing are dropped, as a real sensor does.
* Ring indices are range-image rows: ring 0 is the top beam (+2 deg by default).
* ``depth_image`` holds the optical z per pixel, ``+inf`` where nothing was hit (REP-117).

Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from seg_perception.sample.raycast import (
    Box,
    Cylinder,
    GroundPlane,
    Primitive,
    RayHits,
    Sphere,
    intersect_nearest,
    segment_clear,
)

if TYPE_CHECKING:
    from seg_perception.core.camera_model import CameraModel

# Cityscapes train ids.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = range(8)
VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN = range(8, 17)
MOTORCYCLE, BICYCLE = 17, 18
UNLABELED = 255

CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
    "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

# Natural-looking base colors per class for the rendered RGB (not the Cityscapes palette:
# the image should look like a photo, so segmentation engines see plausible input).
_BASE_COLOR = np.full((256, 3), 128.0)
_BASE_COLOR[:19] = [
    (78, 78, 82), (158, 152, 146), (170, 150, 130), (140, 135, 125), (120, 100, 80),
    (110, 110, 115), (35, 35, 38), (200, 40, 35), (60, 110, 45), (125, 140, 75),
    (0, 0, 0), (90, 70, 110), (150, 60, 40), (60, 80, 140), (210, 210, 200),
    (220, 180, 40), (140, 140, 150), (30, 30, 30), (40, 90, 160),
]  # fmt: skip

# LiDAR reflectivity per class in [0, 1] (retro-reflective signs are bright, tyres and
# dark asphalt are dim), scaled by the incidence cosine to give a plausible intensity.
_REFLECTIVITY = np.full(256, 0.3)
_REFLECTIVITY[:19] = [
    0.18, 0.30, 0.35, 0.33, 0.25, 0.45, 0.40, 0.95, 0.42, 0.30,
    0.0, 0.30, 0.30, 0.55, 0.50, 0.50, 0.50, 0.40, 0.35,
]  # fmt: skip
_LANE_MARKING_REFLECTIVITY = 0.8

_PARKING = 2.2
"""Width (m) of the parking strip along each curb."""

_SUN = np.array([0.35, -0.45, 0.82]) / np.linalg.norm([0.35, -0.45, 0.82])
_SKY_HORIZON = np.array([205.0, 218.0, 235.0])
_SKY_ZENITH = np.array([85.0, 135.0, 205.0])


@dataclass(frozen=True)
class LidarSpec:
    """A spinning multi-beam LiDAR; defaults resemble the Velodyne HDL-64E of KITTI.

    Beams are evenly spaced between ``fov_up_deg`` and ``fov_down_deg`` (the real
    HDL-64E is not quite uniform; that does not matter for synthetic truth). Hits beyond
    ``max_range`` or closer than ``min_range`` are dropped like real no-returns.
    ``range_noise_sigma`` (m) adds gaussian noise along the beam *after* the truth
    (class, visibility) has been computed on the exact surface point.
    """

    num_beams: int = 64
    fov_up_deg: float = 2.0
    fov_down_deg: float = -24.8
    horizontal_resolution_deg: float = 0.2
    max_range: float = 120.0
    min_range: float = 0.9
    range_noise_sigma: float = 0.0
    mount_height: float = 1.73

    @property
    def num_columns(self) -> int:
        return round(360.0 / self.horizontal_resolution_deg)

    def beam_elevations(self) -> np.ndarray:
        """Elevation (rad) per ring, ring 0 first (top beam)."""
        return np.deg2rad(np.linspace(self.fov_up_deg, self.fov_down_deg, self.num_beams))

    def column_azimuths(self) -> np.ndarray:
        """Azimuth (rad, counter-clockwise from +x) per column, starting behind the sensor
        and sweeping clockwise like a Velodyne seen from above."""
        k = np.arange(self.num_columns)
        return np.pi - k * (2.0 * np.pi / self.num_columns)


@dataclass(frozen=True)
class CameraSpec:
    """A distortion-free pinhole camera; defaults are KITTI's rectified left color camera."""

    width: int = 1242
    height: int = 375
    fx: float = 721.5
    fy: float = 721.5
    cx: float = 609.6
    cy: float = 172.9

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the CameraInfo / OpenCV name
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True, eq=False)
class CameraIntrinsics:
    """CameraInfo-style intrinsics of the rendered image (no distortion, identity R).

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

    def to_camera_model(self) -> CameraModel:
        """Build the project's ``seg_perception.core.camera_model.CameraModel``.

        Imported lazily so the sample generator stays usable on its own.
        """
        from seg_perception.core.camera_model import CameraModel

        return CameraModel.from_fields(**self.to_camera_info_fields())

    @classmethod
    def from_spec(cls, spec: CameraSpec) -> CameraIntrinsics:
        K = spec.K
        return cls(
            width=spec.width,
            height=spec.height,
            K=K,
            D=np.zeros(5),
            R=np.eye(3),
            P=np.hstack([K, np.zeros((3, 1))]),
        )


@dataclass(eq=False)
class Scene:
    """One synchronized LiDAR + camera frame with exact truth.

    ``points`` are x, y, z (LiDAR frame, m) and intensity in [0, 1]; ``point_labels``,
    ``point_ring``, ``point_instance`` (object id, 0 for the ground) and
    ``visible_in_camera`` are per point. ``T_cam_from_lidar`` maps homogeneous LiDAR-frame
    points to the camera optical frame. ``primitives`` is the geometry in the world frame,
    and ``T_world_from_lidar`` places the LiDAR in it.
    """

    points: np.ndarray
    point_labels: np.ndarray
    point_ring: np.ndarray
    point_instance: np.ndarray
    visible_in_camera: np.ndarray
    image: np.ndarray
    label_image: np.ndarray
    depth_image: np.ndarray
    intrinsics: CameraIntrinsics
    T_cam_from_lidar: np.ndarray
    T_world_from_lidar: np.ndarray
    primitives: list[Primitive]
    seed: int
    lidar: LidarSpec
    camera: CameraSpec
    lidar_frame_id: str = "lidar"
    camera_frame_id: str = "camera_optical"
    class_names: tuple[str, ...] = field(default=CLASS_NAMES)


# --------------------------------------------------------------------------- geometry


def _rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
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
_R_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class _Builder:
    """Collects primitives and hands out instance ids (one per object, not per part)."""

    def __init__(self) -> None:
        self.prims: list[Primitive] = []
        self._next_instance = 1

    def new_instance(self) -> int:
        self._next_instance += 1
        return self._next_instance - 1

    def add(self, prim: Primitive) -> None:
        self.prims.append(prim)


def _jitter(rng: np.random.Generator, color: Sequence[float], amount: float) -> tuple:
    c = np.clip(np.asarray(color, dtype=float) * rng.uniform(1 - amount, 1 + amount), 0, 255)
    return tuple(int(v) for v in c)


_CAR_COLORS = (
    (200, 200, 205), (30, 30, 35), (150, 20, 25), (40, 60, 120), (120, 125, 130),
    (230, 230, 225), (70, 90, 70), (180, 140, 60),
)  # fmt: skip
_BUILDING_COLORS = (
    (175, 155, 130), (150, 80, 60), (190, 185, 175), (120, 115, 110), (200, 175, 140),
    (140, 150, 160),
)  # fmt: skip
_CLOTHES = ((40, 40, 60), (150, 30, 30), (200, 190, 170), (30, 80, 50), (90, 70, 110))


def _add_car(b: _Builder, rng: np.random.Generator, x: float, y: float, yaw: float) -> None:
    """Body slab above the wheels plus a narrower, shorter cabin; ~4.2 x 1.8 x 1.5 m."""
    inst = b.new_instance()
    color = _jitter(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 0.08)
    length = rng.uniform(3.9, 4.6)
    width = rng.uniform(1.7, 1.9)
    height = rng.uniform(1.4, 1.6)
    b.add(
        Box(
            center=(x, y, 0.625),
            size=(length, width, 0.75),
            yaw=yaw,
            class_id=CAR,
            instance_id=inst,
            color=color,
        )
    )
    cab_len = 0.55 * length
    off = -0.08 * length
    cab_h = height - 1.0
    b.add(
        Box(
            center=(x + off * np.cos(yaw), y + off * np.sin(yaw), 1.0 + cab_h / 2),
            size=(cab_len, width - 0.15, cab_h),
            yaw=yaw,
            class_id=CAR,
            instance_id=inst,
            color=color,
        )
    )


def _add_person(
    b: _Builder, rng: np.random.Generator, x: float, y: float, base_z: float, cls: int = PERSON
) -> None:
    inst = b.new_instance()
    height = rng.uniform(1.6, 1.9)
    radius = rng.uniform(0.24, 0.3)
    color = _CLOTHES[rng.integers(len(_CLOTHES))]
    b.add(
        Cylinder(
            center_xy=(x, y),
            radius=radius,
            z_min=base_z,
            z_max=base_z + height - 0.24,
            class_id=cls,
            instance_id=inst,
            color=color,
        )
    )
    b.add(
        Sphere(
            center=(x, y, base_z + height - 0.12),
            radius=0.12,
            class_id=cls,
            instance_id=inst,
            color=(200, 160, 130),
        )
    )


def _add_tree(b: _Builder, rng: np.random.Generator, x: float, y: float, base_z: float) -> None:
    inst = b.new_instance()
    trunk_h = rng.uniform(2.5, 3.5)
    crown_r = rng.uniform(1.3, 2.3)
    b.add(
        Cylinder(
            center_xy=(x, y),
            radius=rng.uniform(0.12, 0.2),
            z_min=base_z,
            z_max=base_z + trunk_h + 0.5 * crown_r,
            class_id=VEGETATION,
            instance_id=inst,
            color=(95, 75, 55),
        )
    )
    b.add(
        Sphere(
            center=(x, y, base_z + trunk_h + 0.8 * crown_r),
            radius=crown_r,
            class_id=VEGETATION,
            instance_id=inst,
            color=_jitter(rng, (60, 110, 45), 0.15),
        )
    )


def _spaced_positions(
    rng: np.random.Generator,
    lo: float,
    hi: float,
    count: int,
    min_gap: float,
    taken: list[float] | None = None,
) -> list[float]:
    """Up to ``count`` positions in [lo, hi], at least ``min_gap`` apart (and from taken)."""
    chosen: list[float] = list(taken or [])
    out: list[float] = []
    for _ in range(count * 10):
        if len(out) == count:
            break
        x = float(rng.uniform(lo, hi))
        if all(abs(x - c) >= min_gap for c in chosen):
            chosen.append(x)
            out.append(x)
    return out


@dataclass(frozen=True)
class _Layout:
    ego_y: float
    road_half: float
    sidewalk_outer: float


def build_street(seed: int = 0) -> tuple[list[Primitive], _Layout]:
    """Lay out the street primitives in the world frame (z up, street along +x).

    A lead car is always placed 9-16 m ahead in the ego lane, so every scene has a
    meaningful camera/LiDAR occlusion; everything else is random.
    """
    rng = np.random.default_rng(seed)
    b = _Builder()
    x0, x1 = -70.0, 150.0
    xc, xl = 0.5 * (x0 + x1), x1 - x0
    # Two driving lanes between two parking strips of width _PARKING.
    road_half = float(rng.uniform(5.0, 6.0))
    sw_width = float(rng.uniform(2.5, 4.0))
    sw_outer = road_half + sw_width
    lane = (road_half - _PARKING) / 2.0
    ego_y = -lane
    curb = 0.15

    b.add(GroundPlane(height=0.0, class_id=ROAD))
    for side in (-1.0, 1.0):
        b.add(
            Box(
                center=(xc, side * (road_half + sw_width / 2), curb / 2),
                size=(xl, sw_width, curb),
                class_id=SIDEWALK,
            )
        )
        b.add(
            Box(
                center=(xc, side * (sw_outer + 20.0), 0.05),
                size=(xl, 40.0, 0.1),
                class_id=TERRAIN,
                color=_jitter(rng, (125, 140, 75), 0.1),
            )
        )

    # Buildings, with gaps, setbacks, and walls / fences / hedges in front of some.
    for side in (-1.0, 1.0):
        x = x0
        while x < x1:
            length = float(rng.uniform(8.0, 25.0))
            setback = float(rng.uniform(0.5, 5.0))
            depth = float(rng.uniform(8.0, 15.0))
            height = float(rng.uniform(6.0, 25.0))
            front = sw_outer + setback
            b.add(
                Box(
                    center=(x + length / 2, side * (front + depth / 2), height / 2),
                    size=(length, depth, height),
                    class_id=BUILDING,
                    instance_id=b.new_instance(),
                    color=_jitter(rng, _BUILDING_COLORS[rng.integers(len(_BUILDING_COLORS))], 0.1),
                )
            )
            if setback > 1.5:
                kind = rng.integers(4)
                ly = side * (sw_outer + 0.3)
                if kind == 0:
                    b.add(
                        Box(
                            center=(x + length / 2, ly, 0.6),
                            size=(length * 0.9, 0.25, 1.2),
                            class_id=WALL,
                            instance_id=b.new_instance(),
                        )
                    )
                elif kind == 1:
                    b.add(
                        Box(
                            center=(x + length / 2, ly, 0.8),
                            size=(length * 0.9, 0.06, 1.6),
                            class_id=FENCE,
                            instance_id=b.new_instance(),
                        )
                    )
                elif kind == 2:
                    b.add(
                        Box(
                            center=(x + length / 2, side * (sw_outer + 0.8), 0.7),
                            size=(length * 0.8, 1.0, 1.4),
                            class_id=VEGETATION,
                            instance_id=b.new_instance(),
                            color=_jitter(rng, (55, 100, 40), 0.1),
                        )
                    )
            x += length
            if rng.uniform() < 0.3:
                gap = float(rng.uniform(3.0, 10.0))
                _add_tree(b, rng, x + gap / 2, side * (sw_outer + rng.uniform(2.0, 6.0)), 0.1)
                x += gap

    # Street furniture: lamp poles near the curb, sign poles, traffic lights.
    for side in (-1.0, 1.0):
        y = side * (road_half + 0.5)
        for px in np.arange(x0 + rng.uniform(0, 25), x1, rng.uniform(22.0, 35.0)):
            b.add(
                Cylinder(
                    center_xy=(float(px), y),
                    radius=0.1,
                    z_min=curb,
                    z_max=float(rng.uniform(6.0, 8.0)),
                    class_id=POLE,
                    instance_id=b.new_instance(),
                )
            )
        for sx in _spaced_positions(rng, 5.0, 70.0, 2, 8.0):
            sy = side * (road_half + 0.6)
            inst = b.new_instance()
            b.add(
                Cylinder(
                    center_xy=(sx, sy),
                    radius=0.05,
                    z_min=curb,
                    z_max=2.7,
                    class_id=POLE,
                    instance_id=inst,
                )
            )
            b.add(
                Box(
                    center=(sx - 0.06, sy, 2.35),
                    size=(0.05, 0.7, 0.7),
                    class_id=TRAFFIC_SIGN,
                    instance_id=b.new_instance(),
                    color=((200, 40, 35), (30, 70, 170), (220, 190, 40))[rng.integers(3)],
                )
            )
        lx = float(rng.uniform(30.0, 60.0))
        ly = side * (road_half + 0.4)
        b.add(
            Cylinder(
                center_xy=(lx, ly),
                radius=0.09,
                z_min=curb,
                z_max=4.2,
                class_id=POLE,
                instance_id=b.new_instance(),
            )
        )
        b.add(
            Box(
                center=(lx - 0.2, ly, 4.6),
                size=(0.35, 0.35, 1.0),
                class_id=TRAFFIC_LIGHT,
                instance_id=b.new_instance(),
            )
        )
        for tx in _spaced_positions(rng, -20.0, 100.0, 3, 6.0):
            _add_tree(b, rng, tx, side * (sw_outer - 0.7), curb)

    # Vehicles. The ego lane keeps x in [-7, 7] free (that is where the ego drives).
    lead_x = float(rng.uniform(9.0, 16.0))
    _add_car(b, rng, lead_x, ego_y, float(rng.uniform(-0.03, 0.03)))
    for cx in _spaced_positions(rng, 25.0, 100.0, 3, 10.0, taken=[lead_x]):
        _add_car(b, rng, cx, ego_y + rng.uniform(-0.3, 0.3), float(rng.uniform(-0.05, 0.05)))
    for cx in _spaced_positions(rng, -40.0, 110.0, 5, 9.0):
        _add_car(b, rng, cx, lane + rng.uniform(-0.3, 0.3), np.pi + rng.uniform(-0.05, 0.05))
    for side in (-1.0, 1.0):
        park_y = side * (road_half - _PARKING / 2)
        taken: list[float] = []
        if side > 0 and rng.uniform() < 0.5:
            mx = float(rng.uniform(-20.0, 40.0))
            taken.append(mx)
            b.add(
                Box(
                    center=(mx, park_y, 0.55),
                    size=(2.0, 0.5, 1.1),
                    yaw=np.pi + 0.3,
                    class_id=MOTORCYCLE,
                    instance_id=b.new_instance(),
                )
            )
        n_parked = int(rng.integers(4, 9))
        for cx in _spaced_positions(rng, -40.0, 90.0, n_parked, 5.5, taken=taken):
            yaw = (0.0 if side < 0 else np.pi) + rng.uniform(-0.12, 0.12)
            _add_car(b, rng, cx, park_y, float(yaw))
    if rng.uniform() < 0.6:
        bx = float(rng.uniform(30.0, 70.0))
        cls = BUS if rng.uniform() < 0.5 else TRUCK
        size = (12.0, 2.5, 3.0) if cls == BUS else (8.0, 2.4, 3.4)
        b.add(
            Box(
                center=(bx, lane, 0.3 + size[2] / 2),
                size=size,
                yaw=np.pi,
                class_id=cls,
                instance_id=b.new_instance(),
                color=_jitter(rng, _BASE_COLOR[cls], 0.1),
            )
        )
    if rng.uniform() < 0.7:
        # A cyclist along the right edge of the ego lane.
        cx = float(rng.uniform(20.0, 40.0))
        cy = -(road_half - _PARKING - 0.4)
        b.add(
            Box(
                center=(cx, cy, 0.55),
                size=(1.7, 0.1, 0.9),
                class_id=BICYCLE,
                instance_id=b.new_instance(),
            )
        )
        _add_person(b, rng, cx, cy, 0.85, cls=RIDER)

    # People on both sidewalks, and sometimes one crossing the road.
    for _ in range(int(rng.integers(8, 16))):
        side = 1.0 if rng.uniform() < 0.5 else -1.0
        px = float(rng.uniform(-20.0, 60.0))
        py = side * float(rng.uniform(road_half + 0.8, sw_outer - 0.4))
        _add_person(b, rng, px, py, curb)
    if rng.uniform() < 0.4:
        _add_person(b, rng, float(rng.uniform(18.0, 24.0)), float(rng.uniform(-lane, lane)), 0.0)

    return b.prims, _Layout(ego_y=ego_y, road_half=road_half, sidewalk_outer=sw_outer)


# -------------------------------------------------------------------------- rendering


def _hash01(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray) -> np.ndarray:
    """Deterministic per-cell pseudo-random value in [0, 1) (integer hash, no state)."""
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791)
    h = (h & 0xFFFFFFFF).astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    return h.astype(np.float64) / 4294967296.0


def _cell_noise(points: np.ndarray, scale: float) -> np.ndarray:
    cells = np.floor(points * scale).astype(np.int64)
    return _hash01(cells[:, 0], cells[:, 1], cells[:, 2])


def _lane_marking(points: np.ndarray, labels: np.ndarray, road_half: float) -> np.ndarray:
    """Dashed center line and solid edge lines on the road (still labelled road)."""
    y = points[:, 1]
    center = (np.abs(y) < 0.07) & (np.mod(points[:, 0], 9.0) < 3.0)
    edge = np.abs(np.abs(y) - (road_half - _PARKING)) < 0.07
    return (labels == ROAD) & (center | edge)


def _surface_colors(
    hits: RayHits,
    points: np.ndarray,
    dirs: np.ndarray,
    primitives: Sequence[Primitive],
    road_half: float,
) -> np.ndarray:
    """Albedo x lambertian shading x procedural texture for hit rays, float RGB (M, 3)."""
    idx = hits.index
    labels = hits.class_id
    prim_colors = np.array(
        [p.color if p.color is not None else _BASE_COLOR[p.class_id] for p in primitives],
        dtype=np.float64,
    )
    albedo = prim_colors[idx]
    n = hits.normal
    fine = _cell_noise(points, 12.0) - 0.5
    coarse = _cell_noise(points, 1.5) - 0.5
    amp = np.where(labels == VEGETATION, 0.45, np.where(labels == TERRAIN, 0.3, 0.1))
    albedo = albedo * (1.0 + amp[:, None] * fine[:, None] + 0.12 * coarse[:, None])

    marking = _lane_marking(points, labels, road_half)
    albedo[marking] = (225.0, 225.0, 215.0)

    # Windows: a regular grid on vertical building faces above the ground floor.
    is_facade = (labels == BUILDING) & (np.abs(n[:, 2]) < 0.5)
    s = points[:, 0] * -n[:, 1] + points[:, 1] * n[:, 0]
    win = is_facade & (np.mod(s, 3.0) > 0.9) & (np.mod(s, 3.0) < 2.1)
    win &= (np.mod(points[:, 2], 3.2) > 1.0) & (np.mod(points[:, 2], 3.2) < 2.5)
    win &= points[:, 2] > 2.5
    albedo[win] = (55.0, 65.0, 85.0)
    # Car windows: the upper cabin is glass.
    glass = (labels == CAR) & (points[:, 2] > 1.1) & (np.abs(n[:, 2]) < 0.5)
    albedo[glass] = albedo[glass] * 0.25 + 15.0

    lambert = np.clip(n @ _SUN, 0.0, 1.0)
    shade = 0.45 + 0.6 * lambert
    color = albedo * shade[:, None]
    # Aerial perspective: far surfaces fade toward the horizon color.
    haze = 1.0 - np.exp(-hits.t / 350.0)
    return color * (1 - haze[:, None]) + _SKY_HORIZON * haze[:, None]


def _sky_colors(dirs: np.ndarray) -> np.ndarray:
    w = np.clip(dirs[:, 2] / 0.35, 0.0, 1.0)[:, None]
    return _SKY_HORIZON * (1 - w) + _SKY_ZENITH * w


# ------------------------------------------------------------------------------ public


def _camera_pose(
    camera_offset: Sequence[float], camera_rpy_deg: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (optical -> LiDAR) and position of the camera in the LiDAR frame."""
    r_lidar_body = _rpy_matrix(*np.deg2rad(np.asarray(camera_rpy_deg, dtype=float)))
    return r_lidar_body @ _R_BODY_FROM_OPTICAL, np.asarray(camera_offset, dtype=np.float64)


def render_camera(
    primitives: Sequence[Primitive],
    spec: CameraSpec,
    R_world_from_optical: np.ndarray,
    origin_world: np.ndarray,
    road_half: float = 4.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray cast one ray per pixel center; return (rgb uint8, labels uint8, depth float32).

    Pixel (row v, column u) looks through image coordinates (u, v), the OpenCV convention
    for pixel centers, so rounding a projected point gives the pixel that saw it.
    """
    u, v = np.meshgrid(np.arange(spec.width), np.arange(spec.height))
    d_opt = np.stack(
        [(u.ravel() - spec.cx) / spec.fx, (v.ravel() - spec.cy) / spec.fy, np.ones(u.size)],
        axis=1,
    )
    d_opt /= np.linalg.norm(d_opt, axis=1, keepdims=True)
    dirs = d_opt @ R_world_from_optical.T
    hits = intersect_nearest(origin_world, dirs, primitives)

    hit = hits.index >= 0
    labels = np.where(hit, hits.class_id, np.uint8(SKY)).astype(np.uint8)
    depth = np.where(hit, hits.t * d_opt[:, 2], np.inf).astype(np.float32)

    rgb = _sky_colors(dirs)
    hit_idx = np.flatnonzero(hit)
    sub = RayHits(
        hits.t[hit_idx], hits.index[hit_idx], hits.normal[hit_idx], hits.class_id[hit_idx]
    )
    pts = origin_world + dirs[hit_idx] * sub.t[:, None]
    rgb[hit_idx] = _surface_colors(sub, pts, dirs[hit_idx], primitives, road_half)
    # Sensor noise, deterministic per seed.
    rng = np.random.default_rng([seed, 1])
    rgb += rng.normal(0.0, 2.5, size=rgb.shape)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(spec.height, spec.width, 3)
    return image, labels.reshape(spec.height, spec.width), depth.reshape(spec.height, spec.width)


def generate_scene(
    seed: int = 0,
    lidar: LidarSpec | None = None,
    camera: CameraSpec | None = None,
    camera_offset: Sequence[float] = (1.5, 0.0, -1.0),
    camera_rpy_deg: Sequence[float] = (0.0, 0.0, 0.0),
    visibility_epsilon: float = 0.05,
) -> Scene:
    """Generate one labelled LiDAR + camera frame of a random street.

    ``camera_offset`` is the camera center in the LiDAR frame (m) and ``camera_rpy_deg``
    the roll, pitch, yaw of the camera body (x forward) relative to the LiDAR. A LiDAR
    point is ``visible_in_camera`` when it projects into the image in front of the camera
    and nothing lies on the segment from the camera center to it (up to
    ``visibility_epsilon`` m before the point).
    """
    lidar = lidar or LidarSpec()
    camera = camera or CameraSpec()
    primitives, layout = build_street(seed)

    lidar_world = np.array([0.0, layout.ego_y, lidar.mount_height])
    T_world_from_lidar = np.eye(4)
    T_world_from_lidar[:3, 3] = lidar_world

    # ---- LiDAR: one ray per (column, ring), column-major like a spinning sensor.
    elev = lidar.beam_elevations()
    azim = lidar.column_azimuths()
    az, el = np.meshgrid(azim, elev, indexing="ij")
    dirs = np.stack(
        [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1
    ).reshape(-1, 3)
    rings = np.broadcast_to(np.arange(lidar.num_beams), az.shape).ravel()
    hits = intersect_nearest(lidar_world, dirs, primitives)
    keep = (hits.index >= 0) & (hits.t <= lidar.max_range) & (hits.t >= lidar.min_range)
    k = np.flatnonzero(keep)
    t = hits.t[k]
    d = dirs[k]
    labels = hits.class_id[k]
    p_world = lidar_world + d * t[:, None]

    cos_inc = np.abs(np.einsum("ij,ij->i", hits.normal[k], d))
    refl = _REFLECTIVITY[labels].copy()
    refl[_lane_marking(p_world, labels, layout.road_half)] = _LANE_MARKING_REFLECTIVITY
    intensity = np.clip(refl * (0.25 + 0.75 * cos_inc), 0.0, 1.0)
    instance_of = np.array([p.instance_id for p in primitives], dtype=np.uint16)

    # ---- Camera pose and calibration.
    r_lidar_opt, cam_lidar = _camera_pose(camera_offset, camera_rpy_deg)
    R_cam_from_lidar = r_lidar_opt.T
    T_cam_from_lidar = np.eye(4)
    T_cam_from_lidar[:3, :3] = R_cam_from_lidar
    T_cam_from_lidar[:3, 3] = -R_cam_from_lidar @ cam_lidar
    cam_world = lidar_world + cam_lidar

    # ---- Visibility truth, on the exact surface points (before range noise).
    p_lidar = p_world - lidar_world
    p_cam = p_lidar @ R_cam_from_lidar.T + T_cam_from_lidar[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        uu = camera.fx * p_cam[:, 0] / p_cam[:, 2] + camera.cx
        vv = camera.fy * p_cam[:, 1] / p_cam[:, 2] + camera.cy
    in_image = (p_cam[:, 2] > 0.1) & (uu > -0.5) & (uu < camera.width - 0.5)
    in_image &= (vv > -0.5) & (vv < camera.height - 0.5)
    visible = np.zeros(len(k), dtype=bool)
    cand = np.flatnonzero(in_image)
    visible[cand] = segment_clear(cam_world, p_world[cand], primitives, epsilon=visibility_epsilon)

    # ---- Range noise along the beam (truth above stays on the exact surface).
    if lidar.range_noise_sigma > 0:
        rng = np.random.default_rng([seed, 2])
        t_noisy = t + rng.normal(0.0, lidar.range_noise_sigma, size=t.shape)
        p_lidar = d * t_noisy[:, None]
    points = np.empty((len(k), 4), dtype=np.float32)
    points[:, :3] = p_lidar
    points[:, 3] = intensity

    R_world_from_optical = r_lidar_opt
    image, label_image, depth_image = render_camera(
        primitives, camera, R_world_from_optical, cam_world, layout.road_half, seed
    )

    return Scene(
        points=points,
        point_labels=labels.astype(np.uint8),
        point_ring=rings[k].astype(np.uint16),
        point_instance=instance_of[hits.index[k]],
        visible_in_camera=visible,
        image=image,
        label_image=label_image,
        depth_image=depth_image,
        intrinsics=CameraIntrinsics.from_spec(camera),
        T_cam_from_lidar=T_cam_from_lidar,
        T_world_from_lidar=T_world_from_lidar,
        primitives=list(primitives),
        seed=seed,
        lidar=lidar,
        camera=camera,
    )
