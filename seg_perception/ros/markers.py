"""RViz markers for a frame's 3D objects (``instance_markers``).

Each object is a translucent box in its class's color (the oriented box of
:class:`~seg_perception.core.instances.Instance`) with a label above it ("car 3 0.92":
class, id, score). Every array starts with a DELETEALL marker, so objects of the previous
frame vanish even when this frame has fewer, without lifetimes to tune to the frame rate.
"""

from __future__ import annotations

from typing import Any

from seg_perception.core.instances import Instance
from seg_perception.core.labels import LabelSet
from seg_perception.ros.messages import instances_message

#: Box transparency; thin boxes are drawn at least this thick (m) so they stay visible.
BOX_ALPHA = 0.45
MIN_SIZE_M = 0.05
TEXT_HEIGHT_M = 0.5


def instance_markers(instances: list[Instance], label_set: LabelSet, header: Any) -> Any:
    """``visualization_msgs/MarkerArray``: DELETEALL, then a box and a label per object."""
    from visualization_msgs.msg import Marker, MarkerArray

    boxes = instances_message(instances, label_set, header).instances
    array = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.header = header
    array.markers.append(clear)
    for item, box in zip(instances, boxes, strict=True):
        r, g, b = (float(c) / 255.0 for c in label_set.colorize(item.class_id))
        cube = Marker(ns="instances", id=item.id, type=Marker.CUBE, action=Marker.ADD)
        cube.header, cube.pose = header, box.box_pose
        cube.scale.x = max(box.box_size.x, MIN_SIZE_M)
        cube.scale.y = max(box.box_size.y, MIN_SIZE_M)
        cube.scale.z = max(box.box_size.z, MIN_SIZE_M)
        cube.color.r, cube.color.g, cube.color.b, cube.color.a = r, g, b, BOX_ALPHA
        text = Marker(ns="instance_labels", id=item.id, type=Marker.TEXT_VIEW_FACING)
        text.header = header
        text.pose.position.x = box.box_pose.position.x
        text.pose.position.y = box.box_pose.position.y
        text.pose.position.z = item.max_bound[2] + TEXT_HEIGHT_M
        text.pose.orientation.w = 1.0
        text.scale.z = TEXT_HEIGHT_M
        text.color.r = text.color.g = text.color.b = text.color.a = 1.0
        text.text = f"{box.class_name} {item.id} {item.score:.2f}"
        array.markers += [cube, text]
    return array
