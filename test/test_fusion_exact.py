"""The fast fusion (issue 12) computes exactly what fusion computed before.

``fusion_reference`` is ``label_points`` as it was before issue 12, kept verbatim. Every
case here runs both and compares labels, confidences and camera indices array-equal, plus
each camera's counts (points in view, occluded, labeled, won, window) and the measured
beam spacing: on a real KITTI frame with 1 and 6 cameras, on generated 32/64/128-beam
sweeps seen by 6-camera surround rigs mixing raw (distorted) and rectified cameras, with
occlusion on and off, automatic and explicit windows, and on bad input. The fast path must
also stay quiet: numpy warnings are errors while it runs.
"""

from __future__ import annotations

import dataclasses
import warnings

import fusion_reference as reference
import numpy as np
import pytest
from conftest import data_path

import seg_perception.core as core_package
from seg_perception.core import fusion_kernels, occlusion
from seg_perception.core.camera_model import CameraModel
from seg_perception.core.fusion import CameraLabels, FusionConfig, label_points
from seg_perception.core.fusion_view import camera_view, frustum_planes
from seg_perception.core.kitti import raw_drive_camera
from seg_perception.core.transforms import make_transform, transform_points
from seg_perception.sample import (
    SURROUND_CAMERA,
    CameraSpec,
    LidarSpec,
    generate_scene,
    surround_rig,
)

