"""The labeled cloud's appended fields and the RViz rgb packing."""

from __future__ import annotations

import numpy as np

from seg_perception.core.labeled_cloud import labeled_fields, pack_rgb, rgb_cloud, unpack_rgb
from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import CloudSegmentation, Pipeline
from seg_perception.demo import scene_frame
from seg_perception.ros.pointcloud2 import append_fields, array_to_pointcloud2, pointcloud2_to_array
from seg_perception.sample import generate_scene


def test_pack_rgb_matches_the_pcl_convention():
    colors = np.array([[255, 0, 0], [0, 128, 255], [1, 2, 3]], dtype=np.uint8)
    packed = pack_rgb(colors)
    assert packed.dtype == np.float32
    np.testing.assert_array_equal(packed.view(np.uint32), [0xFF0000, 0x0080FF, 0x010203])
    np.testing.assert_array_equal(unpack_rgb(packed), colors)


def test_rgb_cloud_colors_by_class_and_grays_unlabeled():
    labels = LabelSet.cityscapes()
    cloud = rgb_cloud(np.zeros((3, 3)), np.array([13, 255, 0], np.uint8), labels)
    np.testing.assert_array_equal(
        unpack_rgb(cloud["rgb"]), [[0, 0, 142], [128, 128, 128], [128, 64, 128]]
    )


def test_labeled_fields_append_after_the_input_fields_and_round_trip():
    scene = generate_scene(1)
    frame = scene_frame(scene)
    result = Pipeline().process(frame)
    result.lidar = CloudSegmentation(
        lidar_class=np.ones(len(scene.points), np.uint8), cluster_id=np.arange(len(scene.points))
    )
    fields = labeled_fields(result)
    assert list(fields) == ["confidence", "label", "camera", "lidar_class", "cluster"]
    cloud = append_fields(frame.points, fields)
    # Input: x, y, z, intensity (f4) + ring (u2) = 18 bytes; confidence aligned to 20.
    assert cloud.dtype.names == ("x", "y", "z", "intensity", "ring", *fields)
    assert cloud.dtype.fields["confidence"][1] == 20
    message = array_to_pointcloud2(cloud)
    back = pointcloud2_to_array(message)
    for name in cloud.dtype.names:
        np.testing.assert_array_equal(back[name], cloud[name])
    np.testing.assert_array_equal(back["label"], result.fusion.label)
    assert back["cluster"].dtype == np.int32
