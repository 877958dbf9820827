"""End-to-end latency of the live nodes over Fast DDS, against the pipeline's own compute.

Two configurations are driven with the KITTI bag's 5 frames (Image, CameraInfo,
PointCloud2; looped to ``--frames``) at the recorded rate (10 Hz), each message re-stamped
with the current time just before it is published, the way a driver stamps a capture:

* ``pipeline``: the single-process pipeline node (camera + LiDAR segmentation + fusion);
* ``graph``: camera_segmentation + lidar_segmentation + fusion as three processes, wired as
  in test/test_ros_integration.py (label image and confidence between them).

Outputs carry their input's stamp, so end-to-end latency = the time this process receives
a ``labeled_points`` cloud - its stamp (one clock: everything runs on this machine). It
includes publishing and transporting ~3.3 MB of input, the nodes' work, and the ~3 MB
labeled cloud back. For the same messages the script also times, offline and alone, what
the node computes (``Pipeline.process`` with the same engine and a
``GeometricCloudSegmenter``), and prints the ratio end-to-end / compute.

The 2D engine is the palette ONNX model of test/onnx_models.py (a real ONNX Runtime model;
its work is the engine's pre/post-processing at 1242x375, not a big network); ``--model``
runs another (give ``--label-set`` to match its ids). Inputs use the nodes' default QoS
(sensor data: best effort, depth 2: late frames are dropped, never queued); publishers use
sensor-data QoS like a driver. This script is not pinned to one core: the graph needs both.
The node processes limit numpy's BLAS to one thread themselves (seg_perception.ros.nodes).

Targets: the single-process node adds < 25% over compute (ratio < 1.25), and nothing is
dropped at 10 Hz when the compute keeps up (compute < 100 ms).

Run: ``python bench/bench_ros_latency.py [--frames 50] [--rate 10] [--config pipeline]``
(needs ../shared/data and the built messages: ``source scripts/env.sh``).
"""

from __future__ import annotations

import os

# The node processes limit numpy's BLAS to one thread (seg_perception.ros.nodes); the
# offline compute measured here must run the same way to be comparable.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import DATA

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))  # the integration test's helpers and ONNX models

BAG = DATA / "rosbags/kitti_2011_09_26_ros2"
IMAGE, INFO, CLOUD = (
    "/kitti/camera_color_left/image_raw",
    "/kitti/camera_color_left/camera_info",
    "/kitti/velo/pointcloud",
)
COUNTERS = ("received", "published", "dropped", "skipped")


@dataclass
class LiveResult:
    """What one configuration did with the measured frames."""

    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    in_node_ms: list[float] = field(default_factory=list)  # fusion_status stage sums
    without_camera: int = 0  # measured clouds fused without their camera's labels
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> deltas
    cpu_ms: dict[str, float] = field(default_factory=dict)  # process -> CPU ms per frame
    machine_ms: float = 0.0  # CPU ms per frame used by everything on the machine
    steal_ms: float = 0.0  # CPU ms per frame the hypervisor gave to others


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one when ``pid`` is None)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def extrinsics(bag: dict[str, list[Any]]) -> list[float]:
    transform = bag["/tf_static"][0].transforms[0].transform
    t, q = transform.translation, transform.rotation
    return [t.x, t.y, t.z, q.x, q.y, q.z, q.w]


# ------------------------------------------------------------------------- offline compute
@dataclass
class Compute:
    """Offline timings (ms) of what the node computes for the same messages."""

    process: list[float]  # Pipeline.process alone
    with_messages: list[float]  # + CameraInfo/Image/PointCloud2 -> arrays, labeled cloud out
    stages: dict[str, list[float]]

    def __add__(self, other: Compute) -> Compute:
        stages = {k: v + other.stages.get(k, []) for k, v in self.stages.items()}
        return Compute(
            self.process + other.process, self.with_messages + other.with_messages, stages
        )

    @property
    def median(self) -> float:
        return float(np.median(self.process))

    def describe(self) -> str:
        stages = ", ".join(f"{k} {np.median(v):.1f}" for k, v in self.stages.items())
        return (
            f"Pipeline.process median {self.median:.1f} ms, p99 "
            f"{np.percentile(self.process, 99):.1f} ({stages}); with message conversions "
            f"{np.median(self.with_messages):.1f}"
        )


