"""Geometry for the ground-segmentation scenes: a convex solid for ramps and slopes, and
the indoor and outdoor objects (furniture with legs, shelving, people, vegetation).

Why a separate module: the street generator (:mod:`.scene`) only needs vertical-walled
boxes on a flat road; ground segmentation must also be tested on sloped floors (ramps,
embankments, hills) and on the clutter of rooms and warehouses, where floor is seen only
between table legs and under shelves. Every solid here satisfies the ray caster's
:class:`~seg_perception.sample.raycast.Primitive` protocol, so the scenes keep exact,
ray-cast truth. Sizes are those of real furniture (a table top at ~0.75 m, a chair seat
at ~0.45 m, pallet racking decks every ~1.5 m).

Every part is registered with the :class:`Parts` collector together with whether its
surface is *walkable floor* (floors, roads, sidewalks, ramps, terrain): the scenes'
ground truth is "on a walkable part, on a face flatter than 30 degrees".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seg_perception.sample.raycast import Box, Cylinder, Primitive, Sphere

# Class ids of the ground scenes (their own small table; 255 = no hit).
FLOOR, TERRAIN, WALL, CEILING, FURNITURE, SHELF, BOX, PERSON, VEGETATION, VEHICLE, POLE = range(11)
GROUND_CLASS_NAMES: tuple[str, ...] = (
    "floor", "terrain", "wall", "ceiling", "furniture", "shelf", "box", "person",
    "vegetation", "vehicle", "pole",
)  # fmt: skip
#: LiDAR reflectivity per class (intensity = reflectivity x incidence shading).
REFLECTIVITY = np.array([0.35, 0.3, 0.45, 0.4, 0.3, 0.5, 0.4, 0.3, 0.35, 0.55, 0.45])


@dataclass(frozen=True, kw_only=True)
class Polytope:
    """A convex solid: the points with ``normal_k . p <= offset_k`` for every face k.

    Ramps, wedges and hills are polytopes with a tilted top face. The ray test is the slab
    test generalized to any faces: entering faces raise the near distance, leaving faces
    lower the far one.
    """

    normals: tuple[tuple[float, float, float], ...]
    offsets: tuple[float, ...]
    center: tuple[float, float, float]
    radius: float
    class_id: int = 255
    instance_id: int = 0
    color: tuple[int, int, int] | None = None

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        return np.asarray(self.center, dtype=np.float64), float(self.radius)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray, t_min: float) -> np.ndarray:
        n = np.asarray(self.normals, dtype=np.float64)
        d = np.asarray(self.offsets, dtype=np.float64)
        along = dirs @ n.T  # (M, K)
        start = origins @ n.T if origins.ndim == 2 else np.broadcast_to(n @ origins, along.shape)
        gap = d - start  # >= 0 where the origin is inside face k's half-space
        with np.errstate(divide="ignore", invalid="ignore"):
            t = gap / along
        entering = np.where(along < 0, t, -np.inf)
        leaving = np.where(along > 0, t, np.inf)
        parallel_out = (along == 0) & (gap < 0)
        t_near = entering.max(axis=1)
        t_far = leaving.min(axis=1)
        hit = (t_near <= t_far) & (t_near > t_min) & ~parallel_out.any(axis=1)
        return np.where(hit, t_near, np.inf)

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        n = np.asarray(self.normals, dtype=np.float64)
        d = np.asarray(self.offsets, dtype=np.float64)
        face = np.argmax(points @ n.T - d, axis=1)  # the face the point lies on (~0)
        return n[face]


def wedge(
    x0: float,
    x1: float,
    y0: float,
    y1: float,
    z_at_x0: float,
    z_at_x1: float,
    bottom: float,
    *,
    yaw: float = 0.0,
    origin: tuple[float, float] = (0.0, 0.0),
    **kw: object,
) -> Polytope:
    """A solid under the plane rising linearly from ``z_at_x0`` at x0 to ``z_at_x1`` at x1
    (a ramp), ``bottom`` below, over ``x0..x1`` x ``y0..y1`` in a frame rotated by ``yaw``
    about ``origin``. Its top is walkable when gentle; its sides are vertical."""
    slope = (z_at_x1 - z_at_x0) / (x1 - x0)
    top = np.array([-slope, 0.0, 1.0]) / np.hypot(slope, 1.0)
    top_offset = float(top @ np.array([x0, 0.0, z_at_x0]))
    local = [
        (top, top_offset),
        (np.array([0.0, 0.0, -1.0]), -bottom),
        (np.array([1.0, 0.0, 0.0]), x1),
        (np.array([-1.0, 0.0, 0.0]), -x0),
        (np.array([0.0, 1.0, 0.0]), y1),
        (np.array([0.0, -1.0, 0.0]), -y0),
    ]
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    shift = np.array([origin[0], origin[1], 0.0])
    normals, offsets = [], []
    for normal, offset in local:
        world = rot @ normal
        normals.append(tuple(float(v) for v in world))
        offsets.append(float(offset + world @ shift))
    corners = np.array(
        [[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (bottom, max(z_at_x0, z_at_x1))]
    )
    corners = corners @ rot.T + shift
    center = corners.mean(axis=0)
    radius = float(np.linalg.norm(corners - center, axis=1).max())
    return Polytope(
        normals=tuple(normals), offsets=tuple(offsets), center=tuple(center), radius=radius,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def wedge_y(
    x0: float,
    x1: float,
    y0: float,
    y1: float,
    z_at_y0: float,
    z_at_y1: float,
    bottom: float,
    **kw: object,
) -> Polytope:
    """:func:`wedge` rising along y: from ``z_at_y0`` at y0 to ``z_at_y1`` at y1."""
    return wedge(y0, y1, -x1, -x0, z_at_y0, z_at_y1, bottom, yaw=np.pi / 2, **kw)


@dataclass
class Parts:
    """Collects primitives with their walkable flag and hands out instance ids."""

    prims: list[Primitive] = field(default_factory=list)
    walkable: list[bool] = field(default_factory=list)
    _next: int = 1

    def new_instance(self) -> int:
        self._next += 1
        return self._next - 1

    def add(self, prim: Primitive, walkable: bool = False) -> None:
        self.prims.append(prim)
        self.walkable.append(walkable)

    def box(self, center, size, cls: int, yaw: float = 0.0, inst: int = 0, walk=False) -> None:
        """Add a :class:`Box` (``center`` and full ``size``, m)."""
        self.add(Box(center=center, size=size, yaw=yaw, class_id=cls, instance_id=inst), walk)

    def slab(self, x0, x1, y0, y1, z0, z1, cls: int, inst: int = 0, walk=False) -> None:
        """Add an axis-aligned box given by its extents."""
        center = ((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2)
        self.box(center, (x1 - x0, y1 - y0, z1 - z0), cls, 0.0, inst, walk)

    def cylinder(self, x, y, radius, z0, z1, cls: int, inst: int = 0) -> None:
        self.add(
            Cylinder(center_xy=(x, y), radius=radius, z_min=z0, z_max=z1, class_id=cls,
                     instance_id=inst)
        )  # fmt: skip


def _rotated(x: float, y: float, dx: float, dy: float, yaw: float) -> tuple[float, float]:
    c, s = np.cos(yaw), np.sin(yaw)
    return x + c * dx - s * dy, y + s * dx + c * dy


def add_table(p: Parts, rng: np.random.Generator, x: float, y: float, yaw: float) -> float:
    """A table (top ~0.75 m on four thin legs); returns its footprint radius."""
    inst = p.new_instance()
    length, width = rng.uniform(0.8, 1.6), rng.uniform(0.6, 0.9)
    height = rng.uniform(0.70, 0.76)
    p.box((x, y, height - 0.015), (length, width, 0.03), FURNITURE, yaw, inst)
    for sx in (-1, 1):
        for sy in (-1, 1):
            lx, ly = _rotated(x, y, sx * (length / 2 - 0.06), sy * (width / 2 - 0.06), yaw)
            p.cylinder(lx, ly, 0.025, 0.0, height - 0.03, FURNITURE, inst)
    return 0.5 * float(np.hypot(length, width))


def add_chair(p: Parts, rng: np.random.Generator, x: float, y: float, yaw: float) -> float:
    """A chair: a seat at ~0.45 m on four legs and a backrest."""
    inst = p.new_instance()
    seat = rng.uniform(0.42, 0.48)
    p.box((x, y, seat - 0.02), (0.45, 0.45, 0.04), FURNITURE, yaw, inst)
    for sx in (-1, 1):
        for sy in (-1, 1):
            lx, ly = _rotated(x, y, sx * 0.19, sy * 0.19, yaw)
            p.cylinder(lx, ly, 0.015, 0.0, seat - 0.04, FURNITURE, inst)
    bx, by = _rotated(x, y, -0.21, 0.0, yaw)
    p.box((bx, by, seat + 0.22), (0.04, 0.45, 0.44), FURNITURE, yaw, inst)
    return 0.35


def add_block(
    p: Parts, rng: np.random.Generator, x: float, y: float, yaw: float, kind: str
) -> float:
    """Solid furniture or goods standing on the floor: a sofa, cabinet, bookcase, desk
    with drawers, or a cardboard box."""
    inst = p.new_instance()
    if kind == "sofa":
        length, depth = rng.uniform(1.6, 2.2), rng.uniform(0.8, 0.95)
        p.box((x, y, 0.21), (length, depth, 0.42), FURNITURE, yaw, inst)
        bx, by = _rotated(x, y, 0.0, -depth / 2 + 0.1, yaw)
        p.box((bx, by, 0.6), (length, 0.2, 0.4), FURNITURE, yaw, inst)
        return 0.5 * float(np.hypot(length, depth))
    sizes = {
        "cabinet": ((0.8, 1.2), (0.4, 0.6), (0.9, 2.0), FURNITURE),
        "bookcase": ((0.8, 1.0), (0.3, 0.4), (1.8, 2.1), FURNITURE),
        "desk": ((1.2, 1.6), (0.6, 0.8), (0.72, 0.76), FURNITURE),
        "box": ((0.3, 0.7), (0.3, 0.6), (0.2, 0.7), BOX),
    }
    (l0, l1), (w0, w1), (h0, h1), cls = sizes[kind]
    length, width, height = rng.uniform(l0, l1), rng.uniform(w0, w1), rng.uniform(h0, h1)
    p.box((x, y, height / 2), (length, width, height), cls, yaw, inst)
    return 0.5 * float(np.hypot(length, width))


def add_person(p: Parts, rng: np.random.Generator, x: float, y: float, base: float = 0.0) -> float:
    """A standing person: two legs, a torso and a head."""
    inst = p.new_instance()
    scale = rng.uniform(0.9, 1.08)
    yaw = rng.uniform(0, np.pi)
    for side in (-1, 1):
        lx, ly = _rotated(x, y, 0.0, side * 0.1 * scale, yaw)
        p.cylinder(lx, ly, 0.07 * scale, base, base + 0.85 * scale, PERSON, inst)
    p.cylinder(x, y, 0.18 * scale, base + 0.85 * scale, base + 1.45 * scale, PERSON, inst)
    head = (x, y, base + 1.58 * scale)
    p.add(Sphere(center=head, radius=0.11 * scale, class_id=PERSON, instance_id=inst))
    return 0.3


def add_rack(
    p: Parts, rng: np.random.Generator, x0: float, y0: float, bays: int, along_x: bool
) -> tuple[float, float, float, float]:
    """A row of pallet racking from (x0, y0): uprights, decks every ~1.5 m and goods on
    them; the floor level holds pallets loaded with boxes. Returns its extent."""
    inst = p.new_instance()
    bay, depth, top = 2.7, 1.1, float(rng.uniform(4.2, 5.5))
    length = bays * bay
    ex = (x0, x0 + length, y0, y0 + depth) if along_x else (x0, x0 + depth, y0, y0 + length)

    def at(u: float, v: float) -> tuple[float, float]:
        return (x0 + u, y0 + v) if along_x else (x0 + v, y0 + u)

    for k in range(bays + 1):
        for v in (0.04, depth - 0.04):
            ux, uy = at(k * bay, v)
            p.box((ux, uy, top / 2), (0.08, 0.08, top), SHELF, 0.0, inst)
    levels = np.arange(1.5, top - 0.5, 1.5)
    for k in range(bays):
        for level in levels:
            cx, cy = at((k + 0.5) * bay, depth / 2)
            size = (bay - 0.1, depth, 0.05) if along_x else (depth, bay - 0.1, 0.05)
            p.box((cx, cy, level), size, SHELF, 0.0, inst)
        for level in (0.0, *levels):
            for slot in (0.25, 0.5, 0.75):
                if rng.uniform() < 0.25:
                    continue
                gx, gy = at((k + slot) * bay, depth / 2)
                base = level + (0.025 if level else 0.0)
                if level == 0.0:  # a pallet, almost covered by its load
                    p.box((gx, gy, 0.075), (0.8, 1.0, 0.15), BOX, 0.0, p.new_instance())
                    base = 0.15
                h = float(rng.uniform(0.4, 1.2))
                p.box((gx, gy, base + h / 2), (0.76, 0.96, h), BOX, 0.0, p.new_instance())
    return ex


def add_tree(p: Parts, rng: np.random.Generator, x: float, y: float, base: float = 0.0) -> None:
    inst = p.new_instance()
    trunk = rng.uniform(1.8, 3.0)
    p.cylinder(x, y, rng.uniform(0.1, 0.2), base, base + trunk, VEGETATION, inst)
    crown = rng.uniform(1.2, 2.2)
    p.add(Sphere(center=(x, y, base + trunk + crown * 0.7), radius=crown, class_id=VEGETATION,
                 instance_id=inst))  # fmt: skip


def add_bush(p: Parts, rng: np.random.Generator, x: float, y: float, base: float = 0.0) -> None:
    """A low bush: a sphere sunk into the ground (a mound of leaves 0.2-0.8 m high)."""
    radius = rng.uniform(0.3, 0.8)
    height = rng.uniform(0.2, 0.8)
    center = (x, y, base + height - radius)
    p.add(Sphere(center=center, radius=radius, class_id=VEGETATION, instance_id=p.new_instance()))


def add_car(p: Parts, rng: np.random.Generator, x: float, y: float, yaw: float) -> None:
    """A car: a body slab above the wheels (0.25 m clearance) and a cabin."""
    inst = p.new_instance()
    length, width = rng.uniform(3.9, 4.6), rng.uniform(1.7, 1.9)
    p.box((x, y, 0.625), (length, width, 0.75), VEHICLE, yaw, inst)
    for sx in (-1, 1):
        for sy in (-1, 1):
            wx, wy = _rotated(x, y, sx * length * 0.33, sy * (width / 2 - 0.15), yaw)
            p.cylinder(wx, wy, 0.3, 0.0, 0.6, VEHICLE, inst)
    cx, cy = _rotated(x, y, -0.08 * length, 0.0, yaw)
    p.box((cx, cy, 1.25), (0.55 * length, width - 0.15, 0.5), VEHICLE, yaw, inst)
