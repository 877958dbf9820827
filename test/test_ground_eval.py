"""eval-ground beyond KITTI (lidar/ground_eval.py, the CLI, the figure) and the
Patchwork++ peer (evaluation.PatchworkGround)."""

from __future__ import annotations

import argparse
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from seg_perception.lidar.cli import add_parsers
from seg_perception.lidar.evaluation import PatchworkGround, patchwork_available, score_ground
from seg_perception.lidar.ground_eval import (
    SceneScore,
    SceneTypeResult,
    evaluate_scene_types,
    format_scene_results,
    ours,
    target_failures,
)
from seg_perception.sample.ground_scenes import make_ground_scene

needs_patchwork = pytest.mark.skipif(
    not patchwork_available(), reason="Patchwork++ is not installed (pip install pypatchworkpp)"
)


def _run(argv):
    parser = argparse.ArgumentParser(prog="seg-perception")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_scene_scores_by_hand():
    scene = SimpleNamespace(
        ground=np.array([1, 1, 1, 0, 0, 0], bool),
        normal_up=np.array([1.0, 1.0, 0.9, 0.0, 0.0, 1.0], np.float32),  # 2 faces > 30 deg
        floor_height=np.array([0.0, 0.0, 0.02, 0.05, 1.0, 0.7], np.float32),
    )
    score = SceneScore()
    score.add(np.array([1, 1, 0, 1, 0, 1], bool), scene, 0.002)
    assert (score.score.true_positive, score.score.false_positive) == (2, 2)
    assert score.predicted == 4 and score.steep == 1 and score.steep_share == 0.25
    assert score.height_error() == pytest.approx((0 + 0 + 0.05 + 0.7) / 4)
    assert score.milliseconds == pytest.approx(2.0)
    empty = SceneScore()
    assert math.isnan(empty.steep_share) and math.isnan(empty.height_error())


def test_targets_name_what_is_missed():
    good, bad = SceneScore(), SceneScore()
    scene = SimpleNamespace(
        ground=np.array([1, 1, 0, 0], bool),
        normal_up=np.array([1, 1, 0, 0], np.float32),
        floor_height=np.zeros(4, np.float32),
    )
    good.add(np.array([1, 1, 0, 0], bool), scene, 0.0)
    bad.add(np.array([1, 1, 1, 0], bool), scene, 0.0)  # a wall point as ground
    indoor = SceneTypeResult("room", True, "", 4, {"ours": bad, "peer": good})
    failures = target_failures([indoor], "ours", "peer")
    assert any("F1" in f for f in failures) and any("precision" in f for f in failures)
    assert any("steep" in f for f in failures)
    outdoor = SceneTypeResult("curbs", False, "", 4, {"ours": good, "peer": bad})
    assert target_failures([outdoor], "ours", "peer") == []


def test_evaluate_and_format_a_scene_type():
    results = evaluate_scene_types(["low-mount"], [0], {"ours": ours()})
    assert results[0].indoor and results[0].points > 1000
    table = format_scene_results(results)
    row = next(line.split() for line in table.splitlines() if line.startswith("low-mount"))
    precision, _, f1, steep = (float(v) for v in row[3:7])
    assert precision >= 0.95 and f1 >= 0.9 and steep <= 1.0
    with pytest.raises(ValueError, match="unknown ground scene type"):
        evaluate_scene_types(["garage"], [0], {"ours": ours()})


def test_eval_ground_command_on_generated_scenes(tmp_path, capsys):
    figure = tmp_path / "ground.png"
    argv = ["eval-ground", "--no-kitti", "--scenes", "low-mount", "--seeds", "1",
            "--linefit", "no", "--patchwork", "no", "--plot", str(figure), "--targets"]  # fmt: skip
    assert _run(argv) == 0
    out = capsys.readouterr().out
    assert "SemanticKITTI" not in out and "steep%" in out
    assert any(line.startswith("low-mount      seg_perception") for line in out.splitlines())
    image = cv2.imread(str(figure))
    assert image is not None and image.shape[1] > 800
    # A target missed gives exit status 1; ground options reach our segmenter.
    worse = [*argv, "--distance-threshold", "0.5"]  # ground up to 0.5 m: on walls
    assert _run(worse) == 1
    assert "below target" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown ground scene type"):
        _run(["eval-ground", "--no-kitti", "--scenes", "garage", "--patchwork", "no"])
    with pytest.raises(ValueError, match="--seeds"):
        _run(["eval-ground", "--no-kitti", "--scenes", "room", "--seeds", "0"])


@needs_patchwork
def test_patchwork_runs_quietly_on_the_same_points(capfd):
    scene = make_ground_scene("curbs", 0)
    peer = PatchworkGround(sensor_height=scene.mount_height)
    ground = peer(scene.points)
    assert ground.dtype == bool and ground.shape == (len(scene.points),)
    assert score_ground(ground, scene.ground).f1 > 0.7  # it works; how well is the table
    # NaN points (organized holes) are never ground; an empty cloud is fine.
    holes = np.vstack([scene.points, np.full((10, 4), np.nan, np.float32)])
    np.testing.assert_array_equal(peer(holes)[: len(scene.points)], ground)
    assert not peer(holes)[len(scene.points) :].any()
    assert peer(np.zeros((0, 4), np.float32)).shape == (0,)
    assert "PatchWorkpp" not in capfd.readouterr().out  # its C++ banner is silenced
    with pytest.raises(ValueError, match="no field 'min_rnage'"):
        PatchworkGround(min_rnage=1.0)


@needs_patchwork
def test_eval_ground_compares_with_patchwork(capsys):
    argv = ["eval-ground", "--no-kitti", "--scenes", "low-mount", "--seeds", "1",
            "--linefit", "no", "--patchwork", "yes", "--targets"]  # fmt: skip
    assert _run(argv) == 0
    out = capsys.readouterr().out
    assert "patchwork++ 0.5m" in out and "patchwork++ " in out
