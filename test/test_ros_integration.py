"""The live nodes as separate processes over real Fast DDS, fed with the KITTI bag.

Camera segmentation, LiDAR segmentation and fusion run as three processes, wired like the
launch file wires them; this test process publishes the bag's Image, CameraInfo and
PointCloud2 (the recorded CDR bytes, deserialized by rclpy) and receives the labeled
clouds. They must equal what the offline Pipeline computes from the same messages, keep
the input stamps and frame ids, and the nodes must shut down cleanly.
"""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")
pytest.importorskip("rosbags", reason="needs the rosbags library")

from onnx_models import label_set_yaml, palette_model  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import (  # noqa: E402
    next_domain,
    node_command,
    output_of,
    read_bag_as_rclpy,
    running_nodes,
    spin_until,
)
from seg_perception.msg import FusionStatus  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from seg_perception.core.labeled_cloud import labeled_fields  # noqa: E402
from seg_perception.core.pipeline import CameraInput, Frame, Pipeline  # noqa: E402
from seg_perception.core.transforms import (  # noqa: E402
    invert_transform,
    transform_from_translation_quaternion,
)
from seg_perception.engines import EngineConfig, create_engine  # noqa: E402
from seg_perception.lidar.segmenter import GeometricCloudSegmenter  # noqa: E402
from seg_perception.ros.camera_info import camera_model_from_camera_info  # noqa: E402
from seg_perception.ros.image_conversions import image_to_rgb8  # noqa: E402
from seg_perception.ros.pointcloud2 import pointcloud2_to_array  # noqa: E402

IMAGE, INFO, CLOUD = (
    "/kitti/camera_color_left/image_raw",
    "/kitti/camera_color_left/camera_info",
    "/kitti/velo/pointcloud",
)


def _extrinsics(bag: dict) -> list[float]:
    transform = bag["/tf_static"][0].transforms[0].transform
    t, q = transform.translation, transform.rotation
    return [t.x, t.y, t.z, q.x, q.y, q.z, q.w]


def _offline(
    bag: dict, model: str, label_set: str, poses: dict[str, list[float]] | None = None
) -> list[dict[str, np.ndarray]]:
    """The same frames through the offline Pipeline: what the nodes must reproduce.

    ``poses``: camera name -> pose in the LiDAR frame (all cameras see the bag's image);
    default: one camera 'front' at the bag's extrinsics."""
    engine = create_engine(
        EngineConfig(model=model, input_size=None, resize="none", label_set=label_set)
    )
    pipeline = Pipeline(label_source=engine, cloud_segmenter=GeometricCloudSegmenter())
    poses = poses or {"front": _extrinsics(bag)}
    transforms = {
        name: invert_transform(transform_from_translation_quaternion(pose[:3], pose[3:]))
        for name, pose in poses.items()
    }
    results = []
    for image, info, cloud in zip(bag[IMAGE], bag[INFO], bag[CLOUD], strict=True):
        cameras = [
            CameraInput(name, camera_model_from_camera_info(info), T, image=image_to_rgb8(image))
            for name, T in transforms.items()
        ]
        result = pipeline.process(Frame(pointcloud2_to_array(cloud), cameras))
        fields = labeled_fields(result)
        results.append({name: np.asarray(value) for name, value in fields.items()})
    return results


