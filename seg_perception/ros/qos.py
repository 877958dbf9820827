"""QoS profiles by name, so every topic's QoS is a parameter (DESIGN section 4).

Inputs default to ``sensor_data`` (best effort, keep last 2): a late frame is dropped, never
queued. Outputs default to ``reliable`` (keep last 2). The class map is ``latched``
(transient local, depth 1) so subscribers that start later still receive it.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

QOS_NAMES = ("sensor_data", "reliable", "latched")


def qos_profile(name: str, depth: int = 2) -> QoSProfile:
    """``sensor_data`` | ``reliable`` | ``latched`` with the given queue depth."""
    if depth < 1:
        raise ValueError(f"QoS depth must be >= 1, got {depth}")
    if name == "sensor_data":
        reliability, durability = ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE
    elif name == "reliable":
        reliability, durability = ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE
    elif name == "latched":
        reliability, durability, depth = (
            ReliabilityPolicy.RELIABLE,
            DurabilityPolicy.TRANSIENT_LOCAL,
            1,
        )
    else:
        raise ValueError(f"unknown QoS '{name}': use one of {', '.join(QOS_NAMES)}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=durability
    )
