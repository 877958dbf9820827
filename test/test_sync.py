"""Stamp matching of cameras to LiDAR sweeps: windows, offsets, partial frames, drops."""

from __future__ import annotations

import pytest

from seg_perception.core.sync import CameraSync, StampMatcher

MS = 1_000_000


def test_synchronized_sensors_release_each_cloud_when_its_camera_arrives():
    matcher = StampMatcher([CameraSync("front", tolerance_ns=20 * MS)])
    released = []
    for k in range(5):
        t = k * 100 * MS
        if k % 2:  # camera first on odd frames, cloud first on even ones
            released += matcher.add_camera(0, t + 3 * MS, f"image{k}")
            released += matcher.add_cloud(t, f"cloud{k}")
        else:
            assert matcher.add_cloud(t, f"cloud{k}") == []  # waits for its camera
            released += matcher.add_camera(0, t + 3 * MS, f"image{k}")
    assert [f.cloud for f in released] == [f"cloud{k}" for k in range(5)]
    assert [f.cameras[0].item for f in released] == [f"image{k}" for k in range(5)]
    assert all(f.cameras[0].delta_ns == 3 * MS for f in released)
    assert matcher.stats.clouds_partial == 0 and not matcher.stats.dropped


def test_per_camera_offset_shifts_the_window():
    matcher = StampMatcher([CameraSync("late", offset_ns=-40 * MS, tolerance_ns=10 * MS)])
    assert matcher.add_cloud(1000 * MS, "cloud") == []
    assert matcher.add_camera(0, 1005 * MS, "too early in window terms") == []  # delta -35 ms
    released = matcher.add_camera(0, 1038 * MS, "image")  # 1038 - 40 - 1000 = -2 ms
    assert len(released) == 1 and released[0].cameras[0].item == "image"
    assert released[0].cameras[0].delta_ns == -2 * MS


def test_nearest_camera_message_wins():
    matcher = StampMatcher([CameraSync("front", tolerance_ns=50 * MS)])
    matcher.add_camera(0, 960 * MS, "far")
    matcher.add_camera(0, 990 * MS, "near")
    (frame,) = matcher.add_cloud(1000 * MS, "cloud")
    assert frame.cameras[0].item == "near"


def test_camera_that_moved_past_the_window_releases_a_partial_frame():
    matcher = StampMatcher(
        [CameraSync("a", tolerance_ns=10 * MS), CameraSync("b", tolerance_ns=10 * MS)]
    )
    matcher.add_camera(0, 100 * MS, "a0")
    assert matcher.add_cloud(100 * MS, "cloud") == []  # waits for b
    (frame,) = matcher.add_camera(1, 150 * MS, "b-late")  # b skipped this sweep
    assert frame.missing == [1] and frame.cameras[0].item == "a0"
    assert matcher.stats.clouds_partial == 1


def test_dead_camera_does_not_stall_the_stream():
    matcher = StampMatcher([CameraSync("alive"), CameraSync("dead")], max_pending=2)
    released = []
    for k in range(6):
        released += matcher.add_camera(0, k * 100 * MS, k)
        released += matcher.add_cloud(k * 100 * MS, k)
    # With two clouds allowed to wait, each is released once two newer ones are queued.
    assert [f.cloud for f in released] == [0, 1, 2, 3]
    assert all(f.missing == [1] for f in released)
    assert [f.cloud for f in matcher.flush()] == [4, 5]
    assert matcher.stats.clouds_released == 6 and matcher.stats.clouds_partial == 6


def test_stale_and_out_of_order_messages_are_dropped_and_counted():
    matcher = StampMatcher([CameraSync("front", tolerance_ns=10 * MS)])
    matcher.add_camera(0, 200 * MS, "i200")
    matcher.add_cloud(200 * MS, "c200")
    assert matcher.add_cloud(150 * MS, "c150") == []
    assert matcher.add_camera(0, 190 * MS, "i190") == []
    assert matcher.stats.dropped == {
        "cloud: stale (older than one already queued or released)": 1,
        "camera front: out of order": 1,
    }


