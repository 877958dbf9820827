"""A procedural, labelled street scene seen by a spinning LiDAR and one or more cameras.

Real driving data (KITTI, Cityscapes) cannot live in the repository, yet the demo and the
tests need frames with *exact* truth: per-point classes, a per-pixel label image, which
LiDAR points each camera can really see, and the calibration that ties them together. This
module builds such a frame from analytic primitives (:mod:`.raycast`): all sensors are
ray cast against the same geometry, so the LiDAR truth, the camera truth and the
occlusion truth agree by construction. The sensors themselves (LiDAR models, lenses,
rigs, ego motion) live in :mod:`.sensors`.

Frames and conventions:

* World: z up, the street runs along +x, the ego vehicle drives at the origin in the
  right-hand lane. The LiDAR frame (REP-103: x forward, y left, z up) is the world frame
  translated to the LiDAR's mount point at the sweep start (the ego has no yaw then), so
  road points sit at ``z = -mount_height`` in the LiDAR frame.
* By default one camera: its body (x forward) is placed at ``camera_offset`` in the LiDAR
  frame and rotated by ``camera_rpy_deg``; images use the optical frame (z forward, x
  right, y down). It is a bumper camera 1.5 m ahead of and 1.0 m below the roof LiDAR,
  so the LiDAR sees over and behind cars and people where the camera cannot: exactly the
  case that occlusion-aware fusion must handle. ``cameras`` gives a rig instead
  (:func:`~seg_perception.sample.sensors.surround_rig`), each camera with its own lens
  (raw plumb_bob or rectified image) and exposure time.
* A moving ego (``motion``) is ray cast over time: each LiDAR column from the sensor's
  pose at its firing time, each camera from its pose at its own stamp. ``points`` are
  then what a driver publishes (each point in the LiDAR frame at its own time, not
  motion compensated); ``point_world`` and the pose methods give the exact truth.
* Classes are the 19 Cityscapes train ids; 255 is unlabeled, sky (10) is a camera ray
  that hits nothing. LiDAR rays that hit nothing are dropped, as a real sensor does
  (:meth:`Scene.cloud` with ``organized=True`` keeps them as NaN).
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
from seg_perception.sample.sensors import (
    CameraIntrinsics,
    CameraMount,
    CameraSpec,
    EgoMotion,
    ImageProjection,
    LidarSpec,
    camera_pose,
    distort,
    undistort,
)

if TYPE_CHECKING:
    from seg_perception.core.camera_model import CameraModel

# Cityscapes train ids.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = range(8)
VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN = range(8, 17)
MOTORCYCLE, BICYCLE = 17, 18
UNLABELED = 255
#: Cityscapes' "thing" classes: the ones whose objects are counted (instances); the others
#: ("stuff": road, building, pole, ...) have no instance id in the panoptic truth.
THING_CLASSES: tuple[int, ...] = (PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE)

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


@dataclass(eq=False)
class CameraView:
    """One camera of a scene: its image, truth and poses.

    ``T_cam_from_lidar`` is the rig's (static) extrinsic calibration, optical frame from
    LiDAR frame; ``T_world_from_camera`` is the optical frame's exact pose at the camera's
    stamp (``mount.time_offset`` s after the sweep start). ``visible`` is per LiDAR point:
    the exact surface point projects into this image and nothing lies between it and the
    camera at that stamp.
    """

    name: str
    mount: CameraMount
    intrinsics: CameraIntrinsics
    T_cam_from_lidar: np.ndarray
    T_world_from_camera: np.ndarray
    image: np.ndarray
    label_image: np.ndarray
    depth_image: np.ndarray
    visible: np.ndarray
    frame_id: str
    #: The panoptic truth's instance ids (uint16): the object a thing-class pixel shows
    #: (the scene's instance id, as ``Scene.point_instance``), 0 for stuff and sky.
    instance_image: np.ndarray | None = None

    @property
    def spec(self) -> CameraSpec:
        return self.mount.spec

    @property
    def projection(self) -> ImageProjection:
        return self.mount.projection

    @property
    def time_offset(self) -> float:
        return self.mount.time_offset

    def camera_model(self) -> CameraModel:
        """The project's camera model of this image (raw: K + D, rectified: P)."""
        return self.intrinsics.to_camera_model(mode=self.projection)

    def pixel_rays(self) -> np.ndarray:
        """(H, W, 3) unit rays (optical frame) through the pixel centers, as rendered."""
        return pixel_rays(self.spec, self.projection).reshape(self.spec.height, self.spec.width, 3)


