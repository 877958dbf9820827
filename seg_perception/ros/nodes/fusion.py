"""Fusion node: one PointCloud2 + N cameras' label images -> labeled cloud.

Per camera ``<name>`` (from the ``cameras`` parameter, up to 8) it subscribes
``<name>/labels`` (mono8/mono16 class ids, e.g. from the camera segmentation node),
optionally ``<name>/confidence`` (32FC1) and ``<name>/camera_info``; and ``points``
(PointCloud2, e.g. the LiDAR segmentation node's output: its fields are kept). Clouds wait
for the label images of their stamp (per-camera offsets and windows; the wait adapts to
how late labels arrive): see :mod:`seg_perception.ros.fusion_component`. It publishes, with
the cloud's stamp and frame_id:

* ``labeled_points``: the input fields + ``confidence``, ``label``, ``camera`` (an input
  field of one of these names is replaced); with ``use_instances`` (``<name>/instances``
  from a panoptic camera model) also ``instance``, and the frame's objects on
  ``instances`` and ``instance_markers``;
* ``labeled_points_rgb``: x, y, z, rgb colored by class, for RViz;
* ``fusion_status`` (seg_perception/FusionStatus) and ``class_map`` (latched).

Label ids that the label set lacks (a mono16 id 256 into a uint8 set) are made unlabeled,
never wrapped, and reported. Extrinsics come from TF (tf2_ros, where installed) or from the
parameter ``camera.<name>.extrinsics`` = [x, y, z, qx, qy, qz, qw]: the camera's pose in
the LiDAR frame, the numbers ``static_transform_publisher`` takes with parent = LiDAR frame
and child = the camera's optical frame. Bad messages are dropped with a diagnostic.

Run: ``python -m seg_perception.ros.nodes.fusion --ros-args -p cameras:="['front']"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import Pipeline
from seg_perception.msg import ClassMap
from seg_perception.ros.fusion_component import (
    FUSION_COMPONENT_PARAMS,
    CameraState,
    FusionComponent,
)
from seg_perception.ros.image_conversions import image_to_array
from seg_perception.ros.inputs import FrameDropError, stamp_ns
from seg_perception.ros.messages import label_set_from_class_map
from seg_perception.ros.node_base import SegPerceptionNode, run_node
from seg_perception.ros.node_params import fusion_config
from seg_perception.ros.params import Param
from seg_perception.ros.qos import qos_profile

LABEL_ENCODINGS = ("mono8", "mono16", "8UC1", "16UC1")


class LabelImages:
    """Camera data of the fusion node: a label image (and its confidence image)."""

    kind = "labels"

    def __init__(self, node: FusionNode) -> None:
        self.node = node
        self.label_set = node.label_set

    def header(self, message: Any) -> Any:
        return message[0].header

    def check(self, message: Any) -> None:
        labels, _, instances = message
        for image, what in ((labels, "label image"), (instances, "instance image")):
            if image is not None and image.encoding not in LABEL_ENCODINGS:
                raise FrameDropError(
                    "wrong encoding",
                    f"{what} encoding is {image.encoding!r}; ids come as "
                    f"{', '.join(LABEL_ENCODINGS)}",
                )
        for image in message:
            if image is not None:
                self.node.limits.check_image(image)
                image_to_array(image)  # a view: raises for a malformed message

    def inputs(self, camera: CameraState, message: Any) -> dict[str, np.ndarray]:
        labels_msg, confidence_msg, instances_msg = message
        if camera.name in self.node.mismatched:
            raise FrameDropError("other classes", self.node.mismatched[camera.name])
        labels, unknown = self.label_set.restrict(image_to_array(labels_msg))
        if unknown.size:
            shown = ", ".join(str(v) for v in unknown[:5]) + (" ..." if unknown.size > 5 else "")
            self.node.diagnostics.count(f"{camera.name} labels with unknown ids")
            self.node.diagnostics.problem(
                f"camera '{camera.name}': label ids {shown} are not in the label set "
                f"'{self.label_set.name}' (ids {min(self.label_set.ids)}-"
                f"{max(self.label_set.ids)}): those pixels are unlabeled"
            )
        confidence = image_to_array(confidence_msg) if confidence_msg is not None else None
        fields = {"labels": labels, "confidence": confidence}
        if instances_msg is not None:
            fields["instances"] = image_to_array(instances_msg)
        return fields


class FusionNode(SegPerceptionNode):
    """Pairs clouds and label images by stamp and fuses them (a FusionComponent)."""

    NODE_NAME = "fusion"
    PARAMS = (
        *FUSION_COMPONENT_PARAMS,
        Param("use_confidence", False, "Subscribe <name>/confidence (32FC1) per camera."),
        Param("use_instances", False, "Subscribe <name>/instances (mono16 instance ids of a "
              "panoptic camera model, 0 = none) per camera: points get instance ids, and "
              "instances / instance_markers are published."),
    )  # fmt: skip

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.NODE_NAME, **kwargs)
        self.label_set = LabelSet.from_name_or_path(self.params["label_set"])
        self.pipeline = Pipeline(fusion=fusion_config(self.params), label_set=self.label_set)
        self.labels = LabelImages(self)
        self.fusion = FusionComponent(
            self, self.pipeline, self.labels, instances=self.params["use_instances"]
        )
        self.finish_parameters()
        self.publish_class_map(self.label_set)
        #: The camera whose ClassMap defines the classes; cameras whose map differs.
        self.classes_from: str | None = None
        self.mismatched: dict[str, str] = {}
        for camera in self.fusion.cameras:
            self._subscribe_labels(camera)
            self.create_subscription(
                ClassMap, f"{camera.name}/class_map",
                lambda m, c=camera: self._on_class_map(c, m), qos_profile("latched"),
            )  # fmt: skip

    def _on_class_map(self, camera: CameraState, message: Any) -> None:
        """One label set per graph: the cameras' models say what their ids mean.

        The first camera's ClassMap replaces a configured ``label_set`` that differs (said
        once, as a warning); a camera whose map then differs from it is an error, and its
        label images are refused (their ids would mean other classes).
        """
        try:
            received = label_set_from_class_map(message)
        except Exception as error:  # a malformed ClassMap: keep what we have
            self.diagnostics.problem(f"camera '{camera.name}': bad ClassMap: {error}")
            return
        same = _same_classes(received, self.label_set)
        if self.classes_from in (None, camera.name):
            self.classes_from = camera.name
            if not same:
                self.get_logger().warning(
                    f"camera '{camera.name}' publishes the classes of '{received.name}' "
                    f"({len(received)}), not the configured label_set '{self.label_set.name}' "
                    f"({len(self.label_set)}): using the camera's"
                )
                self._adopt(received)
            return
        if same:
            self.mismatched.pop(camera.name, None)
            self._report_mismatch()
            return
        self.mismatched[camera.name] = (
            f"camera '{camera.name}' publishes the classes of '{received.name}' "
            f"({len(received)}) but camera '{self.classes_from}' those of "
            f"'{self.label_set.name}' ({len(self.label_set)}): its labels are refused"
        )
        self._report_mismatch()

    def _adopt(self, label_set: LabelSet) -> None:
        self.label_set = self.labels.label_set = self.pipeline.label_set = label_set
        self.fusion.label_set = label_set
        self.publish_class_map(label_set)

    def _report_mismatch(self) -> None:
        self.diagnostics.error("; ".join(self.mismatched.values()) or None)

    def _subscribe_labels(self, camera: CameraState) -> None:
        """Labels, and the optional confidence and instance images of the same stamp, go to
        the fusion as one (labels, confidence | None, instances | None) message."""
        topics = {0: f"{camera.name}/labels"}
        if self.params["use_confidence"]:
            topics[1] = f"{camera.name}/confidence"
        if self.params["use_instances"]:
            topics[2] = f"{camera.name}/instances"
        if len(topics) == 1:
            self.create_subscription(
                Image, topics[0], lambda m: self.fusion.add_camera(camera.index, (m, None, None)),
                self.input_qos,
            )  # fmt: skip
            return
        # They travel separately; pair them by stamp first.
        pending: dict[int, list[Any]] = {}

        def pair(message: Image, slot: int) -> None:
            key = stamp_ns(message.header)
            entry = pending.setdefault(key, [None, None, None])
            entry[slot] = message
            if all(entry[s] is not None for s in topics):
                del pending[key]
                self.fusion.add_camera(camera.index, tuple(entry))
            while len(pending) > self.params["camera_buffer"]:
                pending.pop(min(pending))

        for slot, topic in topics.items():
            self.create_subscription(Image, topic, lambda m, s=slot: pair(m, s), self.input_qos)


def _same_classes(a: LabelSet, b: LabelSet) -> bool:
    """Whether two label sets give ids the same meaning (the sets' own names may differ)."""
    return a.ids == b.ids and a.names == b.names


def main(args: list[str] | None = None) -> int:
    return run_node(FusionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
