"""A camera's projection mode is explicit: a rectified image with a driver's D != 0.

image_pipeline's convention: ``image_rect`` is projected with P and no distortion, while
its CameraInfo still carries the lens's D. ``camera.<name>.projection: rectified`` must
project exactly as a CameraInfo with D = 0 does (the truth here), while ``auto`` takes
D != 0 to mean raw and lands the points elsewhere. Real fusion nodes over DDS.
"""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")

from builtin_interfaces.msg import Time  # noqa: E402
from ros_helpers import RosClient, next_domain, node_command, output_of, running_nodes  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from test_ros_nodes_bad_input import (  # noqa: E402
    HEIGHT,
    OPTICAL_IN_LIDAR,
    WIDTH,
    camera_info,
    good_cloud,
    header,
)

from seg_perception.ros.image_conversions import array_to_image  # noqa: E402
from seg_perception.ros.pointcloud2 import pointcloud2_to_array  # noqa: E402


def striped_labels(stamp: Time) -> Image:
    """Class = column band (8 px wide): where a point lands decides its label."""
    labels = (np.arange(WIDTH)[None, :].repeat(HEIGHT, 0) // 8).astype(np.uint8)
    return header(array_to_image(labels, "mono8"), stamp, "camera")


def labels_at(clouds: list, stamp: tuple) -> np.ndarray:
    message = next(c for c in clouds if (c.header.stamp.sec, c.header.stamp.nanosec) == stamp)
    return pointcloud2_to_array(message)["label"]


def common(out: dict[str, list]) -> tuple | None:
    """The latest stamp every node published with labels (the CameraInfo had landed)."""
    stamps = [
        {(c.header.stamp.sec, c.header.stamp.nanosec) for c in clouds
         if (pointcloud2_to_array(c)["label"] != 255).any()}
        for clouds in out.values()
    ]  # fmt: skip
    shared = set.intersection(*stamps) if stamps else set()
    return max(shared) if shared else None


def with_distortion(info: CameraInfo) -> CameraInfo:
    info.d = [0.4, -0.2, 0.0, 0.0, 0.0]  # a driver's lens D; P stays the rectified matrix
    return info


def test_rectified_projection_ignores_the_lens_d(tmp_path):
    names = ("rect", "auto", "truth")
    commands = [
        node_command(
            "fusion",
            {"cameras": ["front"], "camera.front.extrinsics": OPTICAL_IN_LIDAR,
             "camera.front.projection": "rectified" if name == "rect" else "auto"},
            {"__node": f"fusion_{name}", "labeled_points": f"/{name}/labeled_points",
             "front/camera_info": f"/{name}/camera_info"},
        )
        for name in names
    ]  # fmt: skip
    domain = next_domain()
    with running_nodes(commands, domain) as processes:
        client = RosClient(domain, "projection_tester")
        try:
            infos = {n: client.publisher(CameraInfo, f"/{n}/camera_info") for n in names}
            labels = client.publisher(Image, "/front/labels")
            cloud = client.publisher(PointCloud2, "/points")
            out = {n: client.collect(PointCloud2, f"/{n}/labeled_points") for n in names}
            up = client.spin_until(lambda: cloud.get_subscription_count() == 3, 60)
            assert up, "\n".join(output_of(p) for p in processes)
            for k in range(20):
                stamp = Time(sec=50 + k)
                for name, publisher in infos.items():
                    info = camera_info()
                    publisher.publish(info if name == "truth" else with_distortion(info))
                client.spin_for(0.1)
                labels.publish(striped_labels(stamp))
                cloud.publish(good_cloud(stamp))
                if client.spin_until(lambda: common(out) is not None, 1.0):
                    break
        finally:
            client.close()
    stamp = common(out)
    assert stamp is not None, "no stamp labeled by all three nodes"
    got = {n: labels_at(out[n], stamp) for n in names}
    assert (got["truth"] != 255).sum() > 100
    np.testing.assert_array_equal(got["rect"], got["truth"])
    assert (got["auto"] != got["truth"]).mean() > 0.05  # D applied to a rectified image
    auto_log = output_of(processes[names.index("auto")])
    assert "camera 'front': projection auto chose raw" in auto_log, auto_log[-2000:]
    assert "projection auto chose" not in output_of(processes[names.index("rect")])