class OfflinePipeline:
    """The node's work on the bag's frames, in this process, with the same engine."""

    def __init__(self, bag: dict[str, list[Any]], engine_config: Any) -> None:
        from seg_perception.core.pipeline import Pipeline
        from seg_perception.core.transforms import (
            invert_transform,
            transform_from_translation_quaternion,
        )
        from seg_perception.engines import create_engine
        from seg_perception.lidar.segmenter import GeometricCloudSegmenter

        pose = extrinsics(bag)
        self.T_cam_from_lidar = invert_transform(
            transform_from_translation_quaternion(pose[:3], pose[3:])
        )
        self.pipeline = Pipeline(
            label_source=create_engine(engine_config), cloud_segmenter=GeometricCloudSegmenter()
        )
        self.messages = list(zip(bag[IMAGE], bag[INFO], bag[CLOUD], strict=True))
        self.frames = [self.frame(*m) for m in self.messages]
        for frame in self.frames:  # warm-up: ONNX Runtime's first runs, caches
            self.pipeline.process(frame)

    def frame(self, image: Any, info: Any, cloud: Any) -> Any:
        from seg_perception.core.pipeline import CameraInput, Frame
        from seg_perception.ros.camera_info import camera_model_from_camera_info
        from seg_perception.ros.image_conversions import image_to_rgb8
        from seg_perception.ros.pointcloud2 import pointcloud2_to_array

        model = camera_model_from_camera_info(info)
        camera = CameraInput("front", model, self.T_cam_from_lidar, image=image_to_rgb8(image))
        return Frame(pointcloud2_to_array(cloud), [camera])

    def measure(self, runs: int) -> Compute:
        from seg_perception.core.labeled_cloud import labeled_fields
        from seg_perception.ros.pointcloud2 import append_pointcloud2_fields

        result = Compute([], [], {})
        for index in range(runs):
            start = time.perf_counter()
            frame_result = self.pipeline.process(self.frames[index % len(self.frames)])
            result.process.append((time.perf_counter() - start) * 1e3)
            for stage, ms in frame_result.timings_ms.items():
                result.stages.setdefault(stage, []).append(ms)
        for index in range(runs):  # the same plus what a node does around it
            image, info, cloud = self.messages[index % len(self.messages)]
            start = time.perf_counter()
            frame_result = self.pipeline.process(self.frame(image, info, cloud))
            append_pointcloud2_fields(cloud, labeled_fields(frame_result))
            result.with_messages.append((time.perf_counter() - start) * 1e3)
        return result


# ------------------------------------------------------------------------- live run
def node_counters(status: Any) -> dict[str, int]:
    return {
        v.key: int(v.value)
        for v in status.values
        if any(word in v.key for word in COUNTERS) and v.value.isdigit()
    }


