"""Ground segmentation off KITTI roads (issue 13): cluttered rooms, low and tilted mounts,
sparse and dense sensors, organized clouds, the sensor height and tilt estimated, and bad
input. Truth is exact (the generated scenes); the peer is Patchwork++ where installed."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path

from seg_perception.lidar.classes import GROUND, OBSTACLE, UNKNOWN
from seg_perception.lidar.evaluation import (
    PatchworkGround,
    find_scans,
    patchwork_available,
    read_labels,
    read_scan,
    score_ground,
    semantickitti_ground_truth,
)
from seg_perception.lidar.ground import GroundParams, segment_ground
from seg_perception.lidar.ground_eval import SceneScore
from seg_perception.sample.ground_scenes import make_ground_scene

needs_patchwork = pytest.mark.skipif(
    not patchwork_available(), reason="Patchwork++ is not installed (pip install pypatchworkpp)"
)


def _ours(scene, params: GroundParams | None = None):
    cloud = scene.cloud()
    result = segment_ground(cloud, params)
    ground = result.ground[scene.flat_index()] if cloud.ndim == 2 else result.ground
    score = SceneScore()
    score.add(ground, scene, 0.0)
    return result, ground, score


@pytest.fixture(scope="module")
def room():
    return make_ground_scene("room", 1)


def test_cluttered_room_ground_is_floor_not_the_foot_of_walls(room):
    result, _, score = _ours(room)
    # The sensor height (0.78 m) is estimated from the cloud and reported.
    assert abs(result.sensor_height - 0.78) < 0.03 and result.warnings == ()
    assert score.score.precision >= 0.95 and score.score.recall >= 0.85, score.score
    assert score.steep_share <= 0.01  # ground on faces steeper than 30 deg
    assert score.height_error(0.99) < 0.05  # never above the floor
    # Walls, furniture legs and sides: obstacles, or unknown at their very foot.
    steep = room.steep & (room.floor_height > 0.1)
    flat_index = room.flat_index()
    assert np.mean(result.lidar_class[flat_index][steep] == OBSTACLE) > 0.995


@needs_patchwork
def test_cluttered_room_beats_patchwork(room):
    _, _, score = _ours(room)
    for min_range in (2.7, 0.5):  # its KITTI default, and one that sees the near floor
        peer = PatchworkGround(sensor_height=0.78, min_range=min_range)(room.points)
        theirs = score_ground(peer, room.ground)
        assert score.score.f1 > theirs.f1, (min_range, score.score, theirs)


@pytest.mark.parametrize("kind", ["low-mount", "corridor"])
def test_sparse_indoor_sensors(kind):
    scene = make_ground_scene(kind, 0)  # VLP-16 at 0.3 m, OS1-32 at 0.5 m
    result, _, score = _ours(scene)
    assert abs(result.sensor_height - scene.mount_height) < 0.03
    assert score.score.precision >= 0.95 and score.steep_share <= 0.01, score.score
    assert score.score.f1 >= 0.93


def test_tilted_mount_is_estimated_or_taken_as_given():
    scene = make_ground_scene("tilted", 0)  # OS1-64 at 1.0 m, pitched 12 deg, rolled 5
    result, _, score = _ours(scene)
    roll, pitch = result.tilt_deg
    assert abs(roll - 5.0) < 0.5 and abs(pitch - 12.0) < 0.5, result.tilt_deg
    assert abs(result.sensor_height - 1.0) < 0.03
    assert score.score.precision >= 0.95 and score.steep_share <= 0.01, score.score
    # Told the mount instead (no estimation): as good.
    given = GroundParams(sensor_height=1.0, roll_deg=5.0, pitch_deg=12.0, max_tilt_deg=0)
    told, _, told_score = _ours(scene, given)
    assert told.tilt_deg == (5.0, 12.0) and told.sensor_height == 1.0
    assert told_score.score.f1 >= score.score.f1 - 0.02
    # Assumed level, the floor 2 m ahead "rises" 0.4 m: worse ground, more of it on walls.
    _, _, level = _ours(scene, GroundParams(max_tilt_deg=0))
    assert level.score.f1 < score.score.f1 - 0.03 and level.steep_share > 0.05


def test_ramps_up_and_down_are_ground():
    scene = make_ground_scene("ramps", 0)
    _, ground, score = _ours(scene)
    assert score.score.precision >= 0.95 and score.score.recall >= 0.9, score.score
    sloped = scene.ground & (scene.normal_up < 0.995)  # the ramps and the slope
    assert ground[sloped].mean() >= 0.6


def test_organized_and_unorganized_clouds_give_the_same_labels(room):
    organized = segment_ground(room.cloud(organized=True))
    flat = segment_ground(room.cloud(organized=False))
    np.testing.assert_array_equal(organized.lidar_class[room.flat_index()], flat.lidar_class)
    assert np.all(organized.lidar_class[np.isnan(room.cloud(organized=True)["x"]).ravel()] == 0)


def test_semantickitti_with_estimated_height_beats_patchwork():
    scans = find_scans(data_path("semantickitti"))
    ours = theirs = None
    peer = PatchworkGround() if patchwork_available() else None
    for item in scans:
        points = read_scan(item.scan)
        truth, scored = semantickitti_ground_truth(read_labels(item.labels, len(points)))
        result = segment_ground(points)  # defaults: height and tilt estimated
        assert 1.7 < result.sensor_height < 1.85
        score = score_ground(result.ground, truth, scored)
        ours = score if ours is None else ours + score
        if peer is not None:
            other = score_ground(peer(points), truth, scored)
            theirs = other if theirs is None else theirs + other
    assert ours.f1 >= 0.965, ours
    if theirs is not None:
        assert ours.f1 >= theirs.f1, (ours, theirs)


# ------------------------------------------------------------------ bad input


def test_a_wall_in_front_of_the_sensor_is_never_ground():
    ys, zs = np.meshgrid(np.arange(-5.0, 5.0, 0.03), np.arange(-0.7, 2.0, 0.03))
    wall = np.column_stack([np.full(ys.size, 1.2), ys.ravel(), zs.ravel()]).astype(np.float32)
    guessed = segment_ground(wall)
    assert not guessed.ground.any() and guessed.sensor_height is None
    assert "no floor found" in guessed.warnings[0]
    given = segment_ground(wall, GroundParams(sensor_height=0.75))  # its foot is at -0.7
    assert not given.ground.any()


@pytest.mark.parametrize("flip", ["upside down", "z down"])
def test_a_sensor_upside_down_labels_no_ground_and_says_why(flip):
    points = make_ground_scene("curbs", 0).points.copy()
    if flip == "upside down":  # rotated 180 deg about x
        points[:, 1:3] *= -1
    else:
        points[:, 2] *= -1
    for params in (GroundParams(), GroundParams(sensor_height=1.8)):
        result = segment_ground(points, params)
        assert not result.ground.any() and result.sensor_height is None
        assert "upside down" in result.warnings[0]
        assert np.all(result.lidar_class == OBSTACLE)


def test_empty_and_invalid_clouds_are_unknown_with_a_warning():
    for cloud in (np.zeros((0, 3), np.float32), np.full((500, 4), np.nan, np.float32)):
        result = segment_ground(cloud)
        assert result.lidar_class.shape == (len(cloud),)
        assert np.all(result.lidar_class == UNKNOWN)
        assert "no valid returns" in result.warnings[0]
    organized = make_ground_scene("low-mount", 0).cloud(organized=True)
    organized["x"] = np.nan
    assert np.all(segment_ground(organized).lidar_class == UNKNOWN)


def test_faces_in_a_synthetic_scan_are_never_ground():
    # A floor ring pattern 0.8 m below the sensor and a box (0.4 m high) 3 m ahead.
    radii = 0.8 / np.tan(np.deg2rad(np.arange(3.0, 23.0, 0.7)))
    az = np.deg2rad(np.arange(0.0, 360.0, 0.35))
    r, a = np.meshgrid(radii, az)
    floor = np.column_stack([(r * np.cos(a)).ravel(), (r * np.sin(a)).ravel()])
    floor = np.column_stack([floor, np.full(len(floor), -0.8)])
    floor = floor[~((floor[:, 0] > 2.9) & (floor[:, 0] < 3.5) & (np.abs(floor[:, 1]) < 0.5))]
    ys, zs = np.meshgrid(np.arange(-0.5, 0.5, 0.02), np.arange(-0.8, -0.4, 0.02))
    face = np.column_stack([np.full(ys.size, 2.9), ys.ravel(), zs.ravel()])
    points = np.vstack([floor, face]).astype(np.float32)
    result = segment_ground(points)
    on_face = result.lidar_class[len(floor) :]
    assert not np.any(on_face == GROUND)
    assert np.all(on_face[face[:, 2] > -0.7] == OBSTACLE)  # above its foot
    far = np.hypot(floor[:, 0], floor[:, 1]) > 0
    assert result.ground[: len(floor)][far].mean() > 0.95
