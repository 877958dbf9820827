"""The fusion part of a node: matching, waiting for labels, TF, fusing and publishing.

Both the fusion node (label images arrive from camera segmentation nodes) and the pipeline
node (raw images, segmented in-process) hold one :class:`FusionComponent`; they differ
only in what a camera message is (:class:`CameraData`). The component owns:

* the inputs: ``points`` and per camera ``<name>/camera_info``, each through an
  :class:`~seg_perception.ros.inputs.InputStream` (counted, size-checked, stamp-guarded);
  the camera data stream is subscribed by the node and handed to :meth:`add_camera`;
* the :class:`~seg_perception.core.sync.StampMatcher` and the wait for labels: a cloud
  is released when every camera's data for its stamp arrived, or when a camera has
  published past the cloud's window (its data will never come), or when the wait runs out.
  The wait adapts to the labels' observed latency (1.5x its 95th percentile + 0.2 s,
  at most ``wait_timeout``), and a camera silent for longer than ``wait_timeout`` is not
  waited for at all, so one dead camera does not delay every cloud;
* stamp jumps: the cloud stream jumping (bag loop, simulator reset) restarts the matcher,
  a camera stream jumping forgets that camera's old messages (said in /diagnostics);
* extrinsics from parameters or TF, the fusion itself, and the outputs
  (``labeled_points``, ``labeled_points_rgb``, ``fusion_status``).

Every camera message ends up used, dropped with a reason, or still waiting; every cloud
published, skipped (no subscribers), dropped with a reason, or still waiting.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from rclpy.duration import Duration
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, PointCloud2

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.fusion import warm_up as fusion_warm_up
from seg_perception.core.labeled_cloud import labeled_fields, rgb_cloud
from seg_perception.core.motion import describe_motion
from seg_perception.core.pipeline import CameraInput, Frame, FrameResult, Pipeline, Segmentation
from seg_perception.core.rig import CameraRecord, RigError, camera_fields
from seg_perception.core.sync import CameraSync, MatchedFrame, StampMatcher
from seg_perception.core.transforms import (
    TransformError,
    transform_from_translation_quaternion,
)
from seg_perception.msg import FusionStatus
from seg_perception.ros.engine_guard import segment_or_drop
from seg_perception.ros.inputs import (
    FrameDropError,
    InputStream,
    checked_stamp_ns,
    describe_error,
    stamp_ns,
)
from seg_perception.ros.markers import instance_markers
from seg_perception.ros.messages import fusion_status_message, instances_message
from seg_perception.ros.node_params import FUSION_PARAMS
from seg_perception.ros.params import Param, StartupError, declare_parameters
from seg_perception.ros.pointcloud2 import (
    append_pointcloud2_fields,
    array_to_pointcloud2,
    cloud_xyz,
    pointcloud2_to_array,
    replaced_fields,
)
from seg_perception.ros.tf_motion import TfMotion

MAX_CAMERAS = 8
#: Ranges of the numeric camera parameters (descriptors; the record checks them too).
CAMERA_RANGES = {"time_offset": (-10.0, 10.0), "delay": (-1.0, 1.0), "tolerance": (0.0, 10.0)}
#: Latency samples per camera behind the adaptive wait.
LATENCY_SAMPLES = 50

#: Parameters of every node that holds a FusionComponent (declared by the node).
FUSION_COMPONENT_PARAMS = (
    *FUSION_PARAMS,
    Param("cameras", ["front"], "Camera names, in order: a point's `camera` field is the index "
          "in this list."),
    Param("label_set", "cityscapes", "cityscapes or a label-set YAML: the classes until a "
          "camera's class_map says otherwise (the fusion node takes its cameras' classes; a "
          "difference is reported)."),
    Param("extrinsics_source", "auto", "auto: parameters when given, else TF.",
          choices=("auto", "parameters", "tf")),
    Param("max_pending", 100, "Most clouds waiting for labels at once (a memory bound: the "
          "oldest then leaves with what it has).", 1, 1000),
    Param("camera_buffer", 8, "Camera messages kept per camera for matching.", 1, 100),
    Param("wait_timeout", 5.0, "Most seconds a cloud waits for labels still being computed; "
          "the wait adapts below this to the labels' observed latency (1.5x its 95th "
          "percentile + 0.2 s). A camera silent this long is not waited for. 0: never wait.",
          0.0, 60.0),
    Param("publish_rgb", True, "Publish labeled_points_rgb for RViz."),
    Param("fixed_frame", "", "Motion compensation: a fixed frame (odom, map) through which "
          "each camera sees the sweep moved from the cloud's stamp to its own (tf2 "
          "lookup_transform_full); empty: off."),
    Param("deskew", "auto", "With fixed_frame: also move each point from its firing time "
          "(the cloud's per-point time field) to the cloud's stamp before projecting. auto: "
          "when the cloud has a time field; on: clouds without one are dropped; off.",
          choices=("auto", "on", "off")),
    Param("time_field", "", "The per-point time field for deskew; empty: the first of t, "
          "time, timestamp, offset_time (32/64-bit integers are ns, floats s; absolute times "
          "are recognised)."),
)  # fmt: skip


class CameraData(Protocol):
    """What one kind of camera message is to the component (labels or images)."""

    #: Stream name suffix: "labels" -> "<camera> labels".
    kind: str

    def check(self, message: Any) -> None:
        """Cheap checks on arrival (encoding, size limits); raise FrameDropError."""

    def inputs(self, camera: CameraState, message: Any) -> dict[str, np.ndarray]:
        """CameraInput fields (labels/confidence or image) of a matched message."""

    def header(self, message: Any) -> Any:
        """The message's header (stamp of the camera data)."""


