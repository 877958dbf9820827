"""Node parameters declared from one table: type, default, description and range.

Every parameter gets a ``ParameterDescriptor`` (so ``ros2 param describe`` explains it),
is checked once at start-up, and problems stop the node with one clear sentence instead of
a traceback: a value of the wrong type, out of its range, not one of its choices, or a
parameter the node does not know (a typo in a YAML file is otherwise silently ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node


class StartupError(RuntimeError):
    """A configuration problem that must stop the node (reported without a traceback)."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def descriptor(self) -> ParameterDescriptor:
        text = self.description + (f" One of: {', '.join(self.choices)}." if self.choices else "")
        # A None default is an option that may stay unset (the value then comes from
        # elsewhere, e.g. a model's spec): declared untyped, checked by its reader.
        descriptor = ParameterDescriptor(description=text, dynamic_typing=self.default is None)
        has_range = self.low is not None and self.high is not None
        if has_range and not isinstance(self.default, bool):
            if isinstance(self.default, int):
                descriptor.integer_range = [
                    IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)
                ]
            elif isinstance(self.default, float):
                descriptor.floating_point_range = [
                    FloatingPointRange(
                        from_value=float(self.low), to_value=float(self.high), step=0.0
                    )
                ]
        return descriptor


#: Parameters every node has for its ROS plumbing.
COMMON_PARAMS = (
    Param("input_qos", "sensor_data", "QoS of sensor inputs.", choices=("sensor_data", "reliable")),
    Param(
        "input_depth", 2, "Queue depth of sensor inputs (small: stale frames are dropped).", 1, 100
    ),
    Param("output_qos", "reliable", "QoS of outputs.", choices=("sensor_data", "reliable")),
    Param("output_depth", 2, "Queue depth of outputs.", 1, 100),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics reports.", 0.1, 60.0),
    Param("limits.max_image_pixels", 33_554_432, "Images (or decoded compressed images) with "
          "more pixels are dropped before anything is allocated for them.", 1, 2**31 - 1),
    Param("limits.max_cloud_points", 4_194_304, "Clouds with more points are dropped.",
          1, 2**31 - 1),
    Param("limits.max_message_bytes", 268_435_456, "Messages whose data is larger are dropped.",
          1, 2**31 - 1),
    Param("stamps.jump_threshold", 10.0, "Seconds: a stamp more than this (or 4 periods of "
          "its stream) ahead of the last, or one going back, is held; it is dropped as "
          "implausible unless the next message follows it, which means the stream jumped (bag "
          "loop, simulator reset): state is reset and both are used.", 0.001, 3600.0),
    Param("health.stall_timeout", 10.0, "ERROR when inputs arrive but nothing is published "
          "for this many seconds (0: off).", 0.0, 3600.0),
    Param("health.unlabeled_timeout", 5.0, "WARN when clouds go out without labeled points "
          "for this many seconds (0: off).", 0.0, 3600.0),
    Param("health.input_timeout", 5.0, "WARN when an input that was arriving has been silent "
          "for this many seconds (0: off).", 0.0, 3600.0),
)  # fmt: skip


def declare_parameters(node: Node, params: tuple[Param, ...]) -> dict[str, Any]:
    """Declare ``params`` on ``node``, validate them and return their values by name."""
    values: dict[str, Any] = {}
    for param in params:
        try:
            value = node.declare_parameter(param.name, param.default, param.descriptor()).value
        except InvalidParameterTypeException as error:
            raise StartupError(
                f"parameter '{param.name}' must be of type {type(param.default).__name__} "
                f"(like its default {param.default!r}): {error}"
            ) from None
        except InvalidParameterValueException:
            raise StartupError(
                f"parameter '{param.name}' is out of its range [{param.low}, {param.high}]"
            ) from None
        except ParameterUninitializedException:
            raise StartupError(f"parameter '{param.name}' has no value") from None
        if param.choices and value is not None and value not in param.choices:
            raise StartupError(
                f"parameter '{param.name}' is {value!r}; "
                f"it must be one of {', '.join(param.choices)}"
            )
        values[param.name] = value
    return values


def reject_unknown_parameters(node: Node) -> None:
    """Stop on parameters given to the node that it never declared (typos, old names)."""
    # rclpy keeps the overrides given on the command line / in YAML but has no public
    # accessor for them; undeclared ones would otherwise be ignored without a word.
    overrides = getattr(node, "_parameter_overrides", {})
    unknown = sorted(name for name in overrides if not node.has_parameter(name))
    if unknown:
        known = sorted(set(node.list_parameters([], 0).names) - {"use_sim_time"})
        raise StartupError(
            f"unknown parameter(s) for {node.get_name()}: {', '.join(unknown)}; "
            f"known: {', '.join(known)}"
        )
