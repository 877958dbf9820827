"""Tests for the procedural street scene and its ray caster.

The scene is the truth the rest of the project is tested against, so these tests check
exact, hand-computed values (ray hits, surface heights, depths) and the agreement between
the LiDAR truth, the camera truth and the calibration.
"""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.sample import (
    Box,
    CameraSpec,
    Cylinder,
    GroundPlane,
    LidarSpec,
    Sphere,
    cast_rays,
    generate_scene,
    intersect_nearest,
    segment_clear,
)
from seg_perception.sample.scene import BUILDING, CAR, ROAD, SIDEWALK, SKY

# ----------------------------------------------------------------------------- raycast


def test_ray_straight_down_hits_ground_at_height() -> None:
    t, cls, n = cast_rays(
        np.array([3.0, -2.0, 2.0]), np.array([[0.0, 0.0, -1.0]]), [GroundPlane(class_id=0)]
    )
    assert t[0] == pytest.approx(2.0, abs=1e-12)
    assert cls[0] == 0
    np.testing.assert_allclose(n[0], [0.0, 0.0, 1.0])


def test_unnormalized_direction_still_gives_metric_distance() -> None:
    t, _, _ = cast_rays(
        np.array([0.0, 0.0, 2.0]), np.array([[0.0, 0.0, -7.0], [3.0, 0, -4.0]]), [GroundPlane()]
    )
    np.testing.assert_allclose(t, [2.0, 2.0 * 5.0 / 4.0])


def test_box_face_distance_and_normal() -> None:
    box = Box(center=(10.0, 0.0, 1.0), size=(2.0, 2.0, 2.0), class_id=13)
    t, cls, n = cast_rays(np.array([0.0, 0.0, 1.0]), np.array([[1.0, 0.0, 0.0]]), [box])
    assert t[0] == pytest.approx(9.0)
    assert cls[0] == 13
    np.testing.assert_allclose(n[0], [-1.0, 0.0, 0.0], atol=1e-12)


def test_yawed_box_face_and_edge() -> None:
    yaw = np.pi / 4
    c, s = np.cos(yaw), np.sin(yaw)
    box = Box(center=(10 * c, 10 * s, 0.5), size=(2.0, 4.0, 1.0), yaw=yaw, class_id=2)
    # Along the box's own x axis: its face is 1 m (half length) before the center.
    t, _, n = cast_rays(np.array([0.0, 0.0, 0.5]), np.array([[c, s, 0.0]]), [box])
    assert t[0] == pytest.approx(9.0)
    np.testing.assert_allclose(n[0], [-c, -s, 0.0], atol=1e-12)
    # Same box seen along world +x from its center's y: hits the -x corner region; the
    # face is the local -x face (normal (-c, -s)) or -y face (normal (s, -c)).
    box2 = Box(center=(10.0, 0.0, 0.5), size=(2.0, 2.0, 1.0), yaw=yaw)
    t2, _, _ = cast_rays(np.array([0.0, 0.0, 0.5]), np.array([[1.0, 0.0, 0.0]]), [box2])
    assert t2[0] == pytest.approx(10.0 - np.sqrt(2.0))


def test_cylinder_side_and_cap() -> None:
    cyl = Cylinder(center_xy=(5.0, 0.0), radius=0.5, z_min=0.0, z_max=3.0, class_id=5)
    t, cls, n = cast_rays(np.array([0.0, 0.0, 1.0]), np.array([[1.0, 0.0, 0.0]]), [cyl])
    assert t[0] == pytest.approx(4.5)
    assert cls[0] == 5
    np.testing.assert_allclose(n[0], [-1.0, 0.0, 0.0], atol=1e-12)
    # From above onto the top cap, with the ground below: the cap is nearer and wins.
    t, cls, n = cast_rays(
        np.array([5.2, 0.1, 10.0]), np.array([[0.0, 0.0, -1.0]]), [GroundPlane(), cyl]
    )
    assert t[0] == pytest.approx(7.0)
    assert cls[0] == 5
    np.testing.assert_allclose(n[0], [0.0, 0.0, 1.0], atol=1e-12)
    # Above the cylinder's top but inside its radius horizontally: passes over it.
    t, _, _ = cast_rays(np.array([0.0, 0.0, 3.5]), np.array([[1.0, 0.0, 0.0]]), [cyl])
    assert np.isinf(t[0])


