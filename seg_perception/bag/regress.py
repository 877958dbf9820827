"""Compare a replay's output bag with a golden one: what changed, and is it a regression.

Clouds are paired by stamp. Per cloud: the share of points whose camera ``label`` (and
``lidar_class``, when present) is unchanged; per label image: the share of equal pixels;
overall: per-class point counts. Missing or extra stamps are regressions. Runs of
different configurations are still compared (that is how a changed setting shows its
effect), and the configuration differences are listed first.
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
from seg_perception.ros.image_conversions import image_to_array
from seg_perception.ros.pointcloud2 import pointcloud2_to_array

EXIT_REGRESSION = 1


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


def read_output(path: str | Path) -> BagOutput:
    """Label fields, label images and configuration of a replay output bag."""
    with open_bag(path) as reader:
        output = BagOutput(config=json.loads(custom_data(path).get(CONFIG_KEY, "{}")))
        labeled = [c for c in reader.connections if c.topic.endswith("/labeled_points")]
        if not labeled:
            raise BagError(f"{path} has no .../labeled_points topic: not a replay output")
        for connection, _, raw in reader.messages():
            if connection.topic.endswith("/labeled_points"):
                message = reader.deserialize(raw, connection.msgtype)
                cloud = pointcloud2_to_array(message).reshape(-1)
                fields = {
                    n: np.array(cloud[n])
                    for n in ("label", "lidar_class")
                    if n in cloud.dtype.names
                }
                output.clouds[_stamp(message)] = fields
            elif connection.topic.endswith("/labels") and connection.msgtype.endswith("Image"):
                message = reader.deserialize(raw, connection.msgtype)
                output.images[(connection.topic, _stamp(message))] = np.array(
                    image_to_array(message)
                )
            elif connection.topic.endswith("/class_map"):
                message = reader.deserialize(raw, connection.msgtype)
                output.class_names = {int(c.id): c.name for c in message.classes}
    return output


@dataclass
class RegressionReport:
    lines: list[str]
    regressions: list[str]
    config_changes: list[str]
    #: Share of points equal to the golden run's, per field (label, lidar_class), overall.
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


def compare(current: BagOutput, golden: BagOutput, tolerances: Tolerances) -> RegressionReport:
    """Judge ``current`` against ``golden``."""
    if golden.class_names and current.class_names and golden.class_names != current.class_names:
        raise BagError(
            "the golden bag uses another label set "
            f"({len(golden.class_names)} classes vs {len(current.class_names)}): not comparable"
        )
    regressions, lines = [], []
    missing = sorted(set(golden.clouds) - set(current.clouds))
    extra = sorted(set(current.clouds) - set(golden.clouds))
    if missing:
        regressions.append(
            f"{len(missing)} cloud(s) of the golden run are missing, e.g. stamp {missing[0]}"
        )
    if extra:
        regressions.append(f"{len(extra)} cloud(s) not in the golden run, e.g. stamp {extra[0]}")
    counts_now: Counter = Counter()
    counts_golden: Counter = Counter()
    same: Counter = Counter()
    total: Counter = Counter()
    common = sorted(set(golden.clouds) & set(current.clouds))
    for stamp in common:
        old, new = golden.clouds[stamp], current.clouds[stamp]
        for name in ("label", "lidar_class"):
            if name not in old:
                continue
            if name not in new or new[name].shape != old[name].shape:
                regressions.append(f"cloud {stamp}: field '{name}' missing or of another size")
                continue
            agreement = float(np.mean(new[name] == old[name]))
            changed = int(np.count_nonzero(new[name] != old[name]))
            same[name] += new[name].size - changed
            total[name] += new[name].size
            lines.append(
                f"cloud {stamp}: {name} agreement {100 * agreement:.3f}% ({changed} points changed)"
            )
            if agreement < tolerances.min_point_agreement:
                regressions.append(
                    f"cloud {stamp}: {name} agreement {100 * agreement:.3f}% < "
                    f"{100 * tolerances.min_point_agreement:.3f}%"
                )
        counts_now.update(_counts(new["label"]))
        counts_golden.update(_counts(old["label"]))
    for key in sorted(set(golden.images) & set(current.images)):
        old_image, new_image = golden.images[key], current.images[key]
        if old_image.shape != new_image.shape:
            regressions.append(
                f"{key[0]} at {key[1]}: size {new_image.shape} vs golden {old_image.shape}"
            )
            continue
        agreement = float(np.mean(old_image == new_image))
        if agreement < tolerances.min_pixel_agreement:
            regressions.append(f"{key[0]} at {key[1]}: pixel agreement {100 * agreement:.3f}%")
    missing_images = sorted(set(golden.images) - set(current.images))
    if missing_images:
        regressions.append(f"{len(missing_images)} label image(s) of the golden run are missing")
    for class_id in sorted(set(counts_now) | set(counts_golden)):
        before, after = counts_golden[class_id], counts_now[class_id]
        if before == after:
            continue
        name = golden.class_names.get(
            class_id, "unlabeled" if class_id in (255, 65535) else str(class_id)
        )
        change = (after - before) / max(before, 1)
        lines.append(
            f"class {class_id} ({name}): {before} -> {after} points ({100 * change:+.2f}%)"
        )
        if abs(change) > tolerances.max_class_count_change:
            regressions.append(f"class {class_id} ({name}) count changed {100 * change:+.2f}%")
    return RegressionReport(
        lines, regressions, _config_changes(current.config, golden.config),
        agreement={name: same[name] / max(total[name], 1) for name in total},
        class_counts={
            int(c): (int(counts_golden[c]), int(counts_now[c]))
            for c in sorted(set(counts_now) | set(counts_golden))
        },
        clouds=len(common),
    )  # fmt: skip


def _counts(labels: np.ndarray) -> Counter:
    ids, counts = np.unique(labels, return_counts=True)
    return Counter(dict(zip(ids.tolist(), counts.tolist(), strict=True)))


def regress(
    current: str | Path, golden: str | Path, tolerances: Tolerances | None = None
) -> RegressionReport:
    return compare(read_output(current), read_output(golden), tolerances or Tolerances())
