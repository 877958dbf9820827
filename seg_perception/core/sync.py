"""Matching camera data to LiDAR sweeps by stamp, with bounded buffers and counted drops.

One matcher serves the live fusion node and offline bag replay, so both pair messages the
same way. It is driven only by message stamps (never the wall clock), which makes replay
deterministic; the node adds a wall-clock timeout on top for cameras that stop publishing.

Rules (as Autoware's fusion: a per-camera offset and match window):

* Camera ``i``'s message with stamp ``t_c`` matches a cloud with stamp ``t_l`` when
  ``|t_c + offset_i - t_l| <= tolerance_i``; the nearest buffered message wins. Keep the
  tolerance under half the camera period so at most one message fits the window.
* A cloud is released as soon as every camera has a match; or, with the cameras it has,
  once every unmatched camera has sent a message past the cloud's window (no match can
  still come); or when ``max_pending`` newer clouds are waiting behind it.
* Clouds older than one already released are stale and dropped; every drop is counted by
  reason, and camera messages too old to match any future cloud are discarded.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


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
    dropped: Counter = field(default_factory=Counter)


class StampMatcher:
    """Pairs clouds with camera messages; see the module docstring for the rules."""

    def __init__(
        self, cameras: list[CameraSync], max_pending: int = 2, camera_buffer: int = 8
    ) -> None:
        if max_pending < 1 or camera_buffer < 1:
            raise ValueError("max_pending and camera_buffer must be >= 1")
        self.cameras = list(cameras)
        self.max_pending = max_pending
        self._buffers: list[deque[tuple[int, Any]]] = [
            deque(maxlen=camera_buffer) for _ in self.cameras
        ]
        self._pending: deque[tuple[int, Any]] = deque()
        self._last_released = -1
        self.stats = SyncStats()

    # ------------------------------------------------------------------ input
    def add_camera(self, index: int, stamp_ns: int, item: Any) -> list[MatchedFrame]:
        """Buffer a camera message; returns the clouds that became complete."""
        buffer = self._buffers[index]
        self.stats.camera_received[self.cameras[index].name] += 1
        if buffer and stamp_ns < buffer[-1][0]:
            self.stats.dropped[f"camera {self.cameras[index].name}: out of order"] += 1
            return []
        if len(buffer) == buffer.maxlen:
            self.stats.dropped[f"camera {self.cameras[index].name}: buffer full"] += 1
        buffer.append((stamp_ns, item))
        return self._release()

    def add_cloud(self, stamp_ns: int, item: Any) -> list[MatchedFrame]:
        """Queue a cloud; returns the clouds released by it (possibly itself)."""
        self.stats.clouds_received += 1
        if stamp_ns <= self._last_released or (self._pending and stamp_ns < self._pending[-1][0]):
            self.stats.dropped["cloud: stale (older than one already queued or released)"] += 1
            return []
        self._pending.append((stamp_ns, item))
        released = []
        while len(self._pending) > self.max_pending:
            # The oldest waited long enough: release it with what it has.
            released.append(self._emit(*self._pending.popleft()))
        return released + self._release()

    def flush(self) -> list[MatchedFrame]:
        """Release every pending cloud with what it has (end of a bag, shutdown)."""
        released = [self._emit(*cloud) for cloud in self._pending]
        self._pending.clear()
        return released

    def expire(self, older_than_ns: int) -> list[MatchedFrame]:
        """Release pending clouds stamped before ``older_than_ns`` (the node's timeout)."""
        released = []
        while self._pending and self._pending[0][0] < older_than_ns:
            released.append(self._emit(*self._pending.popleft()))
        return released

    # ------------------------------------------------------------------ matching
    def _best(self, index: int, stamp_ns: int) -> CameraMatch | None:
        camera = self.cameras[index]
        best = None
        for camera_stamp, item in self._buffers[index]:
            delta = camera_stamp + camera.offset_ns - stamp_ns
            if abs(delta) <= camera.tolerance_ns and (
                best is None or abs(delta) < abs(best.delta_ns)
            ):
                best = CameraMatch(item, camera_stamp, delta)
        return best

    def _hopeless(self, index: int, stamp_ns: int) -> bool:
        """True when camera ``index`` already sent a message past this cloud's window."""
        camera = self.cameras[index]
        buffer = self._buffers[index]
        return bool(buffer) and buffer[-1][0] + camera.offset_ns - stamp_ns > camera.tolerance_ns

    def _release(self) -> list[MatchedFrame]:
        released = []
        while self._pending:
            stamp, cloud = self._pending[0]
            matches = [self._best(i, stamp) for i in range(len(self.cameras))]
            settled = all(
                match is not None or self._hopeless(i, stamp) for i, match in enumerate(matches)
            )
            if not settled:
                break
            self._pending.popleft()
            released.append(self._finish(stamp, cloud, matches))
        return released

    def _emit(self, stamp: int, cloud: Any) -> MatchedFrame:
        return self._finish(stamp, cloud, [self._best(i, stamp) for i in range(len(self.cameras))])

    def _finish(self, stamp: int, cloud: Any, matches: list[CameraMatch | None]) -> MatchedFrame:
        self._last_released = stamp
        self.stats.clouds_released += 1
        for camera, match in zip(self.cameras, matches, strict=True):
            if match is not None:
                self.stats.camera_matched[camera.name] += 1
        if any(match is None for match in matches):
            self.stats.clouds_partial += 1
        self._discard_old(stamp)
        return MatchedFrame(cloud, stamp, matches)

    def _discard_old(self, released_stamp: int) -> None:
        """Camera messages that can no longer match any later cloud are dropped."""
        for camera, buffer in zip(self.cameras, self._buffers, strict=True):
            while (
                len(buffer) > 1
                and buffer[0][0] + camera.offset_ns < released_stamp - camera.tolerance_ns
            ):
                buffer.popleft()