@dataclass(eq=False)
class Scene:
    """One LiDAR sweep and its camera frames with exact truth.

    ``points`` are x, y, z (LiDAR frame, m) and intensity in [0, 1]; ``point_labels``,
    ``point_ring``, ``point_instance`` (object id, 0 for the ground) and
    ``visible_in_camera`` are per point. ``T_cam_from_lidar`` maps homogeneous LiDAR-frame
    points to the camera optical frame. ``primitives`` is the geometry in the world frame,
    and ``T_world_from_lidar`` places the LiDAR in it at the sweep start. The single-camera
    fields (``image``, ``intrinsics``, ``visible_in_camera``...) describe ``cameras[0]``.

    Per point, ``point_column`` is the range-image column, ``point_time`` the firing time
    (s after the sweep start) and ``point_world`` the exact surface point in the world
    (before range noise). With a moving ego, each point is in the LiDAR frame at its own
    time; :meth:`T_world_from_lidar_at` and :meth:`truth_points` give the exact poses and
    positions to compensate against.
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
    point_column: np.ndarray | None = None
    point_time: np.ndarray | None = None
    point_world: np.ndarray | None = None
    cameras: list[CameraView] = field(default_factory=list)
    motion: EgoMotion = field(default_factory=EgoMotion)

    @property
    def point_thing_instance(self) -> np.ndarray:
        """Per point: its object's instance id where it is of a thing class (panoptic
        truth, as the cameras' ``instance_image``), 0 for stuff."""
        things = np.isin(self.point_labels, THING_CLASSES)
        return np.where(things, self.point_instance, 0).astype(np.uint16)

    def T_world_from_lidar_at(self, t: np.ndarray | float) -> np.ndarray:  # noqa: N802
        """Exact LiDAR pose(s) at time(s) ``t`` (s after the sweep start): (4, 4) or
        (M, 4, 4)."""
        return self.T_world_from_lidar @ self.motion.delta(t)

    def T_cam_from_lidar_at(self, camera: int, t: np.ndarray | float) -> np.ndarray:  # noqa: N802
        """Camera ``camera``'s optical frame at its stamp from the LiDAR frame at ``t``:
        what maps a point published at time ``t`` to that image, motion included."""
        T_cam_from_world = np.linalg.inv(self.cameras[camera].T_world_from_camera)
        return T_cam_from_world @ self.T_world_from_lidar_at(t)

    def truth_points(self, t: float = 0.0) -> np.ndarray:
        """(N, 3) exact surface points in the LiDAR frame at time ``t``: what perfect motion
        compensation of ``points`` to ``t`` gives (before range noise)."""
        T_lidar_from_world = np.linalg.inv(self.T_world_from_lidar_at(t))
        return self.point_world @ T_lidar_from_world[:3, :3].T + T_lidar_from_world[:3, 3]

    def camera_points(self, camera: int) -> np.ndarray:
        """(N, 3) exact surface points in camera ``camera``'s optical frame at its stamp."""
        T_cam_from_world = np.linalg.inv(self.cameras[camera].T_world_from_camera)
        return self.point_world @ T_cam_from_world[:3, :3].T + T_cam_from_world[:3, 3]

    def cloud(self, organized: bool = False) -> np.ndarray:
        """The sweep as a driver publishes it: a structured array with x, y, z, intensity
        (float32), ring (uint16) and the LiDAR's time field (``time`` float32 s or ``t``
        uint32 ns after the sweep start; Ouster-like clouds also carry ``range`` uint32 mm).

        Unorganized: (N,) in firing order. Organized: (rings, columns), row = ring, with
        NaN coordinates (zero intensity and range) where the beam had no return.
        """
        lidar = self.lidar
        dtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")]
        if lidar.time_field == "t":
            dtype += [("t", "<u4"), ("ring", "<u2"), ("range", "<u4")]
        else:
            dtype += [("ring", "<u2"), ("time", "<f4")]
        ranges = np.linalg.norm(self.points[:, :3].astype(np.float64), axis=1)
        if organized:
            shape = (lidar.num_beams, lidar.num_columns)
            cloud = np.zeros(shape, dtype=dtype)
            for name in ("x", "y", "z"):
                cloud[name] = np.nan
            cloud["ring"] = np.arange(lidar.num_beams, dtype=np.uint16)[:, None]
            times = np.broadcast_to(lidar.column_times(), shape)
            at = (self.point_ring.astype(np.intp), self.point_column.astype(np.intp))
        else:
            cloud = np.zeros(len(self.points), dtype=dtype)
            cloud["ring"] = self.point_ring
            times = self.point_time
            at = slice(None)
        if lidar.time_field == "t":
            cloud["t"] = np.rint(times * 1e9).astype(np.uint32)
        else:
            cloud["time"] = times
        for column, name in enumerate(("x", "y", "z", "intensity")):
            cloud[name][at] = self.points[:, column]
        if lidar.time_field == "t":
            cloud["range"][at] = np.rint(ranges * 1000.0).astype(np.uint32)
        return cloud


