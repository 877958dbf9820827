"""Whole-array grid operations of the ground segmenter (:mod:`.ground`).

Everything here works on 2D grids of a horizontal (levelled) frame with numpy and
OpenCV, never a per-point or per-cell Python loop: a 120k-point scan must cost a few
milliseconds on one core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Grid:
    """A horizontal grid of ``cell``-sized cells from (x0, y0), ``nx`` x ``ny`` cells."""

    x0: float
    y0: float
    nx: int
    ny: int
    cell: float

    @classmethod
    def around(cls, x: np.ndarray, y: np.ndarray, cell: float) -> Grid:
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


def lowest(cell: np.ndarray, z: np.ndarray, mask: np.ndarray | None, size: int) -> np.ndarray:
    """Lowest ``z`` per cell over the points in ``mask`` (+inf where none).

    Masked-out points become +inf rather than being gathered out: cheaper, same result.
    """
    out = np.full(size, np.inf, dtype=np.float32)
    np.minimum.at(out, cell, z if mask is None else np.where(mask, z, np.float32(np.inf)))
    return out


def face_points(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    horizontal: np.ndarray,
    candidate: np.ndarray,
    window: tuple[float, float, float, float],
    cell: float,
    rise: float,
    band: tuple[float, float],
    lift: float,
) -> np.ndarray:
    """Points on steep faces (walls, curb risers, legs, the sides of boxes): bool per point.

    Every LiDAR beam that hits a vertical face lands at the same x, y as the beams above
    and below it in its column, whatever the scan pattern; on a floor they land metres
    apart. So in small ``cell``-sized columns (inside ``window``: x0, y0, x1, y1) a face
    shows as points rising more than ``rise`` m within a band above the column's lowest
    point, while a floor column stays flat. The band (``band[0] + band[1] * range``) grows
    with range because the beams' vertical gaps do (a 16-beam sensor hits a wall 10 m
    away every 0.35 m), and stays below a table top near the sensor: an overhang is not a
    face. Noise spreads a face's points over neighbouring columns, so a point also lies on
    a face when it is ``lift`` above its own column's lowest point and a neighbouring
    column rises more than ``rise`` above it. Only ``candidate`` points take part (not
    reflections far below the ground).
    """
    # Columns of the window plus a border ring that collects the points outside it (its
    # columns are never faces). In-place float32 arithmetic: this runs over every point.
    x0, y0, x1, y1 = window
    nu = math.ceil((x1 - x0) / cell) + 2
    nv = math.ceil((y1 - y0) / cell) + 2
    inv = np.float32(1.0 / cell)
    u = np.multiply(x, inv)
    u += np.float32(1 - x0 / cell)
    np.clip(u, 0, nu - 1, out=u)
    v = np.multiply(y, inv)
    v += np.float32(1 - y0 / cell)
    np.clip(v, 0, nv - 1, out=v)
    flat = u.astype(np.int32)
    flat *= nv
    flat += v.astype(np.int32)
    column = flat.astype(np.intp)
    inf = np.float32(np.inf)
    low = np.full((nu, nv), inf, dtype=np.float32)
    np.minimum.at(low.reshape(-1), column, np.where(candidate, z, inf))
    low[[0, -1], :] = -inf  # border: no point is ever in its band
    low[:, [0, -1]] = -inf
    low = low.reshape(-1)
    lift_of = z - low[column]  # height above the column's lowest point
    top = np.multiply(horizontal, np.float32(band[1]))
    top += np.float32(band[0])
    in_band = lift_of <= top
    in_band &= candidate
    high = np.full(nu * nv, -inf, dtype=np.float32)
    np.maximum.at(high, column, np.where(in_band, z, -inf))
    with np.errstate(invalid="ignore"):  # empty, border: inf - inf, never > rise
        steep = (high - low) > np.float32(rise)
    near = cv2.dilate(high.reshape(nu, nv), np.ones((3, 3), np.uint8)).reshape(-1)
    face = steep[column]
    rises = near[column]
    rises -= z
    beside = rises > np.float32(rise)
    beside &= lift_of > np.float32(lift)
    beside &= in_band
    face |= beside
    return face


def pit_floor(lowest_2d: np.ndarray, step: float, depth: float) -> np.ndarray:
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
    occupied = np.isfinite(lowest_2d)
    support = occupied.astype(np.float32)
    floors = []
    for kernel, slope_cells in ((_ring_kernel(1), 1.5), (_ring_kernel(2), 2.9)):
        neighbours = cv2.filter2D(support, -1, kernel.astype(np.float32),
                                  borderType=cv2.BORDER_CONSTANT)  # fmt: skip
        floor = _erode(lowest_2d, kernel) - np.float32(slope_cells * step + depth)
        floors.append(np.where(neighbours >= kernel.sum() / 2, floor, -np.inf))
    window = np.ones((5, 5), np.uint8)
    dilated = cv2.dilate(
        np.where(occupied, lowest_2d, np.float32(-np.inf)),
        window,
        borderType=cv2.BORDER_CONSTANT,
        borderValue=-np.inf,
    )
    dilated[np.isneginf(dilated)] = np.inf
    closed = _erode(dilated, window) - np.float32(2 * step + depth)
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


_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.uint8)


def connected_to_seeds(lowest_2d: np.ndarray, step: np.float32, seeds: np.ndarray) -> np.ndarray:
    """Cells joined to a ``seeds`` cell by a chain of neighbours whose lowest points
    differ by at most ``step`` (bool, like ``lowest_2d``).

    The lower envelope alone calls the upper side of every drop "not ground" for metres
    (a loading dock's edge, the yard beside a sunken bay, a platform beside its ramp),
    because the lower level is near. A floor is continuous, though: what a robot can
    walk to from under the sensor, in small steps, is floor. Cells above a *big* step
    down to an occupied neighbour (a car roof, a table top, a shelf deck) are cut out
    first, so their level never joins the floor; then 4-connected components of the rest
    (OpenCV, one pass) that contain a seed are the connected floor.
    """
    occupied = np.isfinite(lowest_2d)
    below = cv2.erode(lowest_2d, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=np.inf)
    step_top = (lowest_2d - below) > step
    smooth = (occupied & ~step_top).astype(np.uint8)
    count, labels = cv2.connectedComponents(smooth, connectivity=4)
    keep = np.zeros(count, dtype=bool)
    keep[labels[seeds & (smooth > 0)]] = True
    keep[0] = False  # the background
    return keep[labels]


def slope_envelope(heights: np.ndarray, step: np.float32) -> np.ndarray:
    """``min over cells c' of heights[c'] + step * L1(c, c')``: the highest surface below
    every cell that rises at most ``step`` per cell along the grid axes.

    Separable: along each axis, ``min_j h[j] + step * |i - j|`` is a forward and a backward
    running minimum of ``h -/+ step * j``.
    """
    return _envelope_axis0(_envelope_axis0(heights.T, step).T, step)


def _envelope_axis0(heights: np.ndarray, step: np.float32) -> np.ndarray:
    """The 1D envelope along axis 0 (running minima along axis 0 vectorize over rows);
    in place on two buffers: this runs on every cell of the grid, four times."""
    ramp = (np.arange(heights.shape[0], dtype=np.float32) * step)[:, None]
    forward = np.subtract(heights, ramp)
    np.minimum.accumulate(forward, axis=0, out=forward)
    forward += ramp
    backward = np.add(heights, ramp)[::-1]
    np.minimum.accumulate(backward, axis=0, out=backward)
    backward = backward[::-1]
    backward -= ramp
    return np.minimum(forward, backward, out=forward)


def fill(surface: np.ndarray, weight: np.ndarray, envelope: np.ndarray, radius: int) -> np.ndarray:
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


def bilinear(grid: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``grid`` (values at cell centres) at continuous indices
    ``u`` (axis 0) and ``v`` (axis 1), clamped at the border: OpenCV's ``remap`` does it
    in one C++ pass (several times faster than numpy gathers on 120k points). ``remap``
    takes 2D maps under 32767 a side, so the points go in rows of :data:`_ROW` (views,
    no copies) and the remainder in one short row."""
    n = len(u)
    out = np.empty(n, np.float32)
    bulk = n - n % _ROW
    for start, stop, width in ((0, bulk, _ROW), (bulk, n, n - bulk)):
        if stop > start:
            shape = ((stop - start) // width, width)
            cv2.remap(
                grid,
                v[start:stop].reshape(shape),
                u[start:stop].reshape(shape),
                cv2.INTER_LINEAR,
                dst=out[start:stop].reshape(shape),
                borderMode=cv2.BORDER_REPLICATE,
            )
    return out


#: Points per row of :func:`bilinear`'s maps.
_ROW = 4096
