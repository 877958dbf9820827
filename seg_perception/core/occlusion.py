"""The occlusion test of camera -> LiDAR fusion: which projected points hide behind nearer ones.

The rule (see :mod:`seg_perception.core.fusion` for why it is directional): a point is
hidden when nearer points lie above, below, left and right of it in the image within a
window, and its pixel shows the class of one of them (:func:`.fusion_search.judge` lists
the edge cases). Occluders are binned into levels by how sparse they are in the image and
each level is searched on a grid pooled by 2^level (:func:`occluded`).

How it is computed, and why: every directional search is a minimum of the depth buffer
over a rectangle at a fixed offset from the point (rows 1..R below it and a few columns
wide, and so on). Gathering each cell of each rectangle at every point costs one pass
over the points per cell (~100 per point); instead the whole buffer is min-filtered once
per rectangle shape with ``cv2.erode`` (a separable, vectorized min filter: ~0.1 ms for a
1242x375 float32 grid) and each search becomes one read at a shifted index. Minima are
exact, so the result is bit-for-bit the result of the per-cell search; only the label of
the nearest occluder (needed for the few points still in doubt) is still searched cell by
cell, in the same order, so ties resolve the same way. The reads run as one compiled pass
over the points (:mod:`.fusion_kernels`) where numba is installed, or as numpy passes
(:mod:`.fusion_search`); both give the same answer.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import cv2
import numpy as np

from seg_perception.core.fusion_scratch import SCRATCH
from seg_perception.core.fusion_search import Buffers, Points, judge

#: Coarsest occluder level: points up to 2^MAX_LEVEL times sparser than far ones...
MAX_LEVEL = 3
#: ...plus up to this many levels for beams with wider gaps than the typical one.
MAX_BEAM_LEVEL = 1
#: Search with the compiled kernels (:mod:`.fusion_kernels`) when numba is installed; the
#: numpy search computes the same (test_fusion_exact checks both). numba itself is only
#: imported when fusion first runs: it takes ~0.5 s to load.
COMPILED = importlib.util.find_spec("numba") is not None
#: Empty stand-ins for "none" in the compiled search's arguments.
_NO_INDEX = np.zeros(0, dtype=np.intp)
_NO_FLAG = np.zeros(0, dtype=bool)
_NO_GRID = np.zeros((0, 0), dtype=np.float32)
#: Pooling ratios below this cannot reach level 1 (log2(1.99) = 0.993): they skip log2.
_LEVEL_ONE_FROM = 1.99


@dataclass(frozen=True)
class Tolerance:
    """A point is hidden only behind points nearer than ``depth - (metres + ratio*depth)``."""

    metres: float
    ratio: float


def occluded(
    rows: np.ndarray,
    cols: np.ndarray,
    depth: np.ndarray,
    lidar_range: np.ndarray,
    beam_level: np.ndarray | None,
    pixel_label: np.ndarray,
    shape: tuple[int, int],
    window: tuple[int, int],
    band_half: int,
    tolerance: Tolerance,
) -> np.ndarray:
    """True for points hidden behind nearer points (see :func:`.fusion_search.judge` for the test).

    Occluders are binned into levels by how sparse they are in the image. A surface's
    LiDAR samples are ``lidar_range * beam angle`` apart, which the camera sees as
    ``f * beam angle * lidar_range / depth`` pixels: objects much nearer to the camera than
    to the LiDAR (a bumper camera next to a parked car) are sampled several times more
    sparsely than the window expects. Level k holds points about 2^k times sparser and is
    searched on a grid pooled by 2^k, so the same window spans their wider gaps. A
    point's ``beam_level`` (None: 0) adds to its level likewise: its beam's gaps are about
    2^beam_level times the typical gap the window was sized for. Every level's occluders
    are tested against all points not yet found hidden.
    """
    limit = depth - (tolerance.metres + tolerance.ratio * depth)
    level = _sparsity_level(lidar_range, depth)
    if beam_level is not None:
        level += beam_level
    points = Points(rows, cols, depth, limit, pixel_label.astype(np.int32))
    hidden = np.zeros(rows.size, dtype=bool)
    if rows.size == 0:
        return hidden
    lowest, highest = int(level.min()), int(level.max())
    found_any = False
    for k in range(max(lowest, 0), min(highest, MAX_LEVEL + MAX_BEAM_LEVEL) + 1):
        members = None if lowest == highest else np.flatnonzero(level == k)
        if members is not None and members.size == 0:
            continue
        level_shape = (-(-shape[0] // 2**k), -(-shape[1] // 2**k))
        found = _surrounded(
            points,
            k,
            members,
            hidden if found_any else None,
            level_shape,
            (int(window[0]), int(window[1])),
            int(band_half),
        )
        hidden[found] = True
        found_any = found_any or found.size > 0
    return hidden


def _sparsity_level(lidar_range: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """floor(log2(1.5 * lidar_range / depth)) in [0, MAX_LEVEL], as an int array.

    Most points (a camera near the LiDAR) have a ratio near 1.5, far from level 1: only
    the others pay for the logarithm, which is computed exactly as before for them.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (lidar_range / depth) * 1.5
    level = np.zeros(pooled.size, dtype=int)
    # NaN (inf/inf) fails the comparison and takes the long way, as it always did.
    sparse = np.flatnonzero(~(pooled < _LEVEL_ONE_FROM))
    if sparse.size:
        values = np.floor(np.log2(np.maximum(pooled[sparse], 1.0)))
        level[sparse] = np.clip(values, 0, MAX_LEVEL).astype(int)
    return level


