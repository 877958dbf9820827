"""Ground segmentation: real SemanticKITTI targets, generated streets, a synthetic road
with a ramp, a curb, a pit and obstacles, and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path

from seg_perception.core.cloud import CloudLayoutError
from seg_perception.lidar.classes import GROUND, OBSTACLE, UNKNOWN
from seg_perception.lidar.evaluation import (
    LINEFIT_KITTI,
    LinefitGround,
    find_scans,
    linefit_available,
    read_labels,
    read_scan,
    score_ground,
    semantickitti_ground_truth,
)
from seg_perception.lidar.ground import GroundParams, segment_ground
from seg_perception.sample import LidarSpec, generate_scene

SCENE_GROUND = (0, 1, 9)  # road, sidewalk, terrain (Cityscapes train ids of the scene)
H = 1.73  # sensor height of the synthetic road


# ------------------------------------------------------------------ real data targets


@pytest.fixture(scope="module")
def semantickitti():
    scans = find_scans(data_path("semantickitti"))
    out = []
    for item in scans:
        points = read_scan(item.scan)
        truth, scored = semantickitti_ground_truth(read_labels(item.labels, len(points)))
        out.append((item.name, points, truth, scored))
    return out


def test_semantickitti_ground_meets_the_targets_on_every_scan(semantickitti):
    assert len(semantickitti) >= 3
    for name, points, truth, scored in semantickitti:
        score = score_ground(segment_ground(points).ground, truth, scored)
        assert score.f1 >= 0.95, f"scan {name}: F1 {score.f1:.4f}"
        assert score.precision >= 0.93, f"scan {name}: precision {score.precision:.4f}"
        assert score.recall >= 0.95, f"scan {name}: recall {score.recall:.4f}"


def test_semantickitti_ground_beats_linefit(semantickitti):
    if not linefit_available():
        pytest.skip("linefit is not installed (pip install linefit)")
    linefit = LinefitGround(LINEFIT_KITTI)
    for name, points, truth, scored in semantickitti:
        ours = score_ground(segment_ground(points).ground, truth, scored)
        theirs = score_ground(linefit(points), truth, scored)
        assert ours.f1 > theirs.f1, f"scan {name}: F1 {ours.f1:.4f} vs linefit {theirs.f1:.4f}"
        assert ours.precision > theirs.precision, f"scan {name}"


def test_semantickitti_points_far_below_the_road_are_unknown(semantickitti):
    # Multipath reflections several metres under the road exist in these scans.
    for _, points, _, _ in semantickitti:
        result = segment_ground(points)
        deep = points[:, 2] < -4.0
        assert deep.any()
        assert np.all(result.lidar_class[deep] == UNKNOWN)


# ------------------------------------------------------------------ generated streets


def walkable_truth(scene) -> np.ndarray:
    """Road, sidewalk and terrain, less the curb risers: the street labels its 0.15 m
    risers "sidewalk", but they are vertical faces, which are never ground (a robot
    cannot stand on them; the ground segmenter refuses steep faces)."""
    height = scene.points[:, 2] + scene.lidar.mount_height
    riser = (scene.point_labels == 1) & (height > 0.005) & (height < 0.145)
    return np.isin(scene.point_labels, SCENE_GROUND) & ~riser


@pytest.mark.parametrize("seed", [0, 2])
def test_generated_street_ground(seed):
    scene = generate_scene(seed)
    result = segment_ground(scene.points)
    score = score_ground(result.ground, walkable_truth(scene))
    assert score.precision >= 0.95, score
    # The floor at the foot of every face (curbs, tyres, legs) within 6-12 cm of it is
    # unknown, not ground: floor and face cannot be told apart there.
    assert score.recall >= 0.93, score
    assert abs(result.sensor_height - scene.lidar.mount_height) < 0.1  # estimated
    # Cars are obstacles. Only farther away, where the ground rings are metres apart and a
    # car's side is seen without the ground next to it, may its lowest row pass for ground
    # (a cell may rise by the slope limit plus step_tolerance over its neighbours).
    cars = scene.point_labels == 13
    height = scene.points[:, 2] + scene.lidar.mount_height
    near = np.hypot(scene.points[:, 0], scene.points[:, 1]) < 15.0
    assert np.all(result.lidar_class[cars & near & (height > 0.2)] == OBSTACLE)
    assert np.mean(result.lidar_class[cars & (height > 0.2)] == OBSTACLE) >= 0.99


def test_other_sensor_height_is_a_parameter():
    # A low robot LiDAR (0.8 m): the default (1.73 m) would put the cone in the wrong place.
    scene = generate_scene(1, lidar=LidarSpec(mount_height=0.8))
    truth = walkable_truth(scene)
    score = score_ground(
        segment_ground(scene.points, GroundParams(sensor_height=0.8)).ground, truth
    )
    assert score.precision >= 0.95 and score.recall >= 0.93, score
    # Not given, it is estimated from the cloud (and reported).
    estimated = segment_ground(scene.points)
    assert abs(estimated.sensor_height - 0.8) < 0.05
    assert score_ground(estimated.ground, truth).f1 >= 0.95


# ------------------------------------------------------------------ synthetic road


def _road_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """World ground height: a 15 % ramp from x = 10 to 30 m (3 m up, then a plateau), a
    0.15 m curb at |y| = 6 m, terrain rising at 10 % beyond |y| = 9 m."""
    z = 0.15 * np.clip(x - 10.0, 0.0, 20.0)
    ay = np.abs(y)
    z = z + np.where(ay > 6.0, 0.15, 0.0) + np.where(ay > 9.0, 0.1 * (ay - 9.0), 0.0)
    return z


def _box_surface(x0, x1, y0, y1, z0, z1, step=0.05):
    """Points on the top and four sides of a box."""
    xs, ys, zs = np.arange(x0, x1, step), np.arange(y0, y1, step), np.arange(z0, z1, step)
    faces = [np.stack(np.meshgrid(xs, ys, [z1]), -1).reshape(-1, 3)]
    for x in (x0, x1):
        faces.append(np.stack(np.meshgrid([x], ys, zs), -1).reshape(-1, 3))
    for y in (y0, y1):
        faces.append(np.stack(np.meshgrid(xs, [y], zs), -1).reshape(-1, 3))
    return np.vstack(faces)


def synthetic_road(seed: int = 0):
    """(points in the sensor frame, truth class, region tag) of a road with a ramp, curbs,
    sloped terrain, a car, a low box, a person on the ramp and a multipath pit."""
    rng = np.random.default_rng(seed)
    # Ground sampled like a 64-beam LiDAR: rings at the radii where the beams meet flat
    # ground, 0.2 deg apart (the ramp and curbs shift real rings a little; irrelevant here).
    elevation = np.deg2rad(np.linspace(-24.8, -2.0, 64))
    radii = H / np.tan(-elevation)
    radii = radii[radii < 45.0]
    azimuth = np.deg2rad(np.arange(0.0, 360.0, 0.2))
    r, a = np.meshgrid(radii, azimuth)
    x, y = (r * np.cos(a)).ravel(), (r * np.sin(a)).ravel()
    ground = np.column_stack([x, y, _road_height(x, y) + rng.normal(0, 0.01, x.size)])

    obstacles = {
        "car": _box_surface(5.0, 9.5, -4.0, -2.2, 0.0, 1.5),
        "low box": _box_surface(14.0, 15.0, 1.0, 2.0, 0.0, 0.35),
    }
    theta = rng.uniform(0, 2 * np.pi, 600)
    obstacles["person"] = np.column_stack(
        [20.0 + 0.3 * np.cos(theta), 3.0 + 0.3 * np.sin(theta), rng.uniform(0.0, 1.7, 600)]
    )
    # Obstacles stand on the road, ramp included: their z is a height above the ground.
    for part in obstacles.values():
        part[:, 2] += _road_height(part[:, 0], part[:, 1])
    # Hide the ground under the obstacles' footprints.
    hidden = np.zeros(len(ground), bool)
    for box in obstacles.values():
        lo, hi = box[:, :2].min(0), box[:, :2].max(0)
        hidden |= np.all((ground[:, :2] >= lo) & (ground[:, :2] <= hi), axis=1)
    ground = ground[~hidden]
    # A ring segment of multipath returns 1.3 m under the road, 1 m wide.
    pit = np.column_stack([np.full(20, 7.7), np.linspace(-0.5, 0.5, 20), np.full(20, -1.3)])

    parts = [ground, *obstacles.values(), pit]
    tags = ["ground", *obstacles, "pit"]
    points = np.vstack(parts)
    points[:, 2] -= H
    tag = np.concatenate(
        [np.full(len(p), t, dtype=object) for p, t in zip(parts, tags, strict=True)]
    )
    return points.astype(np.float32), tag


@pytest.fixture(scope="module")
def road():
    points, tag = synthetic_road()
    return points, tag, segment_ground(points)


def test_synthetic_road_ramp_curb_and_terrain_are_ground(road):
    points, tag, result = road
    x, y = points[:, 0], points[:, 1]
    ground = tag == "ground"
    regions = {
        "flat road": ground & (x < 9.0) & (np.abs(y) < 5.5),
        "ramp (15 %)": ground & (x > 10.5) & (x < 29.5) & (np.abs(y) < 5.5),
        "plateau (3 m up)": ground & (x > 30.5) & (np.abs(y) < 5.5),
        "sidewalk above the curb": ground & (np.abs(y) > 6.5) & (np.abs(y) < 9.0),
        "terrain rising at 10 %": ground & (np.abs(y) > 9.5),
        "behind the vehicle": ground & (x < -3.0),
    }
    for name, region in regions.items():
        recall = result.ground[region].mean()
        assert region.sum() > 200 and recall >= 0.98, f"{name}: recall {recall:.3f}"
    # Right at the curb the 0.5 m cells straddle the step: most still ground (the 12.5 cm
    # columns that straddle it rise like a face, so their points are unknown).
    edge = ground & (np.abs(y) > 5.5) & (np.abs(y) < 6.5)
    assert result.ground[edge].mean() >= 0.75


def test_synthetic_road_obstacles_stand_out_even_on_the_ramp(road):
    points, tag, result = road
    truth_height = points[:, 2] + H - _road_height(points[:, 0], points[:, 1])
    for name in ("car", "low box", "person"):
        # threshold 0.08 m + the surface estimate's error on a 15 % ramp
        above = (tag == name) & (truth_height > 0.2)
        assert above.sum() > 100
        assert np.all(result.lidar_class[above] == OBSTACLE), name
    # Heights above ground are metric, also on the ramp: the car roof 1.5 m, the box 0.35 m.
    for name, top in (("car", 1.5), ("low box", 0.35), ("person", 1.6)):
        part = (tag == name) & (truth_height > top - 0.1)
        np.testing.assert_allclose(result.height[part], truth_height[part], atol=0.08)


def test_a_multipath_pit_is_unknown_and_does_not_swallow_the_road(road):
    points, tag, result = road
    assert np.all(result.lidar_class[tag == "pit"] == UNKNOWN)
    near_pit = (tag == "ground") & (np.hypot(points[:, 0] - 7.7, points[:, 1]) < 5.0)
    assert near_pit.sum() > 500
    # (The road right at the car's sides, 2 m away, is the foot of a face: unknown.)
    assert result.ground[near_pit].mean() >= 0.98


def test_steeper_than_the_slope_limit_is_not_ground():
    # A 45-degree embankment 6-10 m ahead: not drivable, so not ground beyond its foot.
    points, _ = synthetic_road()
    flat = points[points[:, 0] < 6.0]
    xs, ys = np.meshgrid(np.arange(6.0, 10.0, 0.1), np.arange(-3.0, 3.0, 0.1))
    bank = np.column_stack([xs.ravel(), ys.ravel(), xs.ravel() - 6.0 - H])
    result = segment_ground(np.vstack([flat, bank]).astype(np.float32))
    on_bank = result.lidar_class[len(flat) :]
    high = bank[:, 2] > 0.3 - H
    assert np.all(on_bank[high] == OBSTACLE)


def test_result_layout_and_heights():
    points = np.array([[5.0, 0.0, -H], [5.0, 0.5, 1.0 - H], [np.nan, 0, 0]], np.float32)
    result = segment_ground(points, GroundParams(sensor_height=H))
    assert result.lidar_class.dtype == np.uint8 and result.lidar_class.shape == (3,)
    assert result.height.dtype == np.float32
    np.testing.assert_array_equal(result.lidar_class, [GROUND, OBSTACLE, UNKNOWN])
    np.testing.assert_allclose(result.height[:2], [0.0, 1.0], atol=1e-5)
    assert np.isnan(result.height[2])


# ------------------------------------------------------------------ bad input


def test_empty_cloud_gives_empty_results():
    for empty in (np.zeros((0, 3), np.float32), np.zeros((0, 4)), np.zeros((0, 64, 0))):
        if empty.ndim == 3:
            continue
        result = segment_ground(empty)
        assert result.lidar_class.shape == (0,) and result.height.shape == (0,)
    structured = np.zeros(0, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    assert segment_ground(structured).lidar_class.shape == (0,)


def test_all_nan_zero_and_out_of_range_points_are_unknown():
    nan = np.full((100, 3), np.nan, np.float32)
    assert np.all(segment_ground(nan).lidar_class == UNKNOWN)
    zeros = np.zeros((50, 3), np.float32)  # "no return" points of organized drivers
    assert np.all(segment_ground(zeros).lidar_class == UNKNOWN)
    inf = np.array([[np.inf, 0, 0], [1e6, 0, -H], [0, -np.inf, 0]], np.float32)
    assert np.all(segment_ground(inf).lidar_class == UNKNOWN)


def test_tiny_clouds_work():
    # Too few points to estimate a floor from: with the sensor height given, they work.
    given = GroundParams(sensor_height=H)
    one = segment_ground(np.array([[3.0, 0.0, -H]]), given)
    assert one.lidar_class.tolist() == [GROUND]
    # 2 m above the ground under the sensor 4 m away: steeper than the slope limit.
    same = segment_ground(np.tile([[4.0, 1.0, -H + 2.0]], (10, 1)), given)
    assert np.all(same.lidar_class == OBSTACLE)
    # Without it there is no floor to stand on: no ground, and the result says why.
    guessed = segment_ground(np.array([[3.0, 0.0, -H]]))
    assert guessed.lidar_class.tolist() == [OBSTACLE] and guessed.sensor_height is None
    assert "no floor found" in guessed.warnings[0]


def test_clouds_without_xyz_are_rejected_clearly():
    no_z = np.zeros(5, dtype=[("x", "<f4"), ("y", "<f4"), ("intensity", "<f4")])
    with pytest.raises(CloudLayoutError, match="no z"):
        segment_ground(no_z)
    with pytest.raises(CloudLayoutError, match="shape"):
        segment_ground(np.zeros((5, 2)))
    with pytest.raises(CloudLayoutError):
        segment_ground(np.zeros(5))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cell_size", -0.5, "cell_size must be > 0"),
        ("cell_size", 0.0, "cell_size must be > 0"),
        ("cell_size", 0.001, "grid cells"),
        ("max_slope_deg", 95.0, r"\[0, 90\)"),
        ("max_slope_deg", 90.0, r"\[0, 90\)"),
        ("max_global_slope_deg", -1.0, r"\[0, 90\)"),
        ("distance_threshold", -0.1, "must be > 0"),
        ("sensor_height", float("nan"), "finite"),
        ("sensor_height", -1.0, ">= 0"),
        ("min_range", 200.0, "min_range < max_range"),
        ("max_range", float("inf"), "finite"),
        ("fill_radius", 1.5, "whole number"),
        ("pit_depth", "deep", "finite number"),
        ("max_tilt_deg", 90.0, r"\[0, 90\)"),
        ("max_face_deg", 0.0, r"\(0, 90\]"),
        ("max_face_deg", 91.0, r"\(0, 90\]"),
        ("roll_deg", 200.0, r"\[-180, 180\]"),
        ("face_band", 0.0, "must be > 0"),
    ],
)
def test_absurd_parameters_raise_clear_errors(field, value, message):
    with pytest.raises(ValueError, match=message):
        GroundParams(**{field: value})
