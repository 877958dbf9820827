"""The promptable mode's core (issue 15, part 4): a clicked 3D point selects that object's
visible points, scored against the scene generator's exact truth. A label source standing
in for SAM returns the true instance mask at the prompted pixel (SAM's weights cannot be
downloaded here); the real SAM engine runs the same path with random weights."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.core.click import ClickCamera, ClickError, click_pixels, select_clicked
from seg_perception.sample import CameraMount, CameraSpec, generate_scene


class TruthPrompter:
    """The true instance at the prompted pixel, as its mask (what a perfect SAM gives)."""

    def __init__(self, scene) -> None:
        self.instances = {id(view.image): view.instance_image for view in scene.cameras}
        self.calls = 0

    def segment_prompt(self, image_rgb, points=None, point_labels=None, box=None):
        self.calls += 1
        instances = self.instances[id(image_rgb)]
        u, v = np.rint(points[0]).astype(int)
        picked = instances[v, u]
        mask = (instances == picked) if picked else np.zeros(instances.shape, bool)
        return type("Mask", (), {"mask": mask, "score": 0.9})()


def cameras_of(scene) -> list[ClickCamera]:
    return [ClickCamera(v.name, v.camera_model(), v.T_cam_from_lidar, v.image)
            for v in scene.cameras]  # fmt: skip


def biggest_visible_object(scene, visible) -> int:
    truth = scene.point_thing_instance
    ids, counts = np.unique(truth[visible & (truth > 0)], return_counts=True)
    return int(ids[np.argmax(counts)])


def click_on(scene, instance, visible) -> np.ndarray:
    """A click 5 cm off the object's visible point nearest its visible points' median."""
    points = scene.points[:, :3][visible & (scene.point_thing_instance == instance)]
    middle = points[np.argmin(np.linalg.norm(points - np.median(points, axis=0), axis=1))]
    return middle + np.array([0.0, 0.05, 0.0])


def precision_recall(scene, selected, instance, visible) -> tuple[float, float]:
    """(share of the selected points that are the object's, any side of it: its far side
    projects onto it; share of its visible points selected)."""
    mine = scene.point_thing_instance == instance
    precision = np.count_nonzero(mine[selected]) / max(selected.size, 1)
    return precision, np.count_nonzero(mine[selected] & visible[selected]) / np.count_nonzero(
        mine & visible
    )


@pytest.fixture(scope="module")
def scene():
    return generate_scene(0)


def test_a_click_on_a_car_selects_its_visible_points(scene):
    visible = scene.visible_in_camera
    car = biggest_visible_object(scene, visible)
    prompter = TruthPrompter(scene)
    found = select_clicked(scene.points, click_on(scene, car, visible), cameras_of(scene), prompter)
    precision, recall = precision_recall(scene, found.indices, car, visible)
    # Seed 0, its biggest visible object: 1197 points selected, precision 0.998, recall 0.993.
    assert precision >= 0.98 and recall >= 0.95, (precision, recall)
    assert found.instance.point_count == found.indices.size and found.instance.score == 0.9
    assert [name for name, _, _ in found.prompted] == ["front"] and prompter.calls == 1
    want = scene.points[found.indices, :3].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(found.instance.centroid, want, rtol=1e-9)


def test_two_cameras_that_see_the_click_give_one_object():
    spec = CameraSpec().scaled(0.5)
    rig = (
        CameraMount("left", spec, offset=(1.5, 0.3, -1.0), rpy_deg=(0.0, 0.0, 8.0)),
        CameraMount("right", spec, offset=(1.5, -0.3, -1.0), rpy_deg=(0.0, 0.0, -8.0)),
    )
    scene = generate_scene(0, cameras=rig)
    both = scene.cameras[0].visible & scene.cameras[1].visible
    car = biggest_visible_object(scene, both)
    either = scene.cameras[0].visible | scene.cameras[1].visible
    found = select_clicked(
        scene.points, click_on(scene, car, both), cameras_of(scene), TruthPrompter(scene)
    )
    assert {name for name, _, _ in found.prompted} == {"left", "right"}
    precision, recall = precision_recall(scene, found.indices, car, either)
    # Measured: 0.959 and 1.0 (half-resolution cameras: a coarser occlusion test lets 17
    # points behind the car's edge through).
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)


def test_clicks_that_select_nothing_say_why(scene):
    cameras = cameras_of(scene)
    behind = scene.points[np.argmin(scene.points[:, 0]), :3]  # behind the front camera
    assert click_pixels(behind, cameras) == []
    with pytest.raises(ClickError, match=r"outside every camera \(front\)"):
        select_clicked(scene.points, behind, cameras, TruthPrompter(scene))
    with pytest.raises(ClickError, match="m from the nearest point of the cloud"):
        select_clicked(scene.points, np.array([0.0, 0.0, 80.0]), cameras, TruthPrompter(scene))
    with pytest.raises(ClickError, match="no cloud"):
        select_clicked(np.zeros((0, 3)), np.zeros(3), cameras, TruthPrompter(scene))


def test_the_sam_engine_runs_the_click_end_to_end(scene):
    from seg_perception.engines import EngineConfig, create_engine

    sam = create_engine(EngineConfig(model="random:sam"))
    visible = scene.visible_in_camera
    car = biggest_visible_object(scene, visible)
    found = select_clicked(scene.points, click_on(scene, car, visible), cameras_of(scene), sam)
    ((name, (u, v), score),) = found.prompted
    assert name == "front" and 0 <= u < 1242 and 0 <= v < 375 and np.isfinite(score)
    # Random weights: any mask; the result is either an object holding the clicked point
    # or empty with the reason.
    assert found.snapped_index in found.indices or (found.indices.size == 0 and found.reason)
