"""/diagnostics reporting: counts that add up, stage times, and health that cannot lie.

Each node owns one :class:`Diagnostics`. Callbacks report what happened to every message
of every input *stream* (``clouds``, ``images``, ``front labels``, ...):

* ``<stream> received`` when it arrives;
* ``<stream> dropped`` and ``<stream> dropped: <reason>`` when it is not used, with a
  specific sentence that also becomes the ``last problem`` (:meth:`Diagnostics.drop`);
* ``<stream> lost before the callback (estimated)`` for gaps in its stamps (a DDS queue
  that overflowed loses messages the node never sees);
* outputs: ``clouds published`` / ``images published`` and ``... skipped (no subscribers)``.

The level is computed from what the node is doing, not only from errors it noticed, so a
node cannot stay green while its output is wrong (the failure mode that hurt most):

* ERROR: a persistent fault (:meth:`Diagnostics.error`), or inputs keep arriving but nothing
  has gone out for ``stall_timeout`` seconds;
* WARN: problems (drops) this period; published clouds carrying no labels for
  ``unlabeled_timeout`` seconds; an input that was arriving and has been silent for
  ``input_timeout`` seconds; a stamp jump handled this period.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


@dataclass(frozen=True)
class HealthLimits:
    """Seconds after which a condition changes the level (0 switches a check off)."""

    #: ERROR when inputs arrive but nothing is published (or skipped) for this long.
    stall_timeout: float = 10.0
    #: WARN when clouds go out without a single labeled point for this long.
    unlabeled_timeout: float = 5.0
    #: WARN when an input stream that was arriving has been silent for this long.
    input_timeout: float = 5.0


class Diagnostics:
    """Counters, timings and health of one node, published on /diagnostics."""

    def __init__(self, node: Node, period: float = 1.0, limits: HealthLimits | None = None) -> None:
        self.node = node
        self.limits = limits or HealthLimits()
        self.name = f"seg_perception: {node.get_fully_qualified_name()}"
        self.counts: Counter = Counter()
        self.stage_ms: dict[str, deque[float]] = {}
        self.problems: deque[str] = deque(maxlen=5)
        self._period_problems = 0
        self._period_events: list[str] = []
        self._error: str | None = None
        self._last_publish = time.monotonic()
        self._last_counts: Counter = Counter()
        self._last_input: dict[str, float] = {}
        self._last_output: float | None = None
        self._first_input: float | None = None
        self._last_labeled: float | None = None
        self._unlabeled_since: float | None = None
        self.publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.timer = node.create_timer(period, self.publish)

    # ------------------------------------------------------------------ events
    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def received(self, stream: str, watch: bool = True) -> None:
        """One message of ``stream`` arrived; ``watch``: a silence of it is reported.

        Calibration streams (CameraInfo) are not watched: some drivers send them once.
        """
        now = time.monotonic()
        self.counts[f"{stream} received"] += 1
        if not watch:
            return
        self._last_input[stream] = now
        if self._first_input is None:
            self._first_input = now

    def drop(self, stream: str, reason: str, detail: str = "") -> None:
        """One message of ``stream`` is not used: counted by reason, reported in words.

        Without ``detail`` it is only counted: a consequence of a problem already reported
        (a camera message whose cloud was dropped), not a problem of its own.
        """
        self.counts[f"{stream} dropped"] += 1
        self.counts[f"{stream} dropped: {reason}"] += 1
        if detail:
            self.problem(detail)

    def lost(self, stream: str, n: int) -> None:
        """``n`` messages of ``stream`` missing between two stamps (never reached us)."""
        if n > 0:
            self.counts[f"{stream} lost before the callback (estimated)"] += n

    def published(self, output: str, labeled: bool | None = None) -> None:
        """One output went out; ``labeled`` says whether a fused cloud carried labels."""
        now = time.monotonic()
        self.counts[f"{output} published"] += 1
        self._last_output = now
        if labeled is True:
            self._last_labeled, self._unlabeled_since = now, None
        elif labeled is False and self._unlabeled_since is None:
            self._unlabeled_since = now

    def skipped(self, stream: str) -> None:
        """Work not done because nothing subscribes: the node is idle, not stalled."""
        self.counts[f"{stream} skipped (no subscribers)"] += 1
        self._last_output = time.monotonic()

    def event(self, message: str) -> None:
        """Something the user should know happened (a stamp jump): WARN for one period."""
        self._period_events.append(message)
        self.problems.append(message)
        self.node.get_logger().warning(message)

    def ground(self, segmentation: object) -> None:
        """What the LiDAR segmenter found out about the sensor (a CloudSegmentation): the
        sensor height it used (estimated unless given) as a value, and its warnings (no
        floor, upside down) as problems: WARN while they last, never a silent empty ground."""
        height = getattr(segmentation, "sensor_height", None)
        self.counts["ground: sensor height used (m)"] = (
            round(float(height), 3) if height is not None else "none (no floor found)"
        )
        for warning in getattr(segmentation, "warnings", ()):
            self.problem(f"ground: {warning}")

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

    # ------------------------------------------------------------------ health
    def health(self, now: float | None = None) -> tuple[int, str]:
        """The level and message the next report will carry."""
        now = time.monotonic() if now is None else now
        if self._error:
            return ERROR, self._error
        stall = self._stall(now)
        if stall:
            return ERROR, stall
        warnings = []
        if self._period_problems:
            warnings.append(f"{self._period_problems} problem(s): {self.problems[-1]}")
        warnings += self._period_events
        unlabeled = self.limits.unlabeled_timeout
        if unlabeled > 0 and self._unlabeled_since is not None:
            since = now - (self._last_labeled or self._unlabeled_since)
            if since >= unlabeled:
                warnings.append(f"clouds published without labels for {since:.1f} s")
        timeout = self.limits.input_timeout
        if timeout > 0:
            for stream, last in sorted(self._last_input.items()):
                if now - last >= timeout:
                    warnings.append(f"no {stream} for {now - last:.1f} s")
        if warnings:
            return WARN, "; ".join(warnings)
        return OK, "ok"

    def _stall(self, now: float) -> str:
        limit = self.limits.stall_timeout
        if limit <= 0 or self._first_input is None:
            return ""
        recent = [s for s, last in self._last_input.items() if now - last < limit]
        since_output = now - (self._last_output if self._last_output else self._first_input)
        if recent and since_output >= limit and now - self._first_input >= limit:
            return (
                f"nothing published for {since_output:.1f} s while {', '.join(sorted(recent))} "
                f"kept arriving (last problem: {self.problems[-1] if self.problems else 'none'})"
            )
        return ""

    # ------------------------------------------------------------------ report
    def status(self) -> DiagnosticStatus:
        now = time.monotonic()
        elapsed = max(now - self._last_publish, 1e-6)
        values = []
        for key in sorted(self.counts):
            values.append(KeyValue(key=key, value=str(self.counts[key])))
            if key.endswith(" received") or key.endswith(" published"):
                rate = (self.counts[key] - self._last_counts[key]) / elapsed
                values.append(KeyValue(key=f"{key} rate (Hz)", value=f"{rate:.2f}"))
        for stage, samples in sorted(self.stage_ms.items()):
            data = np.asarray(samples)
            values.append(KeyValue(key=f"{stage} median (ms)", value=f"{np.median(data):.2f}"))
            values.append(KeyValue(key=f"{stage} max (ms)", value=f"{data.max():.2f}"))
        if self.problems:
            values.append(KeyValue(key="last problem", value=self.problems[-1]))
        level, message = self.health(now)
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
        self._period_events = []
