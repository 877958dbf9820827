"""Guarding one input stream's stamps: outliers dropped, jumps confirmed, gaps counted.

Every node input (a camera, a LiDAR) is one stream whose header stamps should increase.
Real streams do not always: a driver sends one message stamped in 2038, ``ros2 bag play
--loop`` jumps back to the bag's start, a simulator resets, a best-effort queue overflows
and messages vanish. A matcher or buffer that trusts every stamp is poisoned by the first
of these for good (nothing is newer than 2038). :class:`StampGuard` sits in front of it:

* A stamp within ``(last, last + window]`` is normal: accepted. The window is
  ``threshold``, or four of the stream's usual periods when that is longer (a camera
  segmented by a slow engine publishes every few seconds, and that is not a jump).
* Any other stamp (a duplicate, an older one, or one beyond the window) is a *suspect*.
  It is held, not used. If the next message continues the suspect's timeline
  (``0 < next - suspect <= window``, or as long as the gap before it) while breaking the
  old one, the stream has jumped:
  the guard reports the jump and hands back both messages, so a real jump (bag loop, sim
  reset, a LiDAR restarting after a pause) loses nothing. If the next message continues
  the old timeline instead, the suspect was an outlier and is dropped with its reason
  (``duplicate stamp``, ``out of order`` or ``implausible stamp``).
* Gaps: from the stream's usual period (median of recent steps), a step of ``k`` periods
  means about ``k - 1`` messages were lost before the callback (e.g. in a DDS queue).

Only stamps are used, never the wall clock, so replay and live behave alike. Pure Python.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import median
from typing import Any

NS = 1_000_000_000


@dataclass
class StampDecision:
    """What to do with the messages of a stream after one more arrived."""

    #: (stamp_ns, item) to process now, in stamp order (0, 1 or 2 of them).
    accepted: list[tuple[int, Any]] = field(default_factory=list)
    #: (reason, detail, item) of messages dropped now.
    dropped: list[tuple[str, str, Any]] = field(default_factory=list)
    #: Signed size (ns) of a confirmed jump of the stream's timeline, else None.
    jump_ns: int | None = None
    #: Messages estimated lost between the previous accepted one and this one.
    lost: int = 0


def describe_seconds(ns: int) -> str:
    """``1.5e9`` -> ``"1.500 s"``; large values in scientific notation."""
    seconds = ns / NS
    return f"{seconds:.3f} s" if abs(seconds) < 1e5 else f"{seconds:.3g} s"


class StampGuard:
    """Checks the stamps of one stream; see the module docstring for the rules."""

    def __init__(self, name: str, threshold_ns: int = 10 * NS, period_window: int = 16) -> None:
        if threshold_ns <= 0:
            raise ValueError(f"{name}: the stamp jump threshold must be > 0, got {threshold_ns}")
        self.name = name
        self.threshold_ns = threshold_ns
        self.last_ns: int | None = None
        self._held: tuple[int, Any] | None = None
        self._steps: deque[int] = deque(maxlen=period_window)

    @property
    def period_ns(self) -> int | None:
        """The stream's usual step between messages (median of recent ones), once known."""
        return int(median(self._steps)) if len(self._steps) >= 3 else None

    def reset(self) -> None:
        """Forget the timeline (e.g. another stream of the node jumped): next one starts it."""
        self.last_ns = None
        self._held = None
        self._steps.clear()

    def check(self, stamp_ns: int, item: Any = None) -> StampDecision:
        """Judge one message; returns what to process and what to drop (see the class)."""
        decision = StampDecision()
        last = self.last_ns
        if last is None:
            self.last_ns = stamp_ns
            decision.accepted.append((stamp_ns, item))
            return decision
        if self._normal(stamp_ns - last):
            if self._held is not None:
                decision.dropped.append(self._outlier(*self._held))
                self._held = None
            decision.lost = self._count_gap(stamp_ns - last)
            self.last_ns = stamp_ns
            decision.accepted.append((stamp_ns, item))
            return decision
        held = self._held
        if held is not None and self._follows(held[0], stamp_ns):
            # Two messages agree on a new timeline: the stream jumped.
            self._held = None
            self._steps.clear()
            self._steps.append(stamp_ns - held[0])
            decision.jump_ns = held[0] - last
            self.last_ns = stamp_ns
            decision.accepted += [held, (stamp_ns, item)]
            return decision
        if held is not None:
            decision.dropped.append(self._outlier(*held))
        self._held = (stamp_ns, item)
        return decision

    @property
    def window_ns(self) -> int:
        """The largest forward step that is normal for this stream."""
        if not self._steps:
            return self.threshold_ns
        return max(self.threshold_ns, 4 * int(median(self._steps)))

    def _normal(self, step_ns: int) -> bool:
        return 0 < step_ns <= self.window_ns

    def _follows(self, held_ns: int, stamp_ns: int) -> bool:
        """Whether ``stamp_ns`` continues the timeline of the held suspect.

        After a forward gap, a step as long as the gap also continues it: a stream slower
        than the threshold (a camera segmented every 3 s) is confirmed on its third message.
        """
        limit = self.window_ns
        if self.last_ns is not None and held_ns > self.last_ns:
            limit = max(limit, held_ns - self.last_ns)
        return 0 < stamp_ns - held_ns <= limit

    def _outlier(self, stamp_ns: int, item: Any) -> tuple[str, str, Any]:
        """Why a held message that the stream did not follow is dropped."""
        step = stamp_ns - (self.last_ns or 0)
        stamp = f"stamp {stamp_ns / NS:.9f}"
        if step == 0:
            return "duplicate stamp", f"{self.name}: {stamp} repeats the previous one", item
        if -self.window_ns <= step < 0:
            return (
                "out of order",
                f"{self.name}: {stamp} is {describe_seconds(-step)} older than the previous one",
                item,
            )
        where = "ahead of" if step > 0 else "behind"
        return (
            "implausible stamp",
            f"{self.name}: {stamp} is {describe_seconds(abs(step))} {where} the stream "
            f"(last {self.last_ns / NS:.3f}) and the next message did not follow it",
            item,
        )

    def _count_gap(self, step_ns: int) -> int:
        period = self.period_ns
        self._steps.append(step_ns)
        if period is None or step_ns < 1.5 * period:
            return 0
        return max(round(step_ns / period) - 1, 0)
