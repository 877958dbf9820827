"""Object instances in the labeled cloud, from panoptic camera models.

A panoptic model gives every pixel of a "thing" (car, person, ...) a segment id. Fusion
carries the id of the pixel a point lands on to the point, in the camera that labels it,
with the same occlusion test as the class (a hidden point gets neither). Two things are
then left, both here:

* **One id across cameras.** Each camera numbers its own segments, so a car seen by two
  cameras arrives as two segments. Two cues join them, both only for the same class:
  where the cameras overlap, the same points fall in a segment of each, and when these
  are most of the shared points of both segments (a mutual majority, at least
  ``MIN_SHARED`` points) the two are one object; a mutual majority keeps a few boundary
  points (a pixel of the car behind) from merging two cars. Where the cameras only abut
  (a surround rig's views barely overlap), an object cut by the edge of one image
  continues in the next: two segments that both touch their image's border are one
  object when the cloud connects them (steps of ``BRIDGE_STEP_M``) through points no
  camera labeled, the blind wedge between the views, above the ground. Links are joined
  transitively (a bus across three cameras is one id).
* **A 3D list per frame**: each object's class (its points' majority class), score (the
  best of its segments), point count, centroid, axis-aligned bounds and an oriented box
  (OpenCV's minimum-area rectangle in x-y, times the z span): what a planner needs from a
  detector, without a 3D detector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Shared points needed before two cameras' segments are taken for one object.
MIN_SHARED = 3
#: Segments cut by their images' borders are one object when the cloud connects them in
#: steps of at most this (m): cameras mounted apart leave a blind wedge between their views
#: (0.4-1.2 m of a car at 4-20 m on the generated 6-camera rig), which the LiDAR still
#: samples. Parked cars stand >= 0.9 m apart.
BRIDGE_STEP_M = 0.3
#: How far around the two segments bridging points are looked for (m).
BRIDGE_MARGIN_M = 1.5
#: Bridging points lie this far above the objects' lowest point: not the ground (m).
GROUND_CLEARANCE_M = 0.25
#: Points are thinned to one per cube of this side (m) before the bridge search: a step is
#: then measured between cube centres, within a cube diagonal (0.17 m) of the points'.
VOXEL_M = 0.1
#: A segment key packs the camera's position (high bits) and its segment id (low 32 bits).
_SHIFT = np.int64(32)


@dataclass
class CameraSegments:
    """What one camera said about the points it labeled (indices into the candidates)."""

    position: int
    points: np.ndarray  # candidate indices this camera labeled
    segment: np.ndarray  # the camera's segment id per such point (0: none, i.e. stuff)
    label: np.ndarray  # the class it gave each such point
    scores: Mapping[int, float] | None = None  # segment id -> score
    at_border: frozenset[int] = frozenset()  # segment ids touching the image's border


def border_segments(instances: np.ndarray) -> frozenset[int]:
    """Segment ids with a pixel in the first or last row or column of the image."""
    edges = np.concatenate([instances[0], instances[-1], instances[:, 0], instances[:, -1]])
    return frozenset(int(i) for i in np.unique(edges).tolist() if i > 0)


def segment_keys(position: int, segment: np.ndarray) -> np.ndarray:
    """Frame-wide keys of a camera's segment ids (0 stays 0: no instance)."""
    keys = (np.int64(position + 1) << _SHIFT) | segment.astype(np.int64)
    return np.where(segment > 0, keys, 0)


class _Links:
    """Union-find over segment keys (a few hundred per frame: plain dicts suffice)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def root(self, key: int) -> int:
        parent = self.parent
        while parent.get(key, key) != key:
            parent[key] = parent.get(parent[key], parent[key])
            key = parent[key]
        return key

    def join(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def link_cameras(xyz: np.ndarray, cameras: Sequence[CameraSegments]) -> _Links:
    """Links between segments of different cameras that share most of their points, or
    that are cut by their images' borders and touch in 3D. ``xyz``: (M, 3) candidates."""
    links = _Links()
    count = len(xyz)
    first_key = np.zeros(count, dtype=np.int64)  # the first camera's key seen at a point
    first_label = np.zeros(count, dtype=np.int64)
    for cam in cameras:
        keys = segment_keys(cam.position, cam.segment)
        has = keys > 0
        points, keys, labels = cam.points[has], keys[has], cam.label[has].astype(np.int64)
        earlier = first_key[points]
        shared = earlier > 0
        if shared.any():
            _link_shared(links, earlier[shared], keys[shared], first_label[points[shared]]
                         == labels[shared])  # fmt: skip
        fresh = ~shared
        first_key[points[fresh]] = keys[fresh]
        first_label[points[fresh]] = labels[fresh]
    _link_adjacent(links, xyz, cameras)
    return links


