"""Ground-segmentation scenes (sample/ground_scenes.py): the truth other ground tests rely
on, checked against hand-computed geometry and against itself (floor heights, normals,
frames, organized layout)."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.sample import LidarSpec
from seg_perception.sample.ground_geometry import FLOOR, TERRAIN, WALL, wedge, wedge_y
from seg_perception.sample.ground_scenes import (
    GROUND_SCENE_TYPES,
    WALKABLE_DEG,
    make_ground_scene,
)
from seg_perception.sample.raycast import intersect_nearest

COS_WALKABLE = np.cos(np.deg2rad(WALKABLE_DEG))


def test_a_wedge_is_hit_on_its_sloped_top_and_its_sides():
    # A ramp rising from z 0 at x 2 to z 1 at x 4 (26.6 deg), 2 m wide.
    ramp = wedge(2.0, 4.0, -1.0, 1.0, 0.0, 1.0, -0.1)
    down = np.array([[0.0, 0.0, -1.0]] * 3)
    origins = np.array([[3.0, 0.0, 5.0], [2.5, 0.5, 5.0], [5.0, 0.0, 5.0]])
    hits = intersect_nearest(origins, down, [ramp])
    np.testing.assert_allclose(hits.t[:2], [4.5, 4.75])  # z 0.5 and 0.25 on the slope
    assert hits.t[2] == np.inf  # beyond its end
    slope = np.array([-0.5, 0.0, 1.0]) / np.hypot(0.5, 1.0)
    np.testing.assert_allclose(hits.normal[0], slope, atol=1e-12)
    # Horizontally into its high end (x = 4, a vertical face) and from the side.
    side = intersect_nearest(np.array([10.0, 0.0, 0.5]), np.array([[-1.0, 0.0, 0.0]]), [ramp])
    np.testing.assert_allclose(side.t, [6.0])
    np.testing.assert_allclose(side.normal[0], [1.0, 0.0, 0.0])
    along_y = wedge_y(-1.0, 1.0, 2.0, 4.0, 0.0, 1.0, -0.1)  # the same ramp rising along y
    hit = intersect_nearest(np.array([0.0, 3.0, 5.0]), np.array([[0.0, 0.0, -1.0]]), [along_y])
    np.testing.assert_allclose(hit.t, [4.5])


@pytest.fixture(scope="module")
def room():
    return make_ground_scene("room", 0)


def test_truth_is_walkable_flat_faces_and_floor_height_is_exact(room):
    assert set(GROUND_SCENE_TYPES) >= {"room", "corridor", "warehouse", "ramps", "curbs"}
    assert room.ground.any() and (~room.ground).any()
    # Ground: on a walkable part, on a face flatter than 30 deg, at the floor (0 m above).
    assert np.all(room.normal_up[room.ground] >= COS_WALKABLE)
    np.testing.assert_allclose(room.floor_height[room.ground], 0.0, atol=1e-9)
    assert np.all(room.point_class[room.ground] == FLOOR)
    walls = room.point_class == WALL
    assert walls.sum() > 1000 and not room.ground[walls].any()
    assert np.all(room.steep[walls])  # vertical faces
    # The sensor is 0.78 m above the floor; points are in its (level) frame, range noise
    # of 1 cm along the beam.
    z_world = room.points[:, 2] + room.mount_height
    np.testing.assert_allclose(z_world[room.ground], 0.0, atol=0.04)  # 4 sigma
    assert np.all(room.floor_height[walls] >= -1e-9)


def test_organized_and_unorganized_clouds_hold_the_same_points(room):
    organized = room.cloud(organized=True)
    assert organized.shape == (room.lidar.num_beams, room.lidar.num_columns) == (64, 1024)
    flat = organized.reshape(-1)
    index = room.flat_index()
    np.testing.assert_array_equal(flat["x"][index], room.points[:, 0])
    holes = np.ones(flat.size, bool)
    holes[index] = False
    assert np.all(np.isnan(flat["x"][holes]))
    assert np.all(organized["ring"] == np.arange(64)[:, None])
    plain = room.cloud(organized=False)
    assert plain.shape == (len(room.points),)
    np.testing.assert_array_equal(plain["ring"], room.ring)


def test_tilted_mount_points_are_in_the_sensor_frame():
    scene = make_ground_scene("tilted", 0)
    assert scene.kind.pitch_deg == 12.0 and scene.kind.roll_deg == 5.0
    rotation, origin = scene.T_world_from_sensor[:3, :3], scene.T_world_from_sensor[:3, 3]
    world = scene.points[:, :3] @ rotation.T + origin
    np.testing.assert_allclose(world[scene.ground, 2], 0.0, atol=0.04)
    # In the sensor frame the floor is tilted: it rises ahead (pitched down 12 deg).
    ahead = scene.ground & (scene.points[:, 0] > 2.0) & (np.abs(scene.points[:, 1]) < 1.0)
    assert ahead.sum() > 50
    assert np.median(scene.points[ahead, 2]) > -scene.mount_height + 0.3


def test_ramps_slopes_and_embankments():
    scene = make_ground_scene("ramps", 1)
    sloped = scene.ground & (scene.normal_up < 0.999)
    assert sloped.sum() > 500  # ramps and the grassy slope are ground
    assert np.all(scene.normal_up[sloped] >= np.cos(np.deg2rad(11)))
    # The 35-45 deg embankment is terrain, but too steep to be ground.
    bank = (scene.point_class == TERRAIN) & (scene.normal_up < COS_WALKABLE)
    assert bank.sum() > 200 and not scene.ground[bank].any()
    # Ground up on the platform and down in the sunken bay, both at floor height 0.
    rotation, origin = scene.T_world_from_sensor[:3, :3], scene.T_world_from_sensor[:3, 3]
    z = (scene.points[:, :3] @ rotation.T + origin)[:, 2]
    assert (scene.ground & (z > 0.9)).sum() > 100 and (scene.ground & (z < -1.1)).sum() > 100
    np.testing.assert_allclose(scene.floor_height[scene.ground], 0.0, atol=1e-9)


@pytest.mark.parametrize(("kind", "beams"), [("low-mount", 16), ("corridor", 32)])
def test_sensor_models_and_an_override(kind, beams):
    scene = make_ground_scene(kind, 0)
    assert scene.lidar.num_beams == beams and scene.kind.indoor
    assert set(np.unique(scene.ring)) <= set(range(beams))
    sparse = make_ground_scene(kind, 0, lidar=LidarSpec.model("vlp16", min_range=0.3))
    assert sparse.lidar.num_beams == 16 and len(sparse.points) > 1000
    again = make_ground_scene(kind, 0)
    np.testing.assert_array_equal(again.points, scene.points)  # deterministic per seed


def test_unknown_scene_type_is_rejected():
    with pytest.raises(ValueError, match="unknown ground scene type 'garage'"):
        make_ground_scene("garage")
