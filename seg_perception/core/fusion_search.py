"""The occlusion search of one grid level in numpy: which points hide behind the grid's
occluders (the rule is :func:`judge`'s docstring; :mod:`.occlusion` builds the grids).

Why numpy, beside the compiled search (:mod:`.fusion_kernels`): numba is optional, and this
is the search that runs without it. Every directional search is one gather in a grid that
OpenCV min-filtered; only the label of the nearest occluder, needed for the few points
still in doubt, is searched cell by cell, in a fixed order, so that ties resolve the same
way everywhere. Both searches compute exactly what fusion computed before issue 12.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from seg_perception.core.fusion_scratch import SCRATCH

#: Label-grid value of cells with no point, and of cells beyond the image border.
EMPTY, OUTSIDE = -1, -2
#: Labels at or above this are stored as int32, below as int16 (as the label grid was).
INT16_MAX = 32767
#: Top-edge rule: the point lies this many times deeper than the occluder below it...
TOP_EDGE_DEPTH_RATIO = 1.6
#: ...and that occluder is upright: what lies further below is no nearer than it by
#: more than this ratio of its depth plus this many metres.
UPRIGHT_SLACK = (0.05, 0.3)


@dataclass
class Points:
    """The projected points of one camera: pixel (rows, cols) on the current level's
    grid, depth, depth limit of their occluders and the class their pixel shows."""

    rows: np.ndarray
    cols: np.ndarray
    depth: np.ndarray
    limit: np.ndarray
    labels: np.ndarray
    level: int = 0

    def at_level(self, k: int) -> Points:
        """The same points on the grid pooled by 2^k (from level 0)."""
        if k == self.level:
            return self
        return Points(self.rows >> k, self.cols >> k, self.depth, self.limit, self.labels, k)


@dataclass
class Buffers:
    """One level's depth buffer over the members' bounding box plus a margin.

    ``grid`` holds each cell's nearest depth (+inf if empty) and -inf on rows beyond the
    image; ``vertical`` is its minimum over R rows x (2 band_half + 1) columns (a cell's
    value covers the R rows from it downwards) and ``sideways`` over (2 half + 1) rows x C
    columns (the C columns from it rightwards). Columns beyond the image are applied at
    gather time. ``cell_labels`` (written when first needed) holds the label of each
    occupied cell's nearest point and is only read at occupied cells.
    """

    grid: np.ndarray
    vertical: np.ndarray
    sideways: np.ndarray | None
    image_width: int  # columns of the image at this level
    band_half: int
    members: tuple[np.ndarray, np.ndarray, np.ndarray]  # flat cells, depth, labels

    @property
    def width(self) -> int:
        return self.grid.shape[1]

    @cached_property
    def cell_labels(self) -> np.ndarray:
        cells, depth, labels = self.members
        nearest = depth == self.grid.reshape(-1)[cells]
        cells, labels = cells[nearest], labels[nearest]
        # int16 where the labels stay below its max, as the label grid always was (labels
        # under its min would wrap the same way).
        small = labels.size == 0 or int(labels.max()) < INT16_MAX
        cell_labels = SCRATCH.array("labels", self.grid.shape, np.int16 if small else np.int32)
        # Ties in a cell: the last point written wins, as in any numpy scatter.
        cell_labels.reshape(-1)[cells] = labels
        return cell_labels

    def nearest_label(
        self, at: np.ndarray, at_cols: np.ndarray, offsets: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """The label of the nearest cell among ``at + offsets`` (flat, per point), or
        EMPTY / OUTSIDE; ties go to the first offset. Cells beyond the image count as
        nearer than anything. ``offsets`` are (flat, column) offsets; ``at_cols`` the
        points' image columns."""
        flat_offsets, col_offsets = offsets
        cells = at[:, None] + flat_offsets[None, :]
        values = self.grid.reshape(-1)[cells]
        # Only points within reach of a side border see cells beyond it.
        near = (at_cols + col_offsets.min() < 0) | (at_cols + col_offsets.max() >= self.image_width)
        if near.any():
            near = np.flatnonzero(near)
            cell_cols = at_cols[near, None] + col_offsets[None, :]
            beyond = values[near]
            beyond[(cell_cols < 0) | (cell_cols >= self.image_width)] = -np.inf
            values[near] = beyond
        pick = np.argmin(values, axis=1)
        row = np.arange(at.size)
        chosen, cell = values[row, pick], cells[row, pick]
        label = self.cell_labels.reshape(-1)[cell].astype(np.int32)
        label[chosen == np.inf] = EMPTY
        label[chosen == -np.inf] = OUTSIDE
        return label


