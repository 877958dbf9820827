"""Ground scores, SemanticKITTI readers and label mapping, linefit, and the two commands."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
from conftest import data_path

from seg_perception.lidar.cli import add_parsers
from seg_perception.lidar.cloud_files import read_pcd
from seg_perception.lidar.evaluation import (
    GroundScore,
    LinefitGround,
    evaluate_ground,
    find_scans,
    format_results,
    linefit_available,
    read_labels,
    read_scan,
    score_ground,
    semantickitti_ground_truth,
    total_scores,
)
from seg_perception.sample import generate_scene


def test_scores_by_hand():
    predicted = np.array([1, 1, 1, 0, 0, 0, 1, 0], bool)
    truth = np.array([1, 1, 0, 1, 0, 0, 1, 1], bool)
    scored = np.array([1, 1, 1, 1, 1, 1, 1, 0], bool)  # the last point is "unlabeled"
    score = score_ground(predicted, truth, scored)
    assert (score.true_positive, score.false_positive) == (3, 1)
    assert (score.false_negative, score.true_negative) == (1, 2)
    assert score.precision == 0.75 and score.recall == 0.75
    assert score.f1 == 0.75 and score.iou == 0.6 and score.scored == 7
    total = score + GroundScore(1, 0, 1, 0)
    assert total.precision == 0.8 and total.recall == pytest.approx(4 / 6)
    nothing = score_ground(np.zeros(3, bool), np.zeros(3, bool))
    assert math.isnan(nothing.precision) and math.isnan(nothing.f1)
    with pytest.raises(ValueError, match="2 predictions for 3"):
        score_ground(np.zeros(2, bool), np.zeros(3, bool))


def test_semantickitti_label_mapping():
    raw = np.array([40, 44, 48, 49, 60, 72, 0, 1, 10, 50, 70, 252, 30], np.uint32)
    labels = raw | (np.arange(len(raw), dtype=np.uint32) << 16)  # instance ids on top
    ground, scored = semantickitti_ground_truth(labels)
    assert ground.tolist() == [True] * 6 + [False] * 7
    assert scored.tolist() == [True] * 6 + [False, False] + [True] * 5


def test_readers_check_sizes(tmp_path):
    scan = tmp_path / "000000.bin"
    np.arange(8, dtype="<f4").tofile(scan)
    assert read_scan(scan).shape == (2, 4)
    np.arange(7, dtype="<f4").tofile(scan)
    with pytest.raises(ValueError, match="whole number"):
        read_scan(scan)
    label = tmp_path / "000000.label"
    np.zeros(3, "<u4").tofile(label)
    with pytest.raises(ValueError, match="3 labels for a scan of 2"):
        read_labels(label, 2)


def _write_generated_dataset(root, seeds=(0,)):
    """A SemanticKITTI-shaped folder made from generated streets (raw classes mapped
    from the scene's Cityscapes ids: road 40, sidewalk 48, terrain 72, car 10, ...)."""
    raw_of = np.full(256, 99, np.uint32)  # other-object
    raw_of[[0, 1, 2, 8, 9, 13]] = [40, 48, 50, 70, 72, 10]
    sequence = root / "sequences" / "00"
    (sequence / "velodyne").mkdir(parents=True)
    (sequence / "labels").mkdir()
    for index, seed in enumerate(seeds):
        scene = generate_scene(seed)
        scene.points.astype("<f4").tofile(sequence / "velodyne" / f"{index:06d}.bin")
        raw_of[scene.point_labels].astype("<u4").tofile(sequence / "labels" / f"{index:06d}.label")
    return root


def test_find_scans_layouts(tmp_path):
    root = _write_generated_dataset(tmp_path / "kitti")
    sequence = root / "sequences" / "00"
    for where in (root, sequence, sequence / "velodyne"):
        assert [s.name for s in find_scans(where)] == ["000000"]
    with pytest.raises(OSError, match="no SemanticKITTI scans"):
        find_scans(tmp_path / "nowhere")


def _run(argv):
    parser = argparse.ArgumentParser(prog="seg-perception")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_eval_ground_command_on_generated_scans(tmp_path, capsys):
    root = _write_generated_dataset(tmp_path / "kitti", seeds=(0, 1))
    # (Patchwork++ rows, where it is installed, are tested in test_ground_eval.py.)
    only_ours = ["eval-ground", "--data", str(root), "--linefit", "no", "--patchwork", "no"]
    assert _run(only_ours) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("000", "overall"))]
    assert [r[0] for r in rows] == ["000000", "000001", "overall"]
    precision, recall, f1 = (float(v) for v in rows[-1][3:6])
    # The street labels its curb risers sidewalk; they are faces, never ground (issue 13).
    assert precision >= 0.95 and recall >= 0.92 and f1 >= 0.95
    # A target it misses gives exit status 1; parameters reach the segmenter.
    assert _run([*only_ours, "--min-f1", "0.999"]) == 1
    assert "below target" in capsys.readouterr().out
    args = [*only_ours, "--scans", "000001"]
    assert _run([*args, "--distance-threshold", "0.3", "--fill-radius", "3"]) == 0
    assert len([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("000")]) == 1


