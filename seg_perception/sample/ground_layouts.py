"""Layouts of the ground-segmentation scenes (:mod:`.ground_scenes`): rooms, corridors,
a warehouse, ramps and slopes, curbs, a park, and the demo street, in the world frame
(z up, the sensor above the origin unless a layout says where it stands).

Each builder takes a seeded random generator and returns the :class:`Parts` (primitives
with their walkable flag) and the sensor's x, y. Clutter is placed without overlap and
clear of the robot's own footprint, so a sweep sees floor only between furniture, the way
a robot in a real room does.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from seg_perception.sample.ground_geometry import (
    BOX,
    CEILING,
    FLOOR,
    PERSON,
    POLE,
    TERRAIN,
    VEGETATION,
    VEHICLE,
    WALL,
    Parts,
    add_block,
    add_bush,
    add_car,
    add_chair,
    add_person,
    add_rack,
    add_table,
    add_tree,
    wedge,
    wedge_y,
)
from seg_perception.sample.raycast import GroundPlane, Sphere
from seg_perception.sample.scene import (
    BICYCLE,
    BUILDING,
    BUS,
    CAR,
    FENCE,
    RIDER,
    ROAD,
    SIDEWALK,
    TRUCK,
    build_street,
)
from seg_perception.sample.scene import PERSON as PERSON_CS
from seg_perception.sample.scene import TERRAIN as STREET_TERRAIN
from seg_perception.sample.scene import VEGETATION as VEGETATION_CS
from seg_perception.sample.scene import WALL as STREET_WALL


def _free(rng, spots, x0, x1, y0, y1, radius, keep_clear, tries=40):
    """A random position inside the box, ``radius`` clear of ``spots`` (x, y, r) and of
    the sensor's own footprint ``keep_clear``; None if none found."""
    for _ in range(tries):
        x, y = rng.uniform(x0 + radius, x1 - radius), rng.uniform(y0 + radius, y1 - radius)
        if np.hypot(x, y) < keep_clear + radius:
            continue
        if all(np.hypot(x - sx, y - sy) > radius + sr for sx, sy, sr in spots):
            return x, y
    return None


def _walls(p: Parts, x0, x1, y0, y1, height, gaps=()) -> None:
    """Four 0.12 m walls around the rectangle, floor and ceiling; ``gaps`` are door
    openings (side, start, end) that open onto a 0.3 m deep recess."""
    t = 0.12
    p.add(GroundPlane(height=0.0, class_id=FLOOR), walkable=True)
    p.slab(x0 - 1, x1 + 1, y0 - 1, y1 + 1, height, height + 0.2, CEILING)
    sides = {"south": (x0, x1, y0 - t, y0), "north": (x0, x1, y1, y1 + t),
             "west": (x0 - t, x0, y0, y1), "east": (x1, x1 + t, y0, y1)}  # fmt: skip
    for side, (a0, a1, b0, b1) in sides.items():
        along_x = side in ("south", "north")
        cuts = sorted((s, e) for g, s, e in gaps if g == side)
        start = a0 if along_x else b0
        stop = a1 if along_x else b1
        pieces, cursor = [], start
        for s, e in cuts:
            pieces.append((cursor, s))
            back = (b0 - 0.4, b0 - 0.3) if side == "south" else (b1 + 0.3, b1 + 0.4)
            if not along_x:
                back = (a0 - 0.4, a0 - 0.3) if side == "west" else (a1 + 0.3, a1 + 0.4)
            if along_x:
                p.slab(s, e, *back, 0.0, height, WALL)
            else:
                p.slab(*back, s, e, 0.0, height, WALL)
            cursor = e
        pieces.append((cursor, stop))
        for s, e in pieces:
            if e - s > 0.01:
                if along_x:
                    p.slab(s, e, b0, b1, 0.0, height, WALL)
                else:
                    p.slab(a0, a1, s, e, 0.0, height, WALL)


