"""The geometric cloud segmenter in the Pipeline: labeled clouds keep the driver's fields,
organized Ouster-like clouds with NaN and zero returns, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.core.cloud import CloudLayoutError
from seg_perception.core.labeled_cloud import labeled_fields
from seg_perception.core.pipeline import CloudSegmenter, Frame, Pipeline
from seg_perception.demo import scene_frame
from seg_perception.lidar import (
    GROUND,
    NO_CLUSTER,
    OBSTACLE,
    UNKNOWN,
    ClusterParams,
    GeometricCloudSegmenter,
    GroundParams,
)
from seg_perception.lidar.evaluation import score_ground
from seg_perception.ros.pointcloud2 import (
    append_fields,
    array_to_pointcloud2,
    pointcloud2_to_array,
)
from seg_perception.sample import LidarSpec, generate_scene

SCENE_GROUND = (0, 1, 9)


def walkable(labels: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Road, sidewalk, terrain less the 0.15 m curb risers, which the street labels
    "sidewalk" but which are vertical faces: never ground (issue 13)."""
    height = z + 1.73
    return np.isin(labels, SCENE_GROUND) & ~((labels == 1) & (height > 0.005) & (height < 0.145))


def test_it_is_a_cloud_segmenter_with_a_description():
    segmenter = GeometricCloudSegmenter()
    assert isinstance(segmenter, CloudSegmenter)
    assert "ground" in segmenter.description and "0.5 m" in segmenter.description
    assert "cluster" not in GeometricCloudSegmenter(clustering=None).description


@pytest.fixture(scope="module")
def street():
    return generate_scene(3)


def test_pipeline_labels_every_point_and_appends_lidar_fields(street):
    frame = scene_frame(street)
    result = Pipeline(cloud_segmenter=GeometricCloudSegmenter()).process(frame)
    lidar = result.lidar
    n = len(street.points)
    assert lidar.lidar_class.shape == (n,) and lidar.cluster_id.shape == (n,)
    assert "segment_cloud" in result.timings_ms
    truth = walkable(street.point_labels, street.points[:, 2])
    score = score_ground(lidar.lidar_class == GROUND, truth)
    # (The floor within 6-12 cm of a face's foot is unknown: floor and face are one there.)
    assert score.precision >= 0.95 and score.recall >= 0.92, score
    # Ground and unknown points carry no cluster; clusters are obstacles only.
    assert np.all(lidar.cluster_id[lidar.lidar_class != OBSTACLE] == NO_CLUSTER)
    assert lidar.cluster_id.max() >= 10
    # Points no camera sees are classified too.
    unseen = ~street.visible_in_camera
    assert unseen.sum() > n / 2
    assert np.all(np.isin(lidar.lidar_class[unseen], [GROUND, OBSTACLE, UNKNOWN]))
    # Valid returns are unknown only at the foot of steep faces (curbs, tyres, walls),
    # where floor and face cannot be told apart.
    unknown = lidar.lidar_class == UNKNOWN
    assert unknown.mean() < 0.05
    assert np.mean(street.points[unknown, 2] + 1.73 < 0.3) > 0.99

    fields = labeled_fields(result)
    cloud = append_fields(frame.points, fields)
    assert cloud.dtype.names == ("x", "y", "z", "intensity", "ring", *fields)
    assert cloud.dtype["lidar_class"] == np.uint8 and cloud.dtype["cluster"] == np.int32
    back = pointcloud2_to_array(array_to_pointcloud2(cloud))
    for name in frame.points.dtype.names:  # the driver's fields are untouched
        np.testing.assert_array_equal(back[name], frame.points[name])
    np.testing.assert_array_equal(back["lidar_class"], lidar.lidar_class)
    np.testing.assert_array_equal(back["cluster"], lidar.cluster_id)


def test_cars_are_clustered_one_cluster_each(street):
    lidar = GeometricCloudSegmenter().segment(street.points)
    height = street.points[:, 2] + street.lidar.mount_height
    near = np.hypot(street.points[:, 0], street.points[:, 1]) < 20
    cars = (street.point_labels == 13) & (height > 0.3) & near
    instances = np.unique(street.point_instance[cars])
    assert len(instances) >= 2
    seen = set()
    for instance in instances:
        ids = lidar.cluster_id[cars & (street.point_instance == instance)]
        if ids.size < 30:
            continue
        main = np.bincount(ids[ids >= 0]).argmax()
        assert np.mean(ids == main) >= 0.95, f"car {instance} split"
        assert main not in seen, f"car {instance} merged with another car"
        seen.add(main)


