"""Fusion on hand-built cases with known answers: labels, occlusion, cameras, limits."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.fusion import (
    NO_CAMERA,
    CameraLabels,
    FusionConfig,
    FusionInputError,
    label_points,
)

# REP-103 LiDAR (x forward, y left, z up) -> optical camera (x right, y down, z forward).
T_OPTICAL_FROM_LIDAR = np.array(
    [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
CAMERA = CameraModel.pinhole(200, 100, 100.0, 100.0, 99.5, 49.5)


def _halves() -> np.ndarray:
    """Label image: class 1 on the left half, class 2 on the right half."""
    labels = np.full((100, 200), 1, dtype=np.uint8)
    labels[:, 100:] = 2
    return labels


def test_points_take_the_label_of_their_pixel():
    # Lidar y > 0 is left in the image (u < cx); y < 0 right.
    points = np.array([[10.0, 2.0, 0.0], [10.0, -2.0, 0.0], [-10.0, 0.0, 0.0], [10.0, 30.0, 0.0]])
    result = label_points(points, [CameraLabels("front", CAMERA, T_OPTICAL_FROM_LIDAR, _halves())])
    np.testing.assert_array_equal(result.label, [1, 2, 255, 255])  # behind, outside -> 255
    np.testing.assert_array_equal(result.camera, [0, 0, NO_CAMERA, NO_CAMERA])
    np.testing.assert_array_equal(result.confidence, [1.0, 1.0, 0.0, 0.0])
    assert result.cameras[0].points_in_view == 2 and result.cameras[0].points_won == 2


def _wall_and_hidden_points() -> tuple[np.ndarray, np.ndarray]:
    """A dense wall at 10 m (image rows/cols 30-70) and points 10 m behind and beside it."""
    y, z = np.meshgrid(np.linspace(-2.0, 2.0, 41), np.linspace(-2.0, 2.0, 9))
    wall = np.column_stack([np.full(y.size, 10.0), y.ravel(), z.ravel()])
    hidden = np.array([[20.0, 0.05, 0.05], [20.0, -1.0, 1.0]])  # project inside the wall
    beside = np.array([[20.0, 8.0, 0.0]])  # projects left of the wall, in the clear
    return np.vstack([wall, hidden, beside]), np.array([wall.shape[0], wall.shape[0] + 1])


def test_occluded_points_do_not_take_the_occluders_label():
    points, hidden = _wall_and_hidden_points()
    labels = np.full((100, 200), 2, dtype=np.uint8)
    labels[25:76, 75:126] = 13  # the wall's silhouette ("car")
    camera = CameraLabels("front", CAMERA, T_OPTICAL_FROM_LIDAR, labels)

    with_occlusion = label_points(points, [camera], FusionConfig(occlusion=True))
    np.testing.assert_array_equal(with_occlusion.label[hidden], [255, 255])
    assert with_occlusion.label[-1] == 2  # the clear background point keeps its label
    assert np.all(with_occlusion.label[: hidden[0]] == 13)  # the wall itself is labeled
    assert with_occlusion.cameras[0].points_occluded == 2

    without = label_points(points, [camera], FusionConfig(occlusion=False))
    np.testing.assert_array_equal(without.label[hidden], [13, 13])  # the wrong label
    assert without.cameras[0].points_occluded == 0


def test_a_point_just_behind_the_surface_within_tolerance_is_not_occluded():
    points, _ = _wall_and_hidden_points()
    near_behind = np.array([[10.3, 0.05, 0.05]])  # 0.3 m behind: within 0.5 m + 5%
    labels = np.full((100, 200), 13, dtype=np.uint8)
    result = label_points(
        np.vstack([points, near_behind]), [CameraLabels("c", CAMERA, T_OPTICAL_FROM_LIDAR, labels)]
    )
    assert result.label[-1] == 13


def test_far_ground_rings_are_not_marked_occluded_by_nearer_rings():
    # A 64-beam-like ground sweep seen by a camera 1 m below the LiDAR: rings are only a
    # pixel or two apart in the image and much nearer below each point, never above it.
    camera = CameraModel.pinhole(1242, 375, 721.5, 721.5, 609.6, 172.9)
    elevations = np.radians(np.linspace(-24.8, -2.0, 57))
    azimuths = np.radians(np.linspace(-45, 45, 450))
    elevation, azimuth = np.meshgrid(elevations, azimuths)
    ranges = 1.73 / np.sin(-elevation)
    points = np.column_stack(
        [
            (ranges * np.cos(elevation) * np.cos(azimuth)).ravel(),
            (ranges * np.cos(elevation) * np.sin(azimuth)).ravel(),
            np.full(ranges.size, -1.73),
        ]
    )
    T = T_OPTICAL_FROM_LIDAR.copy()
    T[:3, 3] = T_OPTICAL_FROM_LIDAR[:3, :3] @ [-1.5, 0.0, -1.0]  # camera 1.5 m ahead, 1 m lower
    labels = np.zeros((375, 1242), dtype=np.uint8)
    result = label_points(points, [CameraLabels("c", camera, T, labels)])
    assert result.cameras[0].points_in_view > 5000
    assert result.cameras[0].points_occluded == 0


def _two_cameras(conf_a: float, conf_b: float) -> list[CameraLabels]:
    a = CameraLabels(
        "a",
        CAMERA,
        T_OPTICAL_FROM_LIDAR,
        np.full((100, 200), 3, np.uint8),
        np.full((100, 200), conf_a, np.float32),
    )
    T_b = T_OPTICAL_FROM_LIDAR.copy()
    T_b[:3, 3] = [0.0, 0.0, 2.0]  # 2 m further back: the same points are 2 m farther
    b = CameraLabels(
        "b", CAMERA, T_b, np.full((100, 200), 4, np.uint8), np.full((100, 200), conf_b, np.float32)
    )
    return [a, b]


@pytest.mark.parametrize(
    ("rule", "conf_a", "conf_b", "winner"),
    [
        ("highest_confidence", 0.6, 0.9, 1),
        ("highest_confidence", 0.9, 0.6, 0),
        ("highest_confidence", 0.7, 0.7, 0),  # ties go to the lower camera index
        ("first", 0.1, 0.9, 0),
        ("nearest", 0.1, 0.9, 0),  # camera a is 2 m nearer to the point
    ],
)
def test_multi_camera_rule(rule, conf_a, conf_b, winner):
    points = np.array([[10.0, 0.0, 0.0]])
    result = label_points(points, _two_cameras(conf_a, conf_b), FusionConfig(multi_camera=rule))
    assert result.camera[0] == winner
    assert result.label[0] == (3, 4)[winner]
    assert result.confidence[0] == pytest.approx((conf_a, conf_b)[winner])
    assert [c.points_labeled for c in result.cameras] == [1, 1]
    assert [c.points_won for c in result.cameras] == [1 - winner, winner]


def test_range_limits_nan_points_min_confidence_and_unlabeled_pixels():
    labels = _halves()
    labels[:, :20] = 255  # an "ignore" strip on the far left
    confidence = np.full((100, 200), 0.9, np.float32)
    confidence[:, 100:] = 0.2
    points = np.array(
        [
            [10.0, 2.0, 0.0],  # class 1, conf 0.9
            [10.0, -2.0, 0.0],  # class 2 but conf 0.2 < min_confidence
            [1.0, 0.0, 0.0],  # closer than min_range
            [70.0, 1.0, 0.0],  # beyond max_range
            [np.nan, 0.0, 0.0],
            [10.0, np.inf, 0.0],
            [10.0, 9.5, 0.0],  # lands in the ignore strip
        ]
    )
    config = FusionConfig(min_range_m=2.0, max_range_m=50.0, min_confidence=0.5)
    result = label_points(
        points, [CameraLabels("c", CAMERA, T_OPTICAL_FROM_LIDAR, labels, confidence)], config
    )
    np.testing.assert_array_equal(result.label, [1, 255, 255, 255, 255, 255, 255])
    assert result.points_total == 7 and result.points_finite == 5
    assert result.points_in_range == 3
    assert result.points_labeled == 1


def test_empty_cloud_gives_empty_result():
    result = label_points(
        np.zeros((0, 3)), [CameraLabels("c", CAMERA, T_OPTICAL_FROM_LIDAR, _halves())]
    )
    assert result.label.shape == (0,) and result.points_labeled == 0


def test_all_nan_cloud_is_all_unlabeled():
    points = np.full((500, 3), np.nan, dtype=np.float32)
    result = label_points(points, [CameraLabels("c", CAMERA, T_OPTICAL_FROM_LIDAR, _halves())])
    assert np.all(result.label == 255) and result.points_finite == 0


def test_uint16_label_sets_use_65535_as_unlabeled():
    labels = np.full((100, 200), 300, dtype=np.uint16)
    points = np.array([[10.0, 0.0, 0.0], [-10.0, 0.0, 0.0]])
    result = label_points(
        points, [CameraLabels("c", CAMERA, T_OPTICAL_FROM_LIDAR, labels)], unlabeled_id=65535
    )
    assert result.label.dtype == np.uint16
    np.testing.assert_array_equal(result.label, [300, 65535])


def test_label_image_of_the_wrong_size_is_a_clear_error():
    camera = CameraLabels("front", CAMERA, T_OPTICAL_FROM_LIDAR, np.zeros((50, 100), np.uint8))
    with pytest.raises(FusionInputError, match=r"camera 'front'.*\(50, 100\).*200x100"):
        label_points(np.array([[10.0, 0.0, 0.0]]), [camera])


def test_points_of_the_wrong_shape_are_a_clear_error():
    with pytest.raises(FusionInputError, match=r"shape \(N, 3\)"):
        label_points(np.zeros((10, 2)), [])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"occlusion_window": (0, 2)}, "occlusion_window"),
        ({"min_range_m": 5.0, "max_range_m": 1.0}, "min_range_m < max_range_m"),
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"multi_camera": "vote"}, "multi_camera"),
        ({"depth_tolerance_m": -1.0}, "tolerances"),
    ],
)
def test_bad_fusion_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FusionConfig(**kwargs)


def test_a_missing_camera_does_not_shift_the_others_indices():
    """The `camera` field is the index in the configured list, whoever had data."""
    model = CameraModel.pinhole(64, 48, 40.0, 40.0, 32.0, 24.0)
    optical = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    points = np.array([[5.0, 0.0, 0.0], [6.0, 0.5, 0.2]])
    left = CameraLabels("left", model, optical, np.full((48, 64), 7, np.uint8), index=1)
    result = label_points(points, [left], FusionConfig(occlusion=False))
    np.testing.assert_array_equal(result.camera, [1, 1])
    np.testing.assert_array_equal(result.label, [7, 7])
    assert result.cameras[0].points_won == 2
