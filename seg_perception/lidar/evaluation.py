"""Scoring ground segmentation against SemanticKITTI labels, and the linefit comparison.

SemanticKITTI stores per point a uint32: the lower 16 bits are the raw semantic class,
the upper 16 the instance. Ground, for a planner, is the raw classes road (40), parking
(44), sidewalk (48), other-ground (49), lane-marking (60) and terrain (72); unlabeled (0)
and outlier (1) are excluded from the scores; every other class is non-ground. The
ground class is scored by precision, recall, F1 and IoU, per scan and overall (counts
summed over scans, not scores averaged).

``linefit`` (PyPI, the C++ implementation of Himmelsbach et al. 2010 with Python
bindings) and Patchwork++ (``pypatchworkpp``, Lee et al. 2022, the state of the art of
non-learned ground segmentation) are the published peers this project compares with:
:class:`LinefitGround` and :class:`PatchworkGround` run them on the same points. Scores
on generated scenes beyond KITTI (indoor, ramps, curbs...) are in :mod:`.ground_eval`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEMANTICKITTI_GROUND = (40, 44, 48, 49, 60, 72)
"""Raw SemanticKITTI classes that are ground: road, parking, sidewalk, other-ground,
lane-marking, terrain."""
SEMANTICKITTI_IGNORED = (0, 1)
"""Raw classes excluded from the scores: unlabeled, outlier."""


@dataclass(frozen=True)
class GroundScore:
    """Confusion counts of the ground class over the scored points, and the scores."""

    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int

    @property
    def precision(self) -> float:
        return _ratio(self.true_positive, self.true_positive + self.false_positive)

    @property
    def recall(self) -> float:
        return _ratio(self.true_positive, self.true_positive + self.false_negative)

    @property
    def f1(self) -> float:
        return _ratio(
            2 * self.true_positive,
            2 * self.true_positive + self.false_positive + self.false_negative,
        )

    @property
    def iou(self) -> float:
        return _ratio(
            self.true_positive, self.true_positive + self.false_positive + self.false_negative
        )

    @property
    def scored(self) -> int:
        return self.true_positive + self.false_positive + self.false_negative + self.true_negative

    def __add__(self, other: GroundScore) -> GroundScore:
        return GroundScore(
            self.true_positive + other.true_positive,
            self.false_positive + other.false_positive,
            self.false_negative + other.false_negative,
            self.true_negative + other.true_negative,
        )


def _ratio(numerator: int, denominator: int) -> float:
    """A score; NaN when undefined (e.g. precision when nothing was predicted ground)."""
    return numerator / denominator if denominator else float("nan")


def score_ground(
    predicted_ground: np.ndarray, truth_ground: np.ndarray, scored: np.ndarray | None = None
) -> GroundScore:
    """Confusion counts of ``predicted_ground`` against ``truth_ground`` (both bool, one per
    point) over the points where ``scored`` is True (all points if None)."""
    predicted = np.asarray(predicted_ground, dtype=bool).reshape(-1)
    truth = np.asarray(truth_ground, dtype=bool).reshape(-1)
    if predicted.shape != truth.shape:
        raise ValueError(
            f"{predicted.shape[0]} predictions for {truth.shape[0]} ground-truth points"
        )
    if scored is not None:
        scored = np.asarray(scored, dtype=bool).reshape(-1)
        if scored.shape != truth.shape:
            raise ValueError(f"scored mask has {scored.shape[0]} entries for {truth.shape[0]}")
        predicted, truth = predicted[scored], truth[scored]
    tp = int(np.count_nonzero(predicted & truth))
    fp = int(np.count_nonzero(predicted & ~truth))
    fn = int(np.count_nonzero(~predicted & truth))
    return GroundScore(tp, fp, fn, int(truth.size) - tp - fp - fn)


def semantickitti_ground_truth(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_ground, scored) per point from SemanticKITTI uint32 labels (or raw classes)."""
    raw = np.asarray(labels).astype(np.uint32) & 0xFFFF
    return np.isin(raw, SEMANTICKITTI_GROUND), ~np.isin(raw, SEMANTICKITTI_IGNORED)


