"""Ground-segmentation scenes beyond KITTI roads, with exact per-point truth.

A ground segmenter tuned on SemanticKITTI (a 64-beam LiDAR 1.73 m above open roads) can
fail badly elsewhere: in a cluttered room seen from 0.78 m, floor shows only in patches
between furniture, and the bottom of every wall and cabinet looks like floor to a height
grid. These scenes cover what a ground segmenter meets off the road: rooms, corridors and
warehouses (shelves, pallets, people, furniture legs), ramps and embankments, curbs, low
vegetation, tilted and low mounts, 16- to 128-beam sensors, organized or not.

Truth (exact, from the ray caster): a point is ground when it lies on a walkable part
(floor, road, sidewalk, ramp, terrain) on a face flatter than :data:`WALKABLE_DEG`; curb
risers and ramp sides are not. Per point the scene also keeps the true surface normal's
up component (``normal_up``: the steep-surface share of a segmenter's ground) and the
height above the walkable surface below the point (``floor_height``: how far "ground"
labels sit above the floor). Points are in the sensor frame, which is tilted by the
mount's roll and pitch; ``mount_height`` is the sensor origin's height above the floor
under it.

Usage: ``make_ground_scene("room", seed=0)``; :data:`GROUND_SCENE_TYPES` lists the types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from seg_perception.sample.ground_geometry import REFLECTIVITY, Parts
from seg_perception.sample.ground_layouts import (
    build_corridor,
    build_curbs,
    build_ramps,
    build_room,
    build_street_parts,
    build_vegetation,
    build_warehouse,
)
from seg_perception.sample.raycast import intersect_nearest
from seg_perception.sample.sensors import LidarSpec, rpy_matrix

#: Walkable faces are flatter than this (deg); steeper faces are never ground truth.
WALKABLE_DEG = 30.0


@dataclass(frozen=True)
class GroundSceneType:
    """One kind of scene: its geometry builder and the sensor that sees it."""

    name: str
    build: Callable[[np.random.Generator], tuple[Parts, tuple[float, float]]]
    lidar: str
    mount_height: float
    indoor: bool
    organized: bool = False
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    noise: float = 0.01
    description: str = ""


@dataclass(eq=False)
class GroundScene:
    """One sweep of a :class:`GroundSceneType` with per-point truth (valid returns only,
    in firing order; ``ring``/``column`` place them in the organized (rings, columns)
    layout)."""

    kind: GroundSceneType
    seed: int
    lidar: LidarSpec
    points: np.ndarray
    """(N, 4) float32 x, y, z (sensor frame, m) and intensity."""
    ground: np.ndarray
    """bool: on a walkable face flatter than :data:`WALKABLE_DEG`."""
    point_class: np.ndarray
    normal_up: np.ndarray
    """float32 cosine between the true surface normal and world up (1: horizontal face)."""
    floor_height: np.ndarray
    """float32 height above the walkable surface right below the point (NaN: none)."""
    ring: np.ndarray
    column: np.ndarray
    T_world_from_sensor: np.ndarray

    @property
    def name(self) -> str:
        return self.kind.name

    @property
    def mount_height(self) -> float:
        return self.kind.mount_height

    @property
    def steep(self) -> np.ndarray:
        """Points on faces steeper than :data:`WALKABLE_DEG` (walls, risers, sides)."""
        return self.normal_up < np.cos(np.deg2rad(WALKABLE_DEG))

    def cloud(self, organized: bool | None = None) -> np.ndarray:
        """A driver's structured cloud: x, y, z, intensity (float32), ring (uint16).
        Organized (default: as the scene type says): (rings, columns) with NaN holes."""
        organized = self.kind.organized if organized is None else organized
        dtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2")]
        if organized:
            cloud = np.zeros((self.lidar.num_beams, self.lidar.num_columns), dtype=dtype)
            for name in "xyz":
                cloud[name] = np.nan
            cloud["ring"] = np.arange(self.lidar.num_beams, dtype=np.uint16)[:, None]
            at: tuple | slice = (self.ring.astype(np.intp), self.column.astype(np.intp))
        else:
            cloud = np.zeros(len(self.points), dtype=dtype)
            cloud["ring"] = self.ring
            at = slice(None)
        for k, name in enumerate(("x", "y", "z", "intensity")):
            cloud[name][at] = self.points[:, k]
        return cloud

    def flat_index(self) -> np.ndarray:
        """Index of each point in the flattened organized cloud (row-major)."""
        return self.ring.astype(np.intp) * self.lidar.num_columns + self.column


GROUND_SCENE_TYPES: dict[str, GroundSceneType] = {
    t.name: t
    for t in (
        GroundSceneType("room", build_room, "os1-64", 0.78, True, organized=True,
                        description="cluttered room, OS1-64 at 0.78 m"),
        GroundSceneType("corridor", build_corridor, "os1-32", 0.5, True,
                        description="corridor, OS1-32 at 0.5 m"),
        GroundSceneType("warehouse", build_warehouse, "os1-128", 1.2, True, organized=True,
                        description="warehouse racking, OS1-128 at 1.2 m"),
        GroundSceneType("low-mount", lambda r: build_room(r, 14), "vlp16", 0.3, True,
                        description="room, VLP-16 at 0.3 m"),
        GroundSceneType("tilted", lambda r: build_room(r, 12), "os1-64", 1.0, True,
                        pitch_deg=12.0, roll_deg=5.0,
                        description="room, OS1-64 at 1.0 m pitched 12 deg down, rolled 5"),
        GroundSceneType("ramps", build_ramps, "hdl32", 1.5, False,
                        description="ramps up/down, slopes, embankment, HDL-32 at 1.5 m"),
        GroundSceneType("curbs", build_curbs, "vlp32c", 1.8, False, noise=0.015,
                        description="street with curbs, VLP-32C at 1.8 m"),
        GroundSceneType("vegetation", build_vegetation, "hdl64", 1.73, False, noise=0.015,
                        description="park: grass, hillside, bushes, HDL-64 at 1.73 m"),
        GroundSceneType("sparse-street", build_street_parts, "vlp16", 1.73, False, noise=0.015,
                        description="street, VLP-16 at 1.73 m"),
        GroundSceneType("dense-street", build_street_parts, "os1-128", 1.9, False,
                        organized=True, pitch_deg=3.0,
                        description="street, OS1-128 at 1.9 m pitched 3 deg, organized"),
    )
}  # fmt: skip


# ----------------------------------------------------------------------- casting


def make_ground_scene(
    kind: str | GroundSceneType, seed: int = 0, lidar: LidarSpec | None = None
) -> GroundScene:
    """Ray cast one sweep of scene type ``kind`` (a name of :data:`GROUND_SCENE_TYPES`);
    ``lidar`` replaces the type's sensor model."""
    if isinstance(kind, str):
        if kind not in GROUND_SCENE_TYPES:
            raise ValueError(
                f"unknown ground scene type {kind!r}; known: {', '.join(GROUND_SCENE_TYPES)}"
            )
        kind = GROUND_SCENE_TYPES[kind]
    rng = np.random.default_rng([seed, 13])
    parts, (sx, sy) = kind.build(rng)
    spec = lidar or LidarSpec.model(kind.lidar, min_range=0.3)
    spec = replace(spec, mount_height=kind.mount_height, range_noise_sigma=kind.noise)
    origin = np.array([sx, sy, _floor_below(parts, sx, sy) + kind.mount_height])
    rot = rpy_matrix(np.deg2rad(kind.roll_deg), np.deg2rad(kind.pitch_deg), 0.0)

    elevation, azimuth = spec.beam_elevations(), spec.column_azimuths()
    az, el = np.meshgrid(azimuth, elevation)  # (rings, columns), ring-major
    d_sensor = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
    d_sensor = d_sensor.reshape(-1, 3)
    hits = intersect_nearest(origin, d_sensor @ rot.T, parts.prims)
    hit = (hits.index >= 0) & (hits.t >= spec.min_range) & (hits.t <= spec.max_range)
    keep = np.flatnonzero(hit)
    t, prim, normal = hits.t[keep], hits.index[keep], hits.normal[keep]
    p_world = origin + (d_sensor[keep] @ rot.T) * t[:, None]
    noise_rng = np.random.default_rng([seed, 14])
    t_noisy = t + noise_rng.normal(0.0, spec.range_noise_sigma, t.shape)
    points = np.empty((len(t), 4), np.float32)
    points[:, :3] = d_sensor[keep] * t_noisy[:, None]

    walkable = np.asarray(parts.walkable, bool)[prim]
    classes = np.array([q.class_id for q in parts.prims], np.uint8)[prim]
    up = normal[:, 2].astype(np.float32)
    cos_inc = np.abs(np.einsum("ij,ij->i", normal, d_sensor[keep] @ rot.T))
    points[:, 3] = np.clip(REFLECTIVITY[np.minimum(classes, 10)] * (0.3 + 0.7 * cos_inc), 0, 1)
    truth = walkable & (up >= np.cos(np.deg2rad(WALKABLE_DEG)))
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = rot, origin
    return GroundScene(
        kind=kind, seed=seed, lidar=spec, points=points, ground=truth, point_class=classes,
        normal_up=up, floor_height=_height_above_floor(parts, p_world).astype(np.float32),
        ring=(keep // spec.num_columns).astype(np.uint16),
        column=(keep % spec.num_columns).astype(np.uint16), T_world_from_sensor=T,
    )  # fmt: skip


def _walkable_parts(parts: Parts) -> list:
    return [q for q, w in zip(parts.prims, parts.walkable, strict=True) if w]


def _floor_below(parts: Parts, x: float, y: float) -> float:
    """Height of the highest walkable surface under (x, y)."""
    hits = intersect_nearest(np.array([x, y, 50.0]), np.array([[0.0, 0.0, -1.0]]),
                             _walkable_parts(parts))  # fmt: skip
    return float(50.0 - hits.t[0]) if np.isfinite(hits.t[0]) else 0.0


def _height_above_floor(parts: Parts, p_world: np.ndarray) -> np.ndarray:
    """Per point, its height above the first walkable surface straight below it (cast
    from 2 cm above the point, so points on the floor read ~0); NaN where there is none."""
    start = p_world + np.array([0.0, 0.0, 0.02])
    down = np.tile([0.0, 0.0, -1.0], (len(p_world), 1))
    hits = intersect_nearest(start, down, _walkable_parts(parts))
    return np.where(np.isfinite(hits.t), hits.t - 0.02, np.nan)