def run_live(
    commands: list[list[str]],
    bag: dict[str, list[Any]],
    topics: dict[str, str],
    frames: int,
    rate: float,
) -> LiveResult:
    """Start the nodes, warm them up, then publish ``frames`` frames at ``rate``."""
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from ros_helpers import RosClient, next_domain, output_of, running_nodes
    from seg_perception.msg import FusionStatus
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from seg_perception.ros.qos import qos_profile

    domain = next_domain()
    result = LiveResult()
    sent: dict[int, bool] = {}  # stamp (ns) -> measured (False: warm-up)
    received: dict[int, int] = {}  # stamp (ns) -> receive time (ns)
    in_node: dict[int, float] = {}
    cameras_used: dict[int, int] = {}
    latest: dict[str, Any] = {}  # diagnostics status name -> last status

    def on_cloud(message: PointCloud2) -> None:
        now = time.time_ns()
        received[message.header.stamp.sec * 10**9 + message.header.stamp.nanosec] = now

    def on_status(message: FusionStatus) -> None:
        stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
        in_node[stamp] = float(sum(message.stage_ms))
        cameras_used[stamp] = message.cameras_used

    def on_diagnostics(message: DiagnosticArray) -> None:
        for status in message.status:
            latest[status.name] = status

    with running_nodes(commands, domain) as processes:
        client = RosClient(domain, "latency_bench")
        try:
            node, executor = client.node, client.executor
            sensor = qos_profile("sensor_data", 5)
            pubs = {
                INFO: node.create_publisher(CameraInfo, topics[INFO], sensor),
                IMAGE: node.create_publisher(Image, topics[IMAGE], sensor),
                CLOUD: node.create_publisher(PointCloud2, topics[CLOUD], sensor),
            }
            reliable = qos_profile("reliable", 10)
            output = node.create_subscription(PointCloud2, "/labeled_points", on_cloud, reliable)
            node.create_subscription(FusionStatus, "/fusion_status", on_status, reliable)
            node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
            up = client.spin_until(
                lambda: (
                    all(p.get_subscription_count() for p in pubs.values())
                    and output.get_publisher_count() > 0
                ),
                60,
            )
            if not up:
                dead = [output_of(p) for p in processes if p.poll() is not None]
                raise RuntimeError("nodes did not come up:\n" + "\n".join(dead))
            messages = list(zip(bag[INFO], bag[IMAGE], bag[CLOUD], strict=True))
            period_ns = int(1e9 / rate)
            next_ns = time.monotonic_ns()

            def publish(index: int, measured: bool) -> None:
                nonlocal next_ns
                while (wait := next_ns - time.monotonic_ns()) > 0:
                    executor.spin_once(timeout_sec=wait / 1e9)
                next_ns += period_ns
                stamp_ns = time.time_ns()
                stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
                for topic, message in zip(
                    (INFO, IMAGE, CLOUD), messages[index % len(messages)], strict=True
                ):
                    message.header.stamp = stamp
                    pubs[topic].publish(message)
                sent[stamp_ns] = measured

            # Warm-up (not measured): until outputs flow, then 10 more frames.
            index = 0
            deadline = time.monotonic() + 60
            while not received and time.monotonic() < deadline:
                publish(index, False)
                index += 1
            if not received:
                raise RuntimeError("no labeled cloud came back during the warm-up")
            for _ in range(10):
                publish(index, False)
                index += 1
            client.spin_for(1.5)  # let the warm-up drain and diagnostics report
            before = {name: node_counters(s) for name, s in latest.items()}
            cpu_before = [cpu_seconds(p.pid) for p in processes] + [cpu_seconds()]
            machine_before = machine_cpu()
            next_ns = time.monotonic_ns()
            for _ in range(frames):
                publish(index, True)
                index += 1
            client.spin_for(0.5)  # the last frame's work
            cpu_after = [cpu_seconds(p.pid) for p in processes] + [cpu_seconds()]
            machine_after = machine_cpu()
            result.machine_ms = (machine_after[0] - machine_before[0]) * 1e3 / frames
            result.steal_ms = (machine_after[1] - machine_before[1]) * 1e3 / frames
            names = [command[2].rsplit(".", 1)[1] for command in commands] + ["this bench"]
            for name, start, end in zip(names, cpu_before, cpu_after, strict=True):
                result.cpu_ms[name] = (end - start) * 1e3 / frames
            measured = [stamp for stamp, counted in sent.items() if counted]
            client.spin_until(lambda: all(s in received for s in measured), 3.0)
            client.spin_for(1.5)  # one more diagnostics report after the last frame
            for name, status in latest.items():
                now = node_counters(status)
                result.counters[name] = {
                    k: v - before.get(name, {}).get(k, 0) for k, v in now.items()
                }
        finally:
            client.close()
        for process in processes:
            if process.poll() is None:
                process.send_signal(2)
        for process in processes:
            process.wait(timeout=20)
    result.sent = len(measured)
    result.latencies_ms = [(received[s] - s) / 1e6 for s in measured if s in received]
    result.in_node_ms = [in_node[s] for s in measured if s in in_node]
    result.without_camera = sum(1 for s in measured if cameras_used.get(s, 1) == 0)
    return result