def _furnish(p: Parts, rng, bounds, count: int, keep_clear: float) -> None:
    """Place ``count`` random pieces (tables with chairs, sofas, cabinets, boxes,
    people) without overlap in ``bounds`` (x0, x1, y0, y1)."""
    spots: list[tuple[float, float, float]] = []
    kinds = ("table", "table", "chair", "chair", "sofa", "cabinet", "bookcase", "desk",
             "box", "box", "box", "person")  # fmt: skip
    for _ in range(count):
        kind = kinds[int(rng.integers(len(kinds)))]
        radius = {"table": 0.9, "sofa": 1.15, "person": 0.35, "chair": 0.35}.get(kind, 0.6)
        spot = _free(rng, spots, *bounds, radius, keep_clear)
        if spot is None:
            continue
        x, y = spot
        yaw = float(rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)]))
        if kind == "table":
            add_table(p, rng, x, y, yaw)
            for k in range(int(rng.integers(0, 3))):
                cx, cy = x + np.cos(yaw + k * np.pi) * 0.75, y + np.sin(yaw + k * np.pi) * 0.75
                add_chair(p, rng, cx, cy, yaw + k * np.pi)
        elif kind == "chair":
            add_chair(p, rng, x, y, float(rng.uniform(0, 2 * np.pi)))
        elif kind == "person":
            add_person(p, rng, x, y)
        else:
            add_block(p, rng, x, y, yaw, kind)
        spots.append((x, y, radius))


def build_room(rng: np.random.Generator, clutter: int = 22) -> tuple[Parts, tuple[float, float]]:
    """A cluttered room (offices, homes): 5-9 x 4-7 m, furniture on legs, boxes, people."""
    p = Parts()
    w, d = rng.uniform(5.0, 9.0), rng.uniform(4.0, 7.0)
    sx, sy = rng.uniform(0.3, 0.6) * w, rng.uniform(0.3, 0.6) * d  # the sensor's position
    x0, x1, y0, y1 = -sx, w - sx, -sy, d - sy
    door = rng.uniform(y0 + 0.5, y1 - 1.5)
    _walls(p, x0, x1, y0, y1, rng.uniform(2.5, 3.0), gaps=[("east", door, door + 0.9)])
    _furnish(p, rng, (x0, x1, y0, y1), clutter, keep_clear=0.6)
    return p, (0.0, 0.0)


def build_corridor(rng: np.random.Generator) -> tuple[Parts, tuple[float, float]]:
    """A long corridor (2-2.6 m wide, 40 m long) with door recesses, bins, benches,
    plants, boxes and people."""
    p = Parts()
    half, x0, x1 = rng.uniform(1.0, 1.3), -8.0, 32.0
    doors = [(side, s, s + 0.9) for side in ("south", "north")
             for s in np.arange(x0 + 2, x1 - 2, rng.uniform(4.0, 7.0))]  # fmt: skip
    _walls(p, x0, x1, -half, half, rng.uniform(2.5, 2.8), gaps=doors)
    spots: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(8, 14))):
        spot = _free(rng, spots, x0, x1, -half, half, 0.3, keep_clear=1.0)
        if spot is None:
            continue
        x, y = spot
        y = float(np.clip(y, -half + 0.35, half - 0.35))
        kind = rng.choice(["person", "box", "bin", "plant"])
        if kind == "person":
            add_person(p, rng, x, y)
        elif kind == "box":
            add_block(p, rng, x, -half + 0.35 if y < 0 else half - 0.35, 0.0, "box")
        elif kind == "bin":
            p.cylinder(x, y, 0.2, 0.0, 0.7, BOX, p.new_instance())
        else:
            inst = p.new_instance()
            p.cylinder(x, y, 0.2, 0.0, 0.4, BOX, inst)
            p.add(Sphere(center=(x, y, 0.75), radius=0.35, class_id=VEGETATION, instance_id=inst))
        spots.append((x, y, 0.3))
    return p, (0.0, 0.0)


def build_warehouse(rng: np.random.Generator) -> tuple[Parts, tuple[float, float]]:
    """A warehouse hall (40 x 28 m, 8 m high) with rows of pallet racking, loaded
    pallets in the aisles, people and a forklift."""
    p = Parts()
    x0, x1, y0, y1 = -12.0, 28.0, -14.0, 14.0
    _walls(p, x0, x1, y0, y1, 8.0)
    for y in (-11.0, -7.4, 3.3, 6.9):
        add_rack(p, rng, -9.0, y, int(rng.integers(4, 9)), along_x=True)
    for x in (20.0, 23.6):
        add_rack(p, rng, x, -12.0, int(rng.integers(3, 7)), along_x=False)
    spots = [(0.0, 0.0, 1.5)]
    for _ in range(int(rng.integers(8, 14))):
        spot = _free(rng, spots, -9.0, 18.0, -2.5, 2.5, 0.7, keep_clear=1.5)
        if spot is None:
            continue
        x, y = spot
        if rng.uniform() < 0.35:
            add_person(p, rng, x, y)
        else:
            inst = p.new_instance()
            p.box((x, y, 0.075), (1.2, 0.8, 0.15), BOX, 0.0, inst)
            h = float(rng.uniform(0.5, 1.6))
            p.box((x, y, 0.15 + h / 2), (1.16, 0.76, h), BOX, 0.0, inst)
        spots.append((x, y, 0.7))
    fx = float(rng.uniform(6.0, 14.0))
    inst = p.new_instance()
    p.box((fx, -4.5, 0.8), (2.3, 1.1, 1.3), BOX, 0.0, inst)
    p.box((fx - 1.2, -4.5, 1.6), (0.1, 0.9, 3.0), BOX, 0.0, inst)
    return p, (0.0, 0.0)


