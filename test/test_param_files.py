"""config/<node>.yaml: generated from the nodes' parameter tables and accepted by the nodes."""

from __future__ import annotations

import subprocess
import time

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")

from onnx_models import palette_model
from ros_helpers import REPO, next_domain, node_command, ros_env

from seg_perception.ros.param_files import NODES, render


@pytest.mark.parametrize("node", sorted(NODES))
def test_config_file_matches_the_parameter_table(node):
    written = (REPO / "config" / f"{node}.yaml").read_text()
    assert written == render(node), (
        f"config/{node}.yaml is out of date: run python -m seg_perception.ros.param_files config"
    )


@pytest.mark.parametrize("node", sorted(NODES))
def test_node_starts_with_its_config_file(node, tmp_path):
    extra = {}
    if node in ("camera_segmentation", "pipeline"):
        extra["engine.model"] = str(palette_model(tmp_path / "p.onnx"))
    if node == "clicked_object":
        extra["engine.model"] = "random:sam"
    if node in ("fusion", "pipeline", "clicked_object"):
        extra["camera.front.extrinsics"] = [0.0, 0.0, 0.0, 0.5, -0.5, 0.5, -0.5]
    command = node_command(node, extra)
    command[command.index("--ros-args") + 1 : command.index("--ros-args") + 1] = [
        "--params-file", str(REPO / "config" / f"{node}.yaml"),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=ros_env(next_domain()), cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    time.sleep(4.0)
    alive = process.poll() is None
    process.send_signal(2)
    output = process.communicate(timeout=20)[0]
    assert alive, output
    assert process.returncode == 0, output
    assert "Traceback" not in output and "FATAL" not in output
