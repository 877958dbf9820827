"""Shared pytest fixtures: where the licensed real data lives, and skips when it does not.

The real sensor data (KITTI, SemanticKITTI, Cityscapes) is never copied into the
repository; it is read in place from ``../shared/data`` beside the checkout, or from
``$SEG_PERCEPTION_DATA``. Tests that need it skip with the reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SEG_PERCEPTION_DATA", REPO.parent / "shared" / "data"))


def data_path(relative: str) -> Path:
    """Path of a file or folder in the shared data, skipping the test when it is missing."""
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"needs the shared test data: {path} is absent (set SEG_PERCEPTION_DATA)")
    return path


@pytest.fixture
def kitti_raw() -> Path:
    return data_path("kitti_raw_2011_09_26")


@pytest.fixture
def kitti_bag() -> Path:
    return data_path("rosbags/kitti_2011_09_26_ros2")
