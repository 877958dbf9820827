"""Compare a replay's output bag with a golden one: what changed, and is it a regression.

Clouds are paired by stamp. Per cloud: the share of points whose camera ``label`` (and
``lidar_class`` and ``instance``, when present) is unchanged (instance ids are arbitrary
numbers, so there the same object up to renumbering counts as unchanged); per label
image: the share of equal pixels; overall: per-class point counts. Missing or extra
stamps are regressions. Runs of different configurations are still compared (that is
how a changed setting shows its effect), and the configuration differences are listed
first.

The two bags are read side by side and each pair is judged as soon as both halves have
been read, so memory holds only the messages one run has and the other has not reached
yet (none when both runs have the same frames), not whole bags: an hour of driving
compares in the memory of a few frames.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seg_perception.bag.io import BagError, open_bag
from seg_perception.bag.replay import CONFIG_KEY
from seg_perception.core.instances import same_partition_points
from seg_perception.ros.image_conversions import image_to_array
from seg_perception.ros.pointcloud2 import pointcloud2_to_array

EXIT_REGRESSION = 1
#: The per-point fields of a labeled cloud that regress compares.
COMPARED_FIELDS = ("label", "lidar_class", "instance")


@dataclass(frozen=True)
class Tolerances:
    """Lowest acceptable agreement; 1.0 means the outputs must be identical."""

    min_point_agreement: float = 1.0
    min_pixel_agreement: float = 1.0
    #: Largest relative change of any class's point count (0.01 = 1 %).
    max_class_count_change: float = 0.0


@dataclass
class BagOutput:
    """The parts of a replay output bag that regressions are judged on."""

    config: dict[str, Any]
    clouds: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    images: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    class_names: dict[int, str] = field(default_factory=dict)


def custom_data(path: str | Path) -> dict[str, str]:
    """The ``custom_data`` of a bag's metadata.yaml (rosbags reads but does not expose it)."""
    metadata = Path(path) / "metadata.yaml"
    if not metadata.is_file():
        return {}
    info = yaml.safe_load(metadata.read_text()).get("rosbag2_bagfile_information", {})
    return info.get("custom_data") or {}


def _stamp(message: Any) -> int:
    return int(message.header.stamp.sec) * 1_000_000_000 + int(message.header.stamp.nanosec)


def _items(path: str | Path):
    """(kind, key, value) of a replay output bag in bag order: ("cloud", stamp, fields),
    ("image", (topic, stamp), pixels), ("classes", None, {id: name})."""
    with open_bag(path) as reader:
        labeled = [c for c in reader.connections if c.topic.endswith("/labeled_points")]
        if not labeled:
            raise BagError(f"{path} has no .../labeled_points topic: not a replay output")
        for connection, _, raw in reader.messages():
            topic, msgtype = connection.topic, connection.msgtype
            if topic.endswith("/labeled_points"):
                message = reader.deserialize(raw, msgtype)
                cloud = pointcloud2_to_array(message).reshape(-1)
                fields = {n: np.array(cloud[n]) for n in COMPARED_FIELDS if n in cloud.dtype.names}
                yield "cloud", _stamp(message), fields
            elif topic.endswith("/labels") and msgtype.endswith("Image"):
                message = reader.deserialize(raw, msgtype)
                yield "image", (topic, _stamp(message)), np.array(image_to_array(message))
            elif topic.endswith("/class_map"):
                message = reader.deserialize(raw, msgtype)
                yield "classes", None, {int(c.id): c.name for c in message.classes}


def read_output(path: str | Path) -> BagOutput:
    """Label fields, label images and configuration of a replay output bag, in memory
    (for tests and small bags; :func:`regress` streams instead)."""
    output = BagOutput(config=json.loads(custom_data(path).get(CONFIG_KEY, "{}")))
    for kind, key, value in _items(path):
        if kind == "cloud":
            output.clouds[key] = value
        elif kind == "image":
            output.images[key] = value
        else:
            output.class_names = value
    return output


@dataclass
class RegressionReport:
    lines: list[str]
    regressions: list[str]
    config_changes: list[str]
    #: Share of points equal to the golden run's, per field (label, lidar_class, instance:
    #: the same object up to renumbering), overall.
    agreement: dict[str, float] = field(default_factory=dict)
    #: class id -> (golden points, current points), over the compared clouds.
    class_counts: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Clouds compared (present in both runs).
    clouds: int = 0

    @property
    def passed(self) -> bool:
        return not self.regressions

    def format(self) -> str:
        verdict = "PASS: no regression" if self.passed else f"REGRESSION ({len(self.regressions)})"
        return "\n".join([*self.config_changes, *self.lines, *self.regressions, verdict])


def _config_changes(current: dict[str, Any], golden: dict[str, Any], prefix: str = "") -> list[str]:
    changes = []
    for key in sorted(set(current) | set(golden)):
        a, b = golden.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += _config_changes(b, a, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"configuration changed: {prefix}{key}: {a!r} -> {b!r}")
    return changes


