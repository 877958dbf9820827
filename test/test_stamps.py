"""StampGuard: outliers dropped, jumps confirmed (nothing lost), gaps counted.

The expectations are the stream's own truth: which messages were real (a regular stream,
a loop, a reset) and which were injected outliers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seg_perception.core.stamps import NS, StampGuard

MS = 1_000_000
PERIOD = 100 * MS


def feed(guard: StampGuard, stamps: list[int]) -> tuple[list[int], list[tuple[str, int]], list]:
    """Accepted stamps, (reason, stamp) of drops, and confirmed jumps, over a sequence."""
    accepted, dropped, jumps = [], [], []
    for stamp in stamps:
        decision = guard.check(stamp, stamp)
        accepted += [s for s, _ in decision.accepted]
        dropped += [(reason, item) for reason, _, item in decision.dropped]
        if decision.jump_ns is not None:
            jumps.append(decision.jump_ns)
    return accepted, dropped, jumps


def regular(start_s: float, n: int) -> list[int]:
    return [int(start_s * NS) + k * PERIOD for k in range(n)]


def test_a_regular_stream_passes_untouched():
    stamps = regular(100, 50)
    assert feed(StampGuard("s"), stamps) == (stamps, [], [])


def test_one_future_stamp_is_dropped_without_a_lasting_effect():
    stamps = regular(100, 20)
    future = (2**31 - 1) * NS
    accepted, dropped, jumps = feed(StampGuard("s"), [*stamps[:10], future, *stamps[10:]])
    assert accepted == stamps
    assert dropped == [("implausible stamp", future)] and jumps == []


def test_one_past_stamp_duplicate_and_out_of_order_are_dropped_by_reason():
    s = regular(100, 12)
    sequence = [*s[:4], 5 * NS, *s[4:6], s[5], *s[6:8], s[6] - MS, *s[8:]]
    accepted, dropped, jumps = feed(StampGuard("s"), sequence)
    assert accepted == s
    assert dropped == [
        ("implausible stamp", 5 * NS),
        ("duplicate stamp", s[5]),
        ("out of order", s[6] - MS),
    ]
    assert jumps == []


def test_a_backwards_jump_is_confirmed_by_the_next_message_and_loses_nothing():
    before, after = regular(200, 30), regular(100, 30)  # `ros2 bag play --loop`: back 100 s
    accepted, dropped, jumps = feed(StampGuard("s"), before + after)
    assert accepted == before + after and dropped == []
    assert jumps == [after[0] - before[-1]]


def test_a_short_loop_is_a_jump_too():
    loop = regular(100, 5)  # a 0.5 s bag played in a loop: back 0.4 s each time
    accepted, dropped, jumps = feed(StampGuard("s"), loop * 3)
    assert accepted == loop * 3 and dropped == [] and len(jumps) == 2


def test_a_forward_gap_beyond_the_threshold_is_a_jump_not_a_loss():
    before, after = regular(100, 10), regular(150, 10)  # the sensor paused 50 s
    accepted, dropped, jumps = feed(StampGuard("s", threshold_ns=10 * NS), before + after)
    assert accepted == before + after and dropped == []
    assert jumps == [after[0] - before[-1]]


def test_a_slow_stream_widens_its_window():
    """A camera segmented every 3 s by a slow engine is not a stream of jumps."""
    stamps = [k * 3 * NS for k in range(1, 20)]
    accepted, dropped, jumps = feed(StampGuard("s", threshold_ns=2 * NS), stamps)
    assert accepted == stamps and dropped == []
    assert len(jumps) == 1  # the first steps, before the period is known


def test_gaps_estimate_lost_messages():
    stamps = regular(100, 30)
    kept = [s for k, s in enumerate(stamps) if k not in (10, 11, 12, 20)]
    guard = StampGuard("s")
    lost = sum(guard.check(s).lost for s in kept)
    assert lost == 4
    assert guard.period_ns == PERIOD


def test_bad_threshold():
    with pytest.raises(ValueError, match="threshold"):
        StampGuard("s", threshold_ns=0)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    n=st.integers(min_value=8, max_value=60),
    outliers=st.lists(
        st.tuples(
            st.integers(min_value=2, max_value=58),
            st.sampled_from(["future", "past", "duplicate"]),
        ),
        max_size=6,
        unique_by=lambda o: o[0],
    ),
)
def test_isolated_outliers_never_cost_a_real_message(n, outliers):
    """Any regular stream with isolated bad stamps (never two in a row): every real message
    is accepted in order, every injected one dropped, and no jump is reported."""
    stamps = regular(1000, n)
    places = {k: kind for k, kind in outliers if k < n and k - 1 not in dict(outliers)}
    sequence, injected = [], []
    for k, stamp in enumerate(stamps):
        sequence.append(stamp)
        kind = places.get(k)
        if kind is not None and k + 1 < n:
            bad = {"future": stamp + 10_000 * NS, "past": stamp - 500 * NS, "duplicate": stamp}
            sequence.append(bad[kind])
            injected.append(bad[kind])
    accepted, dropped, jumps = feed(StampGuard("s"), sequence)
    assert accepted == stamps
    assert [item for _, item in dropped] == injected
    assert jumps == []