def read_scan(path: str | Path) -> np.ndarray:
    """A KITTI / SemanticKITTI ``.bin`` scan: (N, 4) float32 x, y, z, remission."""
    path = Path(path)
    raw = np.fromfile(path, dtype="<f4")
    if raw.size % 4:
        raise ValueError(f"{path}: {raw.size} floats is not a whole number of (x, y, z, r) points")
    return raw.reshape(-1, 4)


def read_labels(path: str | Path, points: int | None = None) -> np.ndarray:
    """A SemanticKITTI ``.label`` file: (N,) uint32, checked against the scan's size."""
    path = Path(path)
    labels = np.fromfile(path, dtype="<u4")
    if points is not None and labels.size != points:
        raise ValueError(f"{path}: {labels.size} labels for a scan of {points} points")
    return labels


@dataclass(frozen=True)
class LabeledScan:
    name: str
    scan: Path
    labels: Path


def find_scans(root: str | Path, sequence: str = "00") -> list[LabeledScan]:
    """Scans with labels under ``root``: a SemanticKITTI root (``sequences/<seq>/``), a
    sequence folder (``velodyne/`` and ``labels/``) or a ``velodyne`` folder."""
    root = Path(root)
    candidates = [root / "sequences" / sequence, root, root.parent]
    folder = next(
        (c for c in candidates if (c / "velodyne").is_dir() and (c / "labels").is_dir()), None
    )
    if folder is None:
        raise OSError(
            f"no SemanticKITTI scans under {root}: expected sequences/{sequence}/velodyne and "
            "labels, or velodyne/ and labels/"
        )
    scans = []
    for scan in sorted((folder / "velodyne").glob("*.bin")):
        labels = folder / "labels" / (scan.stem + ".label")
        if labels.is_file():
            scans.append(LabeledScan(scan.stem, scan, labels))
    if not scans:
        raise OSError(f"{folder}: no velodyne/*.bin scan has a labels/*.label file")
    return scans


GroundMethod = Callable[[np.ndarray], np.ndarray]
"""Anything that maps an (N, 4) scan to a per-point ground mask."""


@dataclass(frozen=True)
class ScanResult:
    name: str
    points: int
    scores: dict[str, GroundScore]


def evaluate_ground(scans: list[LabeledScan], methods: dict[str, GroundMethod]) -> list[ScanResult]:
    """Run every method on every scan and score it."""
    results = []
    for item in scans:
        points = read_scan(item.scan)
        truth, scored = semantickitti_ground_truth(read_labels(item.labels, len(points)))
        scores = {
            name: score_ground(method(points), truth, scored) for name, method in methods.items()
        }
        results.append(ScanResult(item.name, len(points), scores))
    return results


def total_scores(results: list[ScanResult]) -> dict[str, GroundScore]:
    """Counts summed over the scans, per method."""
    totals: dict[str, GroundScore] = {}
    for result in results:
        for name, score in result.scores.items():
            totals[name] = totals[name] + score if name in totals else score
    return totals


def format_results(results: list[ScanResult]) -> str:
    """A side-by-side table: one row per scan and method, then the overall rows."""
    header = f"{'scan':<8} {'method':<22} {'points':>7} {'P':>7} {'R':>7} {'F1':>7} {'IoU':>7}"
    lines = [header, "-" * len(header)]

    def row(scan: str, method: str, points: str, s: GroundScore) -> str:
        return (
            f"{scan:<8} {method:<22} {points:>7} {s.precision:>7.4f} {s.recall:>7.4f} "
            f"{s.f1:>7.4f} {s.iou:>7.4f}"
        )

    for result in results:
        for name, score in result.scores.items():
            lines.append(row(result.name, name, str(result.points), score))
    total = sum(r.points for r in results)
    for name, score in total_scores(results).items():
        lines.append(row("overall", name, str(total), score))
    return "\n".join(lines)


# --------------------------------------------------------------------------- linefit

