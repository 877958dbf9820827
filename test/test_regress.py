"""regress's pairing, judged pair by pair as both runs are read side by side."""

from __future__ import annotations

import numpy as np

from seg_perception.bag.regress import BagOutput, Tolerances, _Judge, _judge_pairs, compare


def cloud(labels) -> dict[str, np.ndarray]:
    return {"label": np.asarray(labels, np.uint8)}


def test_pairs_by_stamp_in_any_order_and_reports_missing_and_extra():
    golden = BagOutput({}, clouds={1: cloud([0, 1, 2, 3]), 2: cloud([1, 1]), 3: cloud([5])})
    current = BagOutput({}, clouds={3: cloud([5]), 2: cloud([1, 0]), 4: cloud([7])})
    report = compare(current, golden, Tolerances())
    assert report.clouds == 2
    assert report.agreement["label"] == 2 / 3  # 3 points compared, one changed
    text = "\n".join(report.regressions)
    assert "1 cloud(s) of the golden run are missing, e.g. stamp 1" in text
    assert "1 cloud(s) not in the golden run, e.g. stamp 4" in text
    assert "cloud 2: label agreement 50.000%" in text
    assert report.class_counts[0] == (0, 1) and report.class_counts[1] == (2, 1)


def test_runs_with_the_same_frames_hold_nothing_pending():
    def stream(n, offset=0):
        for stamp in range(n):
            yield "cloud", stamp, cloud([stamp % 7 + offset])

    judge = _Judge(Tolerances())
    left, right = _judge_pairs(judge, stream(1000), stream(1000))
    assert left == {} and right == {}
    assert judge.clouds == 1000
    judge = _Judge(Tolerances(min_point_agreement=0.0))
    _judge_pairs(judge, stream(10, offset=1), stream(10))
    assert judge.report([]).agreement["label"] == 0.0


def test_instance_ids_are_compared_as_partitions():
    golden = BagOutput({}, clouds={1: {**cloud([0, 1, 1, 2]), "instance": np.array([0, 1, 1, 2])}})
    renumbered = BagOutput({}, clouds={1: {**cloud([0, 1, 1, 2]),
                                           "instance": np.array([0, 9, 9, 4])}})  # fmt: skip
    report = compare(renumbered, golden, Tolerances())
    assert report.passed and report.agreement["instance"] == 1.0
    merged = BagOutput({}, clouds={1: {**cloud([0, 1, 1, 2]), "instance": np.array([0, 3, 3, 3])}})
    report = compare(merged, golden, Tolerances())
    assert not report.passed and report.agreement["instance"] == 0.75
    assert "cloud 1: instance agreement 75.000%" in "\n".join(report.regressions)