def build_ramps(rng: np.random.Generator) -> tuple[Parts, tuple[float, float]]:
    """Ramps and slopes: a 6-10 deg ramp up to a loading platform, a loading dock's ramp
    down into a sunken bay, a 4-7 deg grassy slope, a 35-45 deg embankment (not walkable),
    cars and pillars."""
    p = Parts()
    up = np.tan(np.deg2rad(rng.uniform(6.0, 10.0)))
    rise = float(rng.uniform(1.0, 1.6))
    x0 = float(rng.uniform(5.0, 8.0))
    x1 = x0 + rise / up
    # The sensor stands on a 1.2 m high yard (walkable top); a sunken bay cut into it.
    base = -1.2
    p.add(GroundPlane(height=base, class_id=FLOOR), walkable=True)
    bay = (-14.0, -4.0, -4.0, 3.0)  # x0, x1, y0, y1 of the bay
    yard = (
        (-60, bay[0], -60, 60),
        (bay[1], 60, -60, 60),
        (bay[0], bay[1], -60, bay[2]),
        (bay[0], bay[1], bay[3], 60),
    )
    for a0, a1, b0, b1 in yard:
        p.slab(a0, a1, b0, b1, base, 0.0, FLOOR, walk=True)
    # Down ramp into the bay from x = -4 (top, z 0) to x = -11 (bottom, z -1.2).
    p.add(wedge(-11.0, bay[1], -1.5, 1.5, base, 0.0, base - 0.1, class_id=FLOOR), walkable=True)
    # Up ramp to a platform.
    p.add(wedge(x0, x1, -2.0, 2.0, 0.0, rise, -0.1, class_id=FLOOR), walkable=True)
    p.slab(x1, x1 + 12.0, -6.0, 6.0, -0.1, rise, FLOOR, walk=True)
    # A gentle grassy slope on the left, a steep embankment on the right.
    g = np.tan(np.deg2rad(rng.uniform(4.0, 7.0)))
    p.add(wedge(0.0, 12.0, 0.0, 10.0, 0.0, 12.0 * g, -0.1, yaw=np.pi / 2, origin=(-6.0, 5.0),
                class_id=TERRAIN), walkable=True)  # fmt: skip
    s = np.tan(np.deg2rad(rng.uniform(35.0, 45.0)))
    p.add(wedge(0.0, 3.0, -6.0, 8.0, 0.0, 3.0 * s, -0.1, yaw=-np.pi / 2, origin=(-2.0, -6.0),
                class_id=TERRAIN))  # fmt: skip
    for _ in range(3):
        add_car(p, rng, float(rng.uniform(-3.0, 4.0)), float(rng.uniform(3.0, 5.0)),
                float(rng.uniform(0, np.pi)))  # fmt: skip
    for x in (-8.0, 2.0, 12.0):
        p.slab(x, x + 0.4, 8.0, 8.4, 0.0, 4.0, POLE)
    add_person(p, rng, x0 + 0.6 * (x1 - x0), 1.0, 0.6 * rise)
    return p, (0.0, 0.0)