# ------------------------------------------------------------------------- configurations
def configurations(
    model: str, engine_labels: str, fusion_labels: str, pose: list[float], threads: int
) -> dict[str, tuple[list[list[str]], dict[str, str]]]:
    from ros_helpers import node_command

    engine = {"engine.model": model, "engine.label_set": engine_labels}
    if threads:
        engine["engine.num_threads"] = threads
    common = {"diagnostics_period": 0.5}
    camera = {"cameras": ["front"], "camera.front.extrinsics": pose, "label_set": fusion_labels}
    pipeline = node_command(
        "pipeline",
        {**common, **engine, **camera},
        {"front/image": "/cam/image", "front/camera_info": "/cam/camera_info",
         "points": "/velo/points"},
    )  # fmt: skip
    graph = [
        node_command(
            "camera_segmentation",
            {**common, **engine, "publish_confidence": True},
            {"image": "/cam/image", "labels": "/front/labels", "confidence": "/front/confidence"},
        ),
        node_command(
            "lidar_segmentation",
            common,
            {"points": "/velo/points", "segmented_points": "/velo/segmented"},
        ),
        node_command(
            "fusion",
            {**common, **camera, "use_confidence": True},
            {"points": "/velo/segmented", "front/camera_info": "/cam/camera_info"},
        ),
    ]
    topics = {IMAGE: "/cam/image", INFO: "/cam/camera_info", CLOUD: "/velo/points"}
    return {"pipeline": ([pipeline], topics), "graph": (graph, topics)}


TITLES = {
    "pipeline": "single-process pipeline node",
    "graph": "3-node graph (camera_segmentation + lidar_segmentation + fusion)",
}


