"""Helpers for tests that run the real nodes as processes over real DDS.

Each test gets its own ROS domain, discovery limited to this machine, and the Fast DDS
profile for large messages. Bag messages are read with ``rosbags`` and turned into rclpy
messages by deserializing their CDR bytes: the very bytes a recorder stored.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_domains = itertools.count(int(os.environ.get("SEG_TEST_DOMAIN_BASE", "40")) + os.getpid() % 40)


def ros_env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        FASTRTPS_DEFAULT_PROFILES_FILE=str(REPO / "config/fastdds_large_messages.xml"),
        PYTHONUNBUFFERED="1",
    )
    return env


def next_domain() -> int:
    return next(_domains) % 100 + 100  # 100-199: away from the default domain 0


def node_command(
    module: str, params: dict[str, Any], remaps: dict[str, str] | None = None
) -> list[str]:
    command = [sys.executable, "-m", f"seg_perception.ros.nodes.{module}", "--ros-args"]
    for key, value in params.items():
        command += ["-p", f"{key}:={_param_text(value)}"]
    for old, new in (remaps or {}).items():
        command += ["-r", f"{old}:={new}"]
    return command


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in value) + "]"
    return str(value)


@contextmanager
def running_nodes(commands: list[list[str]], domain_id: int) -> Iterator[list[subprocess.Popen]]:
    """Start node processes; on exit stop them with SIGINT and check they ended cleanly."""
    env = ros_env(domain_id)
    processes = [
        subprocess.Popen(
            c, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for c in commands
    ]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(2)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def output_of(process: subprocess.Popen) -> str:
    return process.stdout.read() if process.stdout else ""


def spin_until(executor: Any, condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.05)
    return condition()


def read_bag_as_rclpy(path: Path) -> dict[str, list[Any]]:
    """Topic -> rclpy messages, in bag order (CDR bytes deserialized by rclpy)."""
    import importlib

    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader

    def get_message(msgtype: str) -> Any:
        package, _, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{package}.msg"), name)

    messages: dict[str, list[Any]] = {}
    with AnyReader([path]) as reader:
        for connection, _, raw in reader.messages():
            if connection.msgtype == "tf2_msgs/msg/TFMessage":
                message = reader.deserialize(raw, connection.msgtype)  # no rclpy type here
            else:
                message = deserialize_message(bytes(raw), get_message(connection.msgtype))
            messages.setdefault(connection.topic, []).append(message)
    return messages


class RosClient:
    """The test's own node in its own context and domain: publish, collect, spin.

    ``collect`` returns a list that received messages are appended to while spinning.
    Topics default to reliable QoS (depth 10), which also reaches best-effort readers.
    """

    def __init__(self, domain_id: int, name: str = "test_client") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    @staticmethod
    def _qos(depth: int) -> Any:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)

    def publisher(self, message_type: type, topic: str, depth: int = 10) -> Any:
        return self.node.create_publisher(message_type, topic, self._qos(depth))

    def collect(self, message_type: type, topic: str, depth: int = 50) -> list[Any]:
        received: list[Any] = []
        self.node.create_subscription(message_type, topic, received.append, self._qos(depth))
        return received

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        return spin_until(self.executor, condition, timeout)

    def spin_for(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def diagnostic_statuses(arrays: list[Any], node_name: str) -> list[Any]:
    """The DiagnosticStatus entries of one node (``seg_perception: /<node_name>``)."""
    name = f"seg_perception: /{node_name.lstrip('/')}"
    return [status for array in arrays for status in array.status if status.name == name]


def diagnostic_text(status: Any) -> str:
    """A status's message and key/values as one string, for matching a problem's words."""
    return " | ".join([status.message, *(f"{v.key}: {v.value}" for v in status.values)])


def run_to_exit(
    commands: list[list[str]], domain_id: int, timeout: float = 60
) -> list[tuple[int | None, str]]:
    """Run processes that should end by themselves, in parallel: (exit code, output) each.

    A process still running after ``timeout`` is killed and reported with code None.
    """
    env = ros_env(domain_id)
    processes = [
        subprocess.Popen(
            c, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for c in commands
    ]
    deadline = time.monotonic() + timeout
    results: list[tuple[int | None, str]] = []
    for process in processes:
        try:
            output, _ = process.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            results.append((process.returncode, output))
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            results.append((None, output))
    return results