# --------------------------------------------------------------------------- geometry


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


def pixel_rays(spec: CameraSpec, projection: ImageProjection = "rectified") -> np.ndarray:
    """(H * W, 3) unit rays in the optical frame through the pixel centers, row-major.

    Pixel (row v, column u) looks through image coordinates (u, v), the OpenCV convention
    for pixel centers. ``raw`` images look through the lens (plumb_bob, inverted exactly),
    ``rectified`` ones through the pinhole K.
    """
    u, v = np.meshgrid(np.arange(spec.width), np.arange(spec.height))
    x = (u.ravel() - spec.cx) / spec.fx
    y = (v.ravel() - spec.cy) / spec.fy
    if projection == "raw" and np.any(spec.D):
        x, y = undistort(x, y, spec.D)
    d_opt = np.stack([x, y, np.ones(u.size)], axis=1)
    d_opt /= np.linalg.norm(d_opt, axis=1, keepdims=True)
    return d_opt


def _in_image(spec: CameraSpec, projection: ImageProjection, p_cam: np.ndarray) -> np.ndarray:
    """Points (optical frame) in front of the camera whose projection lands in the image."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if projection == "raw" and np.any(spec.D):
            xn, yn = p_cam[:, 0] / p_cam[:, 2], p_cam[:, 1] / p_cam[:, 2]
            # A lens polynomial folds back far outside its image: only trust it up to a
            # little beyond the widest ray of the image border.
            border = np.concatenate(
                [
                    np.stack([np.arange(spec.width), np.full(spec.width, y)], 1)
                    for y in (-0.5, spec.height - 0.5)
                ]
                + [
                    np.stack([np.full(spec.height, x), np.arange(spec.height)], 1)
                    for x in (-0.5, spec.width - 0.5)
                ]
            )
            bx, by = undistort(
                (border[:, 0] - spec.cx) / spec.fx, (border[:, 1] - spec.cy) / spec.fy, spec.D
            )
            r2_max = 1.1 * float(np.max(bx * bx + by * by))
            xd, yd = distort(xn, yn, spec.D)
            uu = spec.fx * xd + spec.cx
            vv = spec.fy * yd + spec.cy
            lens_ok = xn * xn + yn * yn < r2_max
        else:
            uu = spec.fx * p_cam[:, 0] / p_cam[:, 2] + spec.cx
            vv = spec.fy * p_cam[:, 1] / p_cam[:, 2] + spec.cy
            lens_ok = True
    in_image = (p_cam[:, 2] > 0.1) & (uu > -0.5) & (uu < spec.width - 0.5)
    in_image &= (vv > -0.5) & (vv < spec.height - 0.5)
    return in_image & lens_ok


def render_camera(
    primitives: Sequence[Primitive],
    spec: CameraSpec,
    R_world_from_optical: np.ndarray,
    origin_world: np.ndarray,
    road_half: float = 4.0,
    seed: int = 0,
    *,
    projection: ImageProjection = "rectified",
    stream: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ray cast one ray per pixel center; return (rgb uint8, labels uint8, depth float32,
    index of the primitive hit int64, -1 for sky), each (H, W).

    Pixel (row v, column u) looks through image coordinates (u, v), the OpenCV convention
    for pixel centers, so rounding a projected point gives the pixel that saw it.
    ``projection`` picks the raw (through the lens) or rectified image; ``stream``
    separates the sensor noise of several cameras of one scene.
    """
    d_opt = pixel_rays(spec, projection)
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
    # Sensor noise, deterministic per seed (and camera).
    rng = np.random.default_rng([seed, 1] if stream == 0 else [seed, 1, stream])
    rgb += rng.normal(0.0, 2.5, size=rgb.shape)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(spec.height, spec.width, 3)
    shape = (spec.height, spec.width)
    primitive = np.where(hit, hits.index, -1).astype(np.int64).reshape(shape)
    return image, labels.reshape(shape), depth.reshape(shape), primitive


@dataclass
class _Sweep:
    """The kept LiDAR returns of one sweep (indices into the column-major ray grid)."""

    ray: np.ndarray  # index of the ray: column * num_beams + ring
    t: np.ndarray  # exact range (m)
    d_sensor: np.ndarray  # unit beam direction in the LiDAR frame at its firing time
    d_world: np.ndarray  # the same in the world
    p_world: np.ndarray  # exact surface point
    labels: np.ndarray
    normal: np.ndarray
    prim: np.ndarray