def build_curbs(rng: np.random.Generator) -> tuple[Parts, tuple[float, float]]:
    """A street with 0.1-0.2 m curbs, sidewalks with a curb cut, parked cars, bollards,
    planters, people and building fronts."""
    p = Parts()
    half, sw = rng.uniform(3.5, 5.0), rng.uniform(2.5, 4.0)
    curb = float(rng.uniform(0.1, 0.2))
    p.add(GroundPlane(height=0.0, class_id=FLOOR), walkable=True)
    cut = float(rng.uniform(8.0, 15.0))
    for side in (-1.0, 1.0):
        lo, hi = sorted((side * half, side * (half + sw)))
        p.slab(-40.0, cut, lo, hi, 0.0, curb, FLOOR, walk=True)
        p.slab(cut + 2.4, 80.0, lo, hi, 0.0, curb, FLOOR, walk=True)
        # A curb cut: a ramp down to the road between the two sidewalk slabs.
        inner, outer = (lo, lo + 1.2) if side > 0 else (hi - 1.2, hi)
        rz = (0.0, curb) if side > 0 else (curb, 0.0)
        p.add(wedge_y(cut, cut + 2.4, inner, outer, rz[0], rz[1], -0.1, class_id=FLOOR),
              walkable=True)  # fmt: skip
        p.slab(cut, cut + 2.4, *(sorted((side * (half + 1.2), side * (half + sw)))), 0.0,
               curb, FLOOR, walk=True)  # fmt: skip
        p.slab(-40.0, 80.0, *(sorted((side * (half + sw), side * (half + sw + 1.0)))), 0.0,
               rng.uniform(6, 15), WALL)  # fmt: skip
        for x in np.arange(-30.0, 70.0, rng.uniform(6.0, 9.0)):
            if rng.uniform() < 0.6 and not -4 < x < 4:
                add_car(p, rng, float(x), side * (half - 1.1), 0.0)
        for x in np.arange(-20.0, 60.0, rng.uniform(7.0, 12.0)):
            bx = float(x + rng.uniform(-1, 1))
            y = side * (half + 0.4)
            if rng.uniform() < 0.5:
                p.cylinder(bx, y, 0.1, curb, curb + 0.9, POLE, p.new_instance())
            else:
                p.slab(bx, bx + 1.0, y - 0.4, y + 0.4, curb, curb + 0.45, BOX, p.new_instance())
        for _ in range(4):
            add_person(p, rng, float(rng.uniform(-15, 40)), side * (half + sw * 0.6), curb)
    return p, (0.0, float(rng.uniform(-half + 1.5, half - 1.5)))


def build_vegetation(rng: np.random.Generator) -> tuple[Parts, tuple[float, float]]:
    """A park: grass, a 5-8 deg hillside, low bushes and hedges, trees and rocks."""
    p = Parts()
    p.add(GroundPlane(height=0.0, class_id=TERRAIN), walkable=True)
    g = np.tan(np.deg2rad(rng.uniform(5.0, 8.0)))
    p.add(wedge(0.0, 20.0, -15.0, 15.0, 0.0, 20.0 * g, -0.1, origin=(12.0, 0.0),
                class_id=TERRAIN), walkable=True)  # fmt: skip
    p.slab(32.0, 60.0, -15.0, 15.0, -0.1, 20.0 * g, TERRAIN, walk=True)
    for _ in range(int(rng.integers(25, 40))):
        x, y = rng.uniform(-30, 30), rng.uniform(-30, 30)
        if np.hypot(x, y) > 2.5 and not (12 < x < 60 and abs(y) < 15):
            add_bush(p, rng, float(x), float(y))
    for _ in range(int(rng.integers(6, 12))):
        x, y = rng.uniform(-30, 30), rng.uniform(-30, 30)
        if np.hypot(x, y) > 4 and not (12 < x < 60 and abs(y) < 15):
            add_tree(p, rng, float(x), float(y))
    for _ in range(3):
        x, y = rng.uniform(-25, 8), rng.uniform(-25, 25)
        if np.hypot(x, y) > 4:
            p.slab(x, x + rng.uniform(3, 8), y, y + 0.8, 0.0, rng.uniform(0.6, 1.1), VEGETATION)
    return p, (0.0, 0.0)


#: The street's Cityscapes classes in this module's table (signs, lights: POLE).
_STREET_CLASS = {
    ROAD: FLOOR, SIDEWALK: FLOOR, STREET_TERRAIN: TERRAIN, BUILDING: WALL, STREET_WALL: WALL,
    FENCE: WALL, VEGETATION_CS: VEGETATION, PERSON_CS: PERSON, RIDER: PERSON, CAR: VEHICLE,
    TRUCK: VEHICLE, BUS: VEHICLE, BICYCLE: VEHICLE,
}  # fmt: skip


def build_street_parts(rng: np.random.Generator) -> tuple[Parts, tuple[float, float]]:
    """The demo street (:func:`~seg_perception.sample.scene.build_street`): road,
    sidewalks behind curbs, terrain, cars, people, trees, poles, buildings."""
    prims, layout = build_street(int(rng.integers(0, 2**31)))
    p = Parts()
    for prim in prims:
        cls = _STREET_CLASS.get(prim.class_id, POLE)
        p.add(replace(prim, class_id=cls), walkable=cls in (FLOOR, TERRAIN))
    return p, (0.0, layout.ego_y)
