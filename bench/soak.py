"""Soak test: the live nodes at KITTI rates for minutes; does anything grow, stall or leak?

A short benchmark (bench_ros_latency.py) shows latency; only a long run shows memory that
grows, counters that stop adding up, queues that fill or a node that dies after minutes.
This script runs, for ``--minutes`` each, the configurations of bench_ros_latency.py:

* ``pipeline``: the single-process pipeline node;
* ``graph``: camera_segmentation + lidar_segmentation + fusion as three processes.

The nodes run with their DEFAULT parameters (inputs best effort, depth 2; diagnostics every
second) except the wiring: topics, the camera's extrinsics, the model and its label set (the
palette ONNX model of test/onnx_models.py). The KITTI bag's 5 frames are looped at ``--rate``
(10 Hz, KITTI's), stamped as a driver stamps captures: on a steady clock of that rate (a
tick this process cannot publish within one period is skipped and counted, never sent in a
burst), so the nodes' stamp-gap loss estimates can be checked. Every ``--report-every`` s it
prints, for that interval, the end-to-end figures (clouds sent, labeled clouds received and
their rate, the share of received clouds without a single labeled point (label 255
everywhere), latency = receive time - stamp, p50/p95/p99) and one line per node process:
RSS (VmRSS of /proc/<pid>/status), CPU, and the node's own /diagnostics counts (per input
stream received/dropped/lost before the callback (estimated), drop reasons, published,
waiting, and the level and message when not OK). At the end, a summary per configuration:
RSS at the first report vs the last (growth >= 5 % is flagged), totals, whether the losses
are explained by the nodes' own counts, and latency percentiles over the whole run.

Run: ``python bench/soak.py [--minutes 10] [--config pipeline|graph|both] [--rate 10]
[--report-every 60]`` after ``source scripts/env.sh``; set ``SEG_TEST_DOMAIN_BASE`` to keep
away from other DDS users. Exit status 1 when a node process died during the run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bench_ros_latency import BAG, CLOUD, IMAGE, INFO, cpu_seconds, extrinsics

TITLES = {
    "pipeline": "single-process pipeline node",
    "graph": "3-node graph (camera_segmentation + lidar_segmentation + fusion)",
}
CLOUD_PATH = {"pipeline": ["pipeline"], "graph": ["lidar_segmentation", "fusion"]}
LEVELS = {1: "WARN", 2: "ERROR", 3: "STALE"}
GROWTH_LIMIT = 5.0  # % RSS growth from the first report to the last that is flagged


def configurations(model: str, labels: str, pose: list[float]) -> dict[str, list[list[str]]]:
    """Node commands per configuration: default parameters plus the wiring."""
    from ros_helpers import node_command

    engine = {"engine.model": model, "engine.label_set": labels}
    camera = {"cameras": ["front"], "camera.front.extrinsics": pose, "label_set": labels}
    inputs = {"front/image": "/cam/image", "front/camera_info": "/cam/camera_info"}
    return {
        "pipeline": [node_command("pipeline", engine | camera, inputs | {"points": "/velo"})],
        "graph": [
            node_command("camera_segmentation", engine,
                         {"image": "/cam/image", "labels": "/front/labels"}),
            node_command("lidar_segmentation", {},
                         {"points": "/velo", "segmented_points": "/velo/segmented"}),
            node_command("fusion", camera,
                         {"points": "/velo/segmented", "front/camera_info": "/cam/camera_info"}),
        ],
    }  # fmt: skip


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(values: list[float]) -> str:
    if not values:
        return "latency -"
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return f"latency p50 {p50:.0f} p95 {p95:.0f} p99 {p99:.0f} ms"


def describe_counts(now: dict[str, int], before: dict[str, int]) -> str:
    """Diagnostics counts between two reports: per stream received/dropped/lost (reasons)."""
    delta = {k: v - before.get(k, 0) for k, v in now.items()}
    parts = []
    for stream in [k.removesuffix(" received") for k in sorted(now) if k.endswith(" received")]:
        lost = delta.get(f"{stream} lost before the callback (estimated)", 0)
        text = f"{stream} {delta[f'{stream} received']}/{delta.get(f'{stream} dropped', 0)}/{lost}"
        reasons = [f"{k.split(': ', 1)[1]} {v}" for k, v in delta.items()
                   if k.startswith(f"{stream} dropped: ") and v]  # fmt: skip
        parts.append(text + (f" ({', '.join(reasons)})" if reasons else ""))
    parts += [f"{k} {v}" for k, v in delta.items() if k.endswith(" published") or "skipped" in k]
    parts += [f"{k} {v}" for k, v in now.items() if k.endswith(" waiting")]
    return ", ".join(parts)


@dataclass
class NodeProcess:
    """One node process: its log (read all along, so a full pipe never blocks it) and
    what it reported on /diagnostics."""

    name: str
    process: Any
    log: deque = field(default_factory=lambda: deque(maxlen=40))
    warnings: int = 0
    status: Any = None  # the latest DiagnosticStatus
    rss: list[float] = field(default_factory=list)  # MB at each report
    last: dict[str, int] = field(default_factory=dict)  # counts at the previous report
    cpu: float = 0.0

    def read_log(self) -> None:
        for line in self.process.stdout:
            self.log.append(line.rstrip())
            self.warnings += "[WARN]" in line or "[ERROR]" in line

    def counts(self) -> dict[str, int]:
        values = self.status.values if self.status else []
        return {v.key: int(v.value) for v in values if v.value.isdigit()}

    def report(self, seconds: float) -> str:
        """RSS, CPU and the diagnostics counts since the previous report."""
        now, before = self.counts(), self.last
        self.last = now
        cpu, self.cpu = self.cpu, cpu_seconds(self.process.pid)
        self.rss.append(rss_mb(self.process.pid))
        line = f"RSS {self.rss[-1]:6.1f} MB  CPU {100 * (self.cpu - cpu) / seconds:3.0f}%  "
        line += describe_counts(now, before)
        level = self.status.level if self.status else 0
        level = ord(level) if isinstance(level, bytes) else level  # a ROS `byte`
        if level:
            line += f"  [{LEVELS.get(level, level)}: {self.status.message}]"
        return line


@dataclass
class Totals:
    """End-to-end figures of one configuration, from its first frame (warm-up included)."""

    start_ns: int = 2**63  # the soak's start (wall clock): older stamps are the warm-up's
    sent: list[int] = field(default_factory=list)  # stamps (ns)
    received: list[tuple[int, int, bool]] = field(default_factory=list)  # stamp, ns, unlabeled
    late_ticks: int = 0  # capture ticks never published: this process fell behind
    delays_ms: list[float] = field(default_factory=list)  # publish time - stamp

    def measured(self, sent: int = 0, received: int = 0) -> tuple[list[int], list[Any]]:
        """Stamps sent and clouds received after the first ``sent``/``received``, warm-up out."""
        return (
            [s for s in self.sent[sent:] if s >= self.start_ns],
            [c for c in self.received[received:] if c[0] >= self.start_ns],
        )

    def interval(self, sent: int, received: int, seconds: float) -> str:
        """The end-to-end figures of the clouds sent/received after those counts."""
        stamps, clouds = self.measured(sent, received)
        unlabeled = sum(u for _, _, u in clouds)
        return (
            f"sent {len(stamps)}, labeled clouds received {len(clouds)} "
            f"({len(clouds) / seconds:.2f} Hz), unlabeled "
            f"{100 * unlabeled / max(len(clouds), 1):.1f}%, "
            + percentiles([(t - s) / 1e6 for s, t, _ in clouds])
        )


def soak(
    name: str, commands: list[list[str]], bag: dict[str, list[Any]], args: argparse.Namespace
) -> tuple[list[NodeProcess], Totals, bool]:
    """Run one configuration; its node processes, totals and whether all stayed alive.

    Frames go out at ``--rate`` without a pause from the first to the last (a pause would
    read as lost messages to the nodes' stamp-gap estimate); the soak's clock starts once
    10 labeled clouds came back (warm-up: discovery, ONNX Runtime's first runs).
    """
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from ros_helpers import RosClient, next_domain, running_nodes
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from seg_perception.ros.pointcloud2 import pointcloud2_to_array
    from seg_perception.ros.qos import qos_profile

    totals, domain = Totals(), next_domain()
    with running_nodes(commands, domain) as processes:
        names = [command[2].rsplit(".", 1)[1] for command in commands]
        nodes = [NodeProcess(n, p) for n, p in zip(names, processes, strict=True)]
        by_status = {f"seg_perception: /{n.name}": n for n in nodes}
        for node in nodes:
            threading.Thread(target=node.read_log, daemon=True).start()

        def alive() -> bool:
            return all(n.process.poll() is None for n in nodes)

        def on_cloud(message: PointCloud2) -> None:
            now = time.time_ns()
            stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
            unlabeled = bool((pointcloud2_to_array(message)["label"] == 255).all())
            totals.received.append((stamp, now, unlabeled))

        def on_diagnostics(message: DiagnosticArray) -> None:
            for status in message.status:
                if status.name in by_status:
                    by_status[status.name].status = status

        client = RosClient(domain, "soak")
        try:
            sensor = qos_profile("sensor_data", 5)
            types = {"/cam/camera_info": CameraInfo, "/cam/image": Image, "/velo": PointCloud2}
            pubs = [client.node.create_publisher(t, topic, sensor) for topic, t in types.items()]
            output = client.node.create_subscription(
                PointCloud2, "/labeled_points", on_cloud, qos_profile("reliable", 10)
            )
            client.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
            frames = list(zip(bag[INFO], bag[IMAGE], bag[CLOUD], strict=True))

            def connected() -> bool:
                inputs = all(p.get_subscription_count() for p in pubs)
                return not alive() or (inputs and output.get_publisher_count() > 0)

            client.spin_until(connected, 60)

            def publish(index: int, stamp_ns: int) -> int:
                totals.delays_ms.append((time.time_ns() - stamp_ns) / 1e6)
                stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
                for pub, message in zip(pubs, frames[index % len(frames)], strict=True):
                    message.header.stamp = stamp
                    pub.publish(message)
                return stamp_ns

            every, period = int(args.report_every * 1e9), int(1e9 / args.rate)
            origin, wall, tick = time.monotonic_ns(), time.time_ns(), 0
            next_ns = origin
            start = end = next_report = last = 2**63
            warm_deadline, counted = next_ns + 60 * 10**9, (0, 0)

            def report(drain: float = 0.0) -> None:
                nonlocal last, counted
                now = time.monotonic_ns()
                seconds = (now - last) / 1e9
                line = totals.interval(*counted, seconds - drain)  # rate: while sending
                load = Path("/proc/loadavg").read_text().split()[0]
                print(f"[{(now - start) / 1e9:5.0f} s] {name}: {line}; machine load {load}")
                for node in nodes:
                    print(f"    {node.name:19} {node.report(seconds)}", flush=True)
                last, counted = now, (len(totals.sent), len(totals.received))

            while alive() and next_ns < end:
                while (wait := next_ns - time.monotonic_ns()) > 0:
                    client.executor.spin_once(timeout_sec=wait / 1e9)
                totals.sent.append(publish(len(totals.sent), wall + tick * period))
                now = time.monotonic_ns()
                late = max((now - origin) // period - tick, 1)  # behind: skip, never burst
                totals.late_ticks += late - 1
                tick += late
                next_ns = origin + tick * period
                if start == 2**63 and len(totals.received) >= 10:  # warm: the soak starts
                    start = last = now
                    next_report, end = start + every, start + int(args.minutes * 60e9)
                    totals.start_ns, counted = wall + tick * period, (len(totals.sent), 0)
                    for node in nodes:
                        node.last, node.cpu = node.counts(), cpu_seconds(node.process.pid)
                elif start == 2**63 and now > warm_deadline:
                    print(f"  {name}: not 10 labeled clouds back within 60 s; node logs:")
                    print("\n".join(f"    | {n.name}: {line}" for n in nodes for line in n.log))
                    break
                if now >= next_report and next_report < end - every // 2:
                    report()
                    next_report += every
            if alive() and start < 2**63:
                client.spin_for(3.0)  # the last clouds, and diagnostics reports after them
                report(drain=3.0)
        finally:
            client.close()
        died = [n for n in nodes if n.process.poll() is not None]
    for node in died:
        print(f"  NODE DIED: {node.name}, exit code {node.process.returncode}; last log lines:")
        print("\n".join(f"    | {line}" for line in node.log))
    return nodes, totals, not died and start < 2**63


def summary(name: str, nodes: list[NodeProcess], totals: Totals, args: argparse.Namespace) -> None:
    """RSS growth, totals, whether the losses add up, latency over the run."""
    print(f"\n== {name}: {TITLES[name]}, {args.minutes:g} min at {args.rate:g} Hz ==")
    print(f"  {'process':19} {'RSS first':>10} {'RSS last':>10} {'growth':>8}  exit  warnings")
    for node in (n for n in nodes if n.rss):
        growth = 100 * (node.rss[-1] / node.rss[0] - 1)
        flag = f"  >= {GROWTH_LIMIT:g} %: GROWS" if growth >= GROWTH_LIMIT else ""
        print(
            f"  {node.name:19} {node.rss[0]:7.1f} MB {node.rss[-1]:7.1f} MB {growth:+7.1f}%  "
            f"{node.process.returncode:4}  {node.warnings}{flag}"
        )
    stamps, clouds = totals.measured()
    unlabeled = sum(u for _, _, u in clouds)
    print(
        f"  soak (warm-up out): sent {len(stamps)}, labeled clouds received {len(clouds)}, "
        f"unlabeled {unlabeled} ({100 * unlabeled / max(len(clouds), 1):.1f}%)"
    )
    latency = [(t - s) / 1e6 for s, t, _ in clouds]
    if latency:
        delay = np.percentile(totals.delays_ms, [50, 99])
        print(
            f"  over the run: {percentiles(latency)}, max {max(latency):.0f} ms "
            f"(of which this process published p50 {delay[0]:.1f}, p99 {delay[1]:.1f} ms late)"
        )
    sent, received = len(totals.sent), len(totals.received)
    ticks = sent + totals.late_ticks
    print(
        f"  losses from the first frame ({sent - len(stamps)} warm-up frames included): "
        f"{ticks} capture ticks, {totals.late_ticks} not published (this process behind), "
        f"sent {sent}, received {received}: sent - received = {sent - received}"
    )
    upstream, what = sent, "sent"
    by_name = {n.name: n for n in nodes}
    for node in (by_name[n] for n in CLOUD_PATH[name]):
        counts = node.counts()
        got, published = counts.get("clouds received", 0), counts.get("clouds published", 0)
        lost = counts.get("clouds lost before the callback (estimated)", 0)
        dropped, waiting = counts.get("clouds dropped", 0), counts.get("clouds waiting", 0)
        print(
            f"    {node.name}: {what} {upstream} -> received {got} (missing {upstream - got}); "
            f"its stamp-gap estimate {lost} (vs ticks - received {ticks - got}); dropped "
            f"{dropped}, published {published}, waiting {waiting} (unaccounted "
            f"{got - dropped - published - waiting})"
        )
        upstream, what = published, f"{node.name} published"
    print(f"    this process: {what} {upstream} -> received {received}")
    for node in nodes:
        print(f"  {node.name} totals: {describe_counts(node.counts(), {})}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="per config (default 10)")
    parser.add_argument("--config", choices=("pipeline", "graph", "both"), default="both")
    parser.add_argument("--rate", type=float, default=10.0, help="Hz (default 10: KITTI's)")
    parser.add_argument("--report-every", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args()
    if not BAG.exists():
        print(f"needs the KITTI bag in {BAG}", file=sys.stderr)
        return 1
    from onnx_models import label_set_yaml, palette_model
    from ros_helpers import read_bag_as_rclpy

    bag = read_bag_as_rclpy(BAG)
    names = ["pipeline", "graph"] if args.config == "both" else [args.config]
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        model = str(palette_model(Path(folder) / "palette.onnx"))
        labels = str(label_set_yaml(Path(folder) / "palette.yaml"))
        runs = configurations(model, labels, extrinsics(bag))
        print(
            f"KITTI bag {BAG.name}: {len(bag[CLOUD])} frames looped at {args.rate:g} Hz, "
            f"{args.minutes:g} min per config, report every {args.report_every:g} s; per "
            "stream: received/dropped/lost before the callback (estimated)",
            flush=True,
        )
        results = []
        for name in names:
            print(f"\n-- {name}: {TITLES[name]}", flush=True)
            nodes, totals, alive = soak(name, runs[name], bag, args)
            results.append((name, nodes, totals))
            ok = ok and alive
        for name, nodes, totals in results:
            summary(name, nodes, totals, args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
