"""De-skewing a sweep: every point moved from its own firing time to the cloud's stamp.

A spinning LiDAR takes a whole period (100 ms at 10 Hz) to sweep; on a car at 10 m/s the
last column is fired a metre further on than the first, yet drivers publish every point in
the sensor frame *at its own firing time*, with one stamp for the cloud. Moving the cloud as
a whole to a camera's stamp (``core/motion.py``) then fixes only the points fired at the
stamp: on a generated 6-camera rig at 10 m/s it made labeled-point accuracy *worse*
(89.6 % -> 84.8 %, standing still 99.3 %), while de-skewing each point first restored
99.3 %.

Drivers put the firing time in a field with its own name, type and unit:

========================  =========  ======================================
driver                    field      type / unit
========================  =========  ======================================
Ouster                    ``t``      uint32 ns after the stamp
Velodyne (velodyne_ros)   ``time``   float32 s after the stamp (or before)
Hesai                     ``timestamp`` float64 absolute s
Livox                     ``offset_time`` uint32 ns after the stamp
========================  =========  ======================================

The rule here, from the type alone: integers of 32 or 64 bits are nanoseconds, floats are
seconds; values within an hour of the cloud's stamp are absolute times and the stamp is
subtracted. Anything else (8/16-bit integers, a span
longer than a second, times far from the stamp) is refused with the reason: a wrong unit
would de-skew by metres, silently.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Time field names, in the order they are looked for when none is configured.
TIME_FIELDS = ("t", "time", "timestamp", "offset_time", "time_stamp")
#: The longest sweep (s) and the largest offset from the stamp (s) believed.
MAX_SPAN_S = 1.0
#: Times within this many seconds of the stamp are absolute (epoch) times, not offsets.
ABSOLUTE_WINDOW_S = 3600.0
#: Knots of the pose interpolation along the sweep (s apart at most).
KNOT_STEP_S = 0.005


class TimeFieldError(ValueError):
    """A cloud whose per-point times cannot be used to de-skew it."""


def find_time_field(names: tuple[str, ...] | None, configured: str = "") -> str:
    """The field holding per-point times: ``configured`` if given (it must exist), else the
    first of :data:`TIME_FIELDS` the cloud has. Raises TimeFieldError naming the fields."""
    names = tuple(names or ())
    if configured:
        if configured not in names:
            raise TimeFieldError(
                f"no time field '{configured}' in the cloud (fields: {', '.join(names)})"
            )
        return configured
    for name in TIME_FIELDS:
        if name in names:
            return name
    raise TimeFieldError(
        f"the cloud has no per-point time field ({'/'.join(TIME_FIELDS)}); fields: "
        f"{', '.join(names)}: de-skewing needs one"
    )


def point_offsets(cloud: np.ndarray, field: str, stamp_ns: int) -> np.ndarray:
    """Per point (flattened like ``cloud_xyz``), seconds from ``stamp_ns`` to its firing time.

    Non-finite times become 0 (their points are usually NaN too). Raises TimeFieldError
    for a type that cannot hold times or values that are not one sweep around the stamp.
    """
    raw = np.asarray(cloud[field]).reshape(-1)
    kind, size = raw.dtype.kind, raw.dtype.itemsize
    if kind in "iu" and size >= 4:
        scale = 1e-9
    elif kind == "f":
        scale = 1.0
    else:
        raise TimeFieldError(
            f"time field '{field}' is {raw.dtype.name}: cannot hold a sweep's times "
            "(expected float seconds or 32/64-bit integer nanoseconds)"
        )
    seconds = raw.astype(np.float64) * scale
    finite = seconds[np.isfinite(seconds)]
    stamp_s = stamp_ns / 1e9
    # Absolute times sit within an hour of the stamp; offsets within a second of zero (near
    # a simulation's time 0 both hold: offsets then).
    middle = float(np.median(finite)) if finite.size else 0.0
    absolute = abs(middle) > MAX_SPAN_S and abs(middle - stamp_s) < ABSOLUTE_WINDOW_S
    if absolute and kind == "f" and size < 8:
        raise TimeFieldError(
            f"time field '{field}' holds absolute times in float{8 * size}, which cannot "
            "resolve milliseconds; expected float64 seconds or offsets from the stamp"
        )
    if absolute and kind in "iu":  # ns since the epoch: subtract exactly, in integers
        offsets = (raw.astype(np.int64) - stamp_ns) * 1e-9
    else:
        offsets = seconds - stamp_s if absolute else seconds
    offsets = np.where(np.isfinite(offsets), offsets, 0.0)
    if offsets.size:
        low, high = float(offsets.min()), float(offsets.max())
        if high - low > MAX_SPAN_S or max(abs(low), abs(high)) > MAX_SPAN_S:
            raise TimeFieldError(
                f"time field '{field}' ({raw.dtype.name}) gives times {low:+.3f} .. {high:+.3f} s "
                f"from the cloud's stamp: not one sweep (> {MAX_SPAN_S:g} s); wrong unit?"
            )
    return offsets


DeltaAt = Callable[[np.ndarray], np.ndarray]
"""``delta_at(offsets_s)`` -> (M, 4, 4): the LiDAR frame at each offset in the LiDAR frame
at the stamp (``T_L(stamp) <- L(stamp + offset)``)."""


def deskew(xyz: np.ndarray, offsets_s: np.ndarray, delta_at: DeltaAt) -> np.ndarray:
    """``xyz`` (N, 3), each point fired ``offsets_s`` after the stamp, moved into the LiDAR
    frame at the stamp.

    The motion is sampled at knots at most :data:`KNOT_STEP_S` apart over the sweep and
    interpolated linearly between them: ``delta_at`` is called once per knot, not per point
    (a tf2 lookup per point would cost seconds). Between knots 5 ms apart a vehicle turning
    at 0.5 rad/s is off its arc by micrometres.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    offsets_s = np.asarray(offsets_s, dtype=np.float64)
    if len(xyz) != len(offsets_s):
        raise ValueError(f"{len(xyz)} points but {len(offsets_s)} times")
    if not len(xyz):
        return xyz.copy()
    low, high = float(offsets_s.min()), float(offsets_s.max())
    count = max(2, int(np.ceil((high - low) / KNOT_STEP_S)) + 1)
    knots = np.linspace(low, high, count)
    deltas = np.asarray(delta_at(knots), dtype=np.float64).reshape(count, 4, 4)
    if high == low:
        return xyz @ deltas[0, :3, :3].T + deltas[0, :3, 3]
    position = (offsets_s - low) * ((count - 1) / (high - low))
    segment = np.minimum(position.astype(np.intp), count - 2)
    fraction = (position - segment)[:, None]
    moved = np.empty_like(xyz)
    # Group points by segment so each knot's matrix is applied as one product, not N
    # gathered 3x4 matrices (fewer bytes through memory for the same result).
    order = np.argsort(segment, kind="stable")
    bounds = np.searchsorted(segment[order], np.arange(count))
    for k in range(count - 1):
        rows = order[bounds[k] : bounds[k + 1]]
        if not len(rows):
            continue
        p = xyz[rows]
        a = p @ deltas[k, :3, :3].T + deltas[k, :3, 3]
        b = p @ deltas[k + 1, :3, :3].T + deltas[k + 1, :3, 3]
        f = fraction[rows]
        moved[rows] = a + f * (b - a)
    return moved
