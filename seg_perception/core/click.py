"""The object at a clicked 3D point, from a promptable model (SAM) and the cloud.

RViz's "Publish Point" tool sends a point on the displayed cloud. Each camera that sees it
is prompted there (a positive point prompt at the pixel it projects to) and returns the
object's mask; the masks go through fusion as one-segment panoptic images, so the object's
points are found with the same occlusion test as labels (a point hidden behind the object
is not selected), and the cameras' masks join into one object where their points overlap
or are connected (:mod:`.instances`). The selected object is the fused instance the
clicked point itself belongs to.

The click is snapped to the nearest point of the cloud first (RViz picks on the rendered
points, but a click in the empty space between them lands on whatever is behind), and
refused when no point lies within ``max_distance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.fusion import CameraLabels, FusionConfig, label_points
from seg_perception.core.instances import Instance, instances_3d

#: The label a prompt's mask puts on the object's pixels (its class is unknown: 0).
OBJECT_LABEL = 0
#: Farthest (m) a click may be from the cloud's nearest point.
MAX_CLICK_DISTANCE_M = 1.0


class ClickError(ValueError):
    """A click that selects nothing, with why (outside every camera, off the cloud)."""


class Prompter(Protocol):
    """Anything that returns the mask of the object at pixel prompts (SamEngine)."""

    def segment_prompt(
        self,
        image_rgb: np.ndarray,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ) -> Any: ...  # .mask (H, W) bool, .score float


@dataclass
class ClickCamera:
    """One camera's latest image with what is needed to project into it."""

    name: str
    model: CameraModel
    T_cam_from_lidar: np.ndarray
    image: np.ndarray


@dataclass
class ClickedObject:
    """What a click selected: ``indices`` of the cloud's points (empty: none), the object
    (``instance``: id 1, class ``OBJECT_LABEL``), the cloud point the click snapped to,
    and per prompted camera its name, pixel (u, v) and the model's score."""

    indices: np.ndarray
    instance: Instance | None
    snapped_index: int
    prompted: list[tuple[str, tuple[float, float], float]] = field(default_factory=list)
    reason: str = ""


def click_pixels(
    point: np.ndarray, cameras: list[ClickCamera]
) -> list[tuple[int, tuple[float, float]]]:
    """(camera position, (u, v)) of each camera whose image the LiDAR-frame ``point`` is in."""
    seen = []
    homogeneous = np.append(np.asarray(point, np.float64)[:3], 1.0)
    for position, camera in enumerate(cameras):
        in_camera = (camera.T_cam_from_lidar @ homogeneous)[:3]
        projection = camera.model.project(in_camera[None])
        if projection.valid[0] and projection.depth[0] > 0:
            u, v = projection.uv[0]
            seen.append((position, (float(u), float(v))))
    return seen


def select_clicked(
    xyz: np.ndarray,
    click: np.ndarray,
    cameras: list[ClickCamera],
    prompter: Prompter,
    config: FusionConfig | None = None,
    max_distance: float = MAX_CLICK_DISTANCE_M,
) -> ClickedObject:
    """The object at ``click`` (LiDAR frame, m) in the (N, 3) cloud ``xyz``; ClickError
    when the click is off the cloud or outside every camera."""
    xyz = np.asarray(xyz)[:, :3]
    click = np.asarray(click, np.float64)[:3]
    if not len(xyz):
        raise ClickError("no cloud received yet: nothing to select")
    distance = np.linalg.norm(xyz.astype(np.float64) - click, axis=1)
    distance[~np.isfinite(distance)] = np.inf
    snapped = int(np.argmin(distance))
    if not distance[snapped] <= max_distance:
        raise ClickError(
            f"the click at ({click[0]:.2f}, {click[1]:.2f}, {click[2]:.2f}) is "
            f"{distance[snapped]:.2f} m from the nearest point of the cloud (at most "
            f"{max_distance} m): click on the cloud's points"
        )
    seen = click_pixels(xyz[snapped], cameras)
    if not seen:
        names = ", ".join(c.name for c in cameras) or "none configured"
        raise ClickError(
            f"the click at ({click[0]:.2f}, {click[1]:.2f}, {click[2]:.2f}) is outside every "
            f"camera ({names}): nothing can be prompted"
        )
    views, prompted = [], []
    for position, (u, v) in seen:
        camera = cameras[position]
        result = prompter.segment_prompt(
            camera.image, points=np.array([[u, v]]), point_labels=np.array([1])
        )
        mask = np.asarray(result.mask, dtype=bool)
        labels = np.where(mask, OBJECT_LABEL, 255).astype(np.uint8)
        views.append(CameraLabels(
            camera.name, camera.model, camera.T_cam_from_lidar, labels, index=position,
            instances=mask.astype(np.int32), instance_scores={1: float(result.score)},
        ))  # fmt: skip
        prompted.append((camera.name, (u, v), float(result.score)))
    fused = label_points(xyz, views, config)
    ids = fused.instance
    chosen = int(ids[snapped]) if ids is not None else 0
    if chosen == 0:
        return ClickedObject(
            np.zeros(0, np.int64), None, snapped, prompted,
            "the masks do not cover the clicked point where a camera sees it unoccluded",
        )  # fmt: skip
    selected = np.flatnonzero(ids == chosen)
    one = np.zeros(len(xyz), dtype=np.uint32)
    one[selected] = 1
    score = fused.instance_scores.get(chosen, 1.0)
    (instance,) = instances_3d(xyz, one, fused.label, {1: score})
    return ClickedObject(selected, instance, snapped, prompted)
