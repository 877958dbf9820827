"""CompressedImage cameras in the pipeline node (``camera.<name>.transport: compressed``).

Two pipeline nodes over DDS, one fed raw Images, one the same pictures as lossless PNG
CompressedImages on ``<name>/image/compressed``: their labeled clouds must be identical,
field for field. A JPEG stream must label too; a CompressedImage that does not decode is
a counted drop, the node keeps serving.
"""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from onnx_models import label_set_yaml, palette_model, palette_picture  # noqa: E402
from ros_helpers import (  # noqa: E402
    RosClient,
    diagnostic_statuses,
    next_domain,
    node_command,
    output_of,
    running_nodes,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402
from test_ros_nodes_bad_input import (  # noqa: E402
    HEIGHT,
    OPTICAL_IN_LIDAR,
    WIDTH,
    camera_info,
    good_cloud,
)

from seg_perception.ros.image_conversions import (  # noqa: E402
    array_to_compressed_image,
    array_to_image,
)
from seg_perception.ros.pointcloud2 import pointcloud2_to_array  # noqa: E402

NAMES = ("raw", "png", "jpeg")


def test_compressed_cameras_label_like_raw_ones(tmp_path):
    model = str(palette_model(tmp_path / "palette.onnx"))
    label_set_yaml(tmp_path / "palette.yaml")
    commands = [
        node_command(
            "pipeline",
            {"cameras": ["front"], "camera.front.extrinsics": OPTICAL_IN_LIDAR,
             "camera.front.transport": "raw" if name == "raw" else "compressed",
             "engine.model": model, "diagnostics_period": 0.2},
            {"__node": f"pipeline_{name}", "labeled_points": f"/{name}/labeled_points",
             "front/image": f"/{name}/image",
             "front/image/compressed": f"/{name}/image/compressed"},
        )
        for name in NAMES
    ]  # fmt: skip
    picture, _ = palette_picture(HEIGHT, WIDTH)
    domain = next_domain()
    with running_nodes(commands, domain) as processes:
        client = RosClient(domain, "compressed_tester")
        try:
            raw = client.publisher(Image, "/raw/image")
            packed = {
                n: client.publisher(CompressedImage, f"/{n}/image/compressed") for n in NAMES[1:]
            }
            info = client.publisher(CameraInfo, "/front/camera_info")
            cloud = client.publisher(PointCloud2, "/points")
            out = {n: client.collect(PointCloud2, f"/{n}/labeled_points") for n in NAMES}
            diagnostics = client.collect(DiagnosticArray, "/diagnostics", depth=100)
            up = client.spin_until(lambda: cloud.get_subscription_count() == 3, 60)
            assert up, "\n".join(output_of(p) for p in processes)
            garbage = CompressedImage(format="png", data=b"\x89PNG not really")
            for k in range(20):
                stamp = Time(sec=70 + k)
                info.publish(camera_info())
                client.spin_for(0.1)
                message = array_to_image(picture, "rgb8")
                message.header.stamp = stamp
                raw.publish(message)
                for name, publisher in packed.items():
                    compressed = array_to_compressed_image(picture, name)
                    compressed.header.stamp = stamp
                    publisher.publish(compressed)
                if k == 3:  # refused on arrival, from its header
                    garbage.header.stamp = Time(sec=73, nanosec=500_000_000)
                    packed["png"].publish(garbage)
                cloud.publish(good_cloud(stamp))
                if k > 3 and client.spin_until(
                    lambda: all(len(labeled(o)) >= 3 for o in out.values()), 1.0
                ):
                    break
            client.spin_for(0.5)  # one more diagnostics report
            for process in processes:
                assert process.poll() is None, output_of(process)
        finally:
            client.close()
    raw_by_stamp = {stamp_of(m): pointcloud2_to_array(m) for m in labeled(out["raw"])}
    png_by_stamp = {stamp_of(m): pointcloud2_to_array(m) for m in labeled(out["png"])}
    shared = sorted(set(raw_by_stamp) & set(png_by_stamp))
    assert len(shared) >= 3, (len(raw_by_stamp), len(png_by_stamp))
    for stamp in shared:
        for field in ("label", "confidence", "camera", "lidar_class"):
            np.testing.assert_array_equal(png_by_stamp[stamp][field], raw_by_stamp[stamp][field])
    assert labeled(out["jpeg"]), "a JPEG stream labels too"
    texts = [
        {v.key: v.value for v in s.values} for s in diagnostic_statuses(diagnostics, "pipeline_png")
    ]
    assert any(t.get("front images dropped: malformed") == "1" for t in texts), sorted(
        k for t in texts[-1:] for k in t
    )


def stamp_of(message: PointCloud2) -> tuple[int, int]:
    return message.header.stamp.sec, message.header.stamp.nanosec


def labeled(clouds: list) -> list:
    return [c for c in clouds if (pointcloud2_to_array(c)["label"] != 255).any()]
