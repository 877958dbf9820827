"""A panoptic model in the live pipeline node, over real DDS: the labeled cloud carries
``instance``, and each frame's objects arrive as ``instances`` (Instance3DArray) and as
RViz ``instance_markers``, equal to the offline pipeline on the same inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")

from ros_helpers import next_domain, node_command, output_of, running_nodes  # noqa: E402
from seg_perception.msg import Instance3DArray  # noqa: E402
from test_ros_nodes_bad_input import OPTICAL_IN_LIDAR, camera_info, good_cloud  # noqa: E402
from test_ros_time import Feed, key, stamp_at  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from seg_perception.core.pipeline import CameraInput, Frame, Pipeline  # noqa: E402
from seg_perception.core.transforms import (  # noqa: E402
    invert_transform,
    transform_from_translation_quaternion,
)
from seg_perception.engines import EngineConfig, create_engine  # noqa: E402
from seg_perception.ros.camera_info import camera_model_from_camera_info  # noqa: E402
from seg_perception.ros.image_conversions import array_to_image  # noqa: E402
from seg_perception.ros.pointcloud2 import pointcloud2_to_array  # noqa: E402

ENGINE = {"model": "random:mask2former", "panoptic": True, "stuff_channels": [0, 1]}


def picture() -> np.ndarray:
    """A 96x48 street-like picture: sky, a grey road, a dark box in front."""
    image = np.zeros((48, 96, 3), np.uint8)
    image[:20] = (120, 160, 220)
    image[20:] = (80, 80, 85)
    image[18:40, 34:62] = (40, 60, 140)
    return image


def image_message(stamp: Any) -> Any:
    message = array_to_image(picture(), "rgb8")
    message.header.stamp, message.header.frame_id = stamp, "camera"
    return message


def test_the_pipeline_node_publishes_instances_and_markers(tmp_path):
    params: dict[str, Any] = {"cameras": ["front"], "camera.front.extrinsics": OPTICAL_IN_LIDAR}
    params.update({f"engine.{k}": v for k, v in ENGINE.items()})
    domain = next_domain()
    with running_nodes([node_command("pipeline", params)], domain) as processes:
        feed = Feed(domain, "/front/image", image_message, "/points")
        objects = feed.client.collect(Instance3DArray, "/instances")
        markers = feed.client.collect(MarkerArray, "/instance_markers")
        try:
            feed.connect(processes)
            stamps = [stamp_at(500.0 + k * 0.1) for k in range(3)]
            for stamp in stamps:
                feed.frame(stamp)
                feed.client.spin_until(
                    lambda s=stamp: key(s) in feed.out and len(objects) and len(markers), 15
                )
            feed.client.spin_until(lambda: len(objects) >= 3 and len(markers) >= 3, 10)
        finally:
            feed.client.close()
    assert len(objects) >= 3 and len(markers) >= 3

    # The same inputs through the offline pipeline.
    engine = create_engine(EngineConfig(**{**ENGINE, "stuff_channels": (0, 1)}))
    pose = OPTICAL_IN_LIDAR
    transform = invert_transform(transform_from_translation_quaternion(pose[:3], pose[3:]))
    camera = CameraInput("front", camera_model_from_camera_info(camera_info()), transform,
                         image=picture())  # fmt: skip
    cloud = pointcloud2_to_array(good_cloud(stamps[0]))
    result = Pipeline(engine).process(Frame(cloud, [camera]))
    assert result.instances, "the random model found no object: the test would prove nothing"

    published = pointcloud2_to_array(feed.out[key(stamps[0])][1])
    np.testing.assert_array_equal(published["instance"], result.fusion.instance)
    message = next(m for m in objects if key(m.header.stamp) == key(stamps[0]))
    got = [(o.id, o.class_id, o.point_count) for o in message.instances]
    assert got == [(i.id, i.class_id, i.point_count) for i in result.instances]
    for sent, want in zip(message.instances, result.instances, strict=True):
        np.testing.assert_allclose([sent.centroid.x, sent.centroid.y, sent.centroid.z],
                                   want.centroid, rtol=1e-9)  # fmt: skip
        assert sent.class_name == engine.label_set.name_of(want.class_id)
    array = next(m for m in markers if key(m.markers[0].header.stamp) == key(stamps[0]))
    assert array.markers[0].action == Marker.DELETEALL
    cubes = [m for m in array.markers if m.type == Marker.CUBE]
    assert [c.id for c in cubes] == [i.id for i in result.instances]


def test_separate_nodes_carry_instances_over_topics(tmp_path):
    """camera_segmentation (panoptic) -> <name>/instances (mono16) -> fusion with
    use_instances: the same ids as the single-process node's, over DDS."""
    camera = {f"engine.{k}": v for k, v in ENGINE.items()}
    remaps = {"image": "/front/image", "labels": "/front/labels",
              "instances": "/front/instances", "class_map": "/front/class_map"}  # fmt: skip
    fusion = {"cameras": ["front"], "camera.front.extrinsics": OPTICAL_IN_LIDAR,
              "use_instances": True}  # fmt: skip
    domain = next_domain()
    commands = [
        node_command("camera_segmentation", camera, remaps),
        node_command("fusion", fusion),
    ]
    with running_nodes(commands, domain) as processes:
        feed = Feed(domain, "/front/image", image_message, "/points")
        objects = feed.client.collect(Instance3DArray, "/instances")
        try:
            feed.connect(processes)
            stamp = stamp_at(700.0)
            for _ in range(3):  # best-effort inputs: resend the frame until it comes out
                feed.frame(stamp)
                if feed.client.spin_until(lambda: key(stamp) in feed.out and objects, 10):
                    break
        finally:
            feed.client.close()
    assert key(stamp) in feed.out, "\n".join(output_of(p) for p in processes)
    engine = create_engine(EngineConfig(**{**ENGINE, "stuff_channels": (0, 1)}))
    pose = OPTICAL_IN_LIDAR
    transform = invert_transform(transform_from_translation_quaternion(pose[:3], pose[3:]))
    offline = Pipeline(engine).process(Frame(
        pointcloud2_to_array(good_cloud(stamp)),
        [CameraInput("front", camera_model_from_camera_info(camera_info()), transform,
                     image=picture())],
    ))  # fmt: skip
    published = pointcloud2_to_array(feed.out[key(stamp)][1])
    np.testing.assert_array_equal(published["instance"], offline.fusion.instance)
    assert published["instance"].max() >= 1
    sent = next(m for m in objects if key(m.header.stamp) == key(stamp))
    assert [o.point_count for o in sent.instances] == [i.point_count for i in offline.instances]