def test_sphere_hit() -> None:
    t, cls, n = cast_rays(
        np.zeros(3),
        np.array([[0.0, 0.0, 1.0]]),
        [Sphere(center=(0.0, 0.0, 5.0), radius=1.0, class_id=8)],
    )
    assert t[0] == pytest.approx(4.0)
    assert cls[0] == 8
    np.testing.assert_allclose(n[0], [0.0, 0.0, -1.0], atol=1e-12)


def test_nearest_of_two_primitives_wins_in_any_order() -> None:
    near = Box(center=(6.0, 0.0, 1.0), size=(1.0, 1.0, 2.0), class_id=11)
    far = Box(center=(20.0, 0.0, 5.0), size=(2.0, 20.0, 10.0), class_id=2)
    o = np.array([0.0, 0.0, 1.0])
    d = np.array([[1.0, 0.0, 0.0], [1.0, 0.5, 0.0]])
    for prims in ([near, far], [far, near]):
        t, cls, _ = cast_rays(o, d, prims)
        assert t[0] == pytest.approx(5.5)
        assert cls[0] == 11
        assert t[1] == pytest.approx(19.0 * np.sqrt(1.25))  # misses the near box
        assert cls[1] == 2


def test_misses_are_inf_and_255() -> None:
    t, cls, n = cast_rays(
        np.array([0.0, 0.0, 1.0]),
        np.array([[0.0, 0.0, 1.0], [1, 0, 0]]),
        [GroundPlane(), Box(center=(0.0, 5.0, 1.0), size=(1, 1, 1))],
    )
    assert np.all(np.isinf(t))
    assert np.all(cls == 255)
    assert np.all(n == 0)


def _random_world(rng: np.random.Generator) -> list:
    prims: list = [GroundPlane(height=-0.5, class_id=0)]
    for i in range(25):
        c = rng.uniform(-20, 20, 3)
        kind = i % 3
        if kind == 0:
            prims.append(
                Box(
                    center=tuple(c),
                    size=tuple(rng.uniform(0.2, 4, 3)),
                    yaw=float(rng.uniform(-3, 3)),
                    class_id=1 + i,
                )
            )
        elif kind == 1:
            prims.append(
                Cylinder(
                    center_xy=(c[0], c[1]),
                    radius=float(rng.uniform(0.1, 2)),
                    z_min=c[2],
                    z_max=c[2] + float(rng.uniform(0.5, 5)),
                    class_id=1 + i,
                )
            )
        else:
            prims.append(Sphere(center=tuple(c), radius=float(rng.uniform(0.2, 3)), class_id=1 + i))
    return prims


