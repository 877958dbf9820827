"""Start and stop the live nodes many times: every stop must be clean, every bad start short.

``ros2 launch`` + Ctrl-C gives each node SIGINT twice (the terminal's and launch's own);
launch escalates to SIGTERM; nodes are stopped while still loading their model. Before
``run_node`` took signal handling over from rclpy, such stops ended in KeyboardInterrupt
tracebacks (exit -2), RCLErrors on SIGTERM (exit 1) and rare segfaults (-11) in rclpy's
signal thread. Here each of the four nodes is started and stopped 20 times over real
Fast DDS (the cycles of bench/node_cycles.py, which runs them by the hundred), in five
ways, and must end with exit code 0, no traceback and no crash report.

Start-up errors that rcl itself reports (a missing or malformed ``--params-file``, a
``-p`` rule without a value) must, like the nodes' own configuration errors, end the node
with exit code 2 and one line, never a traceback.

A small node of this file's own (``LIFECYCLE_NODE``) makes the rarer paths happen on
purpose: a signal while a model loads, a cleanup that hangs (the watchdog ends it), the
rclpy context shut down from a callback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")

from ros_helpers import REPO, next_domain, ros_env, run_to_exit

sys.path.insert(0, str(REPO / "bench"))
from node_cycles import MODES, NODES, READY, Cycle, run_cycles, write_model

from seg_perception.ros.node_base import HARD_TIMEOUT_S, STOP_TIMEOUT_S

CYCLES_PER_NODE = 20
PARALLEL = 3  # node processes at once: start-up is CPU-bound, 2 cores


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("lifecycle"))


@pytest.fixture(scope="module")
def cycles(model: Path) -> list[Cycle]:
    """20 start/stop cycles of each node, the modes taken in turn (4 of each)."""
    modes = list(MODES)
    jobs = [(node, modes[i % len(modes)]) for i in range(CYCLES_PER_NODE) for node in NODES]
    return list(run_cycles(jobs, model, PARALLEL))


def _report(bad: list[Cycle]) -> str:
    return f"{len(bad)} unclean cycle(s); the first:\n" + "\n".join(c.describe() for c in bad[:3])


@pytest.mark.parametrize("node", NODES)
def test_every_stop_ends_the_node_with_exit_code_0_and_no_traceback(cycles, node):
    mine = [c for c in cycles if c.node == node]
    assert len(mine) == CYCLES_PER_NODE
    assert {c.mode for c in mine} == set(MODES)
    bad = [c for c in mine if not c.clean]
    assert not bad, _report(bad)


def test_a_second_sigint_during_cleanup_only_counts(cycles):
    """The mode that crashed most before: the second signal lands while cleaning up."""
    mine = [c for c in cycles if c.mode == "sigint-in-cleanup"]
    assert mine and all(c.signals_sent == 2 for c in mine), _report(mine)
    for cycle in mine:
        assert cycle.code == 0, cycle.describe()
        assert "stopping (SIGINT)" in cycle.output, cycle.describe()


def test_a_signal_during_start_up_ends_the_node_before_it_gets_ready(cycles):
    """Most of these signals land while the node is built (after its ``starting`` line);
    the odd one the node outruns is an ordinary stop (clean: checked above)."""
    mine = [c for c in cycles if c.mode == "during-start"]
    assert mine
    during = [c for c in mine if not c.late]
    assert len(during) >= len(mine) / 2, _report(mine)
    for cycle in during:
        assert cycle.code == 0 and "stopping (SIGINT)" in cycle.output, cycle.describe()


# ------------------------------------------------------------------------- start-up errors
def _bad_yaml(folder: Path) -> Path:
    path = folder / "malformed.yaml"
    path.write_text("/**:\n  ros__parameters:\n    input_depth: [1, 2\n    output_qos: {\n")
    return path


STARTUP_CASES = {
    "missing params file": (
        "lidar_segmentation", lambda folder: ["--params-file", str(folder / "missing.yaml")],
        ["cannot start", "params file", "missing.yaml"],
    ),
    "malformed params file": (
        "fusion", lambda folder: ["--params-file", str(_bad_yaml(folder))],
        ["cannot start", "params file", "malformed.yaml"],
    ),
    "empty -p value": (
        "camera_segmentation", lambda folder: ["-p", "engine.model:="],
        ["cannot start", "engine.model:=", "''"],
    ),
    "bad remap rule": (
        "pipeline", lambda folder: ["-r", "points"], ["cannot start", "remap rule", "-r points"],
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def startup_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int | None, str]]:
    folder = tmp_path_factory.mktemp("startup")
    commands = [
        [sys.executable, "-m", f"seg_perception.ros.nodes.{node}", "--ros-args", *args(folder)]
        for node, args, _ in STARTUP_CASES.values()
    ]
    return dict(zip(STARTUP_CASES, run_to_exit(commands, next_domain()), strict=True))


@pytest.mark.parametrize("case", list(STARTUP_CASES))
def test_an_rcl_argument_error_is_one_line_and_exit_code_2(startup_runs, case):
    code, output = startup_runs[case]
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2, output
    assert len(lines) == 1, output
    assert lines[0].startswith("[FATAL]"), output
    for word in STARTUP_CASES[case][2]:
        assert word in lines[0], (word, lines[0])


# ------------------------------------------------------------------------- rarer paths
LIFECYCLE_NODE = '''
"""A node that misbehaves on purpose, as argv[1] says (see test_node_lifecycle.py)."""
import re
import sys
import time

import rclpy
from std_msgs.msg import String

from seg_perception.ros.node_base import SegPerceptionNode, run_node

BEHAVIOUR = sys.argv[1]


class LifecycleNode(SegPerceptionNode):
    NODE_NAME = "lifecycle"

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        self.finish_parameters()
        self.create_publisher(String, "out", 10)
        self.create_subscription(String, "in", lambda message: None, 10)
        if BEHAVIOUR.startswith("slow-start"):
            self.get_logger().info("loading the model")
            time.sleep(float(BEHAVIOUR.split(":")[1]))
        if BEHAVIOUR == "shutdown-from-callback":
            self.create_timer(0.2, rclpy.try_shutdown)

    def destroy_node(self):
        if BEHAVIOUR.startswith("slow-cleanup"):
            self.get_logger().info("cleaning up slowly")
            time.sleep(float(BEHAVIOUR.split(":")[1]))
        if BEHAVIOUR == "gil-hang-cleanup":
            self.get_logger().info("cleaning up forever")
            re.match(r"(a+)+$", "a" * 64 + "b")  # holds the GIL for ages
        super().destroy_node()
        self.get_logger().info("cleaned up")


sys.exit(run_node(LifecycleNode))
'''


#: Case -> (behaviour, the line after which to signal, the signals, seconds to wait).
RARE_CASES = {
    "signal while loading": ("slow-start:1.0", "loading the model", ["SIGINT", "SIGINT"], 10),
    "loading outlasts the stop timeout": ("slow-start:60", "loading the model", ["SIGTERM"], 30),
    "signals during a slow cleanup": (
        "slow-cleanup:1.0", "]: ready", ["SIGINT", "SIGINT", "SIGTERM", "SIGINT"], 10
    ),
    "cleanup hangs": ("slow-cleanup:60", "]: ready", ["SIGINT", "SIGINT"], 30),
    "cleanup holds the GIL": ("gil-hang-cleanup", "]: ready", ["SIGINT"], 30),
    "context shut down by a callback": ("shutdown-from-callback", "]: ready", [], 10),
}  # fmt: skip


def _run(
    script: Path, behaviour: str, wait_for: str, signals: list[str], timeout: float
) -> tuple[int | None, str, float]:
    """Start the script, send ``signals`` (50 ms apart) once it logs ``wait_for``:
    (exit code or None if it had to be killed, output, seconds from the first signal to
    the exit)."""
    env = {**ros_env(next_domain()), "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen(
        [sys.executable, str(script), behaviour],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if wait_for in line:
            break
    started = time.monotonic()
    for name in signals:
        process.send_signal(getattr(signal, name))
        time.sleep(0.05)
    try:
        rest, _ = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        process.kill()
        rest, _ = process.communicate()
        code = None
    return code, "".join(output) + rest, time.monotonic() - started


@pytest.fixture(scope="module")
def rare_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int | None, str, float]]:
    """Every case at once (most of their time is waiting): (code, output, seconds)."""
    script = tmp_path_factory.mktemp("lifecycle_node") / "lifecycle_node.py"
    script.write_text(LIFECYCLE_NODE)
    with ThreadPoolExecutor(len(RARE_CASES)) as pool:
        futures = {case: pool.submit(_run, script, *args) for case, args in RARE_CASES.items()}
        return {case: future.result() for case, future in futures.items()}


def test_a_signal_while_the_model_loads_stops_the_node_once_it_is_loaded(rare_runs):
    code, output, _ = rare_runs["signal while loading"]
    assert code == 0, output
    assert "Traceback" not in output, output
    assert not READY.search(output), output  # it never spun
    assert "stopping (SIGINT)" in output and "cleaned up" in output, output


def test_a_start_up_that_outlasts_the_stop_timeout_is_cut_short(rare_runs):
    code, output, seconds = rare_runs["loading outlasts the stop timeout"]
    assert code == 0, output
    assert "Traceback" not in output, output
    assert f"start-up not done {STOP_TIMEOUT_S:g} s after SIGTERM" in output, output
    assert STOP_TIMEOUT_S - 0.5 < seconds < STOP_TIMEOUT_S + 3, seconds


def test_signals_during_a_slow_cleanup_let_it_finish(rare_runs):
    code, output, _ = rare_runs["signals during a slow cleanup"]
    assert code == 0, output
    assert "Traceback" not in output, output
    assert "cleaned up" in output, output


def test_a_hung_cleanup_is_ended_by_the_watchdog(rare_runs):
    code, output, seconds = rare_runs["cleanup hangs"]
    assert code == 0, output
    assert "Traceback" not in output, output
    assert "[WARN]" in output and f"cleanup not done {STOP_TIMEOUT_S:g} s" in output, output
    assert STOP_TIMEOUT_S - 0.5 < seconds < STOP_TIMEOUT_S + 3, seconds


def test_a_cleanup_that_holds_the_gil_is_ended_by_faulthandler(rare_runs):
    """The last resort: the watchdog thread cannot run, faulthandler's C thread can."""
    code, output, seconds = rare_runs["cleanup holds the GIL"]
    assert code == 1, output
    assert "most recent call first" in output and "destroy_node" in output, output
    assert HARD_TIMEOUT_S - 0.5 < seconds < HARD_TIMEOUT_S + 3, seconds


def test_a_context_shutdown_from_a_callback_ends_the_node_cleanly(rare_runs):
    code, output, _ = rare_runs["context shut down by a callback"]
    assert code == 0, output
    assert "Traceback" not in output and "rosout" not in output, output
    assert "stopping (the rclpy context was shut down)" in output, output
    assert "cleaned up" in output, output
