"""The package's own messages (``seg_perception/msg``) filled from pipeline objects.

The message modules exist only after the colcon build; they are imported lazily so the
rest of the package works without it, and a missing build is reported with what to run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seg_perception.core.instances import Instance
from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import FrameResult


def _messages() -> Any:
    try:
        import seg_perception.msg as msg
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            "seg_perception messages are not built: run scripts/setup.sh (or colcon build) "
            "and source install/setup.bash"
        ) from error
    return msg


def class_map_message(label_set: LabelSet, header: Any = None) -> Any:
    """``seg_perception/ClassMap`` describing ``label_set`` (publish it latched)."""
    msg = _messages()
    message = msg.ClassMap(label_set=label_set.name, unlabeled_id=label_set.unlabeled_id)
    if header is not None:
        message.header = header
    message.classes = [
        msg.LabelClass(id=class_id, name=name, r=color[0], g=color[1], b=color[2])
        for class_id, name, color in zip(
            label_set.ids, label_set.names, label_set.colors, strict=True
        )
    ]
    return message


def label_set_from_class_map(message: Any) -> LabelSet:
    """Inverse of :func:`class_map_message`, for subscribers (planners, replay checks)."""
    return LabelSet(
        name=message.label_set,
        ids=tuple(int(c.id) for c in message.classes),
        names=tuple(c.name for c in message.classes),
        colors=tuple((int(c.r), int(c.g), int(c.b)) for c in message.classes),
    )


def fusion_status_fields(
    result: FrameResult,
    cameras_expected: int | None = None,
    frame_ids: list[str] | None = None,
    time_offsets: list[float] | None = None,
    warnings: list[str] | None = None,
    camera_indices: list[int] | None = None,
    motions: list[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """FusionStatus field values (cameras as dicts): one source for rclpy and bag builders.

    The lists are aligned with the cameras that took part (``result.fusion.cameras``):
    ``camera_indices`` their index in the configured list, ``motions`` the (m, deg) of the
    motion compensation applied to each.
    """
    fusion = result.fusion
    cameras = [
        {
            "camera_name": stats.name,
            "frame_id": frame_ids[index] if frame_ids else "",
            "time_offset": float(time_offsets[index]) if time_offsets else 0.0,
            "points_in_view": stats.points_in_view,
            "points_occluded": stats.points_occluded,
            "points_labeled": stats.points_labeled,
            "points_won": stats.points_won,
            "camera_index": int(camera_indices[index]) if camera_indices else index,
            "motion_m": float(motions[index][0]) if motions else 0.0,
            "motion_deg": float(motions[index][1]) if motions else 0.0,
        }
        for index, stats in enumerate(fusion.cameras)
    ]
    return {
        "points_total": fusion.points_total,
        "points_finite": fusion.points_finite,
        "points_in_range": fusion.points_in_range,
        "points_labeled": fusion.points_labeled,
        "cameras_expected": len(fusion.cameras) if cameras_expected is None else cameras_expected,
        "cameras_used": len(fusion.cameras),
        "cameras": cameras,
        "stage_names": list(result.timings_ms),
        "stage_ms": [float(v) for v in result.timings_ms.values()],
        "warnings": list(warnings or []),
    }


def fusion_status_message(
    result: FrameResult,
    header: Any = None,
    cameras_expected: int | None = None,
    frame_ids: list[str] | None = None,
    time_offsets: list[float] | None = None,
    warnings: list[str] | None = None,
    camera_indices: list[int] | None = None,
    motions: list[tuple[float, float]] | None = None,
) -> Any:
    """``seg_perception/FusionStatus`` for one fused cloud (stamp = the cloud's)."""
    msg = _messages()
    values = fusion_status_fields(
        result, cameras_expected, frame_ids, time_offsets, warnings, camera_indices, motions
    )
    values["cameras"] = [msg.CameraFusionStats(**camera) for camera in values["cameras"]]
    message = msg.FusionStatus(**values)
    if header is not None:
        message.header = header
    return message


def instances_message(instances: list[Instance], label_set: LabelSet, header: Any = None) -> Any:
    """``seg_perception/Instance3DArray`` of one frame's objects (stamp = the cloud's)."""
    from geometry_msgs.msg import Point, Pose, Quaternion, Vector3

    msg = _messages()
    message = msg.Instance3DArray()
    if header is not None:
        message.header = header
    for item in instances:
        half, center = item.box_yaw / 2, item.box_center
        message.instances.append(
            msg.Instance3D(
                id=item.id,
                class_id=item.class_id,
                class_name=label_set.name_of(item.class_id),
                score=item.score,
                point_count=item.point_count,
                centroid=Point(x=item.centroid[0], y=item.centroid[1], z=item.centroid[2]),
                min_bound=Point(x=item.min_bound[0], y=item.min_bound[1], z=item.min_bound[2]),
                max_bound=Point(x=item.max_bound[0], y=item.max_bound[1], z=item.max_bound[2]),
                box_pose=Pose(
                    position=Point(x=center[0], y=center[1], z=center[2]),
                    orientation=Quaternion(z=float(np.sin(half)), w=float(np.cos(half))),
                ),
                box_size=Vector3(x=item.box_size[0], y=item.box_size[1], z=item.box_size[2]),
            )
        )
    return message
