"""The main job: the demo command on a generated scene, also without ROS installed.

By default it runs the packaged street SegFormer (ONNX Runtime) and scores it against the
scene's exact truth, next to the fusion of the truth labels; ``--truth-labels`` is the
demo without a network.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from seg_perception.cli import main
from seg_perception.lidar.cloud_files import read_pcd

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out)]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_demo_runs_the_packaged_network_by_default(default_demo, capsys):
    out, summary = default_demo
    assert "street_segformer.onnx" in summary["label_source"]
    assert "packaged street SegFormer" in summary["model_note"]
    # The targets on the default scene (seed 0, never trained on).
    assert summary["score"]["visible_accuracy"] >= 0.90
    assert summary["truth_score"]["visible_accuracy"] >= 0.99
    assert summary["miou_2d"]["miou"] >= 0.5 and summary["miou_2d"]["pixel_accuracy"] >= 0.9
    assert summary["score"]["points"] == summary["truth_score"]["points"]
    cloud = read_pcd(out / "labeled_cloud.pcd")
    assert cloud.dtype.names[:5] == ("x", "y", "z", "intensity", "ring")
    assert {"label", "confidence", "camera", "truth"} <= set(cloud.dtype.names)
    assert len(cloud) == summary["score"]["points"]
    visible_labeled = cloud["label"] != 255
    assert (cloud["label"][visible_labeled] == cloud["truth"][visible_labeled]).mean() > 0.85
    assert cv2.imread(str(out / "birds_eye.png")).shape == (800, 600, 3)


def test_demo_pictures_show_the_networks_labels(default_demo):
    from seg_perception.demo import PACKAGED_MODEL
    from seg_perception.engines.config import EngineConfig
    from seg_perception.engines.factory import create_engine
    from seg_perception.sample import generate_scene
    from seg_perception.visualize import blend_mask

    out, _ = default_demo
    scene = generate_scene(0)
    engine = create_engine(EngineConfig(model=str(PACKAGED_MODEL)))
    expected = blend_mask(scene.image, engine.segment(scene.image).labels, engine.label_set)
    picture = cv2.cvtColor(cv2.imread(str(out / "camera_labels.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(picture, expected)
    truth = cv2.cvtColor(cv2.imread(str(out / "camera_truth.png")), cv2.COLOR_BGR2RGB)
    assert not np.array_equal(truth, picture)  # the network is not the truth
    overlay = cv2.imread(str(out / "overlay.png"))
    assert overlay.shape == (375, 1242, 3) and overlay.std() > 20


def test_demo_prints_network_and_truth_figures(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "2D mIoU" in printed and "network labels" in printed and "truth labels" in printed
    assert f"{summary['miou_2d']['miou']:.4f}" in printed
    score = summary["score"]
    assert f"{score['visible_correct']}/{score['camera_visible']}" in printed
    assert "occlusion handling off:" in printed


def test_truth_labels_flag_keeps_the_demo_without_a_network(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--seed", "1", "--truth-labels"]) == 0
    printed = capsys.readouterr().out
    assert "2D label source: the scene's rendered ground-truth label image" in printed
    assert "occlusion handling on:" in printed and "occlusion handling off:" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["score"]["visible_accuracy"] >= 0.99 and "truth_score" not in summary


def test_model_and_truth_labels_together_are_refused(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--truth-labels", "--model", "x.onnx"]) == 2
    assert "give --model or --truth-labels, not both" in capsys.readouterr().err


def test_demo_runs_without_ros(tmp_path):
    # A user who pip-installed the library without ROS: rclpy and messages are absent.
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("rclpy", "sensor_msgs", "std_msgs", "builtin_interfaces"):
            sys.modules[name] = None  # makes any import of them fail
        from seg_perception.cli import main
        sys.exit(main(["demo", "--out", {str(tmp_path)!r}]))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert "visible points correct" in completed.stdout and "network labels" in completed.stdout


def test_demo_reports_bad_output_folder_without_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    completed = subprocess.run(
        [sys.executable, "-m", "seg_perception.cli", "demo", "--out", str(blocker / "x")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "seg-perception demo: error:" in completed.stderr
    assert "Traceback" not in completed.stderr
