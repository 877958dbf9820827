"""Vectorized ray casting against a handful of analytic primitives.

The sample scenes need *exact* truth: the LiDAR point, the camera pixel and the label of
both must come from one geometry, so that tests of projection and occlusion can assert
real values instead of "looks about right". A tiny analytic ray caster gives that without
meshes or a renderer dependency.

Design choices:

* Everything is numpy. Rays are processed in chunks (bounded memory), and for each chunk
  we loop over the primitives (tens to ~150 of them), never over rays.
* Before the exact test a primitive is culled with its bounding sphere, which costs a
  handful of flops per ray; most primitives cover a small fraction of the rays, so the
  exact (more expensive) test only runs on the candidates.
* Only the nearest hit distance and the index of the primitive are tracked during the
  sweep; normals are computed once at the end, from the hit points, for the winners only.
* Directions are normalized internally, so the returned ``t`` is a metric distance.
* Solids are hit on their entering face (rays start outside them); the ground plane is
  two-sided. Normals are returned facing the incoming ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

NO_HIT_CLASS = 255
"""Class id returned for rays that hit nothing (the Cityscapes "ignore" id)."""

_DEFAULT_CHUNK = 1 << 16


class Primitive(Protocol):
    """What the ray caster needs from a primitive.

    ``intersect`` returns the entering hit distance per ray (``inf`` on a miss) for unit
    directions; ``normal_at`` returns outward unit normals at points on the surface;
    ``bounding_sphere`` returns ``(center, radius)`` for culling, or ``None`` for
    unbounded primitives that every ray must be tested against.
    """

    class_id: int
    instance_id: int
    color: tuple[int, int, int] | None

    def bounding_sphere(self) -> tuple[np.ndarray, float] | None: ...

    def intersect(self, origins: np.ndarray, dirs: np.ndarray, t_min: float) -> np.ndarray: ...

    def normal_at(self, points: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, kw_only=True)
class GroundPlane:
    """The infinite horizontal plane ``z = height`` (two-sided).

    It is the road surface of the sample street: everything not covered by a sidewalk,
    terrain or object slab is road, which is also true of a real street viewed from a lane.
    """

    height: float = 0.0
    class_id: int = 0
    instance_id: int = 0
    color: tuple[int, int, int] | None = None

    def bounding_sphere(self) -> None:
        return None

    def intersect(self, origins: np.ndarray, dirs: np.ndarray, t_min: float) -> np.ndarray:
        oz = origins[..., 2]
        dz = dirs[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.height - oz) / dz
        return np.where(np.isfinite(t) & (t > t_min), t, np.inf)

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        n = np.zeros_like(points)
        n[:, 2] = 1.0
        return n


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True, kw_only=True)
class Box:
    """A box rotated about the vertical axis by ``yaw`` (radians, counter-clockwise).

    ``center`` is the geometric center and ``size`` the full extents along the box's own
    x (length), y (width) and z (height) axes. Boxes cover buildings, cars, curbs and
    signs: the street world is mostly made of vertical-walled blocks.
    """

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float = 0.0
    class_id: int = 255
    instance_id: int = 0
    color: tuple[int, int, int] | None = None

    def _frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.asarray(self.center, dtype=np.float64),
            0.5 * np.asarray(self.size, dtype=np.float64),
            _yaw_matrix(self.yaw),
        )

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        c, h, _ = self._frame()
        return c, float(np.linalg.norm(h))

    def intersect(self, origins: np.ndarray, dirs: np.ndarray, t_min: float) -> np.ndarray:
        # Slab test in the box frame; local = R^T (p - c), written as row vectors p @ R.
        c, h, rot = self._frame()
        lo = (origins - c) @ rot
        ld = dirs @ rot
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / ld
            t1 = (-h - lo) * inv
            t2 = (h - lo) * inv
        # fmin/fmax ignore the NaN of 0 * inf (origin exactly on a slab plane, ray parallel).
        t_near = np.fmax.reduce(np.fmin(t1, t2), axis=1)
        t_far = np.fmin.reduce(np.fmax(t1, t2), axis=1)
        hit = (t_near <= t_far) & (t_near > t_min)
        return np.where(hit, t_near, np.inf)

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        c, h, rot = self._frame()
        lp = (points - c) @ rot
        axis = np.argmax(np.abs(lp) / h, axis=1)
        n_local = np.zeros_like(points)
        rows = np.arange(len(points))
        n_local[rows, axis] = np.sign(lp[rows, axis])
        return n_local @ rot.T


@dataclass(frozen=True, kw_only=True)
class Cylinder:
    """A vertical, capped cylinder: poles, tree trunks and (crudely) people."""

    center_xy: tuple[float, float]
    radius: float
    z_min: float
    z_max: float
    class_id: int = 255
    instance_id: int = 0
    color: tuple[int, int, int] | None = None

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        half = 0.5 * (self.z_max - self.z_min)
        c = np.array([self.center_xy[0], self.center_xy[1], self.z_min + half])
        return c, float(np.hypot(self.radius, half))

    def intersect(self, origins: np.ndarray, dirs: np.ndarray, t_min: float) -> np.ndarray:
        ox = origins[..., 0] - self.center_xy[0]
        oy = origins[..., 1] - self.center_xy[1]
        oz = origins[..., 2]
        dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
        r2 = self.radius * self.radius
        a = dx * dx + dy * dy
        half_b = ox * dx + oy * dy
        c = ox * ox + oy * oy - r2
        disc = half_b * half_b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = (-half_b - np.sqrt(disc)) / a
            z_side = oz + t_side * dz
            side_ok = (disc >= 0) & (a > 1e-18) & (t_side > t_min)
            side_ok &= (z_side >= self.z_min) & (z_side <= self.z_max)
            t = np.where(side_ok, t_side, np.inf)
            for z_cap in (self.z_min, self.z_max):
                t_cap = (z_cap - oz) / dz
                px = ox + t_cap * dx
                py = oy + t_cap * dy
                cap_ok = np.isfinite(t_cap) & (t_cap > t_min) & (px * px + py * py <= r2)
                t = np.where(cap_ok & (t_cap < t), t_cap, t)
        return t

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        rx = points[:, 0] - self.center_xy[0]
        ry = points[:, 1] - self.center_xy[1]
        rho = np.hypot(rx, ry)
        # Decide side vs cap by which surface the point is closest to.
        d_side = np.abs(rho - self.radius)
        d_top = np.abs(points[:, 2] - self.z_max)
        d_bottom = np.abs(points[:, 2] - self.z_min)
        n = np.zeros_like(points)
        safe = np.where(rho > 0, rho, 1.0)
        n[:, 0] = rx / safe
        n[:, 1] = ry / safe
        top = (d_top < d_side) & (d_top <= d_bottom)
        bottom = (d_bottom < d_side) & ~top
        n[top | bottom] = 0.0
        n[top, 2] = 1.0
        n[bottom, 2] = -1.0
        return n


@dataclass(frozen=True, kw_only=True)
class Sphere:
    """A sphere: tree crowns and heads."""

    center: tuple[float, float, float]
    radius: float
    class_id: int = 255
    instance_id: int = 0
    color: tuple[int, int, int] | None = None

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        return np.asarray(self.center, dtype=np.float64), float(self.radius)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray, t_min: float) -> np.ndarray:
        oc = origins - np.asarray(self.center, dtype=np.float64)
        b = np.sum(dirs * oc, axis=1) if oc.ndim == 2 else dirs @ oc
        c = np.sum(oc * oc, axis=-1) - self.radius * self.radius
        disc = b * b - c
        with np.errstate(invalid="ignore"):
            t = -b - np.sqrt(disc)
        return np.where((disc >= 0) & (t > t_min), t, np.inf)

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        return (points - np.asarray(self.center, dtype=np.float64)) / self.radius


class RayHits(NamedTuple):
    """Nearest hit per ray.

    ``t`` is the distance (``inf`` on a miss), ``index`` the index of the primitive that
    was hit (-1 on a miss), ``normal`` the unit surface normal facing the ray (zeros on a
    miss) and ``class_id`` the primitive's class (255 on a miss).
    """

    t: np.ndarray
    index: np.ndarray
    normal: np.ndarray
    class_id: np.ndarray


@dataclass
class _Culling:
    """Per-primitive bounding spheres, stacked once per cast rather than per chunk."""

    centers: np.ndarray
    radii: np.ndarray
    bounded: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @classmethod
    def of(cls, primitives: Sequence[Primitive]) -> _Culling:
        centers = np.zeros((len(primitives), 3))
        radii = np.full(len(primitives), np.inf)
        bounded = np.zeros(len(primitives), dtype=bool)
        for i, prim in enumerate(primitives):
            sphere = prim.bounding_sphere()
            if sphere is not None:
                centers[i], radii[i] = sphere
                bounded[i] = True
        return cls(centers, radii, bounded)


def _prepare(origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dirs = np.asarray(directions, dtype=np.float64)
    if dirs.ndim != 2 or dirs.shape[1] != 3:
        raise ValueError(f"directions must have shape (N, 3), got {dirs.shape}")
    norms = np.linalg.norm(dirs, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("directions must be non-zero")
    dirs = dirs / norms
    orig = np.asarray(origins, dtype=np.float64)
    if orig.shape != (3,) and orig.shape != dirs.shape:
        raise ValueError(f"origins must have shape (3,) or {dirs.shape}, got {orig.shape}")
    return orig, dirs


def intersect_nearest(
    origins: np.ndarray,
    directions: np.ndarray,
    primitives: Sequence[Primitive],
    *,
    t_min: float = 1e-6,
    chunk_size: int = _DEFAULT_CHUNK,
) -> RayHits:
    """Find the nearest hit of every ray, keeping which primitive was hit.

    ``origins`` is one shared origin ``(3,)`` (sensors: a cheap fast path) or one origin
    per ray ``(N, 3)``; ``directions`` ``(N, 3)`` need not be normalized. Hits closer than
    ``t_min`` are ignored so that rays leaving a surface do not hit it again.
    """
    orig, dirs = _prepare(origins, directions)
    n = len(dirs)
    best_t = np.full(n, np.inf)
    best_i = np.full(n, -1, dtype=np.int32)
    cull = _Culling.of(primitives)
    shared = orig.ndim == 1
    r2 = cull.radii * cull.radii

    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        d = dirs[start:stop]
        o = orig if shared else orig[start:stop]
        bt = best_t[start:stop]
        bi = best_i[start:stop]
        for p, prim in enumerate(primitives):
            if cull.bounded[p]:
                oc = cull.centers[p] - o
                if shared:
                    tca = d @ oc
                    oc2 = float(oc @ oc)
                else:
                    tca = np.einsum("ij,ij->i", d, oc)
                    oc2 = np.einsum("ij,ij->i", oc, oc)
                # Ray passes within the sphere, the sphere is not behind it, and it could
                # still be nearer than the current best hit.
                cand = (oc2 - tca * tca <= r2[p]) & (tca + cull.radii[p] > t_min)
                cand &= tca - cull.radii[p] < bt
                idx = np.flatnonzero(cand)
                if idx.size == 0:
                    continue
                t = prim.intersect(o if shared else o[idx], d[idx], t_min)
                closer = t < bt[idx]
                sel = idx[closer]
                bt[sel] = t[closer]
                bi[sel] = p
            else:
                t = prim.intersect(o, d, t_min)
                closer = t < bt
                bt[closer] = t[closer]
                bi[closer] = p

    normal = np.zeros((n, 3))
    class_id = np.full(n, NO_HIT_CLASS, dtype=np.uint8)
    hit = best_i >= 0
    if np.any(hit):
        hit_idx = np.flatnonzero(hit)
        order = np.argsort(best_i[hit_idx], kind="stable")
        hit_idx = hit_idx[order]
        prim_of = best_i[hit_idx]
        bounds = np.flatnonzero(np.diff(prim_of)) + 1
        for group in np.split(hit_idx, bounds):
            prim = primitives[int(best_i[group[0]])]
            o = orig if shared else orig[group]
            pts = o + dirs[group] * best_t[group, None]
            normal[group] = prim.normal_at(pts)
            class_id[group] = prim.class_id
        # Face the incoming ray (two-sided plane, numerical edge cases on solids).
        flip = np.einsum("ij,ij->i", normal, dirs) > 0
        normal[flip] *= -1.0
    return RayHits(best_t, best_i, normal, class_id)


def cast_rays(
    origins: np.ndarray,
    directions: np.ndarray,
    primitives: Sequence[Primitive],
    *,
    t_min: float = 1e-6,
    chunk_size: int = _DEFAULT_CHUNK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cast rays and return ``(t, class_id, normal)`` of the nearest hit.

    ``t`` (N,) float64 is the metric distance along the (normalized) direction, ``inf``
    where nothing is hit; ``class_id`` (N,) uint8 is 255 there; ``normal`` (N, 3) is the
    unit surface normal facing the ray. See :func:`intersect_nearest` for the arguments.
    """
    hits = intersect_nearest(origins, directions, primitives, t_min=t_min, chunk_size=chunk_size)
    return hits.t, hits.class_id, hits.normal


def segment_clear(
    origin: np.ndarray,
    targets: np.ndarray,
    primitives: Sequence[Primitive],
    *,
    epsilon: float = 0.05,
    chunk_size: int = _DEFAULT_CHUNK,
) -> np.ndarray:
    """True where the segment from ``origin`` (3,) to each target (N, 3) is unobstructed.

    A target counts as seen when the first surface along the ray lies no more than
    ``epsilon`` before it; this tolerates the target sitting *on* a surface (LiDAR
    returns always do) and the rounding of the two ray casts that found it.
    """
    seg = np.asarray(targets, dtype=np.float64) - np.asarray(origin, dtype=np.float64)
    dist = np.linalg.norm(seg, axis=1)
    out = dist == 0
    cast = np.flatnonzero(~out)
    if cast.size:
        hits = intersect_nearest(origin, seg[cast], primitives, chunk_size=chunk_size)
        out[cast] = hits.t >= dist[cast] - epsilon
    return out
