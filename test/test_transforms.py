"""Rigid transforms and the static transform tree."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.core.transforms import (
    TransformError,
    TransformTree,
    check_rigid,
    compose,
    invert_transform,
    make_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
    transform_from_translation_quaternion,
    transform_points,
)


def test_quaternion_matrix_round_trip_on_random_rotations():
    rng = np.random.default_rng(0)
    quaternions = rng.normal(size=(200, 4))
    quaternions /= np.linalg.norm(quaternions, axis=1, keepdims=True)
    for q in quaternions:
        rotation = quaternion_to_matrix(q)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        back = matrix_to_quaternion(rotation)
        expected = q if q[3] >= 0 else -q
        np.testing.assert_allclose(back, expected, atol=1e-9)


def test_quaternion_known_rotation_and_order():
    # 90 degrees about z, ROS order (x, y, z, w): x axis -> y axis.
    q = [0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)]
    np.testing.assert_allclose(quaternion_to_matrix(q) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_zero_quaternion_is_rejected():
    with pytest.raises(TransformError, match="zero or not finite"):
        quaternion_to_matrix([0, 0, 0, 0])


def test_invert_compose_and_transform_points():
    T = transform_from_translation_quaternion([1.0, -2.0, 0.5], [0.1, 0.2, 0.3, 0.9])
    np.testing.assert_allclose(compose(T, invert_transform(T)), np.eye(4), atol=1e-12)
    points = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 2.0]])
    moved = transform_points(T, points)
    homogeneous = np.column_stack([points, np.ones(2)]) @ T.T
    np.testing.assert_allclose(moved, homogeneous[:, :3], atol=1e-12)


def test_check_rigid_rejects_non_rigid_matrices():
    with pytest.raises(TransformError, match="not orthonormal"):
        check_rigid(make_transform(np.diag([1.0, 2.0, 1.0])))
    with pytest.raises(TransformError, match="4x4"):
        check_rigid(np.eye(3))
    with pytest.raises(TransformError, match="NaN"):
        check_rigid(np.full((4, 4), np.nan))


def test_tree_chains_and_inverts():
    tree = TransformTree()
    T_base_lidar = make_transform(quaternion_to_matrix([0, 0, 0.2, 0.98]), [1.0, 0.0, 1.8])
    T_base_cam = make_transform(quaternion_to_matrix([0.5, -0.5, 0.5, -0.5]), [1.5, 0.1, 1.2])
    tree.add("base_link", "lidar", T_base_lidar)
    tree.add("/base_link", "camera", T_base_cam)  # a leading slash is ignored, as in tf2
    expected = invert_transform(T_base_cam) @ T_base_lidar
    np.testing.assert_allclose(tree.lookup("camera", "lidar"), expected, atol=1e-12)
    np.testing.assert_allclose(
        tree.lookup("lidar", "camera"), invert_transform(expected), atol=1e-12
    )
    np.testing.assert_allclose(tree.lookup("lidar", "lidar"), np.eye(4))


def test_tree_reports_disconnected_frames():
    tree = TransformTree()
    tree.add("a", "b", np.eye(4))
    tree.add("c", "d", np.eye(4))
    with pytest.raises(TransformError, match="not connected"):
        tree.lookup("a", "d")
    with pytest.raises(TransformError, match=r"unknown frame\(s\) \['x'\]"):
        tree.lookup("a", "x")
