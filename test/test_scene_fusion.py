"""Fusion on generated scenes with exact truth: accuracy, and what occlusion handling buys."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.core.fusion import FusionConfig
from seg_perception.core.pipeline import Pipeline
from seg_perception.demo import scene_frame, score
from seg_perception.sample import generate_scene


@pytest.fixture(scope="module", params=[0, 1, 2, 3])
def scene_and_frame(request):
    scene = generate_scene(request.param)
    return scene, scene_frame(scene)


def _run(scene, frame, occlusion: bool):
    result = Pipeline(fusion=FusionConfig(occlusion=occlusion)).process(frame)
    return result, score(scene, frame, result)


def test_fusion_labels_at_least_99_percent_of_visible_points(scene_and_frame):
    scene, frame = scene_and_frame
    result, with_occlusion = _run(scene, frame, occlusion=True)
    assert with_occlusion.camera_visible > 10000
    assert with_occlusion.visible_accuracy >= 0.99
    assert result.fusion.cameras[0].points_occluded > 500  # the scene has real occlusions


def test_turning_occlusion_handling_off_makes_it_worse(scene_and_frame):
    scene, frame = scene_and_frame
    _, on = _run(scene, frame, occlusion=True)
    _, off = _run(scene, frame, occlusion=False)
    # Hidden points that project onto a nearer object take its label without the depth test.
    assert off.hidden_mislabeled > 4 * on.hidden_mislabeled
    assert off.hidden_mislabeled > 0.5 * off.hidden_in_image
    # Over everything the camera's image covers, correct = visible points with their true
    # class and hidden points left unlabeled (or, by luck, with their true class).
    in_image_on = on.visible_correct + (on.hidden_in_image - on.hidden_mislabeled)
    in_image_off = off.visible_correct + (off.hidden_in_image - off.hidden_mislabeled)
    total = on.camera_visible + on.hidden_in_image
    assert in_image_on / total > in_image_off / total + 0.04


def test_labels_come_only_from_points_in_the_image(scene_and_frame):
    scene, frame = scene_and_frame
    result, _ = _run(scene, frame, occlusion=True)
    labeled = result.fusion.label != 255
    np.testing.assert_array_equal(result.fusion.camera[labeled], 0)
    assert labeled.sum() <= result.fusion.cameras[0].points_in_view
    assert result.label_sources == [frame.cameras[0].labels_description]
