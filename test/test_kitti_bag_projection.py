"""The ROS path (CameraInfo + /tf_static + PointCloud2 from a real rosbag2) reproduces the
projection that KITTI's calibration files give, to within 1e-3 px."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.core.kitti import load_velodyne_bin, raw_drive_camera, reference_projection
from seg_perception.core.transforms import TransformTree, transform_points
from seg_perception.ros.camera_info import camera_model_from_camera_info
from seg_perception.ros.pointcloud2 import cloud_xyz, pointcloud2_to_array

rosbags_highlevel = pytest.importorskip("rosbags.highlevel", reason="needs the rosbags library")
rosbags_typesys = pytest.importorskip("rosbags.typesys", reason="needs the rosbags library")

CLOUD_TOPIC = "/kitti/velo/pointcloud"
INFO_TOPIC = "/kitti/camera_color_left/camera_info"


def _read_bag(path):
    typestore = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_JAZZY)
    tree, infos, clouds = TransformTree(), [], []
    with rosbags_highlevel.AnyReader([path], default_typestore=typestore) as reader:
        for connection, _, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            if connection.topic == "/tf_static":
                for transform in message.transforms:
                    tree.add_transform_stamped(transform)
            elif connection.topic == INFO_TOPIC:
                infos.append(message)
            elif connection.topic == CLOUD_TOPIC:
                clouds.append(message)
    return tree, infos, clouds


def test_bag_camera_info_and_tf_reproduce_calibration_projection(kitti_bag, kitti_raw):
    tree, infos, clouds = _read_bag(kitti_bag)
    assert len(infos) == len(clouds) == 5
    reference_model, T_reference = raw_drive_camera(kitti_raw)

    for index, (info, cloud) in enumerate(zip(infos, clouds, strict=True)):
        model = camera_model_from_camera_info(info)
        assert model.mode == "rectified" and model.image_size == (1242, 375)
        T_cam_from_lidar = tree.lookup(info.header.frame_id, cloud.header.frame_id)
        points = cloud_xyz(pointcloud2_to_array(cloud))

        # The bag holds frames 0-4 of the raw drive: same points, bit for bit.
        raw = load_velodyne_bin(kitti_raw / f"velodyne_points/data/{index:010d}.bin")
        np.testing.assert_array_equal(points, raw[:, :3])

        projection = model.project(transform_points(T_cam_from_lidar, points))
        expected_uv, expected_z = reference_projection(reference_model.P, T_reference, raw)
        expected_valid = (expected_z > 0) & (expected_uv[:, 0] >= -0.5)
        expected_valid &= (expected_uv[:, 0] < 1241.5) & (expected_uv[:, 1] >= -0.5)
        expected_valid &= expected_uv[:, 1] < 374.5
        # Points within 1e-3 px of the image border may fall either way; none do here.
        np.testing.assert_array_equal(projection.valid, expected_valid)
        error = np.abs(projection.uv[expected_valid] - expected_uv[expected_valid]).max()
        assert error < 1e-3, f"frame {index}: max error {error} px"


def test_transform_tree_reports_unknown_frames(kitti_bag):
    tree, _, _ = _read_bag(kitti_bag)
    with pytest.raises(ValueError, match="unknown frame"):
        tree.lookup("camera_color_left", "base_link")
