"""Ground segmentation scored on generated scenes beyond KITTI, side by side with peers.

SemanticKITTI shows one sensor on one kind of road. The scenes of
:mod:`seg_perception.sample.ground_scenes` (rooms, corridors, warehouses, ramps, curbs,
vegetation, tilted and low mounts, 16- to 128-beam sensors, organized clouds) have exact
truth, so besides precision / recall / F1 this module measures what a planner fears most
from a ground segmenter: ground on walls (the share of predicted ground points lying on
faces steeper than 30 deg) and ground floating above the floor (the height of predicted
ground points above the walkable surface under them).

Every method runs on the same sweep: ours on the cloud as a driver publishes it
(organized with NaN holes where the scene type is organized), Patchwork++ and linefit on
its valid points with the true sensor height (they cannot estimate it; ours does unless
told). Counts are summed over the seeds of a scene type, never scores averaged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from seg_perception.lidar.evaluation import (
    LINEFIT_KITTI,
    GroundScore,
    LinefitGround,
    PatchworkGround,
    score_ground,
)
from seg_perception.sample.ground_scenes import GROUND_SCENE_TYPES, GroundScene, make_ground_scene

#: Predicted ground on faces steeper than this counts as "ground on a wall" (deg).
STEEP_DEG = 30.0

SceneMethod = Callable[[GroundScene, np.ndarray], np.ndarray]
"""Maps a scene and its driver cloud (:meth:`GroundScene.cloud`, made once per sweep and
not timed) to a ground mask over the scene's valid points, in the scene's point order."""


@dataclass
class SceneScore:
    """Counts of one method over the sweeps of one scene type."""

    score: GroundScore = field(default_factory=lambda: GroundScore(0, 0, 0, 0))
    steep: int = 0
    """predicted ground points on faces steeper than :data:`STEEP_DEG`"""
    heights: list[np.ndarray] = field(default_factory=list)
    """|height above the walkable surface| of the predicted ground points, per sweep"""
    seconds: float = 0.0
    sweeps: int = 0

    @property
    def predicted(self) -> int:
        return self.score.true_positive + self.score.false_positive

    @property
    def steep_share(self) -> float:
        return self.steep / self.predicted if self.predicted else float("nan")

    def height_error(self, quantile: float | None = None) -> float:
        """Mean (or the ``quantile``) of the predicted ground's height above the floor (m)."""
        values = np.concatenate(self.heights) if self.heights else np.zeros(0)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return float("nan")
        return float(np.mean(values) if quantile is None else np.quantile(values, quantile))

    @property
    def milliseconds(self) -> float:
        return 1e3 * self.seconds / self.sweeps if self.sweeps else float("nan")

    def add(self, ground: np.ndarray, scene: GroundScene, seconds: float) -> None:
        self.score = self.score + score_ground(ground, scene.ground)
        self.steep += int(np.count_nonzero(ground & (scene.normal_up < _COS_STEEP)))
        self.heights.append(np.abs(scene.floor_height[ground]))
        self.seconds += seconds
        self.sweeps += 1


_COS_STEEP = np.float32(np.cos(np.deg2rad(STEEP_DEG)))


@dataclass
class SceneTypeResult:
    name: str
    indoor: bool
    description: str
    points: int
    scores: dict[str, SceneScore]


def ours(params=None) -> SceneMethod:
    """This project's :func:`segment_ground` on the driver's cloud (``params`` None: the
    defaults, which estimate the sensor height and tilt)."""
    from seg_perception.lidar.ground import segment_ground

    def run(scene: GroundScene, cloud: np.ndarray) -> np.ndarray:
        ground = segment_ground(cloud, params).ground
        return ground[scene.flat_index()] if cloud.ndim == 2 else ground

    return run


def patchwork(**overrides: float | bool) -> SceneMethod:
    """Patchwork++ with the scene's true sensor height (one instance per height)."""
    cache: dict[float, PatchworkGround] = {}

    def run(scene: GroundScene, cloud: np.ndarray) -> np.ndarray:
        height = scene.mount_height
        if height not in cache:
            cache[height] = PatchworkGround(sensor_height=height, **overrides)
        return cache[height](scene.points)

    return run


def linefit() -> SceneMethod:
    """linefit with its KITTI configuration at the scene's true sensor height."""
    cache: dict[float, LinefitGround] = {}

    def run(scene: GroundScene, cloud: np.ndarray) -> np.ndarray:
        height = scene.mount_height
        if height not in cache:
            config = {**LINEFIT_KITTI, "important": {"height": height}}
            cache[height] = LinefitGround(config)
        return cache[height](scene.points[:, :3])

    return run


def evaluate_scene_types(
    names: Sequence[str], seeds: Sequence[int], methods: dict[str, SceneMethod]
) -> list[SceneTypeResult]:
    """Generate ``seeds`` sweeps of every scene type in ``names`` and score every method."""
    results = []
    for name in names:
        if name not in GROUND_SCENE_TYPES:
            raise ValueError(
                f"unknown ground scene type {name!r}; known: {', '.join(GROUND_SCENE_TYPES)}"
            )
        kind = GROUND_SCENE_TYPES[name]
        scores = {method: SceneScore() for method in methods}
        points = 0
        for seed in seeds:
            scene = make_ground_scene(name, seed)
            cloud = scene.cloud()
            points += len(scene.points)
            for method, run in methods.items():
                start = time.perf_counter()
                ground = np.asarray(run(scene, cloud), dtype=bool)
                scores[method].add(ground, scene, time.perf_counter() - start)
        results.append(SceneTypeResult(name, kind.indoor, kind.description, points, scores))
    return results


def format_scene_results(results: Sequence[SceneTypeResult]) -> str:
    """One row per scene type and method: P, R, F1, steep share, height error, time."""
    header = (
        f"{'scene':<14} {'method':<16} {'points':>7} {'P':>7} {'R':>7} {'F1':>7} "
        f"{'steep%':>7} {'h.mean':>7} {'h.p95':>7} {'ms':>7}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        for method, s in result.scores.items():
            lines.append(
                f"{result.name:<14} {method:<16} {result.points:>7} {s.score.precision:>7.4f} "
                f"{s.score.recall:>7.4f} {s.score.f1:>7.4f} {100 * s.steep_share:>7.2f} "
                f"{s.height_error():>7.3f} {s.height_error(0.95):>7.3f} {s.milliseconds:>7.1f}"
            )
    return "\n".join(lines)


def target_failures(
    results: Sequence[SceneTypeResult], ours_name: str, peer: str | None
) -> list[str]:
    """The issue's targets on generated scenes that ``ours_name`` misses: F1 >= the peer's
    on every scene type; indoors precision >= 0.95 and <= 1 % of ground on steep faces."""
    failures = []
    for result in results:
        mine = result.scores[ours_name]
        if peer is not None and peer in result.scores:
            theirs = result.scores[peer].score.f1
            if not mine.score.f1 >= theirs:
                failures.append(f"{result.name}: F1 {mine.score.f1:.4f} < {peer} {theirs:.4f}")
        if result.indoor:
            if not mine.score.precision >= 0.95:
                failures.append(f"{result.name}: precision {mine.score.precision:.4f} < 0.95")
            if not mine.steep_share <= 0.01:
                failures.append(f"{result.name}: {100 * mine.steep_share:.2f} % steep > 1 %")
    return failures