def report(name: str, live: LiveResult, compute: Compute, rate: float) -> None:
    compute_ms = compute.median
    with_messages_ms = float(np.median(compute.with_messages))
    received = len(live.latencies_ms)
    dropped = live.sent - received
    print(f"\n{TITLES[name]}")
    print(
        f"  frames sent {live.sent}, received {received}, dropped {dropped} "
        f"({100 * dropped / max(live.sent, 1):.0f}%) at {rate:g} Hz; "
        f"{live.without_camera} of those received fused without the camera's labels"
    )
    if not received:
        return
    latency = np.asarray(live.latencies_ms)
    median, p99 = np.median(latency), np.percentile(latency, 99)
    print(
        f"  end-to-end latency  median {median:7.1f} ms   p90 "
        f"{np.percentile(latency, 90):7.1f}   p99 {p99:7.1f}   max {latency.max():7.1f}"
    )
    if live.in_node_ms:
        what = "Pipeline.process" if name == "pipeline" else "fusion stage"
        print(f"  in-node {what} (fusion_status), median {np.median(live.in_node_ms):7.1f} ms")
    ratio = median / compute_ms
    print(f"  compute (offline Pipeline.process)  median {compute_ms:7.1f} ms")
    print(
        f"  ratio end-to-end / compute  median {ratio:5.2f} x   p99 {p99 / compute_ms:5.2f} x"
        f"   (vs compute + message conversions: {median / with_messages_ms:5.2f} x)"
    )
    for node, counts in sorted(live.counters.items()):
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if "rate" not in k)
        print(f"    {node.removeprefix('seg_perception: ')}: {shown}")
    if live.cpu_ms:
        shown = ", ".join(f"{k} {v:.0f}" for k, v in live.cpu_ms.items())
        total = sum(live.cpu_ms.values())
        budget = 1e3 / rate * len(os.sched_getaffinity(0))
        print(f"  CPU ms per frame: {shown}; total {total:.0f} of {budget:.0f} available")
        others = max(live.machine_ms - total, 0.0)
        print(
            f"  machine: {live.machine_ms:.0f} CPU ms per frame busy, of which other "
            f"processes {others:.0f}; hypervisor steal {live.steal_ms:.0f}"
        )
    keeps_up = compute_ms < 1e3 / rate
    if name == "pipeline":
        verdict = "met" if ratio < 1.25 else f"NOT met (+{100 * (ratio - 1):.0f}%)"
        print(f"  target: the node adds < 25% over compute: {verdict}")
    if keeps_up:
        verdict = "met" if dropped == 0 else f"NOT met ({dropped} dropped)"
    else:
        verdict = f"n/a: compute {compute_ms:.0f} ms > {1e3 / rate:.0f} ms period"
    print(f"  target: nothing dropped at {rate:g} Hz when compute keeps up: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=50, help="measured frames (default 50)")
    parser.add_argument("--rate", type=float, default=10.0, help="Hz (default 10: the bag's)")
    parser.add_argument("--model", default="", help="ONNX model (default: the palette model)")
    parser.add_argument(
        "--label-set", default="", help="label set of --model (default: cityscapes)"
    )
    parser.add_argument(
        "--config", nargs="+", choices=("pipeline", "graph"), default=["pipeline", "graph"]
    )
    parser.add_argument(
        "--engine-threads", type=int, default=0, help="engine.num_threads (0: ONNX Runtime's)"
    )
    parser.add_argument("--compute-runs", type=int, default=50, help="offline runs (default 50)")
    args = parser.parse_args()
    if not BAG.exists():
        print(f"needs the KITTI bag in {BAG}", file=sys.stderr)
        return 1
    try:
        import seg_perception.msg  # noqa: F401  (built messages)
        from ros_helpers import read_bag_as_rclpy
    except ImportError as error:
        print(f"needs rclpy and the built messages (source scripts/env.sh): {error}")
        return 1
    from onnx_models import label_set_yaml, palette_model

    from seg_perception.engines import EngineConfig

    bag = read_bag_as_rclpy(BAG)
    with tempfile.TemporaryDirectory() as folder:
        if args.model:
            model, labels = args.model, args.label_set or "cityscapes"
            engine_labels = args.label_set
        else:
            model = str(palette_model(Path(folder) / "palette.onnx"))
            labels = engine_labels = str(label_set_yaml(Path(folder) / "palette.yaml"))
        config = EngineConfig(
            model=model,
            input_size=None,
            resize="none",
            label_set=engine_labels,
            num_threads=args.engine_threads,
        )
        offline = OfflinePipeline(bag, config)
        image = bag[IMAGE][0]
        print(
            f"KITTI bag {BAG.name}: {len(bag[CLOUD])} frames looped to {args.frames}, "
            f"image {image.width}x{image.height}, {bag[CLOUD][0].width} points, "
            f"{args.rate:g} Hz, {len(os.sched_getaffinity(0))} cores"
        )
        threads = ", ".join(f"{n}={os.environ.get(n, 'unset')}" for n in _THREAD_VARS)
        print(
            f"engine: {Path(model).name} (ONNX Runtime, engine.num_threads="
            f"{args.engine_threads}); nodes and this process run with {threads}"
        )
        runs = configurations(model, engine_labels, labels, extrinsics(bag), args.engine_threads)
        for name in args.config:
            commands, topics = runs[name]
            # Compute is timed alone right before and after the live run (the machine's
            # speed drifts between runs), and both halves are pooled.
            before = offline.measure(args.compute_runs // 2)
            live = run_live(commands, bag, topics, args.frames, args.rate)
            after = offline.measure(args.compute_runs - args.compute_runs // 2)
            report(name, live, before + after, args.rate)
            print(f"  compute before the run: {before.describe()}")
            print(f"  compute after the run:  {after.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
