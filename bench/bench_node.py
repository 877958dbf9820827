"""The single-process node's time per frame against the sum of its stages, on one core.

The pipeline node runs in this process (real rclpy, its real subscriptions and
publishers, a subscriber on its outputs as RViz would be), and each frame is handed to its
subscription callbacks directly: CameraInfo, Image, then the PointCloud2 whose arrival
completes the match and runs segmentation, fusion and publishing inside the callback. The
node's time per frame is the wall time of those callbacks. No DDS transport is involved,
so what remains is the node's own work.

The same messages then go through each stage alone, as the node calls them: PointCloud2 ->
structured array (a view), Image -> RGB, the 2D engine, the LiDAR segmenter, fusion, the
labeled output cloud (fields appended to the input's bytes), the RViz rgb cloud, the
status message, and rclpy's serialization of what is published (the copy ``publish``
makes). Their sum is what the node cannot avoid; the ratio node / sum is its overhead
(target <= 1.1).

Scene: the generated KITTI-like street (64 beams, ~110k points with a time field, one
1242x375 camera); the 2D engine is the palette ONNX model of test/onnx_models.py (a real
ONNX Runtime session whose cost is pre/post-processing at 1242x375). Both outputs that
RViz shows (labeled_points, labeled_points_rgb) are subscribed.

Run: ``python bench/bench_node.py [--frames 30]`` after ``source scripts/env.sh``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import pin_one_core

pin_one_core()

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))  # the palette ONNX model of the tests

import rclpy
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, PointCloud2
from std_msgs.msg import Header

from seg_perception.core.cloud import cloud_xyz
from seg_perception.core.labeled_cloud import labeled_fields, rgb_cloud
from seg_perception.core.transforms import invert_transform, matrix_to_quaternion
from seg_perception.ros.camera_info import camera_model_from_camera_info
from seg_perception.ros.image_conversions import array_to_image, image_to_rgb8
from seg_perception.ros.messages import fusion_status_message
from seg_perception.ros.pointcloud2 import (
    append_pointcloud2_fields,
    array_to_pointcloud2,
    pointcloud2_to_array,
)
from seg_perception.sample import generate_scene


def messages(scene, stamp_s: int) -> tuple[CameraInfo, object, PointCloud2]:
    stamp = Time(sec=stamp_s, nanosec=0)
    fields = scene.intrinsics.to_camera_info_fields()
    info = CameraInfo(
        header=Header(stamp=stamp, frame_id="camera_optical"), width=fields["width"],
        height=fields["height"], distortion_model=fields["distortion_model"],
    )  # fmt: skip
    info.d = [float(v) for v in np.ravel(fields["D"])]
    info.k = [float(v) for v in np.ravel(fields["K"])]
    info.r = [float(v) for v in np.ravel(fields["R"])]
    info.p = [float(v) for v in np.ravel(fields["P"])]
    image = array_to_image(scene.image, "rgb8", Header(stamp=stamp, frame_id="camera_optical"))
    cloud = array_to_pointcloud2(scene.cloud(), Header(stamp=stamp, frame_id="lidar"))
    return info, image, cloud


def extrinsics(scene) -> list[float]:
    pose = invert_transform(scene.T_cam_from_lidar)
    return [*map(float, pose[:3, 3]), *map(float, matrix_to_quaternion(pose[:3, :3]))]


def median_ms(samples: list[float]) -> float:
    return float(np.median(samples)) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    from onnx_models import label_set_yaml, palette_model

    from seg_perception.ros.nodes.pipeline import PipelineNode

    scene = generate_scene(0)
    folder = Path(tempfile.mkdtemp(prefix="bench_node_"))
    labels = str(label_set_yaml(folder / "palette.yaml"))
    overrides = [
        Parameter("cameras", value=["front"]),
        Parameter("camera.front.extrinsics", value=extrinsics(scene)),
        Parameter("engine.model", value=str(palette_model(folder / "palette.onnx"))),
        Parameter("engine.label_set", value=labels),
        Parameter("label_set", value=labels),
    ]
    rclpy.init()
    node = PipelineNode(parameter_overrides=overrides)
    sink = rclpy.create_node("bench_sink")
    outputs = {}
    for topic in ("labeled_points", "labeled_points_rgb"):
        outputs[topic] = 0
        sink.create_subscription(
            PointCloud2, topic, lambda m, t=topic: outputs.__setitem__(t, outputs[t] + 1), 10
        )
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(sink)
    deadline = time.monotonic() + 10
    publishers = (node.fusion.cloud_pub, node.fusion.rgb_pub)
    while time.monotonic() < deadline and not all(p.get_subscription_count() for p in publishers):
        executor.spin_once(timeout_sec=0.05)
    callbacks = {s.topic_name.rsplit("/", 1)[-1]: s.callback for s in node.subscriptions}
    info_cb, image_cb, cloud_cb = callbacks["camera_info"], callbacks["image"], callbacks["points"]

    pipeline = node.fusion.pipeline
    from seg_perception.core.pipeline import CameraInput, Frame

    stages: dict[str, list[float]] = {}

    def timed(name: str, func):
        start = time.perf_counter()
        out = func()
        stages.setdefault(name, []).append(time.perf_counter() - start)
        return out

    def stage_pass(info, image, cloud_msg) -> None:
        """One frame through each stage alone, as the node calls them."""
        model = camera_model_from_camera_info(info, "auto")
        cloud = timed("PointCloud2 -> array (view)", lambda: pointcloud2_to_array(cloud_msg))
        rgb = timed("Image -> RGB", lambda: np.ascontiguousarray(image_to_rgb8(image)[..., :3]))
        segmentation = timed("2D engine", lambda: pipeline.label_source.segment(rgb))
        camera = CameraInput(
            "front", model, scene.T_cam_from_lidar, labels=segmentation.labels,
            confidence=segmentation.confidence, index=0,
        )  # fmt: skip
        result = pipeline.process(Frame(cloud, [camera], 0, "lidar"))  # times its stages
        stages.setdefault("LiDAR segmenter", []).append(result.timings_ms["segment_cloud"] / 1e3)
        stages.setdefault("fusion", []).append(result.timings_ms["fusion"] / 1e3)
        out = timed(
            "labeled cloud (fields appended)",
            lambda: append_pointcloud2_fields(cloud_msg, labeled_fields(result), replace=True),
        )
        rgb_msg = timed(
            "rgb cloud",
            lambda: array_to_pointcloud2(
                rgb_cloud(cloud_xyz(cloud), result.fusion.label, pipeline.label_set),
                cloud_msg.header,
            ),
        )
        status = timed(
            "fusion_status",
            lambda: fusion_status_message(result, cloud_msg.header, 1, ["camera_optical"],
                                          [0.0], [], [0], [(0.0, 0.0)]),
        )  # fmt: skip
        timed("serialize what is published", lambda: [
            serialize_message(m) for m in (out, rgb_msg, status)
        ])  # fmt: skip

    # Node frames and stage passes alternate, so a change of load hits both alike.
    node_s = []
    for k in range(args.frames + 3):
        info, image, cloud = messages(scene, 100 + k)
        info_cb(info)
        start = time.perf_counter()
        image_cb(image)
        cloud_cb(cloud)
        elapsed = time.perf_counter() - start
        if k >= 3:  # the first frames settle caches (CameraInfo model, allocations)
            node_s.append(elapsed)
            stage_pass(info, image, cloud)
    published = node.fusion.diagnostics.counts["clouds published"]
    if published != args.frames + 3:
        print(f"the node published {published} of {args.frames + 3} clouds", file=sys.stderr)
        return 1

    end = time.monotonic() + 2.0  # let the subscriber take what was published
    while time.monotonic() < end and min(outputs.values()) < args.frames:
        executor.spin_once(timeout_sec=0.05)
    total = sum(median_ms(v) for v in stages.values())
    node_ms = median_ms(node_s)
    print(
        f"pipeline node, one core: {len(scene.points)} points, {scene.image.shape[1]}x"
        f"{scene.image.shape[0]} camera, {args.frames} frames (medians)"
    )
    for name, samples in stages.items():
        print(f"  {name:32s} {median_ms(samples):8.2f} ms")
    print(f"  {'sum of stages':32s} {total:8.2f} ms")
    print(f"node per frame (callbacks)         {node_ms:8.2f} ms")
    print(f"node / sum of stages               {node_ms / total:8.2f}x  (target <= 1.10)")
    print(f"delivered to the subscriber (a depth-10 queue, spun after the run): {outputs}")
    executor.shutdown()
    node.destroy_node()
    sink.destroy_node()
    rclpy.shutdown()
    return 0 if node_ms / total <= 1.1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