def test_expire_releases_clouds_older_than_a_deadline():
    matcher = StampMatcher([CameraSync("front")], max_pending=5)
    matcher.add_cloud(100 * MS, "old")
    matcher.add_cloud(300 * MS, "new")
    (frame,) = matcher.expire(200 * MS)
    assert frame.cloud == "old" and frame.missing == [0]


def test_no_cameras_means_every_cloud_is_released_at_once():
    matcher = StampMatcher([])
    (frame,) = matcher.add_cloud(5, "cloud")
    assert frame.cameras == [] and frame.missing == []


def test_bad_settings():
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        CameraSync("x", tolerance_ns=-1)
    with pytest.raises(ValueError, match="max_pending"):
        StampMatcher([], max_pending=0)


def test_every_camera_message_is_matched_dropped_or_still_buffered():
    """Accounting: a camera at 30 Hz against clouds at 10 Hz; unmatched frames are drops."""
    matcher = StampMatcher([CameraSync("front", tolerance_ns=10 * MS)], camera_buffer=4)
    for k in range(60):
        t = k * 33 * MS
        matcher.add_camera(0, t, f"i{k}")
        if k % 3 == 0:
            matcher.add_cloud(t + 2 * MS, f"c{k}")
    stats = matcher.stats
    matched = stats.camera_matched["front"]
    dropped = sum(n for key, n in stats.dropped.items() if key.startswith("camera front"))
    assert matched == 20
    assert matched + dropped + matcher.waiting(0) == 60
    assert stats.released_by == {"complete": 20}


def test_a_refused_camera_message_releases_the_clouds_in_its_window():
    matcher = StampMatcher([CameraSync("a", tolerance_ns=10 * MS), CameraSync("b")], max_pending=5)
    matcher.add_camera(0, 100 * MS, "a0")
    assert matcher.add_cloud(100 * MS, "cloud") == []  # waits for b
    assert matcher.refuse_camera(1, 300 * MS) == []  # outside the window: still waiting
    (frame,) = matcher.refuse_camera(1, 101 * MS)  # b's answer for it came, unusable
    assert frame.cloud == "cloud" and frame.missing == [1] and frame.reason == "settled"


def test_restart_after_a_jump_back_keeps_the_new_timeline():
    """`ros2 bag play --loop`: the cloud stream goes back 10 s while clouds wait."""
    dropped: list[tuple] = []
    matcher = StampMatcher(
        [CameraSync("front", tolerance_ns=10 * MS)],
        max_pending=10,
        on_drop=lambda i, reason, item: dropped.append((i, reason, item)),
    )
    matcher.add_camera(0, 10_000 * MS, "old image")  # matched below
    matcher.add_camera(0, 10_100 * MS, "old unmatched image")
    (old,) = matcher.add_cloud(10_000 * MS, "old cloud")
    assert matcher.add_cloud(10_200 * MS, "old waiting cloud") == []
    matcher.add_camera(0, 0, "new image")  # refused: out of order before the camera jumps
    assert dropped[-1] == (0, "out of order", "new image")
    matcher.forget_camera(0, around_ns=0, window_ns=5_000 * MS)  # the camera stream jumped
    assert dropped[-1] == (0, "time jump", "old unmatched image")
    matcher.add_camera(0, 0, "new image")
    flushed = matcher.restart(around_ns=50 * MS, window_ns=5_000 * MS)  # the clouds jumped
    assert [f.cloud for f in flushed] == ["old waiting cloud"]
    assert flushed[0].reason == "flushed" and old.cameras[0].item == "old image"
    (new,) = matcher.add_cloud(0, "new cloud")  # not "stale" after the restart
    assert new.cameras[0].item == "new image" and new.reason == "complete"
