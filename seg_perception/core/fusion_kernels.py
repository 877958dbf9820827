"""The occlusion search of one grid level as compiled loops (numba), used when numba is
installed; :mod:`.occlusion` falls back to its numpy search otherwise.

Why: after the min filters (OpenCV), what is left of the occlusion test is a handful of
reads per point, but numpy pays a full pass over the points for each step (cell index,
box test, gathers, comparisons, compaction) and gathers whole windows to find the label of
the nearest occluder. One compiled pass over the points does the same reads with no
temporaries; measured on a KITTI frame with 6 cameras, fusion takes ~12% less time (7% with
one camera).

Same rule, same arithmetic, same order as :func:`.fusion_search.judge`: float32 products where
numpy multiplies float32 arrays by Python floats, float64 comparisons where it compares
float32 with float64, ties to the first cell in the same scan order, the label grid in
int16 arithmetic where numpy stores it as int16. test/test_fusion_exact.py runs every case
through both searches. Compiled once per installation (cached next to this file).
"""

from __future__ import annotations

import numpy as np

from seg_perception.core.fusion_search import (
    EMPTY,
    OUTSIDE,
    TOP_EDGE_DEPTH_RATIO,
    UPRIGHT_SLACK,
)

try:
    import numba
except ImportError:  # numba is optional: the numpy search computes the same
    numba = None

#: True when the compiled search can be used.
AVAILABLE = numba is not None


def _compiled(func):
    """numba.njit (cached, releasing the GIL for parallel cameras), or the plain function
    when numba is missing (never called then)."""
    if numba is None:
        return func
    return numba.njit(cache=True, nogil=True)(func)


@_compiled
def scatter_nearest(grid, rows, cols, shift, row0, col0, depth, members, all_members):
    """Each cell of ``grid`` (float32) takes the nearest float32 depth of the member points
    at (rows >> shift, cols >> shift) - (row0, col0), as np.minimum.at does."""
    flat = grid.reshape(-1)
    width = grid.shape[1]
    count = rows.size if all_members else members.size
    for j in range(count):
        i = j if all_members else members[j]
        cell = ((rows[i] >> shift) - row0) * width + ((cols[i] >> shift) - col0)
        value = np.float32(depth[i])
        if value < flat[cell]:
            flat[cell] = value


@_compiled
def _label_cells(
    grid, cell_labels, rows, cols, shift, row0, col0, depth, labels, members, all_members
):
    """The label of each occupied cell's nearest member (the last one of equal depth), in
    int16 arithmetic when the labels stay below its max, as the numpy label grid."""
    flat = grid.reshape(-1)
    width = grid.shape[1]
    count = rows.size if all_members else members.size
    top = 0
    nearest_seen = False
    for j in range(count):
        i = j if all_members else members[j]
        cell = ((rows[i] >> shift) - row0) * width + ((cols[i] >> shift) - col0)
        if np.float32(depth[i]) == flat[cell] and (not nearest_seen or labels[i] > top):
            top = labels[i]
            nearest_seen = True
    small = top < 32767
    for j in range(count):
        i = j if all_members else members[j]
        cell = ((rows[i] >> shift) - row0) * width + ((cols[i] >> shift) - col0)
        if np.float32(depth[i]) == flat[cell]:
            label = labels[i]
            if small:
                label = ((label + 32768) & 0xFFFF) - 32768
            cell_labels[cell] = label


@_compiled
def _nearest_label(flat, cell_labels, at, col, image_width, width, rows, cols, marks):
    """Label of the nearest cell at row offsets range(*rows) (outer) and column offsets
    range(*cols) (inner) from ``at``; cells beyond the image are nearer than anything;
    ties to the first. ``marks`` are (EMPTY, OUTSIDE) of the numpy search."""
    best = np.float32(0.0)
    best_cell = -1
    for dr in range(rows[0], rows[1], rows[2]):
        for dc in range(cols[0], cols[1], cols[2]):
            cell = at + dr * width + dc
            value = flat[cell]
            if col + dc < 0 or col + dc >= image_width:
                value = -np.inf
            if best_cell < 0 or value < best:
                best = value
                best_cell = cell
    if best == -np.inf:
        return marks[1]
    if best == np.inf:
        return marks[0]
    return cell_labels[best_cell]