class _Judge:
    """Judges pairs as they come and keeps only running totals."""

    def __init__(self, tolerances: Tolerances) -> None:
        self.tolerances = tolerances
        self.lines: list[str] = []
        self.regressions: list[str] = []
        self.counts_now: Counter = Counter()
        self.counts_golden: Counter = Counter()
        self.same: Counter = Counter()
        self.total: Counter = Counter()
        self.clouds = 0
        self.golden_names: dict[int, str] = {}

    def cloud(self, stamp: int, new: dict[str, np.ndarray], old: dict[str, np.ndarray]) -> None:
        self.clouds += 1
        for name in COMPARED_FIELDS:
            if name not in old:
                continue
            if name not in new or new[name].shape != old[name].shape:
                self.regressions.append(f"cloud {stamp}: field '{name}' missing or of another size")
                continue
            if name == "instance":  # ids are arbitrary: the partitions must be the same
                changed = new[name].size - same_partition_points(old[name], new[name])
            else:
                changed = int(np.count_nonzero(new[name] != old[name]))
            agreement = 1.0 - changed / max(new[name].size, 1)
            self.same[name] += new[name].size - changed
            self.total[name] += new[name].size
            self.lines.append(
                f"cloud {stamp}: {name} agreement {100 * agreement:.3f}% ({changed} points changed)"
            )
            if agreement < self.tolerances.min_point_agreement:
                self.regressions.append(
                    f"cloud {stamp}: {name} agreement {100 * agreement:.3f}% < "
                    f"{100 * self.tolerances.min_point_agreement:.3f}%"
                )
        self.counts_now.update(_counts(new["label"]))
        self.counts_golden.update(_counts(old["label"]))

    def image(self, key: tuple[str, int], new: np.ndarray, old: np.ndarray) -> None:
        if old.shape != new.shape:
            self.regressions.append(f"{key[0]} at {key[1]}: size {new.shape} vs golden {old.shape}")
            return
        agreement = float(np.mean(old == new))
        if agreement < self.tolerances.min_pixel_agreement:
            self.regressions.append(f"{key[0]} at {key[1]}: pixel agreement {100 * agreement:.3f}%")

    def unpaired(self, current: dict, golden: dict) -> None:
        """What one run has and the other has not, at the end."""
        missing = sorted(k for kind, k in golden if kind == "cloud")
        extra = sorted(k for kind, k in current if kind == "cloud")
        if missing:
            self.regressions.insert(0, f"{len(missing)} cloud(s) of the golden run are missing, "
                                       f"e.g. stamp {missing[0]}")  # fmt: skip
        if extra:
            self.regressions.insert(0, f"{len(extra)} cloud(s) not in the golden run, e.g. "
                                       f"stamp {extra[0]}")  # fmt: skip
        images = sum(kind == "image" for kind, _ in golden)
        if images:
            self.regressions.append(f"{images} label image(s) of the golden run are missing")

    def report(self, config_changes: list[str]) -> RegressionReport:
        for class_id in sorted(set(self.counts_now) | set(self.counts_golden)):
            before, after = self.counts_golden[class_id], self.counts_now[class_id]
            if before == after:
                continue
            name = self.golden_names.get(
                class_id, "unlabeled" if class_id in (255, 65535) else str(class_id)
            )
            change = (after - before) / max(before, 1)
            self.lines.append(
                f"class {class_id} ({name}): {before} -> {after} points ({100 * change:+.2f}%)"
            )
            if abs(change) > self.tolerances.max_class_count_change:
                self.regressions.append(
                    f"class {class_id} ({name}) count changed {100 * change:+.2f}%"
                )
        return RegressionReport(
            self.lines, self.regressions, config_changes,
            agreement={n: self.same[n] / max(self.total[n], 1) for n in self.total},
            class_counts={
                int(c): (int(self.counts_golden[c]), int(self.counts_now[c]))
                for c in sorted(set(self.counts_now) | set(self.counts_golden))
            },
            clouds=self.clouds,
        )  # fmt: skip


def _check_classes(current: dict[int, str], golden: dict[int, str]) -> None:
    if golden and current and golden != current:
        raise BagError(
            "the golden bag uses another label set "
            f"({len(golden)} classes vs {len(current)}): not comparable"
        )


def _judge_pairs(judge: _Judge, current, golden) -> tuple[dict, dict]:
    """Walk both (kind, key, value) streams side by side; a pair is judged when both halves
    are in; returns what stayed unpaired (current's, golden's)."""
    pending: tuple[dict, dict] = ({}, {})
    classes: list[dict[int, str]] = [{}, {}]
    streams = [iter(current), iter(golden)]
    alive = [True, True]
    while any(alive):
        for side in (0, 1):
            if not alive[side]:
                continue
            item = next(streams[side], None)
            if item is None:
                alive[side] = False
                continue
            kind, key, value = item
            if kind == "classes":
                classes[side] = value
                _check_classes(classes[0], classes[1])
                continue
            other = pending[1 - side].pop((kind, key), None)
            if other is None:
                pending[side][(kind, key)] = value
                continue
            new, old = (value, other) if side == 0 else (other, value)
            getattr(judge, kind)(key, new, old)
    judge.golden_names = classes[1]
    return pending


def compare(current: BagOutput, golden: BagOutput, tolerances: Tolerances) -> RegressionReport:
    """Judge ``current`` against ``golden`` (both in memory)."""

    def items(output: BagOutput):
        yield "classes", None, output.class_names
        for stamp, fields in output.clouds.items():
            yield "cloud", stamp, fields
        for key, pixels in output.images.items():
            yield "image", key, pixels

    judge = _Judge(tolerances)
    judge.unpaired(*_judge_pairs(judge, items(current), items(golden)))
    return judge.report(_config_changes(current.config, golden.config))


def _counts(labels: np.ndarray) -> Counter:
    ids, counts = np.unique(labels, return_counts=True)
    return Counter(dict(zip(ids.tolist(), counts.tolist(), strict=True)))


def regress(
    current: str | Path, golden: str | Path, tolerances: Tolerances | None = None
) -> RegressionReport:
    """Judge the replay output bag ``current`` against ``golden``, reading both side by side."""
    configs = [json.loads(custom_data(p).get(CONFIG_KEY, "{}")) for p in (current, golden)]
    judge = _Judge(tolerances or Tolerances())
    judge.unpaired(*_judge_pairs(judge, _items(current), _items(golden)))
    return judge.report(_config_changes(*configs))
