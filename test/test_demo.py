"""The main job: the demo command on a generated scene, also without ROS installed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2

from seg_perception.cli import main
from seg_perception.lidar.cloud_files import read_pcd

REPO = Path(__file__).resolve().parents[1]


def test_demo_writes_cloud_pictures_and_prints_accuracy(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "2D label source: the scene's rendered ground-truth label image" in printed
    assert "occlusion handling on:" in printed and "occlusion handling off:" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["score"]["visible_accuracy"] >= 0.99
    cloud = read_pcd(tmp_path / "labeled_cloud.pcd")
    assert cloud.dtype.names[:5] == ("x", "y", "z", "intensity", "ring")
    assert {"label", "confidence", "camera", "truth"} <= set(cloud.dtype.names)
    assert len(cloud) == summary["score"]["points"]
    overlay = cv2.imread(str(tmp_path / "overlay.png"))
    assert overlay.shape == (375, 1242, 3) and overlay.std() > 20
    assert cv2.imread(str(tmp_path / "birds_eye.png")).shape == (800, 600, 3)


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
    assert "visible points correct" in completed.stdout


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
