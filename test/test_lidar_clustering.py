"""Obstacle clustering: hand-built cases with known answers, real SemanticKITTI instances,
size limits, determinism and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path

from seg_perception.core.cloud import CloudLayoutError
from seg_perception.lidar.classes import NO_CLUSTER
from seg_perception.lidar.clustering import ClusterParams, cluster_points
from seg_perception.lidar.evaluation import find_scans, read_labels, read_scan
from seg_perception.lidar.ground import segment_ground


def _blob(center, count, spread, rng):
    return np.asarray(center) + rng.uniform(-spread, spread, (count, 3))


def test_separate_objects_get_separate_ids_largest_first():
    rng = np.random.default_rng(0)
    car = _blob([10.0, 0.0, 0.0], 400, 0.8, rng)
    person = _blob([10.0, 5.0, 0.0], 100, 0.2, rng)  # 4 m from the car
    pole = _blob([-6.0, 2.0, 0.0], 40, 0.05, rng)
    ids = cluster_points(np.vstack([person, car, pole]))
    assert ids.dtype == np.int32
    # Largest first: the car is 0, the person 1, the pole 2, whatever the input order.
    assert np.all(ids[100:500] == 0)
    assert np.all(ids[:100] == 1)
    assert np.all(ids[500:] == 2)


def test_tolerance_decides_whether_a_chain_of_points_joins():
    # Points 0.4 m apart in a line join at tolerance 0.5; 0.6 m apart they do not.
    near = np.column_stack([np.arange(10) * 0.4, np.zeros(10), np.zeros(10)])
    far = np.column_stack([np.arange(10) * 0.6, np.zeros(10), np.zeros(10)])
    exact = ClusterParams(tolerance=0.5, voxel_size=0.0, min_cluster_size=1)
    assert np.all(cluster_points(near, params=exact) == 0)
    assert len(np.unique(cluster_points(far, params=exact))) == 10
    # With the voxel pre-filter (0.25 m voxels) the answer is the same here.
    voxel = ClusterParams(tolerance=0.5, voxel_size=0.25, min_cluster_size=1)
    assert np.all(cluster_points(near, params=voxel) == 0)
    assert len(np.unique(cluster_points(far, params=voxel))) == 10


def test_size_limits_drop_noise_and_oversized_clusters():
    rng = np.random.default_rng(1)
    big = _blob([0.0, 0.0, 0.0], 300, 1.0, rng)
    medium = _blob([10.0, 0.0, 0.0], 50, 0.2, rng)
    speck = _blob([20.0, 0.0, 0.0], 3, 0.05, rng)
    points = np.vstack([big, medium, speck])
    ids = cluster_points(points, params=ClusterParams(min_cluster_size=5))
    assert np.all(ids[-3:] == NO_CLUSTER)  # noise
    ids = cluster_points(points, params=ClusterParams(min_cluster_size=5, max_cluster_size=100))
    assert np.all(ids[:300] == NO_CLUSTER)  # too big: dropped, as PCL does
    assert np.all(ids[300:350] == 0)  # the medium blob is now the largest kept cluster


def test_mask_nan_and_structured_input():
    rng = np.random.default_rng(2)
    points = np.vstack([_blob([5.0, 0, 0], 50, 0.3, rng), _blob([15.0, 0, 0], 50, 0.3, rng)])
    points[0] = np.nan
    mask = np.ones(len(points), bool)
    mask[50:] = False
    ids = cluster_points(points, mask)
    assert ids[0] == NO_CLUSTER  # NaN never joins
    assert np.all(ids[1:50] == 0) and np.all(ids[50:] == NO_CLUSTER)
    cloud = np.zeros((10, 10), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("t", "<u4")])
    cloud["x"][:5] = np.linspace(1.0, 1.4, 50).reshape(5, 10)
    cloud["x"][5:] = np.nan
    ids = cluster_points(cloud)  # organized: flat result, one id per point
    assert ids.shape == (100,) and np.all(ids[:50] == 0) and np.all(ids[50:] == NO_CLUSTER)


def test_deterministic():
    rng = np.random.default_rng(3)
    points = rng.uniform(-20, 20, (5000, 3))
    np.testing.assert_array_equal(cluster_points(points), cluster_points(points.copy()))


def test_empty_and_degenerate_inputs():
    assert cluster_points(np.zeros((0, 3))).shape == (0,)
    assert np.all(cluster_points(np.full((20, 3), np.nan)) == NO_CLUSTER)
    assert np.all(cluster_points(np.ones((20, 3)), np.zeros(20, bool)) == NO_CLUSTER)
    one = cluster_points(np.ones((1, 3)), params=ClusterParams(min_cluster_size=1))
    assert one.tolist() == [0]
    same = cluster_points(np.ones((30, 3)))  # one voxel, one cluster
    assert np.all(same == 0)
    with pytest.raises(ValueError, match="mask has 3 entries"):
        cluster_points(np.ones((20, 3)), np.ones(3, bool))
    with pytest.raises(CloudLayoutError):
        cluster_points(np.ones((20, 2)))
    with pytest.raises(CloudLayoutError, match="no z"):
        cluster_points(np.zeros(4, dtype=[("x", "<f4"), ("y", "<f4")]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tolerance": 0.0}, "tolerance must be > 0"),
        ({"tolerance": -1.0}, "tolerance must be > 0"),
        ({"tolerance": float("nan")}, "finite"),
        ({"voxel_size": -0.1}, "voxel_size must be >= 0"),
        ({"min_cluster_size": 0}, "min_cluster_size"),
        ({"min_cluster_size": 2.5}, "min_cluster_size"),
        ({"min_cluster_size": 10, "max_cluster_size": 5}, "max_cluster_size"),
    ],
)
def test_absurd_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClusterParams(**kwargs)


def test_semantickitti_instances_are_recovered():
    """Things (cars, people, ...) with their own instance id: most fall in one cluster, and
    clusters do not mix instances."""
    completeness, purity = [], []
    for item in find_scans(data_path("semantickitti")):
        points = read_scan(item.scan)
        labels = read_labels(item.labels, len(points))
        obstacle = segment_ground(points).obstacle
        ids = cluster_points(points, obstacle)
        instance = labels.astype(np.int64)  # semantic class + instance id: one key per object
        things = (labels >> 16 > 0) & obstacle
        for key in np.unique(instance[things]):
            member = (instance == key) & obstacle
            if member.sum() < 30:
                continue
            clustered = ids[member][ids[member] >= 0]
            best = np.bincount(clustered).argmax() if clustered.size else -2
            completeness.append(np.mean(ids[member] == best))
            purity.append(np.sum((ids == best) & member) / max(np.sum(ids == best), 1))
    assert len(completeness) >= 30
    assert np.mean(completeness) >= 0.9, np.mean(completeness)
    assert np.mean(purity) >= 0.98, np.mean(purity)
