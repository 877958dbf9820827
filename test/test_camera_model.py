"""Camera model: exact against KITTI's calibration files and against OpenCV's projections."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seg_perception.core.camera_model import CalibrationError, CameraModel
from seg_perception.core.kitti import load_velodyne_bin, raw_drive_camera, reference_projection
from seg_perception.core.transforms import transform_points

K_KITTI_02 = [[959.791, 0.0, 696.0217], [0.0, 956.9251, 224.1806], [0.0, 0.0, 1.0]]
D_KITTI_02 = [-0.3691481, 0.1968681, 0.001353473, 0.0005677587, -0.06770705]


def _in_image(uv: np.ndarray, depth: np.ndarray, width: int, height: int) -> np.ndarray:
    return (
        (depth > 0)
        & (uv[:, 0] >= -0.5)
        & (uv[:, 0] < width - 0.5)
        & (uv[:, 1] >= -0.5)
        & (uv[:, 1] < height - 0.5)
    )


@pytest.mark.parametrize("frame", range(10))
def test_kitti_raw_projection_matches_calibration_files(kitti_raw, frame):
    model, T_cam_from_velo = raw_drive_camera(kitti_raw)
    points = load_velodyne_bin(kitti_raw / f"velodyne_points/data/{frame:010d}.bin")
    projection = model.project(transform_points(T_cam_from_velo, points[:, :3]))

    reference_uv, reference_z = reference_projection(model.P, T_cam_from_velo, points)
    expected_valid = _in_image(reference_uv, reference_z, 1242, 375)
    assert model.image_size == (1242, 375)
    assert expected_valid.sum() > 15000  # a real frame: ~16k of ~114k points in view
    np.testing.assert_array_equal(projection.valid, expected_valid)
    error = np.abs(projection.uv[expected_valid] - reference_uv[expected_valid]).max()
    assert error < 1e-3


def _random_points_in_view(n: int, max_tan: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(1.0, 60.0, n)
    x = rng.uniform(-max_tan, max_tan, n) * z
    y = rng.uniform(-max_tan * 0.5, max_tan * 0.5, n) * z
    return np.column_stack([x, y, z])


def test_plumb_bob_matches_opencv_project_points():
    model = CameraModel.from_fields(1392, 512, K_KITTI_02, D_KITTI_02, np.eye(3), [])
    assert model.mode == "raw"
    points = _random_points_in_view(5000, 0.7)
    projection = model.project(points)
    expected, _ = cv2.projectPoints(
        points, np.zeros(3), np.zeros(3), np.array(K_KITTI_02), np.array(D_KITTI_02)
    )
    expected = expected.reshape(-1, 2)
    assert projection.valid.sum() > 2000
    error = np.abs(projection.uv[projection.valid] - expected[projection.valid]).max()
    assert error < 1e-3


def test_rational_polynomial_matches_opencv_project_points():
    k = [[600.0, 0.0, 640.5], [0.0, 601.0, 360.25], [0.0, 0.0, 1.0]]
    d = [0.12, -0.05, 0.001, -0.0008, 0.004, 0.45, -0.03, 0.012]
    model = CameraModel.from_fields(1280, 720, k, d, np.eye(3), [], "rational_polynomial")
    points = _random_points_in_view(5000, 1.2, seed=1)
    projection = model.project(points)
    expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), np.array(k), np.array(d))
    expected = expected.reshape(-1, 2)
    assert projection.valid.sum() > 2000
    assert np.abs(projection.uv[projection.valid] - expected[projection.valid]).max() < 1e-3


def test_equidistant_matches_opencv_fisheye():
    k = [[380.0, 0.0, 639.5], [0.0, 380.0, 399.5], [0.0, 0.0, 1.0]]
    d = [0.05, -0.01, 0.002, -0.0004]
    model = CameraModel.from_fields(1280, 800, k, d, np.eye(3), [], "equidistant")
    points = _random_points_in_view(5000, 3.0, seed=2)
    projection = model.project(points)
    expected, _ = cv2.fisheye.projectPoints(
        points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), np.array(k), np.array(d)
    )
    expected = expected.reshape(-1, 2)
    assert projection.valid.sum() > 2000
    assert np.abs(projection.uv[projection.valid] - expected[projection.valid]).max() < 1e-3


def test_points_beyond_the_distortion_range_are_rejected():
    # KITTI's raw lens: r * (1 + k1 r^2 + ...) peaks near r ~ 1.21 (50 deg); a point 58 deg
    # off-axis folds back into the image in OpenCV but is not really visible.
    model = CameraModel.from_fields(1392, 512, K_KITTI_02, D_KITTI_02, np.eye(3), [])
    assert 1.19 < model.valid_radius < 1.23
    far_off_axis = np.array([[np.tan(np.radians(58.0)), 0.0, 1.0]])
    folded, _ = cv2.projectPoints(
        far_off_axis, np.zeros(3), np.zeros(3), np.array(K_KITTI_02), np.array(D_KITTI_02)
    )
    assert 0 <= folded[0, 0, 0] < 1392  # OpenCV puts it inside the image...
    assert not model.project(far_off_axis).valid[0]  # ...we do not.


def test_rectified_mode_uses_p_and_r():
    # A stereo right camera: P carries the baseline, R a small rectifying rotation.
    angle = np.radians(2.0)
    r = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    p = np.array([[700.0, 0, 600, -700.0 * 0.54], [0, 700.0, 180, 0], [0, 0, 1, 0]])
    model = CameraModel.from_fields(1242, 375, np.eye(3) * 700, [0] * 5, r, p)
    assert model.mode == "rectified"
    point = np.array([[1.0, 0.5, 10.0]])
    rect = r @ point[0]
    expected_u = (700 * rect[0] + 600 * rect[2] - 700 * 0.54) / rect[2]
    expected_v = (700 * rect[1] + 180 * rect[2]) / rect[2]
    np.testing.assert_allclose(model.project(point).uv[0], [expected_u, expected_v], atol=1e-9)


def test_binning_and_roi_map_pixels_to_the_smaller_image():
    full = CameraModel.pinhole(1000, 800, 500.0, 500.0, 499.5, 399.5)
    cropped = CameraModel.from_fields(
        1000, 800, full.K, [], np.eye(3), full.P, binning_x=2, binning_y=2, roi=(100, 200, 600, 400)
    )
    assert cropped.image_size == (300, 200)
    points = _random_points_in_view(2000, 0.9, seed=3)
    a, b = full.project(points), cropped.project(points)
    expected = (a.uv - [100, 200] + 0.5) / 2 - 0.5
    np.testing.assert_allclose(b.uv, expected, atol=1e-9)
    inside = (expected[:, 0] >= -0.5) & (expected[:, 0] < 299.5)
    inside &= (expected[:, 1] >= -0.5) & (expected[:, 1] < 199.5)
    np.testing.assert_array_equal(b.valid, inside)  # all points are in front


def test_non_finite_and_behind_points_are_invalid_not_errors():
    model = CameraModel.pinhole(640, 480, 500, 500, 320, 240)
    points = np.array([[0, 0, 5.0], [np.nan, 0, 5], [0, np.inf, 5], [0, 0, -5.0], [0, 0, 0.0]])
    projection = model.project(points)
    np.testing.assert_array_equal(projection.valid, [True, False, False, False, False])
    np.testing.assert_allclose(projection.uv[0], [320, 240])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"K": np.zeros(9), "P": np.zeros(12)}, "non-positive focal lengths"),
        ({"P": [np.nan] * 12}, "P contains NaN"),
        ({"K": [1.0] * 8}, "K must have 9 values"),
        ({"distortion_model": "kannala_brandt_9"}, "unknown distortion_model 'kannala_brandt_9'"),
        ({"D": [0.1, 0.2, 0.0], "distortion_model": "equidistant"}, "needs 4 coefficients"),
        ({"width": 0}, "image size must be positive"),
        ({"D": [0.1, np.inf, 0, 0, 0]}, "D contains NaN"),
        ({"binning_x": 1000}, "binning 1000x1 of a 640x480 image leaves no pixel"),
        ({"roi": (600, 0, 100, 0)}, r"roi \(x 600, y 0, 100x0\) reaches beyond the 640x480"),
    ],
)
def test_bad_calibration_gets_a_specific_error(kwargs, message):
    fields = {
        "width": 640,
        "height": 480,
        "K": [500.0, 0, 320, 0, 500, 240, 0, 0, 1],
        "D": [0.0] * 5,
        "R": np.eye(3),
        "P": [500.0, 0, 320, 0, 0, 500, 240, 0, 0, 0, 1, 0],
    }
    fields.update(kwargs)
    with pytest.raises(CalibrationError, match=message):
        CameraModel.from_fields(**fields)


def test_project_rejects_wrong_shapes():
    model = CameraModel.pinhole(640, 480, 500, 500, 320, 240)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        model.project(np.zeros((4, 2)))
