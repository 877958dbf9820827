"""Matching camera data to LiDAR sweeps by stamp, with bounded buffers and counted drops.

One matcher serves the live fusion node and offline bag replay, so both pair messages the
same way. It is driven only by message stamps (never the wall clock), which makes replay
deterministic; the node adds wall-clock waiting on top (how long a cloud may wait for labels
that are still being computed) through :meth:`StampMatcher.expire`.

Rules (as Autoware's fusion: a per-camera offset and match window):

* Camera ``i``'s message with stamp ``t_c`` matches a cloud with stamp ``t_l`` when
  ``|t_c + offset_i - t_l| <= tolerance_i``; the nearest buffered message wins. Keep the
  tolerance under half the camera period so at most one message fits the window.
* A cloud is released as soon as every camera has a match; or, with the cameras it has,
  once every unmatched camera has sent a message past the cloud's window or refused one
  inside it (:meth:`StampMatcher.refuse_camera`: no usable match can still come); or when
  ``max_pending`` newer clouds are waiting behind it (a memory bound, not a timing rule);
  or by :meth:`expire` / :meth:`flush` / :meth:`restart`.
* Clouds older than one already released are stale and dropped. Camera messages too old to
  match any future cloud are discarded; one that never matched a cloud is counted as a
  drop (``unmatched``), so every message is accounted for: received = matched + dropped +
  still buffered.

Each released frame says why it was released (:attr:`MatchedFrame.reason`), so a node can
tell "complete" from "gave up waiting".
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Why a cloud left the matcher.
COMPLETE = "complete"  # every camera matched
SETTLED = "settled"  # the unmatched cameras have moved past the cloud: no match can come
PENDING_LIMIT = "pending limit"  # max_pending newer clouds were waiting
EXPIRED = "expired"  # the caller's wait ran out (expire)
FLUSHED = "flushed"  # end of input (flush) or a restart of the timeline


@dataclass(frozen=True)
class CameraSync:
    """Matching settings of one camera."""

    name: str
    offset_ns: int = 0
    tolerance_ns: int = 50_000_000

    def __post_init__(self) -> None:
        if self.tolerance_ns < 0:
            raise ValueError(
                f"camera '{self.name}': tolerance must be >= 0, got {self.tolerance_ns}"
            )


@dataclass
class CameraMatch:
    item: Any
    stamp_ns: int
    #: camera stamp + offset - cloud stamp (ns).
    delta_ns: int


@dataclass
class MatchedFrame:
    """A cloud with the camera messages matched to it (None where a camera had none)."""

    cloud: Any
    stamp_ns: int
    cameras: list[CameraMatch | None]
    reason: str = COMPLETE
    #: Set by a caller that did not process it because nothing wanted its output.
    skipped: bool = False

    @property
    def missing(self) -> list[int]:
        return [i for i, match in enumerate(self.cameras) if match is None]


@dataclass
class SyncStats:
    clouds_received: int = 0
    clouds_released: int = 0
    clouds_partial: int = 0
    camera_received: Counter = field(default_factory=Counter)
    camera_matched: Counter = field(default_factory=Counter)
    #: "cloud: <reason>" / "camera <name>: <reason>" -> count.
    dropped: Counter = field(default_factory=Counter)
    #: How released clouds left: COMPLETE, SETTLED, ... -> count.
    released_by: Counter = field(default_factory=Counter)


@dataclass
class _Slot:
    """One buffered camera message."""

    stamp_ns: int
    item: Any
    matched: bool = False


#: Called for every dropped message: (camera index, or None for a cloud; reason; item).
DropCallback = Callable[[int | None, str, Any], None]


class StampMatcher:
    """Pairs clouds with camera messages; see the module docstring for the rules."""

    def __init__(
        self,
        cameras: list[CameraSync],
        max_pending: int = 2,
        camera_buffer: int = 8,
        on_drop: DropCallback | None = None,
    ) -> None:
        if max_pending < 1 or camera_buffer < 1:
            raise ValueError("max_pending and camera_buffer must be >= 1")
        self.cameras = list(cameras)
        self.max_pending = max_pending
        self.camera_buffer = camera_buffer
        self.on_drop = on_drop
        self._buffers: list[deque[_Slot]] = [deque() for _ in self.cameras]
        self._refused: list[deque[int]] = [deque(maxlen=camera_buffer) for _ in self.cameras]
        self._pending: deque[tuple[int, Any]] = deque()
        self._last_released = -1
        self.stats = SyncStats()

    @property
    def pending(self) -> list[tuple[int, Any]]:
        """The clouds waiting for camera data, oldest first: (stamp_ns, item)."""
        return list(self._pending)

    def waiting(self, index: int) -> int:
        """Camera ``index``'s buffered messages that have not matched a cloud yet."""
        return sum(not slot.matched for slot in self._buffers[index])

    # ------------------------------------------------------------------ input
    def add_camera(self, index: int, stamp_ns: int, item: Any) -> list[MatchedFrame]:
        """Buffer a camera message; returns the clouds that became complete."""
        buffer = self._buffers[index]
        self.stats.camera_received[self.cameras[index].name] += 1
        if buffer and stamp_ns <= buffer[-1].stamp_ns:
            self._drop(index, "out of order", item)
            return []
        if len(buffer) == self.camera_buffer:
            old = buffer.popleft()
            if not old.matched:
                self._drop(index, "buffer full", old.item)
        buffer.append(_Slot(stamp_ns, item))
        return self._release()

    def refuse_camera(self, index: int, stamp_ns: int) -> list[MatchedFrame]:
        """Camera ``index`` sent a message for ``stamp_ns`` that could not be used.

        Clouds in its window need not wait for this camera any more: its answer for them
        came, and was unusable. Returns the clouds that became complete.
        """
        self._refused[index].append(stamp_ns)
        return self._release()

    def add_cloud(self, stamp_ns: int, item: Any) -> list[MatchedFrame]:
        """Queue a cloud; returns the clouds released by it (possibly itself)."""
        self.stats.clouds_received += 1
        if stamp_ns <= self._last_released or (self._pending and stamp_ns < self._pending[-1][0]):
            self._drop(None, "stale (older than one already queued or released)", item)
            return []
        self._pending.append((stamp_ns, item))
        released = []
        while len(self._pending) > self.max_pending:
            # A memory bound: the oldest leaves with what it has.
            released.append(self._emit(*self._pending.popleft(), PENDING_LIMIT))
        return released + self._release()

    def flush(self) -> list[MatchedFrame]:
        """Release every pending cloud with what it has (end of a bag, shutdown)."""
        released = [self._emit(*cloud, FLUSHED) for cloud in self._pending]
        self._pending.clear()
        return released

    def expire(self, older_than_ns: int) -> list[MatchedFrame]:
        """Release pending clouds stamped before ``older_than_ns`` (the caller's wait ran out)."""
        released = []
        while self._pending and self._pending[0][0] < older_than_ns:
            released.append(self._emit(*self._pending.popleft(), EXPIRED))
        return released

    def restart(self, around_ns: int, window_ns: int) -> list[MatchedFrame]:
        """The cloud timeline jumped to ``around_ns`` (bag loop, simulator reset): start afresh.

        Pending clouds farther than ``window_ns`` from it are released with what they have
        (real sweeps of the old timeline), camera messages that far are discarded (the
        unmatched ones counted as dropped), and the stale rule forgets the old timeline.
        Messages near ``around_ns`` already belong to the new timeline and are kept.
        """
        old = [entry for entry in self._pending if abs(entry[0] - around_ns) > window_ns]
        self._pending = deque(e for e in self._pending if abs(e[0] - around_ns) <= window_ns)
        released = [self._emit(stamp, cloud, FLUSHED) for stamp, cloud in old]
        for index in range(len(self.cameras)):
            self.forget_camera(index, around_ns, window_ns)
        if abs(self._last_released - around_ns) > window_ns:
            self._last_released = -1
        return released

    def forget_camera(self, index: int, around_ns: int, window_ns: int) -> None:
        """Camera ``index``'s timeline jumped: discard its messages far from ``around_ns``."""
        kept: deque[_Slot] = deque()
        for slot in self._buffers[index]:
            if abs(slot.stamp_ns - around_ns) <= window_ns:
                kept.append(slot)
            elif not slot.matched:
                self._drop(index, "time jump", slot.item)
        self._buffers[index] = kept
        refused = [t for t in self._refused[index] if abs(t - around_ns) <= window_ns]
        self._refused[index] = deque(refused, maxlen=self.camera_buffer)

    # ------------------------------------------------------------------ matching
    def _best(self, index: int, stamp_ns: int) -> tuple[CameraMatch, _Slot] | None:
        camera = self.cameras[index]
        best = None
        for slot in self._buffers[index]:
            delta = slot.stamp_ns + camera.offset_ns - stamp_ns
            if abs(delta) <= camera.tolerance_ns and (
                best is None or abs(delta) < abs(best[0].delta_ns)
            ):
                best = (CameraMatch(slot.item, slot.stamp_ns, delta), slot)
        return best

    def _hopeless(self, index: int, stamp_ns: int) -> bool:
        """True when no usable match can come from camera ``index`` for this cloud: it already
        sent a message past the cloud's window, or refused one inside it."""
        camera = self.cameras[index]
        buffer = self._buffers[index]
        if buffer and buffer[-1].stamp_ns + camera.offset_ns - stamp_ns > camera.tolerance_ns:
            return True
        return any(
            abs(refused + camera.offset_ns - stamp_ns) <= camera.tolerance_ns
            for refused in self._refused[index]
        )

    def _release(self) -> list[MatchedFrame]:
        released = []
        while self._pending:
            stamp, cloud = self._pending[0]
            best = [self._best(i, stamp) for i in range(len(self.cameras))]
            if not all(b is not None or self._hopeless(i, stamp) for i, b in enumerate(best)):
                break
            self._pending.popleft()
            reason = COMPLETE if all(b is not None for b in best) else SETTLED
            released.append(self._finish(stamp, cloud, best, reason))
        return released

    def _emit(self, stamp: int, cloud: Any, reason: str) -> MatchedFrame:
        best = [self._best(i, stamp) for i in range(len(self.cameras))]
        if all(b is not None for b in best):
            reason = COMPLETE
        return self._finish(stamp, cloud, best, reason)

    def _finish(
        self, stamp: int, cloud: Any, best: list[tuple[CameraMatch, _Slot] | None], reason: str
    ) -> MatchedFrame:
        self._last_released = stamp
        self.stats.clouds_released += 1
        self.stats.released_by[reason] += 1
        matches: list[CameraMatch | None] = []
        for camera, found in zip(self.cameras, best, strict=True):
            if found is None:
                matches.append(None)
                continue
            match, slot = found
            slot.matched = True
            self.stats.camera_matched[camera.name] += 1
            matches.append(match)
        if any(match is None for match in matches):
            self.stats.clouds_partial += 1
        self._discard_old(stamp)
        return MatchedFrame(cloud, stamp, matches, reason)

    def _discard_old(self, released_stamp: int) -> None:
        """Camera messages that can no longer match any later cloud are discarded."""
        for index, (camera, buffer) in enumerate(zip(self.cameras, self._buffers, strict=True)):
            while (
                len(buffer) > 1
                and buffer[0].stamp_ns + camera.offset_ns < released_stamp - camera.tolerance_ns
            ):
                slot = buffer.popleft()
                if not slot.matched:
                    self._drop(index, "unmatched (no cloud in its window)", slot.item)

    def _drop(self, index: int | None, reason: str, item: Any) -> None:
        stream = "cloud" if index is None else f"camera {self.cameras[index].name}"
        self.stats.dropped[f"{stream}: {reason}"] += 1
        if self.on_drop is not None:
            self.on_drop(index, reason, item)
