"""The package's messages, built by colcon, filled from pipeline objects and sent over DDS."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import Pipeline
from seg_perception.demo import scene_frame
from seg_perception.sample import generate_scene

msg = pytest.importorskip(
    "seg_perception.msg", reason="messages not built: run scripts/setup.sh (colcon build)"
)
rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from seg_perception.ros.messages import (  # noqa: E402
    class_map_message,
    fusion_status_message,
    label_set_from_class_map,
)


def test_class_map_round_trips_through_cdr():
    labels = LabelSet.cityscapes()
    message = class_map_message(labels)
    back = deserialize_message(serialize_message(message), msg.ClassMap)
    assert back.label_set == "cityscapes19" and back.unlabeled_id == 255
    assert [c.name for c in back.classes][:3] == ["road", "sidewalk", "building"]
    assert label_set_from_class_map(back) == labels


def test_fusion_status_carries_the_frame_statistics():
    frame = scene_frame(generate_scene(2))
    result = Pipeline().process(frame)
    message = fusion_status_message(result, frame_ids=["camera_optical"], warnings=["test"])
    back = deserialize_message(serialize_message(message), msg.FusionStatus)
    assert back.points_total == len(frame.points)
    assert back.points_labeled == int(np.count_nonzero(result.fusion.label != 255)) > 10000
    assert back.cameras[0].camera_name == "front"
    assert back.cameras[0].frame_id == "camera_optical"
    assert back.cameras[0].points_occluded == result.fusion.cameras[0].points_occluded > 0
    assert list(back.stage_names) == ["segment_cameras", "fusion"]
    assert list(back.warnings) == ["test"]


def test_class_map_is_latched_for_late_subscribers():
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("SEG_TEST_DOMAIN_ID", "71")))
    try:
        latched = QoSProfile(
            depth=1,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
            reliability=ReliabilityPolicy.RELIABLE,
        )
        publisher_node = rclpy.create_node("class_map_pub", context=context)
        publisher = publisher_node.create_publisher(msg.ClassMap, "class_map", latched)
        publisher.publish(class_map_message(LabelSet.cityscapes()))
        # The subscriber comes later, as RViz or a planner started after the node would.
        subscriber_node = rclpy.create_node("class_map_sub", context=context)
        received = []
        subscriber_node.create_subscription(msg.ClassMap, "class_map", received.append, latched)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(publisher_node)
        executor.add_node(subscriber_node)
        deadline = time.monotonic() + 10.0
        while not received and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert received, "late subscriber did not receive the latched ClassMap within 10 s"
        assert len(received[0].classes) == 19 and received[0].classes[13].name == "car"
    finally:
        rclpy.shutdown(context=context)