def _kernels():
    """The compiled search module, or None (numba missing or failing to load, e.g. no
    writable cache directory: the numpy search takes over for good)."""
    global COMPILED
    try:
        from seg_perception.core import fusion_kernels
    except Exception:  # any failure to load means: search with numpy
        COMPILED = False
        return None
    if not fusion_kernels.AVAILABLE:
        COMPILED = False
        return None
    return fusion_kernels


def _min_filter(
    grid: np.ndarray, size: tuple[int, int], anchor: tuple[int, int], name: str
) -> np.ndarray:
    """Minimum over a (rows, cols) rectangle whose cell ``anchor`` (row, col) sits on each
    cell, into scratch buffer ``name``: cv2.erode with a rectangular kernel is separable
    and vectorized."""
    kernel = np.ones(size, dtype=np.uint8)
    out = SCRATCH.array(name, grid.shape, grid.dtype)
    return cv2.erode(grid, kernel, dst=out, anchor=(anchor[1], anchor[0]))


def _surrounded(
    points: Points,
    level: int,
    members: np.ndarray | None,
    hidden: np.ndarray | None,
    shape: tuple[int, int],
    window: tuple[int, int],
    band_half: int,
) -> np.ndarray:
    """Indices of the points not yet ``hidden`` (None: none is) that hide behind the
    ``members`` (None: all points) on the grid of ``level`` (image ``shape`` there).

    The depth buffer only covers the members' bounding box plus the window, so its size
    follows the points rather than the image; the points inside the box are then judged
    by the compiled search (:mod:`.fusion_kernels`) or by :func:`.fusion_search.judge`.
    """
    reach_rows, reach_cols = window
    pad_rows, pad_cols = 2 * reach_rows + 1, max(reach_cols, band_half) + 1
    rows, cols = points.rows, points.cols  # level 0: pooling is monotonic, shift the box
    member_rows, member_cols = (rows, cols) if members is None else (rows[members], cols[members])
    top, bottom = int(member_rows.min()) >> level, int(member_rows.max()) >> level
    left, right = int(member_cols.min()) >> level, int(member_cols.max()) >> level
    row0, col0 = top - pad_rows, left - pad_cols
    height, width = bottom - top + 1 + 2 * pad_rows, right - left + 1 + 2 * pad_cols
    grid = SCRATCH.array("grid", (height, width), np.float32)
    grid.fill(np.inf)
    kernels = _kernels() if COMPILED else None
    if kernels is not None:
        member_list = _NO_INDEX if members is None else members
        kernels.scatter_nearest(
            grid, rows, cols, level, row0, col0, points.depth, member_list, members is None
        )
    else:
        points = points.at_level(level)
        rows, cols = points.rows, points.cols
        flat = rows * width
        flat += cols - (row0 * width + col0)
        member_flat = flat if members is None else flat[members]
        member_depth = points.depth if members is None else points.depth[members]
        member_depth = member_depth.astype(np.float32)
        np.minimum.at(grid.reshape(-1), member_flat, member_depth)
    # Rows beyond the image are nearer than anything (fusion_search.judge); no member is there.
    grid[: min(max(-row0, 0), height)] = -np.inf
    grid[min(max(shape[0] - row0, 0), height) :] = -np.inf
    half = max(reach_rows // 2, 1)
    vertical = _min_filter(grid, (reach_rows, 2 * band_half + 1), (0, band_half), "vertical")
    sideways = None
    if reach_cols:
        sideways = _min_filter(grid, (2 * half + 1, reach_cols), (half, 0), "sideways")
    everyone = hidden is None and members is None  # all points are members, in the box
    if kernels is not None:
        found = SCRATCH.array("found", (rows.size,), np.intp)
        count = kernels.judge(
            rows,
            cols,
            level,
            points.depth,
            points.limit,
            points.labels,
            _NO_FLAG if hidden is None else hidden,
            (1, 0, 1, 0) if everyone else (top, bottom, left, right),
            grid,
            vertical,
            _NO_GRID if sideways is None else sideways,
            (row0, col0),
            shape[1],
            window,
            band_half,
            SCRATCH.array("labels32", (height * width,), np.int32),
            _NO_INDEX if members is None else members,
            members is None,
            found,
        )
        return found[:count].copy()
    buffers = Buffers(
        grid=grid,
        vertical=vertical,
        sideways=sideways,
        image_width=shape[1],
        band_half=band_half,
        members=(
            member_flat,
            member_depth,
            points.labels if members is None else points.labels[members],
        ),
    )
    if everyone:
        judged = None
    else:
        judged = (rows >= top) & (rows <= bottom)
        judged &= cols >= left
        judged &= cols <= right
        if hidden is not None:
            judged &= ~hidden
    return judge(buffers, points, flat, judged, window)
