"""The scene generator beyond KITTI: LiDAR models, organized clouds with per-point time,
camera rigs with raw (plumb_bob) and rectified images, and a moving ego.

Everything is checked against exact truth: the poses the scene reports, the rays it
rendered and the project's own camera model must agree to well under a pixel.
"""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.sample import (
    LIDAR_MODELS,
    SURROUND_CAMERA,
    CameraMount,
    EgoMotion,
    LidarSpec,
    generate_scene,
    surround_rig,
)
from seg_perception.sample.sensors import distort, undistort

#: Half the resolution of the nuScenes-like camera: same field of view, 4x fewer rays.
HALF = SURROUND_CAMERA.scaled(0.5)


@pytest.fixture(scope="module")
def ouster_scene():
    """A 128-beam Ouster-like sweep seen by a 6-camera surround rig, standing still."""
    return generate_scene(0, lidar=LidarSpec.model("os1-128"), cameras=surround_rig(HALF))


@pytest.fixture(scope="module")
def raw_and_rectified():
    """One lens mounted twice: the raw image (through the lens) and its rectified image."""
    mounts = [
        CameraMount(name=f"front_{kind}", spec=HALF, offset=(0.8, 0.0, -0.35), projection=kind)
        for kind in ("raw", "rectified")
    ]
    return generate_scene(1, lidar=LidarSpec.model("hdl32"), cameras=mounts)


MOTION = EgoMotion(speed=12.0, yaw_rate=0.4)


@pytest.fixture(scope="module")
def moving_scene():
    """A 32-beam Velodyne-like sweep from a car driving 12 m/s through a 0.4 rad/s turn,
    with cameras exposing 0-50 ms after the sweep start, two of them raw."""
    rig = surround_rig(HALF, projection=("raw", "rectified", "rectified", "raw", "rectified",
                                         "rectified"))  # fmt: skip
    return generate_scene(2, lidar=LidarSpec.model("hdl32"), cameras=rig, motion=MOTION)


# ------------------------------------------------------------------------------ LiDARs


@pytest.mark.parametrize("name", sorted(LIDAR_MODELS))
def test_lidar_models_have_their_published_layouts(name) -> None:
    spec = LidarSpec.model(name)
    elevations = np.rad2deg(spec.beam_elevations())
    assert elevations.size == spec.num_beams
    assert np.all(np.diff(elevations) < 0)  # ring 0 on top
    expected = {"vlp16": 16, "hdl32": 32, "vlp32c": 32, "os1-32": 32, "os1-64": 64,
                "os1-128": 128, "os2-128": 128, "hdl64": 64}[name]  # fmt: skip
    assert spec.num_beams == expected
    assert spec.time_field == ("t" if name.startswith("os") else "time")


def test_lidar_model_overrides_and_bad_specs() -> None:
    assert LidarSpec.model("hdl32", rotation_hz=20.0).sweep_period == 0.05
    assert LidarSpec.model("vlp32c").elevations_deg[0] == 15.0
    with pytest.raises(ValueError, match="unknown LiDAR model"):
        LidarSpec.model("hdl-999")
    with pytest.raises(ValueError, match="num_beams"):
        LidarSpec(num_beams=3, elevations_deg=(1.0, 0.0))
    with pytest.raises(ValueError, match="decreasing"):
        LidarSpec(num_beams=2, elevations_deg=(0.0, 1.0))
    with pytest.raises(ValueError, match="time_field"):
        LidarSpec(time_field="stamp")  # type: ignore[arg-type]


def test_organized_cloud_layout_and_no_returns(ouster_scene) -> None:
    scene, lidar = ouster_scene, ouster_scene.lidar
    cloud = scene.cloud(organized=True)
    assert cloud.shape == (128, 1024)
    assert cloud.dtype.names == ("x", "y", "z", "intensity", "t", "ring", "range")
    assert cloud["t"].dtype == np.uint32 and cloud["ring"].dtype == np.uint16
    np.testing.assert_array_equal(cloud["ring"], np.arange(128)[:, None] * np.ones(1024, int))
    # Every return sits at its (ring, column); every other cell is NaN with zero range.
    at = (scene.point_ring.astype(int), scene.point_column.astype(int))
    np.testing.assert_array_equal(cloud["x"][at], scene.points[:, 0])
    np.testing.assert_array_equal(cloud["intensity"][at], scene.points[:, 3])
    returned = np.zeros(cloud.shape, dtype=bool)
    returned[at] = True
    assert np.isnan(cloud["x"][~returned]).all() and (cloud["range"][~returned] == 0).all()
    assert np.isfinite(cloud["z"][returned]).all()
    assert 0.02 < np.mean(~returned) < 0.5  # sky and beyond-range beams return nothing
    ranges_mm = np.linalg.norm(scene.points[:, :3].astype(np.float64), axis=1) * 1000
    np.testing.assert_allclose(cloud["range"][at], ranges_mm, atol=0.51)
    # Column c points along azimuth pi - c * 360/1024 deg (the sweep turns clockwise).
    xyz = np.stack([cloud[k][returned] for k in "xyz"], axis=1).astype(np.float64)
    azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
    expected = lidar.column_azimuths()[np.nonzero(returned)[1]]
    assert np.abs(np.angle(np.exp(1j * (azimuth - expected)))).max() < 1e-5