@dataclass
class CameraState:
    """What the component knows about one configured camera."""

    index: int
    name: str
    sync: CameraSync
    extrinsics: np.ndarray | None
    stream: InputStream | None = None
    info_stream: InputStream | None = None
    info: Any = None
    model: CameraModel | None = None
    model_error: str = ""
    #: Seconds between a cloud's arrival and its matched camera data's arrival.
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    #: When its data last arrived (monotonic s); None until it or the first cloud arrives.
    last_seen: float | None = None
    #: raw | rectified | auto: how its CameraInfo projects into its images.
    projection: str = "auto"
    #: Its record (core/rig.py): transport, projection, offsets, extrinsics.
    record: CameraRecord | None = None
    #: (stamp_ns, why) of its last refused messages, to explain a cloud's missing camera.
    refused: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=8))


@dataclass
class Arrival:
    """A message with the wall-clock time it arrived (for waiting and latency)."""

    message: Any
    time: float
    dropped: bool = False
    used: bool = False


@dataclass
class FusedCamera:
    """One camera that took part in a fused frame: for the node's own outputs."""

    camera: CameraState
    message: Any
    input: CameraInput
    segmentation: Segmentation
    #: (m, deg) of the motion compensation applied (0, 0: none).
    motion: tuple[float, float] = (0.0, 0.0)