#: A quarter of the nuScenes-like resolution (same fields of view): quick to render.
QUARTER = SURROUND_CAMERA.scaled(0.25)
MIXED = ("raw", "rectified", "rectified", "raw", "rectified", "raw")
#: REP-103 LiDAR (x forward, y left, z up) -> optical camera (x right, y down, z forward).
T_OPTICAL_FROM_LIDAR = np.array(
    [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def search(request, monkeypatch) -> str:
    """Every case runs with the numpy occlusion search and with the compiled one (numba;
    skipped where it is not installed): both must compute what fusion computed before."""
    if request.param == "compiled" and not fusion_kernels.AVAILABLE:
        pytest.skip("numba is not installed: only the numpy occlusion search exists here")
    monkeypatch.setattr(occlusion, "COMPILED", request.param == "compiled")
    return request.param


def fuse_both(points: np.ndarray, cameras: list[CameraLabels], **options) -> None:
    """Run both implementations and require the same result, the fast one without a
    single numpy warning."""
    old_options = {k: v for k, v in options.items() if k != "workers"}
    unlabeled_id = old_options.pop("unlabeled_id", 255)
    old_cameras = [
        reference.CameraLabels(c.name, c.model, c.T_cam_from_lidar, c.labels, c.confidence, c.index)
        for c in cameras
    ]
    with np.errstate(all="ignore"):
        old = reference.label_points(
            points, old_cameras, reference.FusionConfig(**old_options), unlabeled_id
        )
    options.pop("unlabeled_id", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = label_points(points, cameras, FusionConfig(**options), unlabeled_id)
    np.testing.assert_array_equal(new.label, old.label)
    np.testing.assert_array_equal(new.confidence, old.confidence)
    np.testing.assert_array_equal(new.camera, old.camera)
    assert new.label.dtype == old.label.dtype
    assert (new.points_total, new.points_finite, new.points_in_range) == (
        old.points_total,
        old.points_finite,
        old.points_in_range,
    )
    assert [dataclasses.astuple(c) for c in new.cameras] == [
        dataclasses.astuple(c) for c in old.cameras
    ]
    new_spacing, old_spacing = new.beam_spacing, old.beam_spacing
    if new_spacing is None or old_spacing is None:
        assert new_spacing is old_spacing is None
    else:
        assert dataclasses.astuple(new_spacing) == dataclasses.astuple(old_spacing)


def turned(T_cam_from_lidar: np.ndarray, yaw_deg: float) -> np.ndarray:
    """The camera turned by ``yaw_deg`` about the LiDAR z axis."""
    yaw = np.deg2rad(yaw_deg)
    c, s = np.cos(yaw), np.sin(yaw)
    rotation = make_transform(np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]))
    return T_cam_from_lidar @ np.linalg.inv(rotation)


# --------------------------------------------------------------------------- KITTI


@pytest.fixture(scope="module")
def kitti_frame() -> tuple[np.ndarray, list[CameraLabels]]:
    calib = data_path("kitti_raw_2011_09_26")
    scan = calib / "velodyne_points/data/0000000000.bin"
    points = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)[:, :3]
    model, T_cam_from_velo = raw_drive_camera(calib)
    # Label and confidence images with structure at every scale (their content only
    # decides which class wins; the real pixels of frame 0 are not needed for that).
    rows, cols = np.mgrid[0:375, 0:1242]
    labels = ((rows // 23 + cols // 41) % 19).astype(np.uint8)
    labels[(rows // 7 + cols // 5) % 29 == 0] = 255  # some unlabeled pixels
    confidence = ((np.sin(rows / 9.0) * np.cos(cols / 13.0) + 1) / 2).astype(np.float32)
    cameras = [
        CameraLabels(f"cam{i}", model, turned(T_cam_from_velo, 60.0 * i), labels, confidence)
        for i in range(6)
    ]
    return points, cameras


@pytest.mark.parametrize("count", [1, 6])
@pytest.mark.parametrize(
    "options",
    [{}, {"occlusion": False}, {"occlusion_window": (8, 6)}],
    ids=["auto", "off", "window-8x6"],
)
def test_kitti_frame(kitti_frame, count, options) -> None:
    points, cameras = kitti_frame
    fuse_both(points, cameras[:count], **options)


def test_kitti_frame_rules_and_limits(kitti_frame) -> None:
    points, cameras = kitti_frame
    fuse_both(points, cameras, multi_camera="nearest", min_confidence=0.4)
    fuse_both(points, cameras[:3], multi_camera="first", min_range_m=4.0, max_range_m=40.0)
    fuse_both(points.astype(np.float64), cameras[:2], workers=2)


# ----------------------------------------------------------------------- generated


@pytest.fixture(scope="module", params=["hdl32", "vlp32c", "hdl64", "os1-128"])
def surround(request) -> tuple[str, np.ndarray, list[CameraLabels]]:
    """A sweep seen by 6 surround cameras, three raw (plumb_bob) and three rectified;
    vlp32c has non-uniform beam gaps (coarser grids for its outer beams). Two of the four
    render at an eighth of the resolution, to keep the module quick."""
    spec = QUARTER if request.param in ("hdl32", "os1-128") else SURROUND_CAMERA.scaled(0.125)
    rig = surround_rig(spec, projection=MIXED)
    scene = generate_scene(0, lidar=LidarSpec.model(request.param), cameras=rig)
    rng = np.random.default_rng(0)
    cameras = [
        CameraLabels(
            view.name,
            view.camera_model(),
            view.T_cam_from_lidar,
            view.label_image,
            rng.uniform(0, 1, view.label_image.shape).astype(np.float32) if i % 2 else None,
        )
        for i, view in enumerate(scene.cameras)
    ]
    return request.param, scene.points[:, :3], cameras


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"occlusion": False},
        {"occlusion_window": (12, 4)},
        {"occlusion_window": (5, 0)},
        {"beam_spacing_deg": (1.5, 0.3), "multi_camera": "nearest"},
        {"multi_camera": "first", "min_confidence": 0.3, "workers": 2},
    ],
    ids=["auto", "off", "window-12x4", "window-5x0", "given-gaps", "first-threads"],
)
def test_generated_surround_rig(surround, options) -> None:
    _, points, cameras = surround
    fuse_both(points, cameras, **options)


def test_bumper_camera_uses_coarse_occluder_levels() -> None:
    """The KITTI-like bumper camera sits 1.5 m ahead of the LiDAR: near objects are much
    nearer to it than to the LiDAR, so their points go to coarser occluder levels."""
    scene = generate_scene(1, camera=CameraSpec().scaled(0.5))
    camera = CameraLabels(
        "front", scene.intrinsics.to_camera_model(), scene.T_cam_from_lidar, scene.label_image
    )
    fuse_both(scene.points[:, :3], [camera])
    fuse_both(scene.points[:, :3], [camera], occlusion_window=(3, 6))


def test_camera_far_ahead_of_the_lidar_uses_the_coarsest_levels() -> None:
    """A camera 9 m ahead of the LiDAR: posts 0.8 m before it, a wall with windows 3 m
    before it and a far wall behind: points 1.4-12x nearer to the camera than to the
    LiDAR, searched on occluder levels 1 to 3."""
    rng = np.random.default_rng(8)
    elevation, azimuth = np.meshgrid(
        np.deg2rad(np.arange(-10, 10, 0.2)), np.arange(-0.3, 0.3, 0.002)
    )
    along = (np.cos(elevation) * np.cos(azimuth)).ravel()
    rays = np.stack(
        [along, (np.cos(elevation) * np.sin(azimuth)).ravel(), np.sin(elevation).ravel()]
    )
    ranges = 12.0 / along
    windows = (np.sin(azimuth.ravel() * 30) > 0.5) & (np.abs(elevation.ravel()) < 0.08)
    ranges[windows] = 30.0 / along[windows]
    posts = np.abs(np.sin(azimuth.ravel() * 40)) > 0.9
    ranges[posts] = 9.8 / along[posts]
    points = (rays * (ranges + rng.normal(scale=0.01, size=ranges.size))).T
    ahead = T_OPTICAL_FROM_LIDAR @ make_transform(np.eye(3), [-9.0, 0.0, 0.0])
    camera = _camera("ahead", _pinhole(320, 240, 160.0), ahead)
    fuse_both(points, [camera])
    fuse_both(points, [camera], beam_spacing_deg=(0.2, 0.1))


# ------------------------------------------------------------------------ bad input


def _pinhole(width: int = 200, height: int = 100, focal: float = 100.0) -> CameraModel:
    return CameraModel.pinhole(width, height, focal, focal, (width - 1) / 2, (height - 1) / 2)


def _camera(name: str, model: CameraModel, T: np.ndarray = T_OPTICAL_FROM_LIDAR, **kw):
    width, height = model.image_size
    labels = kw.pop("labels", None)
    if labels is None:
        labels = (np.arange(width * height) % 7).reshape(height, width).astype(np.uint8)
    return CameraLabels(name, model, T, labels, **kw)


def _wall_and_box(rng: np.random.Generator) -> np.ndarray:
    """A wall 20 m ahead with a box 8 m ahead in front of it: occlusion to find."""
    wall = np.column_stack(
        [np.full(4000, 20.0), rng.uniform(-15, 15, 4000), rng.uniform(-6, 6, 4000)]
    )
    box = np.column_stack([np.full(800, 8.0), rng.uniform(-2, 2, 800), rng.uniform(-1, 1, 800)])
    return np.vstack([wall, box])


def test_points_at_the_camera_centre_and_behind_every_camera() -> None:
    rng = np.random.default_rng(1)
    cloud = _wall_and_box(rng)
    centre = np.zeros((20, 3))
    near_centre = rng.normal(scale=1e-3, size=(200, 3))
    behind = np.column_stack([rng.uniform(-30, -1, 500), rng.normal(size=(500, 2))])
    points = np.vstack([cloud, centre, near_centre, behind, [[1e-3, 0, 0], [2e-3, 1e-4, 0]]])
    cameras = [_camera("front", _pinhole()), _camera("front-again", _pinhole())]
    fuse_both(points, cameras)
    fuse_both(points, cameras, occlusion=False)
    fuse_both(behind, cameras)  # nothing in front of any camera


def test_non_finite_coordinates() -> None:
    rng = np.random.default_rng(2)
    points = _wall_and_box(rng)
    bad = rng.choice(len(points), 300, replace=False)
    values = np.array([np.nan, np.inf, -np.inf])
    points[bad, rng.integers(0, 3, bad.size)] = values[rng.integers(0, 3, bad.size)]
    points[:5] = 3e38  # finite, but its squared range overflows
    cameras = [_camera("front", _pinhole())]
    fuse_both(points, cameras)
    fuse_both(points.astype(np.float32), cameras, max_range_m=25.0)
    fuse_both(np.full((50, 3), np.nan), cameras)


def test_cameras_with_no_or_full_overlap_and_a_one_pixel_image() -> None:
    rng = np.random.default_rng(3)
    points = _wall_and_box(rng).astype(np.float32)
    up = make_transform(np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])) @ T_OPTICAL_FROM_LIDAR
    one_pixel = CameraModel.pinhole(1, 1, 50.0, 50.0, 0.0, 0.0)
    cameras = [
        _camera("front", _pinhole()),
        _camera("same-place", _pinhole(), labels=np.full((100, 200), 3, np.uint8)),
        _camera("sky", _pinhole(), up),  # sees none of the points
        _camera("one-pixel", one_pixel),
    ]
    fuse_both(points, cameras)
    fuse_both(points, cameras[::-1], multi_camera="nearest")
    fuse_both(points, [cameras[3]])
    fuse_both(points, [cameras[2]], occlusion_window=(4, 2))