def _ouster_like_cloud(scene) -> tuple[np.ndarray, np.ndarray]:
    """An organized 64 x 2048 cloud as the Ouster ROS driver publishes it: every beam and
    column present, no-return pixels as NaN (half of them) or zeros (the other half), and
    extra fields with their own types. Returns the cloud and its truth class per pixel
    (255 where there is no return)."""
    spec = scene.lidar
    columns = spec.num_columns
    azimuth = np.arctan2(scene.points[:, 1], scene.points[:, 0])
    column = np.round((np.pi - azimuth) / (2 * np.pi / columns)).astype(int) % columns
    row = scene.point_ring.astype(int)
    assert len(np.unique(row * columns + column)) == len(row)  # one return per pixel
    dtype = np.dtype(
        {
            "names": ["x", "y", "z", "intensity", "t", "reflectivity", "ring", "ambient", "range"],
            "formats": ["<f4", "<f4", "<f4", "<f4", "<u4", "<u2", "<u2", "<u2", "<u4"],
            "offsets": [0, 4, 8, 16, 20, 24, 26, 28, 32],
            "itemsize": 48,
        }
    )
    cloud = np.zeros((spec.num_beams, columns), dtype=dtype)
    truth = np.full((spec.num_beams, columns), 255, np.uint8)
    hole = np.ones((spec.num_beams, columns), bool)
    hole[row, column] = False
    nan_hole = hole & (np.arange(columns)[None, :] % 2 == 0)
    for name in ("x", "y", "z"):
        cloud[name][nan_hole] = np.nan
    for axis, name in enumerate(("x", "y", "z", "intensity")):
        cloud[name][row, column] = scene.points[:, axis]
    truth[row, column] = scene.point_labels
    cloud["t"] = np.arange(columns, dtype=np.uint32)[None, :] * 48828
    cloud["reflectivity"][row, column] = (scene.points[:, 3] * 1000).astype(np.uint16)
    cloud["ring"] = np.arange(spec.num_beams, dtype=np.uint16)[:, None]
    cloud["ambient"] = 7
    cloud["range"][row, column] = (np.linalg.norm(scene.points[:, :3], axis=1) * 1000).astype(
        np.uint32
    )
    return cloud, truth


@pytest.fixture(scope="module")
def ouster():
    spec = LidarSpec(
        num_beams=64, fov_up_deg=22.5, fov_down_deg=-22.5, horizontal_resolution_deg=360 / 2048
    )
    return _ouster_like_cloud(generate_scene(5, lidar=spec))


def test_organized_cloud_with_nan_and_zero_returns_keeps_its_fields(ouster):
    cloud, truth = ouster
    assert cloud.shape == (64, 2048)
    no_return = truth == 255
    assert 0.05 < no_return.mean() < 0.5  # upward beams into the sky, far misses
    frame = Frame(points=cloud, cameras=[])
    result = Pipeline(cloud_segmenter=GeometricCloudSegmenter()).process(frame)
    lidar_class = result.lidar.lidar_class.reshape(cloud.shape)
    cluster = result.lidar.cluster_id.reshape(cloud.shape)
    # NaN and zero "no return" pixels are unknown and unclustered.
    assert np.all(lidar_class[no_return] == UNKNOWN)
    assert np.all(cluster[no_return] == NO_CLUSTER)
    returns = ~no_return
    truth_ground = walkable(truth[returns], cloud["z"][returns])
    score = score_ground(lidar_class[returns] == GROUND, truth_ground)
    assert score.precision >= 0.95 and score.recall >= 0.92, score

    labeled = append_fields(cloud, labeled_fields(result))
    assert labeled.shape == cloud.shape
    assert labeled.dtype.names[: len(cloud.dtype.names)] == cloud.dtype.names
    for name in cloud.dtype.names:  # NaN-aware: the holes stay NaN, the zeros stay zero
        assert labeled.dtype[name] == cloud.dtype[name]
        assert labeled.dtype.fields[name][1] == cloud.dtype.fields[name][1]
        np.testing.assert_array_equal(labeled[name], cloud[name])
    np.testing.assert_array_equal(labeled["lidar_class"], lidar_class)
    np.testing.assert_array_equal(labeled["cluster"], cluster)
    message = array_to_pointcloud2(labeled)
    assert (message.height, message.width) == (64, 2048) and not message.is_dense
    back = pointcloud2_to_array(message)
    np.testing.assert_array_equal(back["reflectivity"], cloud["reflectivity"])
    np.testing.assert_array_equal(back["lidar_class"], lidar_class)


def test_segmenter_reads_organized_structured_clouds_directly(ouster):
    cloud, _ = ouster
    direct = GeometricCloudSegmenter().segment(cloud)
    flat = GeometricCloudSegmenter().segment(np.column_stack([cloud[a].reshape(-1) for a in "xyz"]))
    np.testing.assert_array_equal(direct.lidar_class, flat.lidar_class)
    np.testing.assert_array_equal(direct.cluster_id, flat.cluster_id)


def test_clustering_can_be_switched_off():
    scene_points = np.array([[5.0, 0.0, -1.73], [5.0, 0.2, 0.0]], np.float32)
    # Two points are too few to estimate a floor from: the sensor height is given.
    ground = GroundParams(sensor_height=1.73)
    result = GeometricCloudSegmenter(ground, clustering=None).segment(scene_points)
    assert result.cluster_id is None
    assert result.lidar_class.tolist() == [GROUND, OBSTACLE]


def test_bad_input():
    segmenter = GeometricCloudSegmenter()
    empty = segmenter.segment(np.zeros((0, 3), np.float32))
    assert empty.lidar_class.shape == (0,) and empty.cluster_id.shape == (0,)
    nan = segmenter.segment(np.full((64, 2048, 3), np.nan, np.float32).reshape(-1, 3))
    assert np.all(nan.lidar_class == UNKNOWN) and np.all(nan.cluster_id == NO_CLUSTER)
    with pytest.raises(CloudLayoutError, match="no x"):
        segmenter.segment(np.zeros(3, dtype=[("a", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    with pytest.raises(CloudLayoutError):
        segmenter.segment(np.zeros((4, 2)))
    with pytest.raises(ValueError):
        GeometricCloudSegmenter(GroundParams(max_slope_deg=120))
    with pytest.raises(ValueError):
        GeometricCloudSegmenter(clustering=ClusterParams(min_cluster_size=-3))
