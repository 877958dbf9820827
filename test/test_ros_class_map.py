"""One label set per graph, over real DDS: the fusion node takes its cameras' classes.

A camera segmentation node runs a 4-class palette model; the fusion node is left with its
default label_set (Cityscapes, 19 classes). The fusion must adopt the camera's ClassMap
(published latched on <camera>/class_map), republish it as its own, and color and label with
it. A second camera announcing other classes is an ERROR on /diagnostics, and its labels are
refused rather than read with the wrong meaning.
"""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from onnx_models import label_set_yaml, palette_model  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import (  # noqa: E402
    RosClient,
    diagnostic_statuses,
    next_domain,
    node_command,
    output_of,
    running_nodes,
)
from seg_perception.msg import ClassMap, FusionStatus  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from test_ros_nodes_bad_input import (  # noqa: E402
    OPTICAL_IN_LIDAR,
    camera_info,
    good_cloud,
    good_image,
    good_labels,
)

from seg_perception.core.labels import LabelSet  # noqa: E402
from seg_perception.ros.messages import class_map_message  # noqa: E402
from seg_perception.ros.pointcloud2 import pointcloud2_to_array  # noqa: E402


def labeled(message: PointCloud2) -> bool:
    return bool((pointcloud2_to_array(message)["label"] != 255).any())


LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def test_fusion_adopts_the_camera_model_classes_and_refuses_a_camera_with_others(tmp_path):
    model = str(palette_model(tmp_path / "palette.onnx"))  # palette.yaml beside it: its spec
    label_set_yaml(tmp_path / "palette.yaml")
    commands = [
        node_command(
            "camera_segmentation", {"engine.model": model},
            {"image": "/front/image", "labels": "/front/labels", "class_map": "/front/class_map"},
        ),
        node_command(
            "fusion",
            {"cameras": ["front", "left"], "diagnostics_period": 0.2,
             "camera.front.extrinsics": OPTICAL_IN_LIDAR,
             "camera.left.extrinsics": OPTICAL_IN_LIDAR},
        ),
    ]  # fmt: skip
    domain = next_domain()
    with running_nodes(commands, domain) as processes:
        client = RosClient(domain, "class_map_tester")
        try:
            maps = client.collect(ClassMap, "/class_map")
            statuses = client.collect(FusionStatus, "/fusion_status")
            clouds = client.collect(PointCloud2, "/labeled_points")
            diagnostics = client.collect(DiagnosticArray, "/diagnostics", depth=100)
            client.node.create_subscription(ClassMap, "/class_map", maps.append, LATCHED)
            image = client.publisher(Image, "/front/image")
            infos = [client.publisher(CameraInfo, f"/{n}/camera_info") for n in ("front", "left")]
            left = client.publisher(Image, "/left/labels")
            cloud = client.publisher(PointCloud2, "/points")
            up = client.spin_until(
                lambda: (
                    any(m.label_set == "palette" for m in maps) and cloud.get_subscription_count()
                ),
                60,
            )
            assert up, "the fusion did not adopt the camera's classes:\n" + "\n".join(
                output_of(p) for p in processes
            )
            adopted = next(m for m in maps if m.label_set == "palette")
            assert [c.name for c in adopted.classes] == ["c0", "c1", "c2", "c3"]
            # A second camera whose model has other classes (Cityscapes, 19).
            other = client.node.create_publisher(ClassMap, "/left/class_map", LATCHED)
            other.publish(class_map_message(LabelSet.cityscapes()))
            for k in range(30):
                stamp = Time(sec=100 + k)
                for info in infos:
                    info.publish(camera_info())
                client.spin_for(0.1)
                image.publish(good_image(stamp))
                left.publish(good_labels(stamp))
                cloud.publish(good_cloud(stamp))
                if client.spin_until(lambda: any(map(labeled, clouds)) and len(statuses) > 2, 1.0):
                    break
            assert any(map(labeled, clouds)), f"no labeled cloud among {len(clouds)}"
            for message in clouds:  # every id is one of the camera model's classes
                labels = set(pointcloud2_to_array(message)["label"].tolist())
                assert labels <= {0, 1, 2, 3, 255}, labels
            assert any(
                "other classes" in w or "its labels are refused" in w
                for s in statuses for w in s.warnings
            ), [list(s.warnings) for s in statuses]  # fmt: skip
            errors = [
                s for s in diagnostic_statuses(diagnostics, "fusion")
                if s.level == DiagnosticStatus.ERROR
            ]  # fmt: skip
            assert errors and "camera 'left' publishes the classes of 'cityscapes19'" in (
                errors[-1].message
            )
        finally:
            client.close()