class FusionComponent:
    """Pairs clouds and camera data by stamp and runs the pipeline's fusion."""

    def __init__(
        self,
        node: Any,
        pipeline: Pipeline,
        data: CameraData,
        on_fused: Callable[[list[FusedCamera], FrameResult], None] | None = None,
        instances: bool = False,
    ) -> None:
        self.node = node
        self.params = node.params
        self.pipeline = pipeline
        self.label_set = pipeline.label_set
        self.data = data
        self.on_fused = on_fused
        fusion_warm_up(pipeline.fusion)  # before any subscription: no start-up drops
        self.diagnostics = node.diagnostics
        self.cameras = [self._declare_camera(i, n) for i, n in enumerate(camera_names(node))]
        self.wait_timeout = float(self.params["wait_timeout"])
        self.matcher = StampMatcher(
            [camera.sync for camera in self.cameras],
            max_pending=self.params["max_pending"],
            camera_buffer=self.params["camera_buffer"],
            on_drop=self._matcher_dropped,
        )
        self.tf_buffer = self._tf_buffer()
        fixed = self.params["fixed_frame"]
        self.motion = (
            TfMotion(self.tf_buffer, fixed, self.params["deskew"], self.params["time_field"])
            if fixed else None
        )  # fmt: skip
        qos = node.output_qos
        self.cloud_pub = node.create_publisher(PointCloud2, "labeled_points", qos)
        self.rgb_pub = node.create_publisher(PointCloud2, "labeled_points_rgb", qos)
        self.status_pub = node.create_publisher(FusionStatus, "fusion_status", qos)
        #: With a panoptic camera model: the frame's objects, as a message and as markers.
        self.instance_pubs = None
        if instances:
            from visualization_msgs.msg import MarkerArray

            from seg_perception.msg import Instance3DArray

            self.instance_pubs = (
                node.create_publisher(Instance3DArray, "instances", qos),
                node.create_publisher(MarkerArray, "instance_markers", qos),
            )
        self.clouds = node.input_stream(
            "clouds", check=node.limits.check_cloud, on_jump=self._clouds_jumped
        )
        for camera in self.cameras:
            camera.stream = node.input_stream(
                f"{camera.name} {data.kind}",
                check=data.check,
                on_jump=self._camera_jumped,
                header=data.header,
                on_drop=lambda m, detail, c=camera: self._camera_dropped(c, m, detail),
            )
            camera.info_stream = node.input_stream(
                f"{camera.name} camera_info", jump_threshold_s=None, watch=False
            )
            node.create_subscription(
                CameraInfo, f"{camera.name}/camera_info",
                lambda m, c=camera: c.info_stream.handle(m, lambda i: self._on_info(c, i)),
                node.input_qos,
            )  # fmt: skip
        node.create_subscription(
            PointCloud2, "points", lambda m: self.clouds.handle(m, self._on_cloud), node.input_qos
        )
        node.create_timer(0.05, self._on_timer)

    # ------------------------------------------------------------------ set-up
    def _declare_camera(self, index: int, name: str) -> CameraState:
        """The camera's record from its ``camera.<name>.*`` parameters (core/rig.py)."""
        prefix = f"camera.{name}"
        record = declare_camera_record(self.node, name)
        extrinsics = record.T_cam_from_lidar()
        source = self.params["extrinsics_source"]
        if source == "parameters" and extrinsics is None:
            raise StartupError(
                f"extrinsics_source is 'parameters' but {prefix}.extrinsics is unset"
            )
        if source == "tf":
            extrinsics = None
        return CameraState(
            index, name, record.sync(), extrinsics, projection=record.projection, record=record
        )

    def _tf_buffer(self) -> Any:
        from_tf = [c.name for c in self.cameras if c.extrinsics is None]
        fixed = self.params["fixed_frame"]
        if not from_tf and not fixed:
            return None
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError:
            if fixed:
                raise StartupError(
                    f"fixed_frame '{fixed}' needs TF (the LiDAR's pose over time), but tf2_ros "
                    "is not installed: unset fixed_frame or run on a ROS installation"
                ) from None
            raise StartupError(
                f"extrinsics for camera(s) {from_tf} must come from TF, "
                "but tf2_ros is not installed: set camera.<name>.extrinsics instead"
            ) from None
        buffer = Buffer()
        self._tf_listener = TransformListener(buffer, self.node)
        return buffer

    # ------------------------------------------------------------------ inputs
    def add_camera(self, index: int, message: Any) -> None:
        """The node's subscription callback for camera ``index``'s data."""
        camera = self.cameras[index]
        camera.stream.handle(message, lambda m: self._on_camera(camera, m))

    def _on_camera(self, camera: CameraState, message: Any) -> None:
        now = time.monotonic()
        camera.last_seen = now
        stamp = stamp_ns(self.data.header(message))
        self._process(self.matcher.add_camera(camera.index, stamp, Arrival(message, now)))

    def _on_cloud(self, message: PointCloud2) -> None:
        arrival = Arrival(message, time.monotonic())
        for camera in self.cameras:
            if camera.last_seen is None:  # not heard yet: wait for it from the first cloud on
                camera.last_seen = arrival.time
        self._process(self.matcher.add_cloud(stamp_ns(message.header), arrival))

    def _on_info(self, camera: CameraState, message: CameraInfo) -> None:
        from seg_perception.ros.camera_info import camera_model_from_camera_info

        if camera.info is None or not _same_info(camera.info, message):
            camera.info = message
            try:
                camera.model = camera_model_from_camera_info(message, camera.projection)
                camera.model_error = ""
                if camera.projection == "auto":
                    self.node.get_logger().info(
                        f"camera '{camera.name}': projection auto chose {camera.model.mode} "
                        f"(D {'is all zero' if camera.model.mode == 'rectified' else '!= 0'}); "
                        f"set camera.{camera.name}.projection if the image is "
                        f"{'raw' if camera.model.mode == 'rectified' else 'image_rect'}"
                    )
            except ValueError as error:
                camera.model = None
                camera.model_error = f"camera '{camera.name}': bad CameraInfo: {error}"
        if camera.model is None:
            raise FrameDropError("malformed", camera.model_error)

    # A jump of J seconds separates the old timeline from the new one by about |J|: what lies
    # within |J|/2 of the new stamps belongs to the new timeline, the rest to the old one.
    def _clouds_jumped(self, stream: InputStream, jump_ns: int) -> None:
        self._process(self.matcher.restart(stream.guard.last_ns, abs(jump_ns) // 2))

    def _camera_jumped(self, stream: InputStream, jump_ns: int) -> None:
        camera = next(c for c in self.cameras if c.stream is stream)
        self.matcher.forget_camera(camera.index, stream.guard.last_ns, abs(jump_ns) // 2)

    def _camera_dropped(self, camera: CameraState, message: Any, detail: str) -> None:
        """Remember why a camera message was refused, to say so in the cloud's status."""
        try:
            stamp = checked_stamp_ns(self.data.header(message))
        except Exception:  # an unreadable or invalid stamp: nothing to pair the reason with
            return
        camera.refused.append((stamp, detail))
        self._process(self.matcher.refuse_camera(camera.index, stamp))

    def _missing(self, camera: CameraState, cloud_stamp: int) -> str:
        """Why camera has no data for this cloud: a refused message in its window, or none."""
        sync = camera.sync
        for stamp, detail in reversed(camera.refused):
            if abs(stamp + sync.offset_ns - cloud_stamp) <= sync.tolerance_ns:
                return f"camera '{camera.name}' skipped: {detail}"
        return f"camera '{camera.name}': no data within its time window"

    def _matcher_dropped(self, index: int | None, reason: str, item: Any) -> None:
        stream = "clouds" if index is None else self.cameras[index].stream.name
        if isinstance(item, Arrival):
            if item.dropped or item.used:
                return
            item.dropped = True
        self.diagnostics.drop(stream, reason, f"dropped {stream} message: {reason}")

    # ------------------------------------------------------------------ waiting
    def wait_for(self, camera: CameraState, now: float) -> float:
        """Seconds a cloud waits for this camera (0: the camera is not waited for)."""
        if self.wait_timeout <= 0 or camera.last_seen is None:
            return 0.0
        if now - camera.last_seen > self.wait_timeout:
            return 0.0
        if len(camera.latencies) < 5:
            return self.wait_timeout
        learned = 1.5 * float(np.percentile(camera.latencies, 95)) + 0.2
        return min(self.wait_timeout, learned)

    def _on_timer(self) -> None:
        try:
            now = time.monotonic()
            wait = max((self.wait_for(c, now) for c in self.cameras), default=0.0)
            expired = [s for s, arrival in self.matcher.pending if now - arrival.time >= wait]
            if expired:
                self._process(self.matcher.expire(max(expired) + 1))
            self._gauges()
        except Exception as error:  # the timer must keep running
            self.diagnostics.problem(f"fusion timer: {describe_error(error)[1]}")

    def _gauges(self) -> None:
        counts = self.diagnostics.counts
        counts["clouds waiting"] = len(self.matcher.pending)
        for camera in self.cameras:
            counts[f"{camera.stream.name} waiting"] = self.matcher.waiting(camera.index)

    # ------------------------------------------------------------------ fusion
    def _process(self, frames: list[MatchedFrame]) -> None:
        for frame in frames:
            try:
                self._fuse(frame)
            except Exception as error:  # one frame, never the node
                self.clouds.drop(error, "cloud")
            self._settle_cameras(frame)

    def _settle_cameras(self, frame: MatchedFrame) -> None:
        """Account for camera messages matched to a cloud that was not fused.

        Every camera message ends up used, dropped or skipped: one whose cloud was dropped
        is dropped with it; one whose cloud nobody wanted is skipped.
        """
        for camera, match in zip(self.cameras, frame.cameras, strict=True):
            if match is None or match.item.used or match.item.dropped:
                continue
            match.item.dropped = True
            if frame.skipped:
                self.diagnostics.skipped(camera.stream.name)
            else:
                self.diagnostics.drop(camera.stream.name, "its cloud was dropped")

    def _fuse(self, matched: MatchedFrame) -> None:
        cloud_msg = matched.cloud.message
        self._learn_latency(matched)
        if not (
            self.node.wanted(self.cloud_pub)
            or self.node.wanted(self.rgb_pub)
            or self.node.wanted(self.status_pub)
            or any(self.node.wanted(p) for p in self.instance_pubs or ())
        ):
            self.diagnostics.skipped("clouds")
            matched.skipped = True
            return
        start = time.perf_counter()
        cloud = pointcloud2_to_array(cloud_msg)
        warnings: list[str] = []
        fused: list[FusedCamera] = []
        offsets: list[float] = []
        for camera, match in zip(self.cameras, matched.cameras, strict=True):
            if match is None:
                warnings.append(self._missing(camera, matched.stamp_ns))
                continue
            try:
                fused.append(self._camera(camera, match.item, cloud_msg.header))
            except Exception as error:  # skip this camera, keep the cloud
                reason, detail = describe_error(error)
                warnings.append(f"camera '{camera.name}' skipped: {detail}")
                if not match.item.dropped:
                    match.item.dropped = True
                    self.diagnostics.drop(
                        camera.stream.name, reason, f"camera '{camera.name}' skipped: {detail}"
                    )
                continue
            offsets.append(match.delta_ns / 1e9)
        fusion_xyz = None
        if self.motion is not None and fused:
            fusion_xyz, how = self.motion.deskewed(cloud, cloud_msg.header)
            self.diagnostics.count(
                f"clouds {'de-skewed' if fusion_xyz is not None else 'not de-skewed'} ({how})"
            )
        segment_ms = (time.perf_counter() - start) * 1e3
        result = self.pipeline.process(
            Frame(
                cloud, [f.input for f in fused], matched.stamp_ns, cloud_msg.header.frame_id,
                fusion_xyz,
            )
        )  # fmt: skip
        result.timings_ms = {"segment_cameras": segment_ms, **result.timings_ms}
        if result.lidar is not None:
            self.diagnostics.ground(result.lidar)
        if self.on_fused is not None:
            self.on_fused(fused, result)
        frame_ids = [f.input.frame_id for f in fused]
        indices = [f.camera.index for f in fused]
        motions = [f.motion for f in fused]
        self._publish(cloud_msg, cloud, result, frame_ids, offsets, warnings, indices, motions)
        for stage, ms in result.timings_ms.items():
            self.diagnostics.time(stage, ms)
        self.diagnostics.time("total", (time.perf_counter() - start) * 1e3)
        self.diagnostics.published("clouds", labeled=result.fusion.points_labeled > 0)
        for camera in fused:  # used: their cloud went out (else _settle_cameras drops them)
            item = matched.cameras[camera.camera.index].item
            if not item.used:
                item.used = True
                self.diagnostics.count(f"{camera.camera.stream.name} used")

    def _learn_latency(self, matched: MatchedFrame) -> None:
        for camera, match in zip(self.cameras, matched.cameras, strict=True):
            if match is not None:
                camera.latencies.append(max(match.item.time - matched.cloud.time, 0.0))

    def _camera(self, camera: CameraState, item: Arrival, cloud_header: Any) -> FusedCamera:
        """The CameraInput of one matched camera message; raises FrameDropError to skip it."""
        if camera.model is None:
            raise FrameDropError(
                "no calibration",
                camera.model_error or f"no CameraInfo received yet on {camera.name}/camera_info",
            )
        fields = self.data.inputs(camera, item.message)
        width, height = camera.model.image_size
        for key in ("labels", "confidence", "instances", "image"):
            array = fields.get(key)
            if array is not None and array.shape[:2] != (height, width):
                raise FrameDropError(
                    "size mismatch",
                    f"{key} is {array.shape[1]}x{array.shape[0]} but its CameraInfo describes "
                    f"a {width}x{height} image",
                )
        frame_id = camera.info.header.frame_id
        transform = camera.extrinsics
        if transform is None:
            transform = self._lookup(frame_id, cloud_header)
        motion = (0.0, 0.0)
        if self.motion is not None:
            offset = Duration(nanoseconds=round(camera.record.time_offset * 1e9))
            camera_time = Time.from_msg(self.data.header(item.message).stamp) + offset
            delta = self.motion.camera_delta(cloud_header, camera_time, camera.name)
            transform = transform @ delta
            motion = describe_motion(delta)
        camera_input = CameraInput(
            name=camera.name, model=camera.model, T_cam_from_lidar=transform, frame_id=frame_id,
            labels_description=f"{camera.name}/{self.data.kind}", index=camera.index, **fields,
        )  # fmt: skip
        if camera_input.labels is None:
            source = self.pipeline.label_source_for(camera.name)
            segmentation = segment_or_drop(source, camera_input.image, camera.name)
            camera_input = camera_input.segmented(segmentation, source.description)
        segmentation = camera_input.segmentation()
        return FusedCamera(camera, item.message, camera_input, segmentation, motion)

    def _lookup(self, camera_frame: str, cloud_header: Any) -> np.ndarray:
        try:
            stamped = self.tf_buffer.lookup_transform(
                camera_frame, cloud_header.frame_id, Time.from_msg(cloud_header.stamp),
                timeout=Duration(seconds=0.0),
            )  # fmt: skip
        except Exception as error:  # tf2 raises several types
            raise FrameDropError(
                "no transform", f"no transform {cloud_header.frame_id} -> {camera_frame}: {error}"
            ) from None
        t, q = stamped.transform.translation, stamped.transform.rotation
        try:
            return transform_from_translation_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
        except TransformError as error:
            raise FrameDropError("bad transform", str(error)) from None

    def _publish(
        self, cloud_msg: PointCloud2, cloud: np.ndarray, result: FrameResult,
        frame_ids: list[str], offsets: list[float], warnings: list[str], indices: list[int],
        motions: list[tuple[float, float]],
    ) -> None:  # fmt: skip
        header = cloud_msg.header
        if self.node.wanted(self.cloud_pub):
            fields = labeled_fields(result)
            replaced = replaced_fields(cloud_msg, fields)
            if replaced:
                self.diagnostics.count("clouds with replaced fields")
                self.node.get_logger().warning(
                    f"the input cloud already has {', '.join(replaced)}: replaced by this "
                    "node's (is the node fed its own output?)",
                    once=True,
                )
            self.cloud_pub.publish(append_pointcloud2_fields(cloud_msg, fields, replace=True))
        if self.params["publish_rgb"] and self.node.wanted(self.rgb_pub):
            colored = rgb_cloud(cloud_xyz(cloud), result.fusion.label, self.label_set)
            self.rgb_pub.publish(array_to_pointcloud2(colored, header))
        status = fusion_status_message(
            result, header, len(self.cameras), frame_ids, offsets, warnings, indices, motions
        )
        status.header = header
        self.status_pub.publish(status)
        if self.instance_pubs is not None:
            objects, markers = self.instance_pubs
            if self.node.wanted(objects):
                objects.publish(instances_message(result.instances, self.label_set, header))
            if self.node.wanted(markers):
                markers.publish(instance_markers(result.instances, self.label_set, header))


def declare_camera_record(node: Any, name: str) -> CameraRecord:
    """Declare camera ``name``'s ``camera.<name>.*`` parameters (one per CameraRecord
    field) and build its record; StartupError with the reason when they do not fit."""
    prefix = f"camera.{name}"
    declared = declare_parameters(node, tuple(
        Param(f"{prefix}.{field}", default, about, *CAMERA_RANGES.get(field, (None, None)),
              choices=choices)
        for field, default, about, choices in camera_fields()
    ))  # fmt: skip
    values = {key.rsplit(".", 1)[1]: value for key, value in declared.items()}
    values["extrinsics"] = tuple(float(v) for v in values["extrinsics"])
    try:
        return CameraRecord(name=name, **values)
    except (RigError, TransformError) as error:
        raise StartupError(str(error)) from None


def camera_names(node: Any) -> list[str]:
    names = list(node.params["cameras"])
    valid = all(name and name.replace("_", "").isalnum() for name in names)
    if not valid or not 1 <= len(names) <= MAX_CAMERAS or len(set(names)) != len(names):
        raise StartupError(
            f"cameras must be 1-{MAX_CAMERAS} distinct names of letters, digits and _, got {names}"
        )
    return names


def _same_info(a: CameraInfo, b: CameraInfo) -> bool:
    return (
        a.width == b.width and a.height == b.height and list(a.k) == list(b.k)
        and list(a.d) == list(b.d) and list(a.p) == list(b.p) and list(a.r) == list(b.r)
        and a.distortion_model == b.distortion_model and a.header.frame_id == b.header.frame_id
    )  # fmt: skip