def _link_shared(links: _Links, earlier: np.ndarray, keys: np.ndarray, same: np.ndarray) -> None:
    """Join (earlier, key) pairs that are a mutual majority of their shared points."""
    pairs, inverse, counts = np.unique(
        np.stack([earlier, keys]), axis=1, return_inverse=True, return_counts=True
    )
    agree = np.zeros(pairs.shape[1], dtype=np.int64)
    np.add.at(agree, inverse.ravel(), same.astype(np.int64))
    total_earlier = _totals(pairs[0], counts)
    total_key = _totals(pairs[1], counts)
    for (a, b), n, n_agree, ta, tb in zip(
        pairs.T.tolist(), counts.tolist(), agree.tolist(), total_earlier, total_key, strict=True
    ):  # one iteration per pair of segments, not per point
        if n >= MIN_SHARED and 2 * n > ta and 2 * n > tb and 2 * n_agree > n:
            links.join(a, b)


def _totals(keys: np.ndarray, counts: np.ndarray) -> list[int]:
    """Per pair: the number of shared points of its key over all its pairs."""
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.zeros(len(unique), dtype=np.int64)
    np.add.at(sums, inverse, counts)
    return sums[inverse].tolist()


@dataclass
class _Cut:
    """A segment touching its image's border: its camera, id, class and points."""

    position: int
    segment: int
    label: int
    xyz: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def key(self) -> int:
        return int(segment_keys(self.position, np.array([self.segment]))[0])


def _link_adjacent(links: _Links, xyz: np.ndarray, cameras: Sequence[CameraSegments]) -> None:
    """Join border-cut segments of different cameras (same class) that the cloud connects."""
    cut: list[_Cut] = []
    for cam in cameras:
        for segment in sorted(cam.at_border):
            mine = cam.segment == segment
            if mine.any():
                classes, votes = np.unique(cam.label[mine], return_counts=True)
                points = xyz[cam.points[mine]].astype(np.float64)
                cut.append(_Cut(cam.position, segment, int(classes[np.argmax(votes)]), points,
                                points.min(axis=0), points.max(axis=0)))  # fmt: skip
    reach = 2 * BRIDGE_MARGIN_M  # boxes farther apart than this cannot be bridged
    pairs = [
        (a, b)
        for i, a in enumerate(cut)
        for b in cut[i + 1 :]
        if a.position != b.position and a.label == b.label
        and not np.any(np.maximum(a.low, b.low) > np.minimum(a.high, b.high) + reach)
    ]  # fmt: skip
    if not pairs:  # one camera, or nothing cut by a border: no cloud work at all
        return
    labeled = np.zeros(len(xyz), dtype=bool)
    for cam in cameras:
        labeled[cam.points] = True
    unseen = xyz[~labeled]
    unseen = unseen[np.argsort(unseen[:, 0], kind="stable")]  # by x: a box is a slice
    for a, b in pairs:
        if links.root(a.key) != links.root(b.key) and _bridged(a, b, unseen):
            links.join(a.key, b.key)


def _bridged(a: _Cut, b: _Cut, free: np.ndarray) -> bool:
    """Whether the points of ``a`` and ``b`` connect in steps of at most ``BRIDGE_STEP_M``,
    directly or through ``free`` points (no camera labeled them: the blind wedge between
    two cameras' views; sorted by x) above the objects' lowest point (so the ground does not
    connect everything)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    low = np.minimum(a.low, b.low) - BRIDGE_MARGIN_M
    high = np.maximum(a.high, b.high) + BRIDGE_MARGIN_M
    free = free[np.searchsorted(free[:, 0], low[0]) : np.searchsorted(free[:, 0], high[0], "right")]
    inside = (free[:, 1] >= low[1]) & (free[:, 1] <= high[1]) & (free[:, 2] <= high[2])
    inside &= free[:, 2] >= low[2] + BRIDGE_MARGIN_M + GROUND_CLEARANCE_M
    # Points thinned to one per VOXEL_M cube before pairing: a car's dense surface has
    # hundreds of points within a step of each other, and pairing them all cost 0.2 s.
    voxels = np.floor((np.vstack([a.xyz, b.xyz, free[inside]]) - low) / VOXEL_M).astype(np.int64)
    packed = (voxels[:, 0] << 42) | (voxels[:, 1] << 21) | voxels[:, 2]  # < 2^21 cells a side
    cells, cell_of = np.unique(packed, return_inverse=True)
    centres = np.column_stack([cells >> 42, (cells >> 21) & 0x1FFFFF, cells & 0x1FFFFF])
    pairs = cKDTree((centres + 0.5) * VOXEL_M).query_pairs(BRIDGE_STEP_M, output_type="ndarray")
    if pairs.size == 0:
        return False
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), (len(cells),) * 2)
    _, component = connected_components(graph, directed=False)
    count_a, count_b = len(a.xyz), len(b.xyz)
    of_a = component[cell_of[:count_a]]
    of_b = component[cell_of[count_a : count_a + count_b]]
    return bool(np.intersect1d(of_a, of_b).size)


def frame_ids(winner_keys: np.ndarray, links: _Links) -> tuple[np.ndarray, dict[int, int]]:
    """Compact ids 1..K per point (0: none) from each point's winning segment key, and
    which id each winning key became."""
    ids = np.zeros(winner_keys.shape, dtype=np.uint32)
    has = winner_keys > 0
    if not has.any():
        return ids, {}
    unique, inverse = np.unique(winner_keys[has], return_inverse=True)
    roots = np.array([links.root(int(k)) for k in unique.tolist()], dtype=np.int64)
    _, compact = np.unique(roots, return_inverse=True)
    ids[has] = (compact.ravel()[inverse.ravel()] + 1).astype(np.uint32)
    return ids, dict(zip(unique.tolist(), (compact.ravel() + 1).tolist(), strict=True))


def instance_scores(
    id_of_key: Mapping[int, int], cameras: Sequence[CameraSegments]
) -> dict[int, float]:
    """Each frame id's score: the best score among the winning segments it merged."""
    by_key: dict[int, float] = {}
    for cam in cameras:
        for segment, score in (cam.scores or {}).items():
            by_key[int(segment_keys(cam.position, np.array([segment]))[0])] = float(score)
    scores: dict[int, float] = {}
    for key, frame_id in id_of_key.items():  # per segment, not per point
        scores[frame_id] = max(scores.get(frame_id, 0.0), by_key.get(key, 1.0))
    return scores


