"""/diagnostics reporting: rates, drops, per-stage times and the last problems seen.

Each node owns one :class:`Diagnostics`; callbacks count what happens and record stage
times, and a timer publishes one ``diagnostic_msgs/DiagnosticArray`` per period. A bad
message sets the status to WARN with its reason until a period passes without problems.
"""

from __future__ import annotations

import time
from collections import Counter, deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class Diagnostics:
    """Counters and timings of one node, published on /diagnostics."""

    def __init__(self, node: Node, period: float = 1.0) -> None:
        self.node = node
        self.name = f"seg_perception: {node.get_fully_qualified_name()}"
        self.counts: Counter = Counter()
        self.stage_ms: dict[str, deque[float]] = {}
        self.problems: deque[str] = deque(maxlen=5)
        self._period_problems = 0
        self._error: str | None = None
        self._last_publish = time.monotonic()
        self._last_counts: Counter = Counter()
        self.publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.timer = node.create_timer(period, self.publish)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def time(self, stage: str, milliseconds: float) -> None:
        self.stage_ms.setdefault(stage, deque(maxlen=100)).append(milliseconds)

    def problem(self, message: str) -> None:
        """A dropped input or other recoverable problem: logged (throttled) and reported."""
        self.problems.append(message)
        self._period_problems += 1
        self.count("problems")
        self.node.get_logger().warning(message, throttle_duration_sec=2.0)

    def error(self, message: str | None) -> None:
        """A persistent fault (e.g. no calibration); None clears it."""
        self._error = message

    def status(self) -> DiagnosticStatus:
        now = time.monotonic()
        elapsed = max(now - self._last_publish, 1e-6)
        values = []
        for key in sorted(self.counts):
            rate = (self.counts[key] - self._last_counts[key]) / elapsed
            values.append(KeyValue(key=key, value=str(self.counts[key])))
            if key.endswith("received") or key.endswith("published"):
                values.append(KeyValue(key=f"{key} rate (Hz)", value=f"{rate:.2f}"))
        for stage, samples in sorted(self.stage_ms.items()):
            data = np.asarray(samples)
            values.append(KeyValue(key=f"{stage} median (ms)", value=f"{np.median(data):.2f}"))
            values.append(KeyValue(key=f"{stage} max (ms)", value=f"{data.max():.2f}"))
        if self.problems:
            values.append(KeyValue(key="last problem", value=self.problems[-1]))
        if self._error:
            level, message = ERROR, self._error
        elif self._period_problems:
            level, message = WARN, f"{self._period_problems} problem(s): {self.problems[-1]}"
        else:
            level, message = OK, "ok"
        return DiagnosticStatus(
            level=level,
            name=self.name,
            message=message,
            hardware_id="seg_perception",
            values=values,
        )

    def publish(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        array.status = [self.status()]
        self.publisher.publish(array)
        self._last_publish = time.monotonic()
        self._last_counts = Counter(self.counts)
        self._period_problems = 0