@lru_cache(maxsize=256)
def window_offsets(
    rows: tuple[int, int, int], cols: tuple[int, int, int], width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(flat, column) offsets of the cells at row offsets ``range(*rows)`` (outer) and
    column offsets ``range(*cols)`` (inner), in that order. Cached: read-only."""
    row_offsets, col_offsets = np.meshgrid(np.arange(*rows), np.arange(*cols), indexing="ij")
    flat = (row_offsets * width + col_offsets).ravel().astype(np.intp)
    col_offsets = col_offsets.ravel().astype(np.intp)
    flat.flags.writeable = col_offsets.flags.writeable = False
    return flat, col_offsets


def judge(
    buffers: Buffers,
    points: Points,
    flat: np.ndarray,
    judged: np.ndarray | None,
    window: tuple[int, int],
) -> np.ndarray:
    """Indices of the points that are hidden, among those marked in the boolean
    ``judged`` (None: all; ``flat``, their cell on the grid, is only meaningful there). A
    point is, when occluders nearer than its depth limit lie, within the (rows, cols)
    ``window``:

    * on all four sides, and its pixel shows the class of one of them (the label image
      agrees that the camera sees an occluder there);
    * above, below and on one side only, and three of them show its pixel's class: it
      sits in the gap between an occluder's last sampled column and its real side edge;
    * below and beside it but not above, where the occluder below is upright, shows its
      pixel's class and is at most 1/TOP_EDGE_DEPTH_RATIO of its depth: it sits in the gap
      between the occluder's top beam and its real top edge (up to one beam gap: the
      whole window's height for a 32-beam sensor). Upright keeps far ground, which only
      has nearer ground below it, out.

    Above and below search rows 1..R away in a band +-band_half columns wide (one beam's
    firings are a horizontal gap apart); the sides search columns 1..C away in a band
    half a window tall. What lies beyond the image border counts as nearer than anything:
    a point behind an object that runs out of the picture is judged by its other sides.
    Each test only runs on the points that are still candidates.
    """
    reach_rows, reach_cols = window
    width = buffers.width
    vertical = buffers.vertical.reshape(-1)
    if judged is None:
        below_depth = vertical[width:][flat]
        close = below_depth < points.limit
    else:
        # Cells of points outside the grid are clipped: their answer is masked out.
        below_depth = np.take(vertical[width:], flat, mode="clip")
        close = np.less(below_depth, points.limit)
        close &= judged
    index = np.flatnonzero(close)  # into the points
    at, limit, below_depth = flat[index], points.limit[index], below_depth[index]
    depth = points.depth[index]
    above = vertical[at - reach_rows * width] < limit
    # Only points above a much nearer occluder can be in its top-edge gap.
    sides_for = np.flatnonzero(above | (depth >= TOP_EDGE_DEPTH_RATIO * below_depth))
    side = [np.zeros(index.size, dtype=bool), np.zeros(index.size, dtype=bool)]
    if buffers.sideways is not None and sides_for.size:
        sideways = buffers.sideways.reshape(-1)
        at_sides, limit_sides = at[sides_for], limit[sides_for]
        cols_sides = points.cols[index[sides_for]]
        side[0][sides_for] = (cols_sides < reach_cols) | (
            sideways[at_sides - reach_cols] < limit_sides
        )
        side[1][sides_for] = (cols_sides + reach_cols >= buffers.image_width) | (
            sideways[1:][at_sides] < limit_sides
        )
    four_sides = above & side[0] & side[1]
    side_edge = above & (side[0] ^ side[1])
    top_edge = ~above & (side[0] | side[1])
    judged_here = np.flatnonzero(four_sides | side_edge | top_edge)
    if judged_here.size == 0:
        return judged_here

    # A top edge also needs an upright occluder well nearer than the point: cheap depth
    # tests, made first so that the label searches below skip the points that fail them.
    top = top_edge[judged_here]
    maybe = np.flatnonzero(top)
    if maybe.size:
        ratio, metres = UPRIGHT_SLACK
        deep = below_depth[judged_here[maybe]]
        further = vertical[(reach_rows + 1) * width :][at[judged_here[maybe]]]
        with np.errstate(invalid="ignore"):
            upright = further >= deep - (ratio * deep + metres)
        top[maybe] = upright & (depth[judged_here[maybe]] >= TOP_EDGE_DEPTH_RATIO * deep)
    judged = judged_here[np.flatnonzero(four_sides[judged_here] | side_edge[judged_here] | top)]
    top = top_edge[judged]  # (the top edges left passed the depth tests)
    # The labels of the nearest occluder in each direction, for those points only, and only
    # as far as the verdict needs them (the occluder below decides most).
    at, index = at[judged], index[judged]
    own, at_cols = points.labels[index], points.cols[index]
    four, edge = four_sides[judged], side_edge[judged]
    band = (-buffers.band_half, buffers.band_half + 1, 1)
    below_offsets = window_offsets((1, reach_rows + 1, 1), band, width)
    below_same = buffers.nearest_label(at, at_cols, below_offsets) == own
    hidden = (four | top) & below_same
    # Four sides with another class below need one more side to agree; a side edge needs
    # the occluders above and on its side to agree with the one below.
    rest = np.flatnonzero((four & ~below_same) | (edge & below_same))
    if rest.size:
        at, at_cols, own = at[rest], at_cols[rest], own[rest]
        above_offsets = window_offsets(
            (-1, -reach_rows - 1, -1), (band[1] - 1, band[0] - 1, -1), width
        )
        agree = (buffers.nearest_label(at, at_cols, above_offsets) == own).astype(np.intp)
        half = max(reach_rows // 2, 1)
        for direction, found in zip((-1, 1), side, strict=True):
            ask = np.flatnonzero(found[judged[rest]])
            if ask.size:
                offsets = window_offsets(
                    (-half, half + 1, 1),
                    (direction, direction * (reach_cols + 1), direction),
                    width,
                )
                label = buffers.nearest_label(at[ask], at_cols[ask], offsets)
                agree[ask] += label == own[ask]
        hidden[rest] = np.where(four[rest], agree >= 1, agree >= 2)
    return index[hidden]
