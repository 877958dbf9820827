"""Occlusion handling for any beam count: the window follows the sensor.

Issue 11: on a 32-beam sensor the fixed 8-row window was smaller than the beam gap in
pixels, so nothing was ever occluded. The window is now derived per camera from the
cloud's measured beam gaps and the focal length; these tests hold it to the issue's bar
on generated scenes with exact truth (32 and 128 beams, the KITTI-like bumper camera and
a 6-camera surround rig) and check that the KITTI-like 64-beam results did not get worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.fusion import (
    FALLBACK_WINDOW,
    BeamSpacing,
    CameraLabels,
    FusionConfig,
    FusionResult,
    label_points,
    measure_beam_spacing,
    occlusion_window_for,
)
from seg_perception.core.transforms import transform_points
from seg_perception.sample import SURROUND_CAMERA, LidarSpec, generate_scene, surround_rig

KITTI_CAMERA = CameraModel.pinhole(1242, 375, 721.5, 721.5, 609.6, 172.9)
KITTI_SCAN = (
    Path(__file__).resolve().parents[2]
    / "shared/data/kitti_raw_2011_09_26/velodyne_points/data/0000000000.bin"
)


@dataclass
class Score:
    visible: int
    visible_correct: int
    hidden: int
    hidden_mislabeled: int
    result: FusionResult

    @property
    def visible_accuracy(self) -> float:
        return self.visible_correct / self.visible


def _fuse(scene, config: FusionConfig) -> Score:
    """Fuse every camera's truth label image; score like the demo, over all cameras: a
    point seen by any camera must get its class, a point in some image but seen by none
    must not get a wrong one."""
    cameras = [
        CameraLabels(view.name, view.camera_model(), view.T_cam_from_lidar, view.label_image)
        for view in scene.cameras
    ]
    xyz = scene.points[:, :3]
    result = label_points(xyz, cameras, config)
    visible = np.any([view.visible for view in scene.cameras], axis=0)
    in_image = np.any(
        [cam.model.project(transform_points(cam.T_cam_from_lidar, xyz)).valid for cam in cameras],
        axis=0,
    )
    hidden = in_image & ~visible
    label, truth = result.label, scene.point_labels
    return Score(
        visible=int(visible.sum()),
        visible_correct=int(np.count_nonzero(label[visible] == truth[visible])),
        hidden=int(hidden.sum()),
        hidden_mislabeled=int(np.count_nonzero(hidden & (label != 255) & (label != truth))),
        result=result,
    )


SCENES = {
    # The KITTI-like bumper camera (1.5 m ahead of and 1 m below the LiDAR).
    "hdl32-bumper-0": lambda: generate_scene(0, lidar=LidarSpec.model("hdl32")),
    "hdl32-bumper-1": lambda: generate_scene(1, lidar=LidarSpec.model("hdl32")),
    "os1-128-bumper-0": lambda: generate_scene(0, lidar=LidarSpec.model("os1-128")),
    "os1-128-bumper-1": lambda: generate_scene(1, lidar=LidarSpec.model("os1-128")),
    # Six nuScenes-like cameras at half resolution (same fields of view).
    "hdl32-surround": lambda: generate_scene(
        0, lidar=LidarSpec.model("hdl32"), cameras=surround_rig(SURROUND_CAMERA.scaled(0.5))
    ),
    "os1-128-surround": lambda: generate_scene(
        0, lidar=LidarSpec.model("os1-128"), cameras=surround_rig(SURROUND_CAMERA.scaled(0.5))
    ),
}


@pytest.fixture(scope="module", params=sorted(SCENES))
def scored(request):
    scene = SCENES[request.param]()
    return (
        request.param,
        scene,
        _fuse(scene, FusionConfig()),
        _fuse(scene, FusionConfig(occlusion=False)),
    )


def test_occlusion_works_on_32_and_128_beams_with_default_settings(scored) -> None:
    name, _, on, off = scored
    assert on.hidden > 300 and off.hidden_mislabeled > 0.7 * off.hidden, name
    # The bar: hidden-but-in-image points mislabeled cut by at least 80%...
    assert on.hidden_mislabeled <= 0.2 * off.hidden_mislabeled, (name, on, off)
    # ...while at least 99% of the visible points keep their correct class.
    assert on.visible_accuracy >= 0.99, (name, on.visible_accuracy)
    # The symptom of the issue was "0 points occluded in all six cameras".
    for stats in on.result.cameras:
        assert stats.points_occluded > 0, (name, stats)


def test_the_window_follows_the_sensor_and_the_camera(scored) -> None:
    name, scene, on, _ = scored
    spacing = on.result.beam_spacing
    assert spacing.source == "measured"
    gap = np.abs(np.rad2deg(np.diff(scene.lidar.beam_elevations()))).mean()
    assert spacing.vertical_deg == pytest.approx(gap, rel=0.01)
    assert spacing.horizontal_deg == pytest.approx(scene.lidar.horizontal_resolution_deg, rel=0.01)
    for view, stats in zip(scene.cameras, on.result.cameras, strict=True):
        rows, cols = stats.occlusion_window
        beam_gap_px = view.spec.fy * np.tan(np.deg2rad(gap))
        # More than one beam gap, less than two (and at least the floor of 3 rows).
        assert max(beam_gap_px, 3) <= rows <= max(2 * beam_gap_px, 3), (name, rows, beam_gap_px)
        assert cols >= 6


def test_a_fixed_8_row_window_fails_on_32_beams() -> None:
    """The issue: a 32-beam sensor's gaps (~17 px here) exceed 8 rows. Even with today's
    tests around the window, a fixed 8-row one misses most hidden points."""
    scene = generate_scene(1, lidar=LidarSpec.model("hdl32"))
    fixed = _fuse(scene, FusionConfig(occlusion_window=(8, 6)))
    off = _fuse(scene, FusionConfig(occlusion=False))
    auto = _fuse(scene, FusionConfig())
    assert fixed.hidden_mislabeled > 0.4 * off.hidden_mislabeled
    assert auto.hidden_mislabeled < 0.2 * off.hidden_mislabeled
    assert auto.result.cameras[0].occlusion_window == (22, 6)


#: Today's reference on the KITTI-like default scenes, with the fixed (8, 6) window of
#: before this change (README "How occlusion is handled"): per seed, hidden points
#: mislabeled and visible points labeled correctly.
KITTI_REFERENCE = {0: (189, 17155), 1: (236, 15381), 2: (195, 16166), 3: (226, 16047)}


@pytest.mark.parametrize("seed", sorted(KITTI_REFERENCE))
def test_kitti_like_64_beams_are_no_worse_than_before(seed) -> None:
    scene = generate_scene(seed)
    now = _fuse(scene, FusionConfig())
    hidden_before, correct_before = KITTI_REFERENCE[seed]
    assert now.result.cameras[0].occlusion_window == (7, 6)
    assert now.hidden_mislabeled < 0.6 * hidden_before
    assert now.visible_correct >= correct_before


def test_measured_beam_gaps_of_generated_sensors() -> None:
    for name, vertical, horizontal in (
        ("vlp16", 2.0, 0.2),
        ("os2-128", 22.5 / 127, 360 / 1024),
        ("hdl64", 26.8 / 63, 0.2),
    ):
        noisy = LidarSpec.model(name, range_noise_sigma=0.03, horizontal_resolution_deg=horizontal)
        spacing = measure_beam_spacing(generate_scene(3, lidar=noisy).points[:, :3])
        assert spacing.vertical_deg == pytest.approx(vertical, rel=0.01), name
        assert spacing.horizontal_deg == pytest.approx(horizontal, rel=0.01), name
        assert spacing.profile is None, name  # uniform layouts: one gap for every beam
    # A non-uniform layout (VLP-32C): the typical gap is the dense 1/3 deg at the
    # horizon, and the profile tells each beam's own gaps.
    spacing = measure_beam_spacing(generate_scene(0, lidar=LidarSpec.model("vlp32c")).points)
    assert spacing.vertical_deg == pytest.approx(0.333, abs=0.01)
    gaps = spacing.vertical_gap_at(np.sin(np.deg2rad([-1.0, -24.9])))
    np.testing.assert_allclose(gaps, [0.333, 9.36], atol=0.02)


def test_clouds_without_beam_structure_fall_back_to_the_fixed_window() -> None:
    cloud = np.random.default_rng(0).uniform(-30, 30, size=(50_000, 3))
    spacing = measure_beam_spacing(cloud)
    assert spacing.source == "unknown"
    assert occlusion_window_for(KITTI_CAMERA, spacing) == (FALLBACK_WINDOW, 2)
    assert measure_beam_spacing(np.full((10, 3), np.nan)).source == "unknown"


def test_given_beam_spacing_and_explicit_windows_win() -> None:
    scene = generate_scene(0, lidar=LidarSpec(num_beams=16, horizontal_resolution_deg=0.5))
    xyz = scene.points[:, :3]
    camera = CameraLabels(
        "front", scene.intrinsics.to_camera_model(), scene.T_cam_from_lidar, scene.label_image
    )
    given = label_points(xyz, [camera], FusionConfig(beam_spacing_deg=(1.0, 0.2)))
    assert given.beam_spacing == BeamSpacing(1.0, 0.2, "given")
    assert given.cameras[0].occlusion_window == (round(1.3 * 721.5 * np.tan(np.deg2rad(1.0))), 6)
    half = label_points(xyz, [camera], FusionConfig(beam_spacing_deg=(1.0, 0.0)))
    assert half.beam_spacing.horizontal_deg == pytest.approx(0.5, rel=0.01)  # measured
    explicit = label_points(xyz, [camera], FusionConfig(occlusion_window=(30, 9)))
    assert explicit.cameras[0].occlusion_window == (30, 9)
    off = label_points(xyz, [camera], FusionConfig(occlusion=False))
    assert off.beam_spacing is None and off.cameras[0].occlusion_window is None
    # The window scales with the focal length: a 2x zoom doubles it.
    spacing = BeamSpacing(1.33, 0.16)
    for focal in (721.5, 1443.0):
        model = CameraModel.pinhole(1242, 375, focal, focal, 609.6, 172.9)
        rows = round(1.3 * focal * np.tan(np.deg2rad(1.33)))
        band = max(2, np.ceil(0.5 * focal * np.tan(np.deg2rad(0.16)) + 0.5))
        assert occlusion_window_for(model, spacing) == ((rows, 6), band)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"occlusion_window": "big"}, "occlusion_window"),
        ({"occlusion_window": (0, 6)}, "occlusion_window"),
        ({"beam_spacing_deg": (-1.0, 0.0)}, "beam_spacing_deg"),
        ({"beam_spacing_deg": (1.0,)}, "beam_spacing_deg"),
    ],
)
def test_bad_window_settings_are_rejected(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        FusionConfig(**kwargs)


@pytest.mark.skipif(not KITTI_SCAN.is_file(), reason="needs ../shared/data (real KITTI scans)")
def test_real_kitti_scan_measures_an_hdl64e() -> None:
    """KITTI's HDL-64E: ~0.42 deg between beams (its lasers scatter with range: split
    bands are merged), 0.18 deg between firings; the KITTI camera gets a 7x6 window."""
    points = np.fromfile(KITTI_SCAN, dtype=np.float32).reshape(-1, 4)[:, :3]
    spacing = measure_beam_spacing(points)
    assert 0.38 < spacing.vertical_deg < 0.5
    assert spacing.horizontal_deg == pytest.approx(0.18, abs=0.01)
    assert occlusion_window_for(KITTI_CAMERA, spacing)[0] == (7, 6)
