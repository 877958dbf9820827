"""What every seg_perception node shares: parameters, QoS, diagnostics, start-up handling.

Nodes stay thin: they convert messages with :mod:`seg_perception.ros.image_conversions` /
:mod:`.pointcloud2`, call the core or an engine, and publish. This base gives them
declared and validated parameters, QoS by name, a ``Diagnostics`` reporter, and
``run_node`` which turns configuration errors into one clear log line and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Any

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from seg_perception.core.labels import LabelSet
from seg_perception.ros.diagnostics import Diagnostics, HealthLimits
from seg_perception.ros.inputs import InputLimits, InputStream
from seg_perception.ros.messages import class_map_message
from seg_perception.ros.params import (
    COMMON_PARAMS,
    Param,
    StartupError,
    declare_parameters,
    reject_unknown_parameters,
)
from seg_perception.ros.qos import qos_profile

#: Exceptions that mean "this configuration cannot work" when raised while starting.
STARTUP_ERRORS: tuple[type[BaseException], ...] = (
    StartupError,
    ParameterException,
    ValueError,
    OSError,
    RuntimeError,
)


class SegPerceptionNode(Node):
    """A node with declared parameters (``PARAMS`` + the common ones) and diagnostics."""

    PARAMS: tuple[Param, ...] = ()
    NODE_NAME = "seg_perception"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.params = declare_parameters(self, COMMON_PARAMS + self.PARAMS)
        self.input_qos = qos_profile(self.params["input_qos"], self.params["input_depth"])
        self.output_qos = qos_profile(self.params["output_qos"], self.params["output_depth"])
        self.diagnostics = Diagnostics(
            self,
            self.params["diagnostics_period"],
            HealthLimits(
                stall_timeout=self.params["health.stall_timeout"],
                unlabeled_timeout=self.params["health.unlabeled_timeout"],
                input_timeout=self.params["health.input_timeout"],
            ),
        )
        self.limits = InputLimits.from_params(self.params)

    def input_stream(self, name: str, **options: Any) -> InputStream:
        """An input topic's door (counting, limits, stamp guard, containment): see
        :class:`~seg_perception.ros.inputs.InputStream` for ``options``."""
        options.setdefault("jump_threshold_s", self.params["stamps.jump_threshold"])
        return InputStream(name, self.diagnostics, **options)

    def finish_parameters(self) -> None:
        """Call once every parameter (including per-camera ones) is declared."""
        reject_unknown_parameters(self)

    def publish_class_map(self, label_set: LabelSet, topic: str = "class_map") -> None:
        """Publish the label set, latched, so late subscribers know what ids mean.

        Called again when the label set changes (the fusion node adopting its cameras'
        classes): the latched message is replaced.
        """
        message = class_map_message(label_set)
        if getattr(self, "_class_map_publisher", None) is None:
            self._class_map_publisher = self.create_publisher(
                type(message), topic, qos_profile("latched")
            )
        message.header.stamp = self.get_clock().now().to_msg()
        self._class_map_publisher.publish(message)

    @staticmethod
    def wanted(publisher: Any) -> bool:
        """Whether anything subscribes: work for an output nobody reads is skipped."""
        return publisher.get_subscription_count() > 0


def run_node(node_class: type[SegPerceptionNode], args: list[str] | None = None) -> int:
    """Create and spin one node; configuration errors end it with a message, not a trace."""
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    try:
        node = node_class()
    except STARTUP_ERRORS as error:
        name = getattr(node_class, "NODE_NAME", node_class.__name__)
        rclpy.logging.get_logger(name).fatal(f"cannot start: {error}")
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
