"""The clicked-object node over real DDS (issue 15, part 4): an RViz-style click on the
box ahead returns the object's points, equal to the offline selection with the same
(random-weight) SAM; a click outside every camera is dropped with its reason and the node
keeps answering; a semantic model is refused at start-up with the node to use."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PointStamped  # noqa: E402
from ros_helpers import (  # noqa: E402
    RosClient,
    diagnostic_statuses,
    diagnostic_text,
    next_domain,
    node_command,
    output_of,
    run_to_exit,
    running_nodes,
)
from seg_perception.msg import Instance3DArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from test_ros_instances import image_message, picture  # noqa: E402
from test_ros_nodes_bad_input import OPTICAL_IN_LIDAR, camera_info, good_cloud  # noqa: E402
from test_ros_time import stamp_at  # noqa: E402

from seg_perception.core.click import ClickCamera, select_clicked  # noqa: E402
from seg_perception.core.transforms import (  # noqa: E402
    invert_transform,
    transform_from_translation_quaternion,
)
from seg_perception.engines import EngineConfig, create_engine  # noqa: E402
from seg_perception.ros.camera_info import camera_model_from_camera_info  # noqa: E402
from seg_perception.ros.pointcloud2 import pointcloud2_to_array  # noqa: E402

PARAMS: dict[str, Any] = {
    "cameras": ["front"],
    "camera.front.extrinsics": OPTICAL_IN_LIDAR,
    "engine.model": "random:sam",
    "diagnostics_period": 0.2,
}
ON_THE_BOX = (8.0, 0.05, -0.8)
OUTSIDE = (2.0, -5.0, -1.73)  # a ground point 68 deg to the right: outside the 87 deg view


def click(x: float, y: float, z: float) -> PointStamped:
    message = PointStamped()
    message.header.frame_id = "lidar"
    message.point.x, message.point.y, message.point.z = x, y, z
    return message


def test_a_click_selects_the_object_and_a_bad_click_is_dropped_with_its_reason():
    domain = next_domain()
    with running_nodes([node_command("clicked_object", PARAMS)], domain) as processes:
        client = RosClient(domain, "clicker")
        try:
            pubs = {
                "info": client.publisher(CameraInfo, "/front/camera_info"),
                "image": client.publisher(Image, "/front/image"),
                "cloud": client.publisher(PointCloud2, "/points"),
                "click": client.publisher(PointStamped, "/clicked_point"),
            }
            points = client.collect(PointCloud2, "/selected_points")
            objects = client.collect(Instance3DArray, "/selected_object")
            diagnostics = client.collect(DiagnosticArray, "/diagnostics", depth=100)
            up = client.spin_until(
                lambda: (
                    all(p.get_subscription_count() for p in pubs.values())
                    and all(s.get_publisher_count() for s in client.node.subscriptions)
                ),
                60,
            )
            if not up:
                pytest.fail("node did not come up:\n" + "\n".join(map(output_of, processes)))
            stamp = stamp_at(300.0)
            for _ in range(3):  # inputs are best effort: send them a few times
                pubs["info"].publish(camera_info())
                pubs["image"].publish(image_message(stamp))
                pubs["cloud"].publish(good_cloud(stamp))
                client.spin_for(0.3)
            pubs["click"].publish(click(*OUTSIDE))
            client.spin_until(
                lambda: "selects nothing" in " ".join(
                    diagnostic_text(s) for s in diagnostic_statuses(diagnostics, "clicked_object")
                ), 10,
            )  # fmt: skip
            pubs["click"].publish(click(*ON_THE_BOX))
            client.spin_until(lambda: len(objects) >= 1 and len(points) >= 1, 30)
            client.spin_for(0.5)
        finally:
            client.close()
    texts = [diagnostic_text(s) for s in diagnostic_statuses(diagnostics, "clicked_object")]
    assert any("outside every camera" in t for t in texts), texts[-1:]
    assert len(objects) == 1 and len(points) == 1  # the bad click published nothing

    pose = OPTICAL_IN_LIDAR
    camera = ClickCamera(
        "front", camera_model_from_camera_info(camera_info()),
        invert_transform(transform_from_translation_quaternion(pose[:3], pose[3:])), picture(),
    )  # fmt: skip
    cloud = pointcloud2_to_array(good_cloud(stamp))
    xyz = np.column_stack([cloud["x"], cloud["y"], cloud["z"]])
    sam = create_engine(EngineConfig(model="random:sam"))
    want = select_clicked(xyz, np.array(ON_THE_BOX), [camera], sam)
    assert want.indices.size > 0  # random weights, but a mask holding the click (1437 points)
    got = pointcloud2_to_array(points[0])
    assert got.dtype.names == cloud.dtype.names  # every input field kept
    np.testing.assert_array_equal(got["x"], cloud["x"][want.indices])
    sent = objects[0].instances
    assert len(sent) == (1 if want.instance is not None else 0)
    if sent:
        assert sent[0].class_name == "selected" and sent[0].point_count == want.indices.size


def test_each_node_refuses_the_other_kind_of_model_naming_the_node_to_use():
    semantic = {**PARAMS, "engine.model": "random:segformer-b0", "engine.backend": "torch"}
    pipeline = {"cameras": ["front"], "camera.front.extrinsics": OPTICAL_IN_LIDAR,
                "engine.model": "random:sam"}  # fmt: skip
    (clicked, piped) = run_to_exit(
        [node_command("clicked_object", semantic), node_command("pipeline", pipeline)],
        next_domain(),
    )
    assert clicked[0] == 2 and "not a promptable model" in clicked[1], clicked[1]
    assert piped[0] == 2 and "run the clicked_object node" in piped[1], piped[1]