def test_eval_ground_command_rejects_bad_input(tmp_path):
    root = _write_generated_dataset(tmp_path / "kitti")
    with pytest.raises(OSError, match="no SemanticKITTI scans"):
        _run(["eval-ground", "--data", str(tmp_path / "missing")])
    with pytest.raises(OSError, match="999999 not found"):
        _run(["eval-ground", "--data", str(root), "--scans", "999999"])
    with pytest.raises(SystemExit):  # argparse: exit 2 with "unrecognized arguments"
        _run(["eval-ground", "--data", str(root), "--slope", "3"])
    with pytest.raises(SystemExit):  # argparse: "invalid float value"
        _run(["eval-ground", "--data", str(root), "--cell-size", "big"])
    with pytest.raises(ValueError, match=r"\[0, 90\)"):
        _run(["eval-ground", "--data", str(root), "--max-slope-deg", "120"])
    with pytest.raises(ValueError, match="must be > 0"):
        _run(["eval-ground", "--data", str(root), "--cell-size", "-1"])


def test_segment_cloud_command_writes_a_labeled_cloud(tmp_path, capsys):
    scene = generate_scene(2)
    scan = tmp_path / "scan.bin"
    scene.points.astype("<f4").tofile(scan)
    output = tmp_path / "labeled.pcd"
    assert _run(["segment-cloud", str(scan), "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert "ground" in out and "clusters:" in out
    cloud = read_pcd(output)
    assert cloud.dtype.names == ("x", "y", "z", "intensity", "lidar_class", "cluster")
    np.testing.assert_array_equal(cloud["intensity"], scene.points[:, 3])
    counts = np.bincount(cloud["lidar_class"], minlength=3)
    assert len(counts) == 3 and counts[1] > 0.4 * len(cloud) and counts[2] > 0.2 * len(cloud)
    npy = tmp_path / "labeled.npy"
    assert _run(["segment-cloud", str(output), "--output", str(npy), "--no-clusters"]) == 0
    again = np.load(npy)  # re-labeling replaces lidar_class and drops the stale cluster
    assert again.dtype.names == ("x", "y", "z", "intensity", "lidar_class")
    np.testing.assert_array_equal(again["lidar_class"], cloud["lidar_class"])
    with pytest.raises(OSError, match="does not exist"):
        _run(["segment-cloud", str(tmp_path / "missing.bin")])
    with pytest.raises(ValueError, match="unsupported cloud format"):
        (tmp_path / "cloud.txt").write_text("1 2 3\n")
        _run(["segment-cloud", str(tmp_path / "cloud.txt")])
    with pytest.raises(ValueError, match="tolerance must be > 0"):
        _run(["segment-cloud", str(scan), "--cluster-tolerance", "0"])
    with pytest.raises(ValueError, match=r"use a \.pcd or \.npy"):
        _run(["segment-cloud", str(scan), "--output", str(tmp_path / "out.ply")])
    with pytest.raises(ValueError, match="--sensor-height: ground options do not apply"):
        _run(["segment-cloud", str(scan), "--model", "m.onnx", "--sensor-height", "2"])


def test_linefit_runs_quietly_on_the_same_points(capfd):
    if not linefit_available():
        pytest.skip("linefit is not installed (pip install linefit)")
    scene = generate_scene(0)
    ground = LinefitGround()(scene.points)
    assert ground.dtype == bool and ground.shape == (len(scene.points),)
    truth = np.isin(scene.point_labels, (0, 1, 9))
    assert score_ground(ground, truth).f1 > 0.8  # it works; how well is the real benchmark
    assert "Segment" not in capfd.readouterr().out  # its C++ progress lines are silenced


def test_real_semantickitti_table_side_by_side(capsys):
    scans = find_scans(data_path("semantickitti"))
    methods = {"seg_perception": lambda p: np.ones(len(p), bool)}  # trivial: all ground
    results = evaluate_ground(scans, methods)
    total = total_scores(results)["seg_perception"]
    assert total.recall == 1.0 and 0.4 < total.precision < 0.7  # ~half the points are ground
    table = format_results(results)
    assert table.count("seg_perception") == len(scans) + 1