def _turned(pose: list[float], degrees: float) -> list[float]:
    """The same camera pose turned about its optical y axis (a second, differently aimed
    camera that sees the same picture: enough to make cameras disagree)."""
    from seg_perception.core.transforms import make_transform, matrix_to_quaternion

    angle = np.radians(degrees)
    turn = np.array(
        [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    )
    matrix = transform_from_translation_quaternion(pose[:3], pose[3:]) @ make_transform(turn)
    return [*matrix[:3, 3].tolist(), *matrix_to_quaternion(matrix[:3, :3]).tolist()]


def _play_bag(
    bag: dict, domain: int, processes: list, with_status: bool = False
) -> tuple[list[PointCloud2], list[FusionStatus]]:
    """Publish the bag's frames to /cam/image, /cam/camera_info and /velo/points once the
    nodes are connected; return the /labeled_points (and /fusion_status) received."""
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        node = rclpy.create_node("bag_player", context=context)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        image_pub = node.create_publisher(Image, "/cam/image", reliable)
        info_pub = node.create_publisher(CameraInfo, "/cam/camera_info", reliable)
        cloud_pub = node.create_publisher(PointCloud2, "/velo/points", reliable)
        received: list[PointCloud2] = []
        statuses: list[FusionStatus] = []
        subscriptions = [
            node.create_subscription(PointCloud2, "/labeled_points", received.append, reliable)
        ]
        if with_status:
            subscriptions.append(
                node.create_subscription(FusionStatus, "/fusion_status", statuses.append, reliable)
            )
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        connected = spin_until(
            executor,
            lambda: (
                all(p.get_subscription_count() for p in (image_pub, info_pub, cloud_pub))
                and all(sub.get_publisher_count() for sub in subscriptions)
            ),
            timeout=60,
        )
        if not connected:
            pytest.fail(
                "nodes did not come up:\n"
                + "\n".join(output_of(p) for p in processes if p.poll() is not None)
            )
        # Discovery is not symmetric: let the nodes see our publishers too (a camera
        # driver publishes CameraInfo all along; the first one must not be lost).
        for _ in range(5):
            info_pub.publish(bag[INFO][0])
            spin_until(executor, lambda: False, 0.1)
        for image, info, cloud in zip(bag[IMAGE], bag[INFO], bag[CLOUD], strict=True):
            # Inputs are best effort, as on a vehicle: a frame sent while discovery is
            # still settling can be lost. Resend it (same stamp) until its output arrives.
            for _ in range(3):
                info_pub.publish(info)
                spin_until(executor, lambda: False, 0.05)
                image_pub.publish(image)
                cloud_pub.publish(cloud)
                stamp = cloud.header.stamp
                if spin_until(
                    executor,
                    lambda t=stamp: (
                        any(m.header.stamp == t for m in received)
                        and (not with_status or any(m.header.stamp == t for m in statuses))
                    ),
                    10,
                ):
                    break
    finally:
        rclpy.shutdown(context=context)
    return _first_per_stamp(received), _first_per_stamp(statuses)


def _first_per_stamp(messages: list) -> list:
    """One message per input stamp (a resent frame may have been answered twice)."""
    seen, unique = set(), []
    for message in messages:
        key = (message.header.stamp.sec, message.header.stamp.nanosec)
        if key not in seen:
            seen.add(key)
            unique.append(message)
    return unique


def test_three_nodes_over_dds_equal_the_offline_pipeline(kitti_bag, tmp_path):
    bag = read_bag_as_rclpy(kitti_bag)
    model = str(palette_model(tmp_path / "palette.onnx"))
    labels = str(label_set_yaml(tmp_path / "palette.yaml"))
    domain = next_domain()
    commands = [
        node_command(
            "camera_segmentation",
            {"engine.model": model, "engine.label_set": labels, "publish_confidence": True},
            {"image": "/cam/image", "labels": "/front/labels", "confidence": "/front/confidence"},
        ),
        node_command(
            "lidar_segmentation",
            {},
            {"points": "/velo/points", "segmented_points": "/velo/segmented"},
        ),
        node_command(
            "fusion",
            {
                "cameras": ["front"],
                "camera.front.extrinsics": _extrinsics(bag),
                "label_set": labels,
                "use_confidence": True,
            },
            {"points": "/velo/segmented", "front/camera_info": "/cam/camera_info"},
        ),
    ]
    with running_nodes(commands, domain) as processes:
        received, statuses = _play_bag(bag, domain, processes, with_status=True)
        for process in processes:
            process.send_signal(2)
        codes = [process.wait(timeout=20) for process in processes]
    assert codes == [0, 0, 0], [output_of(p) for p in processes]
    assert len(received) == 5
    assert [list(s.warnings) for s in statuses] == [[]] * 5
    assert [s.cameras_used for s in statuses] == [1] * 5
    assert all(s.cameras[0].points_labeled > 10000 for s in statuses)

    expected = _offline(bag, model, labels)
    for message, cloud, want in zip(received, bag[CLOUD], expected, strict=True):
        assert message.header.stamp == cloud.header.stamp
        assert message.header.frame_id == "velo_link"
        got = pointcloud2_to_array(message)
        original = pointcloud2_to_array(cloud)
        for name in original.dtype.names:  # the input's fields are kept, bit for bit
            np.testing.assert_array_equal(got[name], original[name])
        assert set(want) <= set(got.dtype.names)
        for name, values in want.items():
            np.testing.assert_array_equal(got[name], values, err_msg=name)
        assert np.count_nonzero(got["label"] != 255) > 10000
        assert set(np.unique(got["lidar_class"])) >= {1, 2}


def test_single_process_node_with_two_cameras_equals_the_offline_pipeline(kitti_bag, tmp_path):
    bag = read_bag_as_rclpy(kitti_bag)
    model = str(palette_model(tmp_path / "palette.onnx"))
    labels = str(label_set_yaml(tmp_path / "palette.yaml"))
    poses = {"front": _extrinsics(bag), "left": _turned(_extrinsics(bag), 12.0)}
    domain = next_domain()
    params = {"engine.model": model, "engine.label_set": labels, "label_set": labels}
    params["cameras"] = list(poses)
    remaps = {"points": "/velo/points"}
    for name, pose in poses.items():
        params[f"camera.{name}.extrinsics"] = pose
        remaps[f"{name}/image"] = "/cam/image"
        remaps[f"{name}/camera_info"] = "/cam/camera_info"
    with running_nodes([node_command("pipeline", params, remaps)], domain) as processes:
        received, _ = _play_bag(bag, domain, processes)
    assert len(received) == 5
    expected = _offline(bag, model, labels, poses)
    for message, want in zip(received, expected, strict=True):
        got = pointcloud2_to_array(message)
        for name, values in want.items():
            np.testing.assert_array_equal(got[name], values, err_msg=name)
        used = set(np.unique(got["camera"]).tolist())
        assert used == {0, 1, 255}, used  # both cameras label points; some none
