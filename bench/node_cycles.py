"""Start/stop cycles of the four nodes: do they always end cleanly when told to stop?

Each cycle starts one node process (``python -m seg_perception.ros.nodes.<node>``, minimal
valid parameters, real Fast DDS), waits until it logs ``ready`` (``run_node`` writes it
once the node is built and about to spin; in the ``during-start`` mode, until it logs
``starting``, just before it builds the node), sends the mode's signals and waits for it
to end. The modes are what a node meets in the field:

* ``sigint``: one SIGINT (``ros2 run`` + Ctrl-C, or launch without a terminal);
* ``sigint-twice``: two SIGINTs 0-50 ms apart (random), what ``ros2 launch`` + Ctrl-C
  gives each node (the terminal's signal and the one launch forwards);
* ``sigint-in-cleanup``: the second SIGINT only once the node logs ``stopping``, i.e.
  while it is destroying its publishers, subscriptions and node;
* ``sigterm``: one SIGTERM (launch's escalation, ``docker stop``, systemd);
* ``during-start``: SIGINT twice (0-50 ms apart) while the node is being built (engine
  loading can take seconds); the node must then stop without getting ``ready``. Column
  *late* counts the cycles in which the node was built before the signal was handled
  (this script was too slow for a node that builds in milliseconds): a normal stop.

A cycle counts as a *hang* when the process has not ended ``--timeout`` seconds after the
first signal (launch sends SIGTERM after 5 s and SIGKILL after 10 s); it is then killed.
A *segfault* is exit code -11 or Python's faulthandler report (``PYTHONFAULTHANDLER=1`` is
set, so a crash names the Python line it happened under). A *traceback* is any
``Traceback`` in the output. Start time: spawn to the ready line (includes Python imports);
stop time: first signal to exit.

Run: ``python bench/node_cycles.py [--cycles 200] [--nodes lidar_segmentation ...]
[--modes sigint ...] [--parallel 2]`` after ``source scripts/env.sh``; set
``SEG_TEST_DOMAIN_BASE`` to keep away from other DDS users on the machine. Several cycles
run at once (``--parallel``), each in its own ROS domain. Exit status 1 when any cycle did
not end with code 0 and a clean output. test/test_node_lifecycle.py runs the same cycles,
fewer of them.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))  # ros_helpers (commands, DDS env), onnx_models

from ros_helpers import next_domain, node_command, ros_env

NODES = ("camera_segmentation", "lidar_segmentation", "fusion", "pipeline")
#: Mode -> the signals it sends: (signal, when); when is "now" (right after the previous
#: one), "soon" (a random 0-50 ms after it) or "stopping" (once the node has logged that
#: it is stopping).
MODES: dict[str, tuple[tuple[signal.Signals, str], ...]] = {
    "sigint": ((signal.SIGINT, "now"),),
    "sigint-twice": ((signal.SIGINT, "now"), (signal.SIGINT, "soon")),
    "sigint-in-cleanup": ((signal.SIGINT, "now"), (signal.SIGINT, "stopping")),
    "sigterm": ((signal.SIGTERM, "now"),),
    "during-start": ((signal.SIGINT, "now"), (signal.SIGINT, "soon")),
}
STARTING = re.compile(r"\]: starting\b")
READY = re.compile(r"\]: ready\b")
STOPPING = re.compile(r"\]: stopping\b")
#: Camera optical frame in the LiDAR frame: the fusion node's minimal extrinsics.
OPTICAL_IN_LIDAR = [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5]


def node_params(node: str, model: Path) -> dict[str, Any]:
    """The minimal valid parameters of each node (``model``: an ONNX file)."""
    camera = {"cameras": ["front"], "camera.front.extrinsics": OPTICAL_IN_LIDAR}
    return {
        "camera_segmentation": {"engine.model": str(model)},
        "lidar_segmentation": {},
        "fusion": camera,
        "pipeline": {**camera, "engine.model": str(model)},
    }[node]


def write_model(folder: Path) -> Path:
    """The tiny palette ONNX model of the tests: the engine loads in milliseconds."""
    from onnx_models import palette_model

    return palette_model(folder / "palette.onnx")


@dataclass
class Cycle:
    """What one start/stop cycle of one node gave."""

    node: str
    mode: str
    code: int | None = None  # None: it hung and was killed
    output: str = ""
    start_s: float | None = None  # spawn -> ready (or the first log line)
    stop_s: float | None = None  # first signal -> exit
    signals_sent: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def got_ready(self) -> bool:
        return bool(READY.search(self.output))

    @property
    def late(self) -> bool:
        """A ``during-start`` cycle whose signal was handled only after start-up (the node
        was built faster than this script could signal it): a normal stop, not a fault."""
        return self.mode == "during-start" and self.got_ready

    @property
    def hung(self) -> bool:
        return self.code is None

    @property
    def segfault(self) -> bool:
        return self.code == -signal.SIGSEGV or "Segmentation fault" in self.output

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.output

    @property
    def clean(self) -> bool:
        """Exit 0, no traceback, no crash report, and no problem met on the way."""
        return self.code == 0 and not (self.traceback or self.segfault or self.problems)

    def describe(self) -> str:
        return (
            f"{self.node} {self.mode}: exit {self.code}, {self.signals_sent} signal(s), "
            f"problems {self.problems}\n{self.output}"
        )


class _Lines:
    """A process's output, read line by line by a thread so waits can time out."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> bool:
        """Read until a line matches ``pattern``; False at end of output or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                return False
            if line is None:
                self._queue.put(None)  # keep the end-of-output mark for later waits
                return False
            self.lines.append(line)
            if pattern.search(line):
                return True

    def rest(self, timeout: float = 5.0) -> str:
        """All output, once the process has closed it."""
        self._thread.join(timeout)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)


def run_cycle(
    command: list[str],
    env: dict[str, str],
    node: str,
    mode: str,
    ready_timeout: float = 60.0,
    stop_timeout: float = 10.0,
) -> Cycle:
    """Start ``command``, wait until it is ready (or building), signal it, wait for exit."""
    cycle = Cycle(node, mode)
    env = {**env, "PYTHONFAULTHANDLER": "1", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = _Lines(process)
    try:
        ready = READY if mode != "during-start" else STARTING
        if lines.wait_for(ready, ready_timeout):
            cycle.start_s = time.monotonic() - started
        else:
            cycle.problems.append("never ready")
        first_signal = time.monotonic()
        for number, when in MODES[mode]:
            if when == "stopping" and not lines.wait_for(STOPPING, stop_timeout):
                cycle.problems.append("never logged 'stopping'")
                break
            if when == "soon":
                time.sleep(random.uniform(0.0, 0.05))
            if process.poll() is not None:
                break
            process.send_signal(number)
            cycle.signals_sent += 1
        try:
            process.wait(timeout=max(first_signal + stop_timeout - time.monotonic(), 0.1))
            cycle.stop_s = time.monotonic() - first_signal
            cycle.code = process.returncode
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        cycle.output = lines.rest()
    return cycle


def run_cycles(
    jobs: list[tuple[str, str]], model: Path, parallel: int, **kwargs: Any
) -> Iterator[Cycle]:
    """Run (node, mode) cycles, ``parallel`` at a time, each in a ROS domain of its own."""
    domains: queue.Queue[int] = queue.Queue()
    for _ in range(parallel):
        domains.put(next_domain())

    def one(job: tuple[str, str]) -> Cycle:
        node, mode = job
        domain = domains.get()
        try:
            command = node_command(node, node_params(node, model))
            return run_cycle(command, ros_env(domain), node, mode, **kwargs)
        finally:
            domains.put(domain)

    with ThreadPoolExecutor(parallel) as pool:
        yield from pool.map(one, jobs)


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f}" if values else "-"


def table(cycles: list[Cycle]) -> str:
    """One row per node and mode: counts of each ending, median start and stop times."""
    header = (
        f"{'node':<20} {'mode':<18} {'runs':>5} {'exit codes':<18} {'traceback':>9} "
        f"{'segfault':>8} {'hang':>5} {'other':>5} {'late':>5} {'start s':>8} {'stop s':>7}"
    )
    rows = [header, "-" * len(header)]
    keys = sorted({(c.node, c.mode) for c in cycles}, key=lambda k: (NODES.index(k[0]), k[1]))
    for node, mode in keys:
        group = [c for c in cycles if (c.node, c.mode) == (node, mode)]
        codes = Counter("hang" if c.hung else str(c.code) for c in group)
        code_text = " ".join(f"{code}:{count}" for code, count in sorted(codes.items()))
        rows.append(
            f"{node:<20} {mode:<18} {len(group):>5} {code_text:<18} "
            f"{sum(c.traceback for c in group):>9} {sum(c.segfault for c in group):>8} "
            f"{sum(c.hung for c in group):>5} {sum(bool(c.problems) for c in group):>5} "
            f"{sum(c.late for c in group):>5} "
            f"{_median([c.start_s for c in group if c.start_s is not None]):>8} "
            f"{_median([c.stop_s for c in group if c.stop_s is not None]):>7}"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=200, help="per node and mode")
    parser.add_argument("--nodes", nargs="+", choices=NODES, default=list(NODES))
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--parallel", type=int, default=max(os.cpu_count() or 1, 2))
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to a hang")
    parser.add_argument("--show", type=int, default=3, help="print this many bad cycles")
    parser.add_argument("--log", type=Path, help="write every bad cycle's output here")
    options = parser.parse_args()

    jobs = [(n, m) for _ in range(options.cycles) for n in options.nodes for m in options.modes]
    started = time.monotonic()
    cycles: list[Cycle] = []
    with tempfile.TemporaryDirectory() as folder:
        model = write_model(Path(folder))
        for done, cycle in enumerate(
            run_cycles(jobs, model, options.parallel, stop_timeout=options.timeout), 1
        ):
            cycles.append(cycle)
            if done % 100 == 0 or done == len(jobs):
                print(f"{done}/{len(jobs)} cycles, {time.monotonic() - started:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
    bad = [c for c in cycles if not c.clean]
    for cycle in bad[: options.show]:
        print(f"--- {cycle.describe()}")
    if options.log:
        options.log.write_text("".join(f"--- {cycle.describe()}\n" for cycle in bad))
    print(table(cycles))
    print(
        f"{len(cycles)} cycles in {time.monotonic() - started:.0f} s "
        f"({options.parallel} at a time): {len(cycles) - len(bad)} clean, {len(bad)} not"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