def judge(*args) -> int:
    """Write the indices of the hidden points into ``out`` (the last argument), return
    how many; the arguments are those of :func:`_judge` without the rule's constants.

    The constants go in as arguments, not as globals: numba would freeze globals into its
    cache, which only notices changes to this file.
    """
    rule = (
        np.float32(TOP_EDGE_DEPTH_RATIO),
        np.float32(UPRIGHT_SLACK[0]),
        np.float32(UPRIGHT_SLACK[1]),
        (EMPTY, OUTSIDE),
    )
    return _judge(*args, *rule)


@_compiled
def _judge(
    rows,
    cols,
    shift,
    depth,
    limit,
    labels,
    hidden,
    box,
    grid,
    vertical,
    sideways,
    origin,
    image_width,
    window,
    band_half,
    cell_labels,
    members,
    all_members,
    out,
    ratio,
    slack_ratio,
    slack_metres,
    marks,
):
    """Write the indices of the hidden points into ``out``, return how many.

    Points are skipped when ``hidden`` (size 0: none is) or outside ``box`` (top, bottom,
    left, right; top > bottom: no box). ``sideways`` has size 0 when the window has no
    columns. See :func:`.fusion_search.judge` for the rule.
    """
    flat = grid.reshape(-1)
    below_min = vertical.reshape(-1)
    side_min = sideways.reshape(-1)
    width = grid.shape[1]
    reach_rows, reach_cols = window
    half = max(reach_rows // 2, 1)
    top, bottom, left, right = box
    check_box = top <= bottom
    check_hidden = hidden.size > 0
    has_sides = side_min.size > 0
    # ratio, slack_ratio, slack_metres are float32: numpy multiplies float32 arrays by
    # these Python floats in float32.
    found = 0
    labelled = False
    for i in range(rows.size):
        if check_hidden and hidden[i]:
            continue
        r = rows[i] >> shift
        c = cols[i] >> shift
        if check_box and (r < top or r > bottom or c < left or c > right):
            continue
        at = (r - origin[0]) * width + (c - origin[1])
        bound = limit[i]
        below = below_min[at + width]
        if not below < bound:
            continue
        above = below_min[at - reach_rows * width] < bound
        d = depth[i]
        left_side = False
        right_side = False
        if has_sides and (above or d >= ratio * below):
            left_side = c < reach_cols or side_min[at - reach_cols] < bound
            right_side = c + reach_cols >= image_width or side_min[at + 1] < bound
        four = above and left_side and right_side
        edge = above and (left_side != right_side)
        top_edge = (not above) and (left_side or right_side)
        if top_edge:
            further = below_min[at + (reach_rows + 1) * width]
            upright = further >= below - (slack_ratio * below + slack_metres)
            top_edge = upright and d >= ratio * below
        if not (four or edge or top_edge):
            continue
        if not labelled:
            _label_cells(
                grid,
                cell_labels,
                rows,
                cols,
                shift,
                origin[0],
                origin[1],
                depth,
                labels,
                members,
                all_members,
            )
            labelled = True
        own = labels[i]
        below_same = (
            _nearest_label(
                flat,
                cell_labels,
                at,
                c,
                image_width,
                width,
                (1, reach_rows + 1, 1),
                (-band_half, band_half + 1, 1),
                marks,
            )
            == own
        )
        hide = (four or top_edge) and below_same
        if (four and not below_same) or (edge and below_same):
            # The same scan orders as the numpy search: above from the nearest row out,
            # columns right to left; the sides row by row, from the nearest column out.
            agree = 0
            above_label = _nearest_label(
                flat,
                cell_labels,
                at,
                c,
                image_width,
                width,
                (-1, -reach_rows - 1, -1),
                (band_half, -band_half - 1, -1),
                marks,
            )
            agree += above_label == own
            side_rows = (-half, half + 1, 1)
            for side, step in ((left_side, -1), (right_side, 1)):
                if side:
                    side_label = _nearest_label(
                        flat,
                        cell_labels,
                        at,
                        c,
                        image_width,
                        width,
                        side_rows,
                        (step, step * (reach_cols + 1), step),
                        marks,
                    )
                    agree += side_label == own
            hide = agree >= 1 if four else agree >= 2
        if hide:
            out[found] = i
            found += 1
    return found
