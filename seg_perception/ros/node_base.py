"""What every seg_perception node shares: parameters, QoS, diagnostics, start-up handling.

Nodes stay thin: they convert messages with :mod:`seg_perception.ros.image_conversions` /
:mod:`.pointcloud2`, call the core or an engine, and publish. This base gives them
declared and validated parameters, QoS by name, a ``Diagnostics`` reporter, and
``run_node`` which turns configuration errors into one clear log line and exit code 2.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.logging import LoggingSeverity, get_logger, get_logger_level, set_logger_level
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import get_default_context

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


#: Seconds between looks at the stop flag while no callback is ready: how late a stop
#: request is noticed at worst (Python signal handlers only run between callbacks).
SPIN_PERIOD_S = 0.1
#: Seconds a stop (or the start-up it interrupted) may take after the first SIGINT/SIGTERM
#: before the watchdog ends the process without finishing it. Under launch's 5 s, after
#: which it escalates to SIGTERM and then SIGKILL.
STOP_TIMEOUT_S = 4.0
#: Seconds after the first signal at which faulthandler dumps every thread's stack and
#: exits with 1: the last resort when the main thread holds the GIL forever, so the
#: watchdog thread cannot even run. Under launch's SIGKILL at 10 s, so the dump is seen.
HARD_TIMEOUT_S = STOP_TIMEOUT_S + 3.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT and SIGTERM as a stop *request*: recorded by the handler, acted on in order.

    Why not rclpy's handlers (measured with bench/node_cycles.py; see run_node): they
    raise ``KeyboardInterrupt`` wherever the main thread is, so the second SIGINT that
    ``ros2 launch`` + Ctrl-C delivers lands in the cleanup (a traceback, exit -2); and every
    signal wakes a C++ thread of rclpy that triggers guard conditions and shuts the
    contexts down *while* the main thread destroys them (a segfault in that thread,
    ``rcl_trigger_guard_condition`` on a destroyed guard condition). Here the handler only
    notes the signal (no exception, no lock, no rclpy call), so it is safe anywhere: in
    start-up, spinning, cleanup, and a second or third time.

    A watchdog thread bounds a stop: ``timeout_s`` after the first signal, if the process
    is still not done (a hung cleanup, or a start-up still loading a model), it logs one
    line and exits with 0, since the stop was asked for. If the main thread holds the GIL
    so the watchdog cannot run, faulthandler dumps all stacks and exits 1 after
    ``hard_timeout_s``.
    """

    def __init__(
        self, name: str, timeout_s: float = STOP_TIMEOUT_S, hard_timeout_s: float = HARD_TIMEOUT_S
    ) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.hard_timeout_s = hard_timeout_s
        #: Name of the first stop signal (``"SIGINT"``), None until one arrives.
        self.first: str | None = None
        #: How many stop signals arrived.
        self.count = 0
        #: What the process is doing, for the watchdog's message.
        self.phase = "start-up"
        self._requested = threading.Event()
        self._done = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="stop-watchdog", daemon=True)

    @property
    def requested(self) -> bool:
        return self.first is not None

    def install(self) -> bool:
        """Take SIGINT and SIGTERM over (main thread only; False elsewhere: no handlers)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._watchdog.start()
        for number in STOP_SIGNALS:
            signal.signal(number, self._handle)
        # Signals that came while the node modules were importing (nodes/__init__.py).
        early = sys.modules.get("seg_perception.ros.nodes")
        for number in getattr(early, "EARLY_SIGNALS", []):
            self._handle(number, None)
        return True

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes, possibly inside another run of
        # itself: plain assignments only, except once, for the first signal.
        self.count += 1
        if self.first is not None:
            return
        self.first = signal.Signals(number).name
        faulthandler.dump_traceback_later(self.hard_timeout_s, exit=True)
        self._requested.set()

    def _watch(self) -> None:
        self._requested.wait()
        if self._done.wait(self.timeout_s):
            return
        if self.phase == "start-up":  # e.g. still loading a model: expected, not a fault
            severity, what = "INFO", "start-up"
        else:
            severity, what = "WARN", self.phase
        message = f"{what} not done {self.timeout_s:g} s after {self.first}: exiting without it"
        _write_log_line(severity, self.name, message)
        os._exit(0)

    def finish(self) -> None:
        """Cleanup is over: stand the watchdog down and ignore further stop signals.

        Ignored, not restored: at exit Python resets the signals it handles to their
        default action, so a late second SIGINT would kill the process (exit -2) while it
        finalizes; an ignored signal stays ignored. There is nothing left to stop.
        """
        self._done.set()
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                signal.signal(number, signal.SIG_IGN)
        if self.requested:
            faulthandler.cancel_dump_traceback_later()


def _write_log_line(severity: str, name: str, message: str) -> None:
    """A log line in rcutils' format, written straight to stderr.

    For the watchdog: it must not wait on anything a hung main thread may hold (the
    rcutils logging lock, the node's /rosout publisher).
    """
    line = f"[{severity}] [{time.time():.9f}] [{name}]: {message}\n"
    with contextlib.suppress(OSError):
        os.write(2, line.encode())


def _rcl_error_text(error: BaseException) -> str:
    """rcl's start-up error as one line: without rcl's source locations and empty parts.

    ``rclpy.init`` reports a bad ``--params-file`` or ``-p``/``-r`` rule as, e.g.,
    ``failed to initialize rcl: Couldn't parse params file: '--params-file x.yaml'. Error:
    Error opening YAML file, at /project/src/parser.c:271, at ...`` (sometimes across lines).
    """
    text = str(error).removeprefix("failed to initialize rcl: ")
    text = re.sub(r",? at /\S+:\d+", "", text)
    text = text.replace("Error: error not set", "")
    text = " ".join(text.split()).rstrip(" .,")
    if "parameter override rule" in text:
        text += " (a -p rule needs a value after ':='; an empty string is written '')"
    return text


def run_node(node_class: type[SegPerceptionNode], args: list[str] | None = None) -> int:
    """Run one node as the process's main function: 0 when stopped, 2 on a bad configuration.

    Configuration errors (rcl arguments, parameter files, parameters, a model that cannot
    load) end it with one FATAL ``cannot start: ...`` line and exit code 2, never a
    traceback. SIGINT and SIGTERM, once or repeatedly, during start-up, spinning or
    cleanup, end it with exit code 0 (see :class:`StopSignals`). So does a shutdown of the
    rclpy context by anything else. Cleanup runs in this thread, in order: the executor
    stops, the node destroys its timers, subscriptions and publishers and then itself,
    and only then is the context shut down.
    """
    name = getattr(node_class, "NODE_NAME", node_class.__name__)
    logger = get_logger(name)
    stop = StopSignals(name)
    stop.install()
    try:
        try:
            _init_rclpy(args if args is not None else sys.argv)
        except _rclpy.RCLError as error:
            logger.fatal(f"cannot start: {_rcl_error_text(error)}")
            return 2
        context = get_default_context()
        try:
            return _build_and_spin(node_class, name, stop, context)
        finally:
            rclpy.try_shutdown()
    finally:
        stop.finish()


def _init_rclpy(args: list[str]) -> None:
    """``rclpy.init`` without rclpy's signal handlers (see :class:`StopSignals`) and
    without rcl's own ``Failed to parse global arguments`` ERROR line on bad arguments:
    the caller reports the error, once."""
    quiet = get_logger_level("rcl") == LoggingSeverity.UNSET
    if quiet:
        set_logger_level("rcl", LoggingSeverity.FATAL)
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    finally:
        # Unless the arguments set rcl's level themselves (--log-level rcl:=...).
        if quiet and get_logger_level("rcl") == LoggingSeverity.FATAL:
            set_logger_level("rcl", LoggingSeverity.UNSET)


def _build_and_spin(
    node_class: type[SegPerceptionNode], name: str, stop: StopSignals, context: Any
) -> int:
    """Build the node (unless a stop came already), spin it until a stop, clean up."""
    logger = get_logger(name)
    if stop.requested:  # during rclpy.init: do not load what nobody wants any more
        logger.info(f"stopping ({stop.first})")
        return 0
    logger.info("starting")
    try:
        node = node_class()
    except STARTUP_ERRORS as error:
        logger.fatal(f"cannot start: {error}")
        return 2
    executor = SingleThreadedExecutor()
    try:
        executor.add_node(node)
        if not stop.requested:  # else a signal came while the node was being built
            node.get_logger().info("ready")
            stop.phase = "spinning"
            _spin_until_stopped(executor, stop, context)
        if context.ok():
            node.get_logger().info(f"stopping ({stop.first})")
        else:
            # Shut down by someone else. Not through the node's logger: it would try to
            # publish on /rosout through the dead context and print rcl's error about it.
            _write_log_line("INFO", name, "stopping (the rclpy context was shut down)")
    finally:
        stop.phase = "cleanup"
        try:
            executor.shutdown()
        finally:
            node.destroy_node()
    return 0


def _spin_until_stopped(executor: SingleThreadedExecutor, stop: StopSignals, context: Any) -> None:
    """Spin until a stop signal or until the context is shut down by anything else."""
    while not stop.requested and context.ok():
        try:
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        except ExternalShutdownException:
            return
        except _rclpy.RCLError:
            # A wait set cannot be built on a context shut down meanwhile (by another
            # thread): that is a shutdown, not an error. Anything else is.
            if context.ok():
                raise
            return