def test_culled_sweep_equals_brute_force_minimum() -> None:
    """The bounding-sphere culling and chunking must not change any result."""
    rng = np.random.default_rng(7)
    prims = _random_world(rng)
    d = rng.normal(size=(5000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    for o in (np.array([0.5, -0.3, 1.0]), rng.uniform(-25, 25, (5000, 3))):
        brute = np.stack([p.intersect(o, d, 1e-6) for p in prims])
        hits = intersect_nearest(o, d, prims, chunk_size=777)
        np.testing.assert_allclose(hits.t, brute.min(axis=0), rtol=1e-12)
        hit = np.isfinite(hits.t)
        assert hit.mean() > 0.3
        np.testing.assert_array_equal(hits.index[hit], brute.argmin(axis=0)[hit])
        np.testing.assert_allclose(np.linalg.norm(hits.normal[hit], axis=1), 1.0)
        # Normals face the incoming ray.
        assert np.all(np.einsum("ij,ij->i", hits.normal[hit], d[hit]) <= 1e-12)


def test_shared_origin_equals_per_ray_origins() -> None:
    rng = np.random.default_rng(1)
    prims = _random_world(rng)
    d = rng.normal(size=(3000, 3))
    o = np.array([1.0, 2.0, 0.5])
    a = intersect_nearest(o, d, prims)
    b = intersect_nearest(np.tile(o, (len(d), 1)), d, prims)
    np.testing.assert_allclose(a.t, b.t, rtol=1e-12)
    np.testing.assert_array_equal(a.index, b.index)


def test_segment_clear_exact_cases() -> None:
    """Occlusion truth on a hand-built world: a 0.2 m thick wall whose front face is at
    x = 5 between the eye and some targets."""
    wall = Box(center=(5.1, 0.0, 1.0), size=(0.2, 4.0, 2.0), class_id=2)
    prims = [GroundPlane(), wall]
    eye = np.array([0.0, 0.0, 1.0])
    targets = np.array(
        [
            [4.0, 0.0, 1.0],  # in front of the wall
            [5.0, 0.5, 1.0],  # on the wall's front face: a LiDAR return there is seen
            [5.3, 0.0, 1.0],  # just behind the front face, inside the wall
            [10.0, 0.0, 1.0],  # far behind the wall
            [10.0, 0.0, 4.0],  # behind the wall but the segment passes over it
            [6.0, 0.0, 0.0],  # on the ground behind the wall, the segment hits the wall
            [3.0, 0.0, 0.0],  # on the ground before the wall
            [10.0, 0.0, -1.0],  # below the ground: the ground occludes it
        ]
    )
    expected = [True, True, False, False, True, False, True, False]
    np.testing.assert_array_equal(segment_clear(eye, targets, prims), expected)
    # The tolerance is measured along the ray: 0.3 m behind the face needs epsilon > 0.3.
    assert segment_clear(eye, targets[2:3], prims, epsilon=0.31)[0]
    assert not segment_clear(eye, targets[2:3], prims, epsilon=0.29)[0]
    assert segment_clear(eye, eye[None], prims)[0]


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        cast_rays(np.zeros(3), np.zeros((2, 2)), [GroundPlane()])
    with pytest.raises(ValueError):
        cast_rays(np.zeros((3, 3)), np.ones((2, 3)), [GroundPlane()])


# ------------------------------------------------------------------------------- scene


@pytest.fixture(scope="module")
def scene():
    return generate_scene(seed=0)


@pytest.fixture(scope="module")
def scene_seed1():
    return generate_scene(seed=1)


def _project(scene, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain pinhole projection written out here, independent of the generator."""
    T = scene.T_cam_from_lidar
    K = scene.intrinsics.K
    p = points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * p[:, 0] / p[:, 2] + K[0, 2]
        v = K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2]
    return u, v, p[:, 2]


def _in_image(scene, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
    h, w = scene.label_image.shape
    ur, vr = np.rint(u), np.rint(v)
    return (z > 0.1) & (ur >= 0) & (ur < w) & (vr >= 0) & (vr < h)


def test_same_seed_is_identical_and_other_seed_differs(scene, scene_seed1) -> None:
    again = generate_scene(seed=0)
    for name in (
        "points",
        "point_labels",
        "point_ring",
        "point_instance",
        "visible_in_camera",
        "image",
        "label_image",
        "depth_image",
        "T_cam_from_lidar",
    ):
        np.testing.assert_array_equal(getattr(scene, name), getattr(again, name), err_msg=name)
    other = scene_seed1
    assert other.points.shape != scene.points.shape or np.any(other.points != scene.points)
    assert np.mean(other.label_image != scene.label_image) > 0.05
    assert np.mean(other.image != scene.image) > 0.5


def test_output_types_and_shapes(scene) -> None:
    n = len(scene.points)
    assert scene.points.dtype == np.float32 and scene.points.shape == (n, 4)
    assert scene.point_labels.dtype == np.uint8 and scene.point_labels.shape == (n,)
    assert scene.point_ring.dtype == np.uint16 and scene.point_ring.shape == (n,)
    assert scene.visible_in_camera.dtype == bool and scene.visible_in_camera.shape == (n,)
    assert scene.image.shape == (375, 1242, 3) and scene.image.dtype == np.uint8
    assert scene.label_image.shape == (375, 1242) and scene.label_image.dtype == np.uint8
    assert scene.depth_image.shape == (375, 1242) and scene.depth_image.dtype == np.float32
    assert scene.T_cam_from_lidar.shape == (4, 4)
    assert scene.lidar_frame_id == "lidar" and scene.camera_frame_id == "camera_optical"
    assert np.all(scene.point_labels < 19)  # every return is a labelled surface
    assert scene.points[:, 3].min() >= 0.0 and scene.points[:, 3].max() <= 1.0


def test_lidar_point_count_and_rings(scene) -> None:
    spec = scene.lidar
    rays = spec.num_beams * spec.num_columns
    assert rays == 64 * 1800
    assert len(scene.points) > 0.6 * rays
    assert scene.point_ring.max() == 63
    assert set(np.unique(scene.point_ring)) == set(range(64))
    # Ring = beam: the elevation of each (noise-free) point is its beam's elevation.
    p = scene.points[:, :3].astype(np.float64)
    elev = np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1]))
    np.testing.assert_allclose(elev, spec.beam_elevations()[scene.point_ring], atol=1e-5)
    np.testing.assert_allclose(np.rad2deg(spec.beam_elevations()[[0, -1]]), [2.0, -24.8])
    rng = np.linalg.norm(p, axis=1)
    assert rng.max() <= spec.max_range + 1e-3 and rng.min() >= spec.min_range - 1e-3


def test_lidar_points_lie_on_surfaces(scene) -> None:
    z_world = scene.points[:, 2].astype(np.float64) + scene.lidar.mount_height
    road = scene.point_labels == ROAD
    sidewalk = scene.point_labels == SIDEWALK
    assert road.sum() > 10000 and sidewalk.sum() > 1000
    np.testing.assert_allclose(z_world[road], 0.0, atol=1e-4)
    assert np.all((z_world[sidewalk] > -1e-4) & (z_world[sidewalk] < 0.15 + 1e-4))
    # Most sidewalk returns come from its top, exactly at curb height.
    # Returns come from its top, exactly at curb height, or from the curb face at the road
    # edge (|y| = half road width), nothing else.
    on_top = np.abs(z_world[sidewalk] - 0.15) < 1e-4
    assert np.mean(on_top) > 0.6
    y_face = np.abs(scene.points[sidewalk, 1][~on_top] + scene.T_world_from_lidar[1, 3])
    assert y_face.size > 0 and np.ptp(y_face) < 1e-3
    car = scene.point_labels == CAR
    assert car.sum() > 500
    assert np.all((z_world[car] > 0.25 - 1e-4) & (z_world[car] < 1.6 + 1e-4))


def test_label_image_and_rgb_look_like_a_street(scene) -> None:
    present = set(np.unique(scene.label_image).tolist())
    assert {SKY, ROAD, CAR, BUILDING, SIDEWALK} <= present
    assert scene.image.std() > 25
    # Sky is bluish, road is gray and darker than the sky.
    sky = scene.image[scene.label_image == SKY].astype(float).mean(axis=0)
    road = scene.image[scene.label_image == ROAD].astype(float).mean(axis=0)
    assert sky[2] > sky[0] + 20
    assert road.mean() < sky.mean() - 50


def test_depth_image_is_exact_on_the_road(scene) -> None:
    depth = scene.depth_image
    assert np.all(np.isinf(depth[scene.label_image == SKY]))
    assert np.all(np.isfinite(depth[scene.label_image != SKY]))
    # Level camera at height h: a road pixel in row v has depth h * fy / (v - cy).
    cam_height = scene.lidar.mount_height - 1.0
    rows, cols = np.nonzero(scene.label_image == ROAD)
    K = scene.intrinsics.K
    expected = cam_height * K[1, 1] / (rows - K[1, 2])
    np.testing.assert_allclose(depth[rows, cols], expected, rtol=1e-5)


def test_occlusion_exists_and_camera_agrees_with_lidar(scene) -> None:
    u, v, z = _project(scene, scene.points[:, :3])
    inside = _in_image(scene, u, v, z)
    vis = scene.visible_in_camera
    assert not np.any(vis & ~inside)
    occluded = inside & ~vis
    assert occluded.sum() > 500, occluded.sum()
    assert vis.sum() > 5000
    # Visible points: the pixel they project to shows their class and their depth.
    ur, vr = np.rint(u[vis]).astype(int), np.rint(v[vis]).astype(int)
    agree = scene.label_image[vr, ur] == scene.point_labels[vis]
    assert agree.mean() >= 0.97, agree.mean()
    d_pix = scene.depth_image[vr, ur]
    assert np.mean(np.abs(d_pix - z[vis]) < 0.02 * z[vis] + 0.05) > 0.98
    # A visible point's pixel almost never shows something clearly nearer (only at edges).
    assert np.mean(d_pix < z[vis] - 0.02 * z[vis] - 0.05) < 0.01
    # Occluded points: the pixel shows something clearly nearer than the point.
    uo, vo = np.rint(u[occluded]).astype(int), np.rint(v[occluded]).astype(int)
    assert np.mean(scene.depth_image[vo, uo] < z[occluded] - 0.05) > 0.9


def test_roof_lidar_sees_over_cars_what_the_camera_cannot(scene, scene_seed1) -> None:
    """The motivating case for occlusion-aware fusion: the roof LiDAR sees buildings,
    people and street furniture over and behind cars, and those points project onto the
    car in the image. Naive projection would label them "car"."""
    for s in (scene, scene_seed1):
        u, v, z = _project(s, s.points[:, :3])
        occluded = _in_image(s, u, v, z) & ~s.visible_in_camera
        pix = s.label_image[np.rint(v[occluded]).astype(int), np.rint(u[occluded]).astype(int)]
        wrong = pix != s.point_labels[occluded]
        assert wrong.sum() > 500, (s.seed, wrong.sum())
        assert np.mean(pix[wrong] == CAR) > 0.5
        assert np.sum(s.point_labels[occluded][wrong] == BUILDING) > 300


def test_calibration_and_intrinsics(scene) -> None:
    T = scene.T_cam_from_lidar
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
    # The camera center (1.5, 0, -1) in the LiDAR frame maps to the optical origin, and
    # LiDAR +x (forward) / +y (left) / +z (up) map to optical +z / -x / -y.
    np.testing.assert_allclose(T @ [1.5, 0.0, -1.0, 1.0], [0, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(T[:3, :3] @ [0, 1, 0], [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(T[:3, :3] @ [0, 0, 1], [0, -1, 0], atol=1e-12)
    fields = scene.intrinsics.to_camera_info_fields()
    assert set(fields) == {
        "width",
        "height",
        "K",
        "D",
        "R",
        "P",
        "distortion_model",
        "binning_x",
        "binning_y",
        "roi",
    }
    assert (fields["width"], fields["height"]) == (1242, 375)
    np.testing.assert_allclose(fields["K"], [[721.5, 0, 609.6], [0, 721.5, 172.9], [0, 0, 1]])
    np.testing.assert_allclose(fields["P"][:, :3], fields["K"])
    assert fields["distortion_model"] == "plumb_bob" and np.all(fields["D"] == 0)


def test_rotated_offset_camera_still_agrees_with_lidar() -> None:
    """A non-trivial extrinsic rotation catches transposed or mis-ordered calibration."""
    cam = CameraSpec(width=640, height=240, fx=400.0, fy=410.0, cx=330.0, cy=115.0)
    s = generate_scene(
        seed=3, camera=cam, camera_offset=(1.2, -0.4, -0.9), camera_rpy_deg=(2.0, 4.0, 10.0)
    )
    np.testing.assert_allclose(
        s.T_cam_from_lidar @ [1.2, -0.4, -0.9, 1.0], [0, 0, 0, 1], atol=1e-12
    )
    u, v, _ = _project(s, s.points[:, :3])
    vis = s.visible_in_camera
    assert vis.sum() > 2000
    agree = s.label_image[np.rint(v[vis]).astype(int), np.rint(u[vis]).astype(int)]
    assert np.mean(agree == s.point_labels[vis]) >= 0.97


def test_range_noise_moves_points_but_not_truth() -> None:
    lidar = LidarSpec(num_beams=16, horizontal_resolution_deg=1.0, range_noise_sigma=0.05)
    cam = CameraSpec(width=320, height=100, fx=186.0, fy=186.0, cx=160.0, cy=45.0)
    noisy = generate_scene(seed=2, lidar=lidar, camera=cam)
    exact = generate_scene(
        seed=2, lidar=LidarSpec(num_beams=16, horizontal_resolution_deg=1.0), camera=cam
    )
    np.testing.assert_array_equal(noisy.point_labels, exact.point_labels)
    np.testing.assert_array_equal(noisy.visible_in_camera, exact.visible_in_camera)
    diff = np.linalg.norm(noisy.points[:, :3] - exact.points[:, :3], axis=1)
    assert 0.02 < diff.mean() < 0.08


def test_project_camera_model_agrees_with_the_render(scene) -> None:
    """The intrinsics wire into the project's CameraModel and its projection sees the same
    pixels as the renderer."""
    pytest.importorskip("seg_perception.core.camera_model")
    model = scene.intrinsics.to_camera_model()
    T = scene.T_cam_from_lidar
    proj = model.project(scene.points[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3])
    assert not np.any(scene.visible_in_camera & ~proj.valid)
    rows, cols = proj.pixel_indices()
    vis = scene.visible_in_camera[proj.valid]
    labels = scene.point_labels[proj.valid]
    assert np.mean(scene.label_image[rows, cols][vis] == labels[vis]) >= 0.97