def test_time_field_follows_the_sweep(ouster_scene, moving_scene) -> None:
    organized = ouster_scene.cloud(organized=True)
    period_ns = 1e9 / ouster_scene.lidar.rotation_hz
    steps = np.diff(organized["t"].astype(np.int64), axis=1)
    assert np.all(steps > 0) and np.all(np.abs(steps - period_ns / 1024) <= 1)  # ~97.7 us
    assert np.all(organized["t"][:, 0] == 0) and organized["t"].max() < period_ns
    # Unorganized clouds come in firing order: time never goes back within the sweep.
    velodyne = moving_scene.cloud()
    assert velodyne.dtype.names == ("x", "y", "z", "intensity", "ring", "time")
    assert velodyne["time"].dtype == np.float32
    assert np.all(np.diff(velodyne["time"]) >= 0)
    assert velodyne["time"].min() >= 0.0 and velodyne["time"].max() < 0.1
    np.testing.assert_allclose(velodyne["time"], moving_scene.point_time, atol=1e-7)
    column_time = moving_scene.lidar.column_times()[moving_scene.point_column]
    np.testing.assert_array_equal(moving_scene.point_time, column_time)


def test_default_scene_is_the_single_kitti_camera() -> None:
    scene = generate_scene(0, lidar=LidarSpec(num_beams=16, horizontal_resolution_deg=1.0))
    assert len(scene.cameras) == 1
    view = scene.cameras[0]
    assert view.image is scene.image and view.visible is scene.visible_in_camera
    assert view.frame_id == scene.camera_frame_id == "camera_optical"
    np.testing.assert_array_equal(view.T_cam_from_lidar, scene.T_cam_from_lidar)
    assert scene.motion.is_static and np.all(scene.point_time < 0.1)
    np.testing.assert_allclose(scene.truth_points(), scene.points[:, :3], atol=1e-4)


# ------------------------------------------------------------------------------ cameras


def test_surround_rig_layout(ouster_scene) -> None:
    scene = ouster_scene
    names = [view.name for view in scene.cameras]
    assert names == ["front", "front_left", "back_left", "back", "back_right", "front_right"]
    offsets = [view.time_offset for view in scene.cameras]
    np.testing.assert_allclose(offsets, np.linspace(0.0, 0.05, 6))
    for index, view in enumerate(scene.cameras):
        # The optical axis looks out every 60 deg, counter-clockwise from the front.
        axis = view.T_world_from_camera[:3, 2]
        assert np.rad2deg(np.arctan2(axis[1], axis[0])) == pytest.approx(
            np.rad2deg(np.angle(np.exp(1j * np.deg2rad(60 * index)))), abs=1e-9
        )
        assert view.frame_id == f"{view.name}_optical"
        assert view.visible.sum() > 3000, view.name
    # Neighbouring 65 deg cameras overlap a little, but no point is seen by three.
    seen_by = np.sum([view.visible for view in scene.cameras], axis=0)
    assert seen_by.max() == 2 and np.mean(seen_by > 0) > 0.5


def _rendered_rays_reproject(view, model) -> float:
    """Largest pixel error of re-projecting every rendered hit with the camera model."""
    rays = view.pixel_rays().reshape(-1, 3)
    depth = view.depth_image.reshape(-1).astype(np.float64)
    hit = np.isfinite(depth)
    points = rays[hit] * (depth[hit] / rays[hit, 2])[:, None]
    projection = model.project(points)
    assert projection.valid.all()
    v, u = np.divmod(np.flatnonzero(hit), view.spec.width)
    return float(np.abs(projection.uv - np.column_stack([u, v])).max())