def test_tiny_clouds_keep_their_projection_path() -> None:
    """One to a few points: views this small are culled and projected the old way (a
    one-point matrix product takes another BLAS routine)."""
    rng = np.random.default_rng(4)
    cameras = [_camera("front", _pinhole())]
    for count in range(0, 7):
        points = np.column_stack(
            [rng.uniform(2, 10, count), rng.uniform(-3, 3, count), rng.uniform(-1, 1, count)]
        )
        fuse_both(points, cameras)
        fuse_both(points.astype(np.float32), cameras, occlusion=False)
    fuse_both(np.zeros((0, 3)), cameras)


def test_raw_cameras_other_lenses_and_odd_dtypes() -> None:
    rng = np.random.default_rng(5)
    points = _wall_and_box(rng)
    k = [100.0, 0.0, 99.5, 0.0, 100.0, 49.5, 0.0, 0.0, 1.0]
    models = [
        CameraModel.from_fields(200, 100, k, [-0.3, 0.09, 0.001, -0.002, 0.0], [], []),
        CameraModel.from_fields(
            200, 100, k, [0.1, -0.05, 0.0, 0.0, 0.01, 0.2, -0.1, 0.05], [], [],
            distortion_model="rational_polynomial",
        ),
        CameraModel.from_fields(200, 100, k, [0.05, -0.01, 0.002, 0.0], [], [],
                                distortion_model="equidistant"),
        CameraModel.from_fields(400, 200, [200, 0, 199.5, 0, 200, 99.5, 0, 0, 1],
                                [0.2, 0.0, 0.0, 0.0, 0.0], [], [], binning_x=2, binning_y=2),
    ]  # fmt: skip
    cameras = [_camera(f"raw{i}", m) for i, m in enumerate(models)]
    fuse_both(points, cameras)
    fuse_both(points.astype(np.float16), cameras[:1])
    fuse_both((points * 10).astype(np.int32), cameras[:1], occlusion=False)
    fuse_both(points, cameras[:2], unlabeled_id=300)


