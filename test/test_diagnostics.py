"""Diagnostics health: a node cannot stay green while its output is wrong or missing.

A real rclpy node carries the Diagnostics; the clock it reads is replaced by a settable
one so the test walks through minutes of a node's life in microseconds.
"""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("diagnostic_msgs", reason="needs diagnostic_msgs")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from seg_perception.ros import diagnostics as diagnostics_module  # noqa: E402
from seg_perception.ros.diagnostics import Diagnostics, HealthLimits  # noqa: E402

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def node_and_clock(monkeypatch):
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("diagnostics_test", context=context)
    clock = Clock()
    monkeypatch.setattr(diagnostics_module.time, "monotonic", clock)
    yield node, clock
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def make(node, **limits) -> Diagnostics:
    return Diagnostics(node, 1.0, HealthLimits(**limits))


def test_inputs_without_output_become_an_error(node_and_clock):
    node, clock = node_and_clock
    diagnostics = make(node, stall_timeout=10.0, input_timeout=0.0)
    for _ in range(100):  # 10 s of clouds, every one dropped as malformed
        diagnostics.received("clouds")
        diagnostics.drop("clouds", "malformed", "dropped clouds: row_step lies")
        clock.now += 0.1
    level, message = diagnostics.health()
    assert level == ERROR, message
    assert "nothing published for 10.0 s while clouds kept arriving" in message
    assert "row_step lies" in message
    diagnostics.received("clouds")
    diagnostics.published("clouds", labeled=True)
    diagnostics.publish()  # a report ends the period's problems
    assert diagnostics.health() == (OK, "ok")


def test_idle_without_subscribers_is_not_a_stall(node_and_clock):
    node, clock = node_and_clock
    diagnostics = make(node, stall_timeout=5.0, input_timeout=0.0)
    for _ in range(100):
        diagnostics.received("images")
        diagnostics.skipped("images")
        clock.now += 0.1
    assert diagnostics.health() == (OK, "ok")


def test_unlabeled_clouds_warn_after_the_timeout(node_and_clock):
    node, clock = node_and_clock
    diagnostics = make(node, unlabeled_timeout=5.0, input_timeout=0.0)
    diagnostics.received("clouds")
    diagnostics.published("clouds", labeled=True)
    for _ in range(40):  # 4 s of unlabeled clouds: not yet
        clock.now += 0.1
        diagnostics.received("clouds")
        diagnostics.published("clouds", labeled=False)
    assert diagnostics.health()[0] == OK
    for _ in range(20):
        clock.now += 0.1
        diagnostics.received("clouds")
        diagnostics.published("clouds", labeled=False)
    level, message = diagnostics.health()
    assert level == WARN and "clouds published without labels for 6.0 s" in message
    diagnostics.published("clouds", labeled=True)
    assert diagnostics.health()[0] == OK


def test_a_silent_input_warns_but_calibration_streams_are_not_watched(node_and_clock):
    node, clock = node_and_clock
    diagnostics = make(node, input_timeout=5.0, stall_timeout=0.0)
    diagnostics.received("clouds")
    diagnostics.received("front camera_info", watch=False)
    clock.now += 4.0
    assert diagnostics.health()[0] == OK
    clock.now += 2.0
    level, message = diagnostics.health()
    assert (level, message) == (WARN, "no clouds for 6.0 s")


def test_a_stamp_jump_warns_for_one_period(node_and_clock):
    node, _ = node_and_clock
    diagnostics = make(node, input_timeout=0.0)
    diagnostics.event("clouds: time jumped back by 100.000 s")
    assert diagnostics.health() == (WARN, "clouds: time jumped back by 100.000 s")
    diagnostics.publish()
    assert diagnostics.health() == (OK, "ok")


def test_drops_are_counted_by_stream_and_reason(node_and_clock):
    node, _ = node_and_clock
    diagnostics = make(node)
    diagnostics.drop("front labels", "wrong encoding", "dropped front labels: rgb8")
    diagnostics.drop("front labels", "implausible stamp", "dropped front labels: 2038")
    diagnostics.lost("clouds", 3)
    values = {v.key: v.value for v in diagnostics.status().values}
    assert values["front labels dropped"] == "2"
    assert values["front labels dropped: wrong encoding"] == "1"
    assert values["front labels dropped: implausible stamp"] == "1"
    assert values["clouds lost before the callback (estimated)"] == "3"
    assert values["last problem"] == "dropped front labels: 2038"
