"""Time over real DDS: stamps that jump, and labels that come late.

* The fusion and pipeline nodes are fed a stream at 10 Hz, then one message stamped
  2^31-1 s (a driver's garbage), then the whole stream jumps back 100 s (what
  ``ros2 bag play --loop`` does). The future message must leave no trace, and labeled
  output must resume within 1 s of the new stream.
* The 3-node graph (camera segmentation, LiDAR segmentation, fusion) with a 2D network
  that takes ~1.5 s per image, all with default parameters: the fusion waits for the
  labels instead of publishing unlabeled clouds, so >= 95 % of the clouds are labeled.

The messages are the synthetic ones of test_ros_nodes_bad_input (a ground plane with a box,
a palette picture the palette ONNX model labels exactly).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from onnx_models import label_set_yaml, palette_model, slow_palette_model  # noqa: E402
from ros_helpers import (  # noqa: E402
    RosClient,
    diagnostic_statuses,
    next_domain,
    node_command,
    output_of,
    running_nodes,
)
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from test_ros_nodes_bad_input import (  # noqa: E402
    OPTICAL_IN_LIDAR,
    camera_info,
    good_cloud,
    good_image,
    good_labels,
)

from seg_perception.ros.pointcloud2 import pointcloud2_to_array  # noqa: E402

UNLABELED = 255
FUTURE = Time(sec=2**31 - 1, nanosec=0)


def stamp_at(seconds: float) -> Time:
    nanoseconds = round(seconds * 1e9)
    return Time(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9)


def key(stamp: Time) -> tuple[int, int]:
    return stamp.sec, stamp.nanosec


def labeled(message: PointCloud2) -> bool:
    return bool((pointcloud2_to_array(message)["label"] != UNLABELED).any())


class Feed:
    """The test's client: publishes a camera and a LiDAR, records outputs by stamp."""

    def __init__(self, domain: int, camera_topic: str, camera_make: Callable, cloud_topic: str):
        self.client = RosClient(domain, "time_tester")
        self.camera = self.client.publisher(Image, camera_topic)
        self.info = self.client.publisher(CameraInfo, "/front/camera_info")
        self.cloud = self.client.publisher(PointCloud2, cloud_topic)
        self.camera_make = camera_make
        self.out: dict[tuple[int, int], tuple[float, PointCloud2]] = {}
        self.client.node.create_subscription(
            PointCloud2, "/labeled_points", self._received, self.client._qos(50)
        )
        self.diagnostics = self.client.collect(DiagnosticArray, "/diagnostics", depth=100)

    def _received(self, message: PointCloud2) -> None:
        self.out.setdefault(key(message.header.stamp), (time.monotonic(), message))

    def connect(self, processes: list) -> None:
        pubs = (self.camera, self.info, self.cloud)
        up = self.client.spin_until(
            lambda: (
                all(p.get_subscription_count() for p in pubs)
                and all(s.get_publisher_count() for s in self.client.node.subscriptions)
            ),
            60,
        )
        if not up:
            pytest.fail("nodes did not come up:\n" + "\n".join(output_of(p) for p in processes))
        for _ in range(3):  # discovery is not symmetric: let the first CameraInfo land
            self.info.publish(camera_info())
            self.client.spin_for(0.1)

    def frame(self, stamp: Time, camera: bool = True, cloud: bool = True) -> None:
        self.info.publish(camera_info())
        if camera:
            self.camera.publish(self.camera_make(stamp))
        if cloud:
            self.cloud.publish(good_cloud(stamp))

    def stream(self, start_s: float, count: int, period: float = 0.1) -> list[tuple[int, int]]:
        """``count`` frames at 1/period Hz from stamp ``start_s``; their stamp keys."""
        keys = []
        for k in range(count):
            stamp = stamp_at(start_s + k * 0.1)
            self.frame(stamp)
            keys.append(key(stamp))
            self.client.spin_for(period)
        return keys

    def counts(self, node: str) -> dict[str, str]:
        statuses = diagnostic_statuses(self.diagnostics, node)
        return {v.key: v.value for v in statuses[-1].values} if statuses else {}

    def messages(self, node: str) -> str:
        return " | ".join(s.message for s in diagnostic_statuses(self.diagnostics, node))


# ===================================================================== stamps that jump
@pytest.fixture(scope="module", params=["fusion", "pipeline"])
def jumping(request, tmp_path_factory):
    node = request.param
    folder = tmp_path_factory.mktemp(f"jump_{node}")
    params: dict[str, Any] = {
        "cameras": ["front"],
        "camera.front.extrinsics": OPTICAL_IN_LIDAR,
        "diagnostics_period": 0.2,
    }
    if node == "pipeline":
        params["engine.model"] = str(palette_model(folder / "palette.onnx"))
        params["label_set"] = params["engine.label_set"] = str(label_set_yaml(folder / "p.yaml"))
        topic, make = "/front/image", good_image
    else:
        topic, make = "/front/labels", good_labels
    domain = next_domain()
    with running_nodes([node_command(node, params)], domain) as processes:
        feed = Feed(domain, topic, make, "/points")
        try:
            feed.connect(processes)
            yield node, feed, processes[0]
        finally:
            feed.client.close()