#: linefit's own published KITTI configuration (``assets/config.toml`` in the PyPI
#: package's repository, lorenwel/linefit_ground_segmentation), as published (its height
#: 1.78 m includes an offset; 1.73 m scores lower), with one thread: the benchmark pins
#: one core, where more threads only add overhead.
LINEFIT_KITTI = {
    "important": {"height": 1.78},
    "segments": {"r_min": 0.1, "r_max": 80, "n_segments": 360, "n_bins": 160},
    "ground": {
        "min_slope": -0.1,
        "max_slope": 0.1,
        "long_threshold": 2.0,
        "max_long_height": 0.2,
        "max_start_height": 0.2,
        "max_fit_error": 0.2,
        "max_dist_to_line": 0.2,
        "line_search_angle": 0.33,
    },
    "general": {"n_threads": 1},
}


def linefit_available() -> bool:
    try:
        import linefit  # noqa: F401
    except ImportError:
        return False
    return True


class LinefitGround:
    """linefit's ground segmentation, called through its Python API.

    ``config`` None uses linefit's built-in defaults; a dict is written as its TOML
    configuration. linefit prints two lines per call from C++ (``std::cout``); they are
    sent to /dev/null at the file-descriptor level so tables stay readable.
    """

    def __init__(self, config: dict | str | Path | None = None) -> None:
        try:
            from linefit import ground_seg
        except ImportError:
            raise ImportError("the linefit comparison needs: pip install linefit") from None
        self._tmp: tempfile.TemporaryDirectory | None = None
        path: str | None
        if isinstance(config, dict):
            self._tmp = tempfile.TemporaryDirectory(prefix="linefit-")
            path = str(Path(self._tmp.name) / "config.toml")
            Path(path).write_text(_toml(config))
        else:
            path = None if config is None else str(config)
            if path is not None and not Path(path).is_file():
                raise OSError(f"linefit configuration {path} does not exist")
        with _quiet_stdout():
            self._impl = ground_seg(path)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        xyz = np.ascontiguousarray(np.asarray(points)[:, :3], dtype=np.float32)
        with _quiet_stdout():
            labels = self._impl.run(xyz)
        return np.asarray(labels).astype(bool)


def _toml(config: dict) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in values.items())
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence C/C++ writes to fd 1 (Python's own ``sys.stdout`` is flushed first)."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


# --------------------------------------------------------------------------- Patchwork++


def patchwork_available() -> bool:
    try:
        import pypatchworkpp  # noqa: F401
    except ImportError:
        return False
    return True


class PatchworkGround:
    """Patchwork++ (``pypatchworkpp``) through its Python API, on the same points.

    Its defaults are its authors' KITTI configuration (sensor 1.723 m, min_range 2.7 m);
    ``sensor_height`` and any other field of ``pypatchworkpp.Parameters`` can be given
    (``overrides``). It takes the valid points only (it has no notion of NaN holes) and
    x, y, z, intensity where the cloud has intensity (its reflected-noise removal needs it).
    Its C++ banner lines are silenced like linefit's.
    """

    def __init__(self, sensor_height: float | None = None, **overrides: float | bool) -> None:
        try:
            import pypatchworkpp
        except ImportError:
            raise ImportError(
                "the Patchwork++ comparison needs: pip install pypatchworkpp==1.4.1"
            ) from None
        params = pypatchworkpp.Parameters()
        params.verbose = False
        if sensor_height is not None:
            params.sensor_height = float(sensor_height)
        for name, value in overrides.items():
            if not hasattr(params, name):
                raise ValueError(f"pypatchworkpp.Parameters has no field {name!r}")
            setattr(params, name, value)
        self.params = params
        with _quiet_stdout():
            self._impl = pypatchworkpp.patchworkpp(params)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        array = np.asarray(points)
        columns = 4 if array.ndim == 2 and array.shape[1] >= 4 else 3
        cloud = np.ascontiguousarray(array[:, :columns], dtype=np.float32)
        ground = np.zeros(len(cloud), dtype=bool)
        finite = np.isfinite(cloud[:, :3]).all(axis=1)
        if not finite.all():
            index = np.flatnonzero(finite)
            ground[index] = self(cloud[index])
            return ground
        if len(cloud) == 0:
            return ground
        with _quiet_stdout():
            self._impl.estimateGround(cloud)
        ground[np.asarray(self._impl.getGroundIndices(), dtype=np.intp)] = True
        return ground