def test_raw_and_rectified_truth_projections_are_exact(raw_and_rectified) -> None:
    scene = raw_and_rectified
    raw, rectified = scene.cameras
    assert raw.camera_model().mode == "raw" and rectified.camera_model().mode == "rectified"
    # Both calibrations are the driver's: K, D, R, P, identical for the two images.
    np.testing.assert_array_equal(raw.intrinsics.D, rectified.intrinsics.D)
    assert np.any(raw.intrinsics.D != 0)
    for view in (raw, rectified):
        model = view.camera_model()
        # Every rendered pixel's surface point projects back onto that pixel's center
        # (the depth image is float32: a few 1e-5 px).
        assert _rendered_rays_reproject(view, model) < 1e-3, view.name
        # The exact LiDAR truth points land on pixels of their own class, within 0.5 px
        # of a pixel center by construction of the rounding.
        projection = model.project(scene.camera_points(scene.cameras.index(view)))
        assert not np.any(view.visible & ~projection.valid)
        rows, cols = projection.pixel_indices()
        seen = view.visible[projection.valid]
        labels = view.label_image[rows, cols][seen]
        assert np.mean(labels == scene.point_labels[projection.valid][seen]) > 0.98, view.name
        # Depth agrees too, except at silhouette edges.
        rendered = view.depth_image[rows, cols][seen]
        depth = projection.depth[projection.valid][seen]
        assert np.mean(np.abs(rendered - depth) < 0.02 * depth + 0.05) > 0.97
    # The lens matters: the raw image is not the rectified one.
    assert np.mean(raw.label_image != rectified.label_image) > 0.01
    points = scene.camera_points(0)
    both = raw.visible & rectified.visible
    shift = raw.camera_model().project(points[both]).uv
    shift -= rectified.camera_model().project(points[both]).uv
    assert np.abs(shift).max() > 5.0


def test_plumb_bob_inverse_is_exact() -> None:
    D = np.asarray(SURROUND_CAMERA.D)
    x, y = np.meshgrid(np.linspace(-0.7, 0.7, 41), np.linspace(-0.45, 0.45, 31))
    xd, yd = distort(x.ravel(), y.ravel(), D)
    back_x, back_y = undistort(xd, yd, D)
    np.testing.assert_allclose(back_x, x.ravel(), atol=1e-12)
    np.testing.assert_allclose(back_y, y.ravel(), atol=1e-12)


# ------------------------------------------------------------------------------ motion


def test_motion_poses_are_exact(moving_scene) -> None:
    scene = moving_scene
    # Points are reported in the LiDAR frame at their own firing time (no compensation):
    # the pose at that time takes them exactly onto the surface they hit.
    poses = scene.T_world_from_lidar_at(scene.point_time)
    xyz = scene.points[:, :3].astype(np.float64)
    world = np.einsum("nij,nj->ni", poses[:, :3, :3], xyz) + poses[:, :3, 3]
    np.testing.assert_allclose(world, scene.point_world, atol=2e-4)
    # Constant speed along a circular arc: 1.2 m and 0.04 rad over the 100 ms sweep.
    start, end = scene.T_world_from_lidar_at(np.array([0.0, 0.1]))
    travelled = np.linalg.norm(end[:3, 3] - start[:3, 3])
    assert travelled == pytest.approx(2 * 12.0 / 0.4 * np.sin(0.4 * 0.1 / 2), rel=1e-12)
    assert np.arctan2(end[1, 0], end[0, 0]) == pytest.approx(0.04, abs=1e-12)
    # Perfect compensation to the sweep start is what truth_points gives.
    compensated = np.linalg.inv(start) @ np.column_stack([world, np.ones(len(world))]).T
    np.testing.assert_allclose(compensated[:3].T, scene.truth_points(0.0), atol=2e-4)
    # The ego moved: uncompensated points disagree with the truth at the start by up to
    # the distance driven.
    error = np.linalg.norm(xyz - scene.truth_points(0.0), axis=1)
    assert 1.0 < error.max() < 1.3 + 0.04 * 120


def test_each_camera_exposes_at_its_own_stamp(moving_scene) -> None:
    scene = moving_scene
    for index, view in enumerate(scene.cameras):
        # Its pose is the rig's extrinsic applied to the LiDAR pose at its stamp.
        expected = scene.T_world_from_lidar_at(view.time_offset) @ np.linalg.inv(
            view.T_cam_from_lidar
        )
        np.testing.assert_allclose(view.T_world_from_camera, expected, atol=1e-12)
        # Exact truth projections hit pixels of their class...
        model = view.camera_model()
        projection = model.project(scene.camera_points(index))
        rows, cols = projection.pixel_indices()
        seen = view.visible[projection.valid]
        truth = scene.point_labels[projection.valid][seen]
        assert np.mean(view.label_image[rows, cols][seen] == truth) > 0.98, view.name
        # ...and T_cam_from_lidar_at maps each reported point there, motion included.
        maps = scene.T_cam_from_lidar_at(index, scene.point_time[view.visible])
        xyz = scene.points[view.visible, :3].astype(np.float64)
        in_camera = np.einsum("nij,nj->ni", maps[:, :3, :3], xyz) + maps[:, :3, 3]
        np.testing.assert_allclose(in_camera, scene.camera_points(index)[view.visible], atol=5e-4)