def test_one_future_stamp_leaves_no_trace(jumping):
    node, feed, process = jumping
    before = feed.stream(1000.0, 10)
    feed.frame(FUTURE)  # label image (or image) and cloud, both from the year 2038
    feed.client.spin_for(0.1)
    after = feed.stream(1001.0, 15)
    feed.client.spin_until(lambda: all(k in feed.out for k in after), 10)
    assert process.poll() is None, output_of(process)
    assert key(FUTURE) not in feed.out
    missing = [k for k in before + after if k not in feed.out]
    assert missing == [], missing
    unlabeled = [k for k in after if not labeled(feed.out[k][1])]
    assert unlabeled == [], f"{node}: clouds after the future stamp went out unlabeled"
    feed.client.spin_for(0.5)
    counts = feed.counts(node)
    camera = "front labels" if node == "fusion" else "front images"
    assert counts.get("clouds dropped: implausible stamp") == "1", counts
    assert counts.get(f"{camera} dropped: implausible stamp") == "1", counts


def test_a_jump_back_100_s_resumes_labeled_output_within_a_second(jumping):
    node, feed, process = jumping
    feed.stream(2000.0, 10)
    start = time.monotonic()
    after = feed.stream(1900.0, 20)  # the bag looped: 100 s back
    feed.client.spin_until(lambda: all(k in feed.out for k in after), 10)
    assert process.poll() is None, output_of(process)
    first = min(
        (feed.out[k][0] for k in after if k in feed.out and labeled(feed.out[k][1])),
        default=None,
    )
    assert first is not None, f"{node}: no labeled output after the jump: {feed.counts(node)}"
    print(f"{node}: labeled output resumed {first - start:.3f} s after the jump back")
    assert first - start < 1.0, f"{node}: labeled output resumed after {first - start:.2f} s"
    labeled_share = np.mean([k in feed.out and labeled(feed.out[k][1]) for k in after])
    assert labeled_share >= 0.9, f"{node}: {labeled_share:.0%} of the new stream labeled"
    assert "time jumped back by 100.900 s" in feed.messages(node)


# ===================================================================== labels that come late
SLOW_SECONDS = 1.5


def matmuls_for(seconds: float, folder) -> int:
    """How many identity products make the slow palette model take ``seconds`` here."""
    from test_ros_nodes_bad_input import HEIGHT, WIDTH, palette_picture

    from seg_perception.engines import EngineConfig, create_engine

    probe = slow_palette_model(folder / "probe.onnx", 20)
    engine = create_engine(
        EngineConfig(model=str(probe), input_size=None, resize="none", num_threads=1)
    )
    picture = palette_picture(HEIGHT, WIDTH)[0]
    engine.segment(picture)
    start = time.perf_counter()
    engine.segment(picture)
    per_product = (time.perf_counter() - start) / 20
    return max(int(seconds / per_product), 20)


def test_three_nodes_with_a_slow_network_label_the_clouds_with_default_parameters(tmp_path):
    model = slow_palette_model(tmp_path / "slow.onnx", matmuls_for(SLOW_SECONDS, tmp_path))
    labels = str(label_set_yaml(tmp_path / "palette.yaml"))
    commands = [
        node_command(
            "camera_segmentation",
            {"engine.model": str(model), "engine.label_set": labels, "engine.num_threads": 1},
            {"image": "/front/image", "labels": "/front/labels"},
        ),
        node_command("lidar_segmentation", {}, {"points": "/points", "segmented_points": "/seg"}),
        node_command(
            "fusion",
            {
                "cameras": ["front"],
                "camera.front.extrinsics": OPTICAL_IN_LIDAR,
                "label_set": labels,
            },
            {"points": "/seg"},
        ),
    ]
    domain = next_domain()
    with running_nodes(commands, domain) as processes:
        feed = Feed(domain, "/front/image", good_image, "/points")
        try:
            feed.connect(processes)
            sent: dict[tuple[int, int], float] = {}
            for k in range(20):  # a frame every 1.8 s: the network keeps up, barely
                stamp = stamp_at(5000.0 + k * 1.8)
                sent[key(stamp)] = time.monotonic()
                feed.frame(stamp)
                feed.client.spin_for(1.8)
            feed.client.spin_until(lambda: all(k in feed.out for k in sent), 15)
            counts = feed.counts("fusion")
        finally:
            feed.client.close()
        for process in processes:
            assert process.poll() is None, output_of(process)
    got = [k for k in sent if k in feed.out]
    share = sum(labeled(feed.out[k][1]) for k in got) / len(sent)
    delays = [feed.out[k][0] - sent[k] for k in got]
    print(
        f"slow network: {len(got)}/{len(sent)} clouds out, {share:.0%} labeled, delay median "
        f"{np.median(delays):.2f} s, max {max(delays):.2f} s"
    )
    assert len(got) == len(sent), f"{len(got)}/{len(sent)} clouds came out; fusion: {counts}"
    assert share >= 0.95, f"only {share:.0%} of the clouds labeled; fusion: {counts}"
    # The labels really were late: the fusion waited for them.
    assert np.median(delays) >= 0.8 * SLOW_SECONDS, delays