@dataclass(frozen=True)
class Instance:
    """One object of a frame's cloud (see :mod:`seg_perception.msg` ``Instance3D``)."""

    id: int
    class_id: int
    score: float
    point_count: int
    centroid: tuple[float, float, float]
    min_bound: tuple[float, float, float]
    max_bound: tuple[float, float, float]
    box_center: tuple[float, float, float]
    box_size: tuple[float, float, float]
    box_yaw: float  # rad, about z


def instances_3d(
    points: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    scores: Mapping[int, float] | None = None,
) -> list[Instance]:
    """The objects of one cloud: ``points`` (N, >= 3), per-point ``ids`` (0: none) and
    class ``labels``. Sorted by id."""
    import cv2

    has = np.flatnonzero(ids > 0)
    if has.size == 0:
        return []
    order = has[np.argsort(ids[has], kind="stable")]
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    ends = np.r_[starts[1:], order.size]
    xyz = np.asarray(points)[:, :3].astype(np.float64)
    out = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):  # per object
        members = order[start:end]
        p = xyz[members]
        frame_id = int(sorted_ids[start])
        classes, votes = np.unique(labels[members], return_counts=True)
        low, high = p.min(axis=0), p.max(axis=0)
        (cx, cy), (w, h), angle = cv2.minAreaRect(p[:, :2].astype(np.float32))
        out.append(
            Instance(
                id=frame_id,
                class_id=int(classes[np.argmax(votes)]),
                score=float((scores or {}).get(frame_id, 1.0)),
                point_count=int(members.size),
                centroid=tuple(p.mean(axis=0).tolist()),
                min_bound=tuple(low.tolist()),
                max_bound=tuple(high.tolist()),
                box_center=(float(cx), float(cy), float((low[2] + high[2]) / 2)),
                box_size=(float(w), float(h), float(high[2] - low[2])),
                box_yaw=float(np.deg2rad(angle)),
            )
        )
    return out


def same_partition_points(old: np.ndarray, new: np.ndarray) -> int:
    """Points whose instance two runs agree on, ids being arbitrary numbers: a point agrees
    when its (old, new) ids pair each other one to one (each the other's most frequent
    partner), and 0 (no instance) only pairs with 0. ``regress`` compares ``instance`` so."""
    pairs, counts = np.unique(
        np.stack([np.asarray(old, np.int64), np.asarray(new, np.int64)]), axis=1,
        return_counts=True,
    )  # fmt: skip
    best_of_old: dict[int, tuple[int, int]] = {}
    best_of_new: dict[int, tuple[int, int]] = {}
    for (a, b), n in zip(pairs.T.tolist(), counts.tolist(), strict=True):  # per id pair
        if n > best_of_old.get(a, (-1, 0))[1]:
            best_of_old[a] = (b, n)
        if n > best_of_new.get(b, (-1, 0))[1]:
            best_of_new[b] = (a, n)
    same = 0
    for (a, b), n in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if (a == 0) != (b == 0):
            continue
        if best_of_old[a][0] == b and best_of_new[b][0] == a:
            same += n
    return same