# ------------------------------------------------------------------------ pieces


def test_frustum_planes_keep_every_point_the_camera_images() -> None:
    """Culling must never drop a point the exact projection keeps (it decides nothing)."""
    rng = np.random.default_rng(6)
    points = rng.uniform(-1, 1, (200_000, 3)) * [30, 30, 10] + [15, 0, 0]
    k = [100.0, 0.0, 99.5, 0.0, 100.0, 49.5, 0.0, 0.0, 1.0]
    for model in (
        _pinhole(),
        CameraModel.from_fields(200, 100, k, [-0.3, 0.09, 0.001, -0.002, 0.0], [], []),
        CameraModel.from_fields(200, 100, k, [0.4, 0.2, 0.0, 0.0, 0.0], [], []),
    ):
        planes = frustum_planes(model, T_OPTICAL_FROM_LIDAR)
        inside = np.all(planes[:, :3] @ points.T + planes[:, 3:4] >= 0, axis=0)
        valid = model.project(transform_points(T_OPTICAL_FROM_LIDAR, points)).valid
        assert valid.any() and not np.any(valid & ~inside)
        assert inside.mean() < 3 * valid.mean()  # and it culls


def test_views_match_the_plain_projection() -> None:
    """camera_view: the points a camera images, at the pixels CameraModel.project gives."""
    rng = np.random.default_rng(7)
    points = (rng.normal(size=(50_000, 3)) * [20, 10, 3]).astype(np.float32)
    homogeneous = np.vstack([points.T, np.ones(len(points), np.float32)])
    T = make_transform(np.eye(3), [0.3, -0.2, 0.1]) @ T_OPTICAL_FROM_LIDAR
    for model in (_pinhole(), _pinhole(640, 480, 300.0)):
        view = camera_view(homogeneous, model, T)
        projection = model.project(transform_points(T, points))
        rows, cols = projection.pixel_indices()
        np.testing.assert_array_equal(view.index, np.flatnonzero(projection.valid))
        np.testing.assert_array_equal(view.rows, rows)
        np.testing.assert_array_equal(view.cols, cols)
        np.testing.assert_array_equal(view.depth, projection.depth[projection.valid])


def test_a_compiled_search_that_fails_to_load_leaves_the_numpy_one(monkeypatch, search) -> None:
    """numba installed but unusable (no writable cache, a broken build): fusion goes on
    with the numpy search, and computes the same."""
    import sys

    if search == "numpy":
        pytest.skip("the compiled search's fallback only matters where it is on")
    monkeypatch.setitem(sys.modules, "seg_perception.core.fusion_kernels", None)
    monkeypatch.delattr(core_package, "fusion_kernels", raising=False)
    rng = np.random.default_rng(9)
    fuse_both(_wall_and_box(rng), [_camera("front", _pinhole())])
    assert occlusion.COMPILED is False


def test_workers_must_be_a_positive_count() -> None:
    with pytest.raises(ValueError, match="workers"):
        FusionConfig(workers=0)
    assert FusionConfig(workers=3).workers == 3