def _cast_sweep(
    lidar: LidarSpec,
    motion: EgoMotion,
    T_world_from_lidar: np.ndarray,
    primitives: Sequence[Primitive],
) -> _Sweep:
    """One ray per (column, ring), column-major like a spinning sensor; a moving sensor
    casts each column from its pose at the column's firing time."""
    lidar_world = T_world_from_lidar[:3, 3]
    elev = lidar.beam_elevations()
    azim = lidar.column_azimuths()
    az, el = np.meshgrid(azim, elev, indexing="ij")
    dirs = np.stack(
        [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1
    ).reshape(-1, 3)
    if motion.is_static:
        origins, d_world = lidar_world, dirs
    else:
        poses = T_world_from_lidar @ motion.delta(lidar.column_times())  # (W, 4, 4)
        beams = dirs.reshape(lidar.num_columns, lidar.num_beams, 3)
        d_world = np.einsum("wij,wbj->wbi", poses[:, :3, :3], beams).reshape(-1, 3)
        origins = np.repeat(poses[:, :3, 3], lidar.num_beams, axis=0)
    hits = intersect_nearest(origins, d_world, primitives)
    keep = (hits.index >= 0) & (hits.t <= lidar.max_range) & (hits.t >= lidar.min_range)
    k = np.flatnonzero(keep)
    t = hits.t[k]
    d = d_world[k]
    start = origins if motion.is_static else origins[k]
    return _Sweep(
        ray=k,
        t=t,
        d_sensor=dirs[k],
        d_world=d,
        p_world=start + d * t[:, None],
        labels=hits.class_id[k],
        normal=hits.normal[k],
        prim=hits.index[k],
    )


def _camera_view(
    index: int,
    mount: CameraMount,
    seed: int,
    motion: EgoMotion,
    T_world_from_lidar: np.ndarray,
    sweep: _Sweep,
    primitives: Sequence[Primitive],
    road_half: float,
    visibility_epsilon: float,
    frame_id: str,
) -> CameraView:
    """Calibration, pose at the camera's stamp, visibility truth and the rendered image."""
    lidar_world = T_world_from_lidar[:3, 3]
    r_lidar_opt, cam_lidar = camera_pose(mount.offset, mount.rpy_deg)
    R_cam_from_lidar = r_lidar_opt.T
    T_cam_from_lidar = np.eye(4)
    T_cam_from_lidar[:3, :3] = R_cam_from_lidar
    T_cam_from_lidar[:3, 3] = -R_cam_from_lidar @ cam_lidar
    if motion.is_static:
        R_world_from_optical = r_lidar_opt
        cam_world = lidar_world + cam_lidar
        # Visibility truth, on the exact surface points (before range noise).
        p_cam = (sweep.p_world - lidar_world) @ R_cam_from_lidar.T + T_cam_from_lidar[:3, 3]
    else:
        pose = T_world_from_lidar @ motion.delta(mount.time_offset)
        R_world_from_optical = pose[:3, :3] @ r_lidar_opt
        cam_world = pose[:3, :3] @ cam_lidar + pose[:3, 3]
        p_cam = (sweep.p_world - cam_world) @ R_world_from_optical
    in_image = _in_image(mount.spec, mount.projection, p_cam)
    visible = np.zeros(len(sweep.t), dtype=bool)
    cand = np.flatnonzero(in_image)
    visible[cand] = segment_clear(
        cam_world, sweep.p_world[cand], primitives, epsilon=visibility_epsilon
    )
    image, label_image, depth_image, hit_primitive = render_camera(
        primitives,
        mount.spec,
        R_world_from_optical,
        cam_world,
        road_half,
        seed,
        projection=mount.projection,
        stream=index,
    )
    T_world_from_camera = np.eye(4)
    T_world_from_camera[:3, :3] = R_world_from_optical
    T_world_from_camera[:3, 3] = cam_world
    return CameraView(
        name=mount.name,
        mount=mount,
        intrinsics=CameraIntrinsics.from_spec(mount.spec),
        T_cam_from_lidar=T_cam_from_lidar,
        T_world_from_camera=T_world_from_camera,
        image=image,
        label_image=label_image,
        depth_image=depth_image,
        visible=visible,
        frame_id=frame_id,
        instance_image=thing_instances(hit_primitive, label_image, primitives),
    )


def thing_instances(
    primitive: np.ndarray, labels: np.ndarray, primitives: Sequence[Primitive]
) -> np.ndarray:
    """Instance id per pixel (or point) of a thing class, 0 elsewhere, from the index of
    the primitive each ray hit (-1: none)."""
    instance_of = np.array([p.instance_id for p in primitives] + [0], dtype=np.uint16)
    ids = instance_of[np.where(primitive >= 0, primitive, len(primitives))]
    return np.where(np.isin(labels, THING_CLASSES), ids, 0).astype(np.uint16)


def generate_scene(
    seed: int = 0,
    lidar: LidarSpec | None = None,
    camera: CameraSpec | None = None,
    camera_offset: Sequence[float] = (1.5, 0.0, -1.0),
    camera_rpy_deg: Sequence[float] = (0.0, 0.0, 0.0),
    visibility_epsilon: float = 0.05,
    *,
    cameras: Sequence[CameraMount] | None = None,
    motion: EgoMotion | None = None,
) -> Scene:
    """Generate one labelled LiDAR sweep and camera frames of a random street.

    ``camera_offset`` is the camera center in the LiDAR frame (m) and ``camera_rpy_deg``
    the roll, pitch, yaw of the camera body (x forward) relative to the LiDAR; ``cameras``
    replaces that single camera by a rig (e.g. ``surround_rig()``). A LiDAR point is
    visible in a camera when it projects into the image in front of the camera and nothing
    lies on the segment from the camera center to it (up to ``visibility_epsilon`` m
    before the point). ``motion`` moves the ego during the sweep (default: standing).
    """
    lidar = lidar or LidarSpec()
    motion = motion or EgoMotion()
    if cameras is None:
        mounts = [
            CameraMount(
                name="front",
                spec=camera or CameraSpec(),
                offset=tuple(camera_offset),
                rpy_deg=tuple(camera_rpy_deg),
            )
        ]
        frame_ids = ["camera_optical"]
    else:
        mounts = list(cameras)
        frame_ids = [f"{m.name}_optical" for m in mounts]
        if not mounts:
            raise ValueError("cameras must hold at least one camera")
    primitives, layout = build_street(seed)

    lidar_world = np.array([0.0, layout.ego_y, lidar.mount_height])
    T_world_from_lidar = np.eye(4)
    T_world_from_lidar[:3, 3] = lidar_world

    sweep = _cast_sweep(lidar, motion, T_world_from_lidar, primitives)
    cos_inc = np.abs(np.einsum("ij,ij->i", sweep.normal, sweep.d_world))
    refl = _REFLECTIVITY[sweep.labels].copy()
    refl[_lane_marking(sweep.p_world, sweep.labels, layout.road_half)] = _LANE_MARKING_REFLECTIVITY
    intensity = np.clip(refl * (0.25 + 0.75 * cos_inc), 0.0, 1.0)
    instance_of = np.array([p.instance_id for p in primitives], dtype=np.uint16)

    views = [
        _camera_view(
            i, mount, seed, motion, T_world_from_lidar, sweep, primitives,
            layout.road_half, visibility_epsilon, frame_ids[i],
        )
        for i, mount in enumerate(mounts)
    ]  # fmt: skip

    # ---- Points as the sensor reports them: in its frame at the firing time, with range
    # noise along the beam (the truth above stays on the exact surface).
    if lidar.range_noise_sigma > 0:
        rng = np.random.default_rng([seed, 2])
        t_noisy = sweep.t + rng.normal(0.0, lidar.range_noise_sigma, size=sweep.t.shape)
        p_lidar = sweep.d_sensor * t_noisy[:, None]
    elif motion.is_static:
        p_lidar = sweep.p_world - lidar_world
    else:
        p_lidar = sweep.d_sensor * sweep.t[:, None]
    points = np.empty((len(sweep.t), 4), dtype=np.float32)
    points[:, :3] = p_lidar
    points[:, 3] = intensity

    column = sweep.ray // lidar.num_beams
    first = views[0]
    return Scene(
        points=points,
        point_labels=sweep.labels.astype(np.uint8),
        point_ring=(sweep.ray % lidar.num_beams).astype(np.uint16),
        point_instance=instance_of[sweep.prim],
        visible_in_camera=first.visible,
        image=first.image,
        label_image=first.label_image,
        depth_image=first.depth_image,
        intrinsics=first.intrinsics,
        T_cam_from_lidar=first.T_cam_from_lidar,
        T_world_from_lidar=T_world_from_lidar,
        primitives=list(primitives),
        seed=seed,
        lidar=lidar,
        camera=first.spec,
        camera_frame_id=first.frame_id,
        point_column=column.astype(np.uint16),
        point_time=lidar.column_times()[column],
        point_world=sweep.p_world,
        cameras=views,
        motion=motion,
    )
