"""Fusion node: one PointCloud2 + N cameras' label images -> labeled cloud.

Per camera ``<name>`` (from the ``cameras`` parameter, up to 8) it subscribes
``<name>/labels`` (mono8/mono16 class ids, e.g. from the camera segmentation node),
optionally ``<name>/confidence`` (32FC1) and ``<name>/camera_info``; and ``points``
(PointCloud2, e.g. the LiDAR segmentation node's output: its fields are kept). Clouds and
label images are paired by stamp with per-camera offsets and windows
(:mod:`seg_perception.core.sync`). It publishes, with the cloud's stamp and frame_id:

* ``labeled_points``: the input fields + ``confidence``, ``label``, ``camera``;
* ``labeled_points_rgb``: x, y, z, rgb colored by class, for RViz;
* ``fusion_status`` (seg_perception/FusionStatus) and ``class_map`` (latched).

Extrinsics come from TF (tf2_ros, where installed) or from the parameter
``camera.<name>.extrinsics`` = [x, y, z, qx, qy, qz, qw]: the camera's pose in the LiDAR
frame, the numbers ``static_transform_publisher`` takes with parent = LiDAR frame and
child = the camera's optical frame. Bad messages are dropped with a diagnostic.

Run: ``python -m seg_perception.ros.nodes.fusion --ros-args -p cameras:="['front']"``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.labeled_cloud import labeled_fields, rgb_cloud
from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import CameraInput, Frame, FrameResult, Pipeline
from seg_perception.core.sync import CameraSync, MatchedFrame, StampMatcher
from seg_perception.core.transforms import (
    TransformError,
    check_rigid,
    invert_transform,
    transform_from_translation_quaternion,
)
from seg_perception.msg import FusionStatus
from seg_perception.ros.errors import ConversionError
from seg_perception.ros.image_conversions import image_to_array
from seg_perception.ros.messages import fusion_status_message
from seg_perception.ros.node_base import SegPerceptionNode, run_node
from seg_perception.ros.node_params import FUSION_PARAMS, fusion_config
from seg_perception.ros.params import Param, StartupError, declare_parameters
from seg_perception.ros.pointcloud2 import (
    append_pointcloud2_fields,
    array_to_pointcloud2,
    cloud_xyz,
    pointcloud2_to_array,
)

MAX_CAMERAS = 8
NO_EXTRINSICS = [0.0] * 7


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class CameraSkippedError(Exception):
    """A camera or cloud of this frame cannot be used; the message says why."""


@dataclass
class CameraState:
    """What the node knows about one camera."""

    name: str
    sync: CameraSync
    extrinsics: np.ndarray | None
    info: Any = None
    model: CameraModel | None = None
    model_error: str = ""
    warnings: list[str] = field(default_factory=list)


class FusionNode(SegPerceptionNode):
    """Pairs clouds and camera data by stamp and runs the pipeline's fusion."""

    NODE_NAME = "fusion"
    CAMERA_INPUT = "labels"
    PARAMS = (
        *FUSION_PARAMS,
        Param("cameras", ["front"], "Camera names; topics are <name>/labels, <name>/camera_info."),
        Param("label_set", "cityscapes", "cityscapes or a label-set YAML (must match the labels)."),
        Param("use_confidence", False, "Subscribe <name>/confidence (32FC1) per camera."),
        Param("extrinsics_source", "auto", "auto: parameters when given, else TF.",
              choices=("auto", "parameters", "tf")),
        Param("max_pending", 2, "Clouds waiting for camera data before the oldest is "
              "released.", 1, 20),
        Param("camera_buffer", 8, "Camera messages kept per camera for matching.", 1, 100),
        Param("wait_timeout", 0.3, "Seconds a cloud waits for missing cameras (wall clock).",
              0.0, 10.0),
        Param("publish_rgb", True, "Publish labeled_points_rgb for RViz."),
    )  # fmt: skip

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.NODE_NAME, **kwargs)
        names = list(self.params["cameras"])
        valid = all(name and name.replace("_", "").isalnum() for name in names)
        if not valid or not 1 <= len(names) <= MAX_CAMERAS or len(set(names)) != len(names):
            raise StartupError(
                f"cameras must be 1-{MAX_CAMERAS} distinct names of letters, digits and _, "
                f"got {names}"
            )
        self.cameras = [self._declare_camera(name) for name in names]
        self.finish_parameters()
        self.label_set = LabelSet.from_name_or_path(self.params["label_set"])
        self.pipeline = Pipeline(
            label_source=self.label_source(),
            cloud_segmenter=self.cloud_segmenter(),
            fusion=fusion_config(self.params),
            label_set=self.label_set,
        )
        self.matcher = StampMatcher(
            [camera.sync for camera in self.cameras],
            max_pending=self.params["max_pending"],
            camera_buffer=self.params["camera_buffer"],
        )
        self.arrival: dict[int, float] = {}
        self.tf_buffer = self._tf_buffer()
        self.publish_class_map(self.label_set)
        self.cloud_pub = self.create_publisher(PointCloud2, "labeled_points", self.output_qos)
        self.rgb_pub = self.create_publisher(PointCloud2, "labeled_points_rgb", self.output_qos)
        self.status_pub = self.create_publisher(FusionStatus, "fusion_status", self.output_qos)
        for index, camera in enumerate(self.cameras):
            self._subscribe_camera(index, camera)
        self.create_subscription(PointCloud2, "points", self.on_cloud, self.input_qos)
        if self.params["wait_timeout"] > 0:
            self.create_timer(min(self.params["wait_timeout"] / 3, 0.1), self.on_timer)

    # ------------------------------------------------------------------ hooks
    def label_source(self) -> Any:
        """Nothing to segment: label images arrive ready (the pipeline node overrides)."""
        return None

    def cloud_segmenter(self) -> Any:
        """LiDAR classes arrive as fields of the input cloud (the pipeline node overrides)."""
        return None

    def camera_input(self, camera: CameraState, message: Any) -> dict[str, Any]:
        """CameraInput fields from a matched camera message: the label image."""
        labels, confidence = message
        array = image_to_array(labels)
        if array.ndim != 2 or labels.encoding not in ("mono8", "mono16", "8UC1", "16UC1"):
            raise CameraSkippedError(f"label image encoding {labels.encoding} is not mono8/mono16")
        conf = image_to_array(confidence) if confidence is not None else None
        return {"labels": array, "confidence": conf}

    def after_pipeline(self, inputs: list[CameraInput], result: FrameResult) -> None:
        """Called after each fused frame (the pipeline node publishes its label images)."""

    # ------------------------------------------------------------------ set-up
    def _declare_camera(self, name: str) -> CameraState:
        prefix = f"camera.{name}"
        declared = declare_parameters(self, (
            Param(f"{prefix}.time_offset", 0.0, "Seconds added to this camera's stamps before "
                  "matching them with clouds.", -10.0, 10.0),
            Param(f"{prefix}.tolerance", 0.05, "Largest stamp difference (s) of a match.",
                  0.0, 10.0),
            Param(f"{prefix}.extrinsics", NO_EXTRINSICS, "Camera pose in the LiDAR frame: "
                  "[x, y, z, qx, qy, qz, qw] (unset: TF)."),
        ))  # fmt: skip
        values = {key.rsplit(".", 1)[1]: value for key, value in declared.items()}
        extrinsics = None
        pose = [float(v) for v in values["extrinsics"]]
        if len(pose) != 7:
            raise StartupError(
                f"{prefix}.extrinsics needs 7 numbers [x y z qx qy qz qw], got {pose}"
            )
        if any(pose[3:]):
            extrinsics = invert_transform(transform_from_translation_quaternion(pose[:3], pose[3:]))
            check_rigid(extrinsics, f"{prefix}.extrinsics")  # NaN/inf: stop at start-up
        source = self.params["extrinsics_source"]
        if source == "parameters" and extrinsics is None:
            raise StartupError(
                f"extrinsics_source is 'parameters' but {prefix}.extrinsics is unset"
            )
        if source == "tf":
            extrinsics = None
        if values["tolerance"] < 0:
            raise StartupError(f"{prefix}.tolerance must be >= 0 s")
        sync = CameraSync(name, int(values["time_offset"] * 1e9), int(values["tolerance"] * 1e9))
        return CameraState(name, sync, extrinsics)

    def _tf_buffer(self) -> Any:
        if all(camera.extrinsics is not None for camera in self.cameras):
            return None
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError:
            raise StartupError(
                "extrinsics for camera(s) "
                f"{[c.name for c in self.cameras if c.extrinsics is None]} must come from TF, "
                "but tf2_ros is not installed: set camera.<name>.extrinsics instead"
            ) from None
        buffer = Buffer()
        self._tf_listener = TransformListener(buffer, self)
        return buffer

    def _subscribe_camera(self, index: int, camera: CameraState) -> None:
        self.create_subscription(
            CameraInfo, f"{camera.name}/camera_info",
            lambda message, c=camera: self.on_camera_info(c, message), self.input_qos,
        )  # fmt: skip
        self._subscribe_camera_data(index, camera)

    def _subscribe_camera_data(self, index: int, camera: CameraState) -> None:
        if not self.params["use_confidence"]:
            self.create_subscription(
                Image, f"{camera.name}/{self.CAMERA_INPUT}",
                lambda message, i=index: self.on_camera(i, (message, None)), self.input_qos,
            )  # fmt: skip
            return
        # Label image and confidence travel separately; pair them by stamp first.
        pending: dict[int, list[Any]] = {}

        def pair(message: Image, slot: int) -> None:
            key = stamp_ns(message.header)
            entry = pending.setdefault(key, [None, None])
            entry[slot] = message
            if all(entry):
                del pending[key]
                self.on_camera(index, tuple(entry))
            while len(pending) > self.params["camera_buffer"]:
                pending.pop(min(pending))

        self.create_subscription(
            Image, f"{camera.name}/labels", lambda m: pair(m, 0), self.input_qos
        )
        self.create_subscription(
            Image, f"{camera.name}/confidence", lambda m: pair(m, 1), self.input_qos
        )

    # ------------------------------------------------------------------ callbacks
    def on_camera_info(self, camera: CameraState, message: CameraInfo) -> None:
        if camera.info is not None and _same_info(camera.info, message):
            return
        camera.info = message
        try:
            from seg_perception.ros.camera_info import camera_model_from_camera_info

            camera.model = camera_model_from_camera_info(message)
            camera.model_error = ""
        except ValueError as error:
            camera.model = None
            camera.model_error = f"camera '{camera.name}': bad CameraInfo: {error}"
            self.diagnostics.problem(camera.model_error)

    def on_camera(self, index: int, message: Any) -> None:
        self.diagnostics.count(f"{self.cameras[index].name} received")
        header = message[0].header if isinstance(message, tuple) else message.header
        self._process(self.matcher.add_camera(index, stamp_ns(header), message))

    def on_cloud(self, message: PointCloud2) -> None:
        self.diagnostics.count("clouds received")
        stamp = stamp_ns(message.header)
        self.arrival[stamp] = time.monotonic()
        self._process(self.matcher.add_cloud(stamp, message))

    def on_timer(self) -> None:
        deadline = time.monotonic() - self.params["wait_timeout"]
        expired = [s for s, t in self.arrival.items() if t < deadline]
        if expired:
            self._process(self.matcher.expire(max(expired) + 1))

    # ------------------------------------------------------------------ fusion
    def _process(self, frames: list[MatchedFrame]) -> None:
        for frame in frames:
            self.arrival.pop(frame.stamp_ns, None)
            self._fuse(frame)
        dropped = sum(self.matcher.stats.dropped.values())
        self.diagnostics.counts["messages dropped (sync)"] = dropped

    def _fuse(self, matched: MatchedFrame) -> None:
        cloud_msg = matched.cloud
        if not (
            self.wanted(self.cloud_pub) or self.wanted(self.rgb_pub) or self.wanted(self.status_pub)
        ):
            self.diagnostics.count("clouds skipped (no subscribers)")
            return
        start = time.perf_counter()
        try:
            cloud = pointcloud2_to_array(cloud_msg)
        except ConversionError as error:
            self.diagnostics.count("clouds dropped")
            self.diagnostics.problem(f"dropped cloud: {error}")
            return
        warnings, inputs, offsets, frame_ids = [], [], [], []
        for camera, match in zip(self.cameras, matched.cameras, strict=True):
            if match is None:
                warnings.append(f"camera '{camera.name}': no data within its time window")
                continue
            try:
                inputs.append(self._camera_input(camera, match.item, cloud_msg.header))
            except (CameraSkippedError, ConversionError, ValueError) as error:
                warnings.append(f"camera '{camera.name}' skipped: {error}")
                continue
            offsets.append(match.delta_ns / 1e9)
            frame_ids.append(inputs[-1].frame_id)
        for warning in warnings:
            self.diagnostics.problem(warning)
        try:
            result = self.pipeline.process(
                Frame(cloud, inputs, matched.stamp_ns, cloud_msg.header.frame_id)
            )
        except ValueError as error:
            self.diagnostics.count("clouds dropped")
            self.diagnostics.problem(f"dropped cloud: {error}")
            return
        self.after_pipeline(inputs, result)
        self._publish(cloud_msg, cloud, result, len(self.cameras), frame_ids, offsets, warnings)
        total = (time.perf_counter() - start) * 1e3
        for stage, ms in result.timings_ms.items():
            self.diagnostics.time(stage, ms)
        self.diagnostics.time("total", total)
        self.diagnostics.count("clouds published")

    def _camera_input(self, camera: CameraState, item: Any, cloud_header: Any) -> CameraInput:
        if camera.model is None:
            raise CameraSkippedError(camera.model_error or "no CameraInfo received yet")
        fields = self.camera_input(camera, item)
        width, height = camera.model.image_size
        for key in ("labels", "confidence", "image"):
            array = fields.get(key)
            if array is not None and array.shape[:2] != (height, width):
                raise CameraSkippedError(
                    f"{key} is {array.shape[1]}x{array.shape[0]} but its CameraInfo describes "
                    f"a {width}x{height} image"
                )
        frame_id = camera.info.header.frame_id
        transform = camera.extrinsics
        if transform is None:
            transform = self._lookup(frame_id, cloud_header)
        return CameraInput(
            name=camera.name, model=camera.model, T_cam_from_lidar=transform, frame_id=frame_id,
            labels_description=f"{camera.name}/labels", **fields,
        )  # fmt: skip

    def _lookup(self, camera_frame: str, cloud_header: Any) -> np.ndarray:
        from rclpy.duration import Duration

        try:
            stamped = self.tf_buffer.lookup_transform(
                camera_frame, cloud_header.frame_id, Time.from_msg(cloud_header.stamp),
                timeout=Duration(seconds=0.0),
            )  # fmt: skip
        except Exception as error:
            raise CameraSkippedError(
                f"no transform {cloud_header.frame_id} -> {camera_frame}: {error}"
            ) from None
        t, q = stamped.transform.translation, stamped.transform.rotation
        try:
            return transform_from_translation_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
        except TransformError as error:
            raise CameraSkippedError(str(error)) from None

    def _publish(
        self, cloud_msg: PointCloud2, cloud: np.ndarray, result: FrameResult, expected: int,
        frame_ids: list[str], offsets: list[float], warnings: list[str],
    ) -> None:  # fmt: skip
        header = cloud_msg.header
        if self.wanted(self.cloud_pub):
            self.cloud_pub.publish(append_pointcloud2_fields(cloud_msg, labeled_fields(result)))
        if self.params["publish_rgb"] and self.wanted(self.rgb_pub):
            colored = rgb_cloud(cloud_xyz(cloud), result.fusion.label, self.label_set)
            self.rgb_pub.publish(array_to_pointcloud2(colored, header))
        status = fusion_status_message(result, header, expected, frame_ids, offsets, warnings)
        status.header = header
        self.status_pub.publish(status)


def _same_info(a: CameraInfo, b: CameraInfo) -> bool:
    return (
        a.width == b.width and a.height == b.height and list(a.k) == list(b.k)
        and list(a.d) == list(b.d) and list(a.p) == list(b.p) and list(a.r) == list(b.r)
        and a.distortion_model == b.distortion_model and a.header.frame_id == b.header.frame_id
    )  # fmt: skip


def main(args: list[str] | None = None) -> int:
    return run_node(FusionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
