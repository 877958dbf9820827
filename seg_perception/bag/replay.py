"""Offline, deterministic replay of a rosbag2 through the same Pipeline the nodes run.

Clouds and camera images are paired with the fusion node's own matcher
(:class:`seg_perception.core.sync.StampMatcher`, driven by header stamps only), camera
models come from the bag's CameraInfo, extrinsics from its ``/tf_static`` and ``/tf``
(parsed here, no tf2 needed) or from a calibration file, and every cloud read is either
processed or reported as dropped with its reason. The output bag holds labeled clouds,
class-colored clouds, label images, the class map and one FusionStatus per cloud, with
the input stamps; it also records the replay configuration so ``regress`` can refuse to
compare runs of different configurations. The output bag is written under a temporary name
and renamed at the end, so a failed or interrupted replay leaves none.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seg_perception.bag import messages as bagmsg
from seg_perception.bag.io import (
    BagError,
    BagWriter,
    has_own_messages,
    new_bag,
    open_bag,
    topic_types,
    typestore,
)
from seg_perception.core.camera_model import CameraModel
from seg_perception.core.deskew import TimeFieldError, deskew, find_time_field, point_offsets
from seg_perception.core.fusion import FusionConfig
from seg_perception.core.labeled_cloud import labeled_fields, rgb_cloud
from seg_perception.core.labels import LabelSet
from seg_perception.core.motion import TransformHistory, describe_motion, motion_delta
from seg_perception.core.pipeline import CameraInput, Frame, Pipeline
from seg_perception.core.rig import CameraRecord
from seg_perception.core.sync import StampMatcher
from seg_perception.core.transforms import (
    TransformError,
    invert_transform,
    transform_from_translation_quaternion,
)
from seg_perception.ros.camera_info import camera_model_from_camera_info
from seg_perception.ros.image_conversions import (
    compressed_image_to_array,
    image_to_array,
    image_to_rgb8,
)
from seg_perception.ros.pointcloud2 import (
    append_fields,
    cloud_xyz,
    pointcloud2_to_array,
    without_fields,
)

CONFIG_KEY = "seg_perception.replay_config"
IMAGE, INFO, CLOUD = (
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CameraInfo",
    "sensor_msgs/msg/PointCloud2",
)
COMPRESSED = "sensor_msgs/msg/CompressedImage"
TF = "tf2_msgs/msg/TFMessage"


class ReplayModelError(RuntimeError):
    """The 2D model failed at run time on one of the bag's images (not a bag problem).

    Its message is one line naming the model, the camera, image topic and stamp, the
    cloud's stamp and the model's error; replay stops and leaves no output bag, since a
    run with a frame missing for this reason must not become (or be compared as) a golden.
    """


#: Replay's cameras are the nodes' camera records (core/rig.py); the old name stays.
CameraTopics = CameraRecord


@dataclass
class ReplayConfig:
    """What to replay and how. Empty topics are found in the bag."""

    cloud_topic: str = ""
    #: Camera records (topics, transport, projection, offsets, extrinsics); empty: found in
    #: the bag, with ``tolerance_s`` and ``time_offsets``.
    cameras: list[CameraRecord] = field(default_factory=list)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    segment_cloud: bool = True
    #: "" = extrinsics from the bag's /tf_static and /tf; else a calibration YAML file.
    calibration: str = ""
    tolerance_s: float = 0.05
    #: Seconds added to a camera's stamps before matching, by camera name.
    time_offsets: dict[str, float] = field(default_factory=dict)
    max_pending: int = 2
    storage: str = "mcap"
    output_prefix: str = "/seg_perception"
    write_label_images: bool = True
    #: Folder for an overlay picture (labeled points over the camera image) per frame.
    pictures: str = ""
    #: A fixed frame (odom, map): each camera sees the sweep moved from the cloud's stamp
    #: to its own with the bag's /tf (motion compensation); "": no compensation.
    fixed_frame: str = ""
    #: With ``fixed_frame``, also move each point from its firing time (the cloud's time
    #: field) to the cloud's stamp before projecting (``core/deskew.py``). auto: when the
    #: cloud has a time field; on: required (a cloud without one is dropped); off.
    deskew: str = "auto"
    #: The per-point time field; "": the first of t, time, timestamp, offset_time found.
    time_field: str = ""
    #: Ignore cameras: clouds in, ``<prefix>/segmented_points`` out (the LiDAR segmenter's
    #: lidar_class and cluster appended, every input field and the layout kept). A bag
    #: without cameras is replayed this way anyway.
    lidar_only: bool = False

    def describe(self, engine_description: str) -> str:
        """The settings that decide the output, as JSON (stored in the output bag)."""
        values = asdict(self)
        values.pop("storage")
        values.pop("pictures")
        values["engine"] = engine_description
        return json.dumps(values, sort_keys=True, default=str)


@dataclass
class ReplaySummary:
    clouds_read: int = 0
    clouds_processed: int = 0
    images_read: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    camera_warnings: Counter = field(default_factory=Counter)
    timings_ms: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    output: str = ""
    #: No camera was used: clouds were only LiDAR-segmented.
    lidar_only: bool = False
    #: Motion compensation per cloud, e.g. "de-skewed (time field 't')": count.
    motion: Counter = field(default_factory=Counter)
    #: Clouds each configured camera contributed to, by name (every camera listed).
    cameras_used: Counter = field(default_factory=Counter)
    #: Points per published label id over the labeled clouds written.
    class_counts: Counter = field(default_factory=Counter)

    @property
    def unused_cameras(self) -> list[str]:
        """Cameras that labeled no processed cloud in the whole bag."""
        if not self.clouds_processed:
            return []
        return [name for name, n in self.cameras_used.items() if n == 0]

    @property
    def accounted(self) -> bool:
        return self.clouds_read == self.clouds_processed + sum(
            n for reason, n in self.dropped.items() if reason.startswith("cloud")
        )

    def format(self) -> str:
        lines = ["LiDAR-only replay: no camera (segmented_points)"] if self.lidar_only else []
        lines += [
            f"clouds read {self.clouds_read}, processed {self.clouds_processed}, "
            f"dropped {sum(n for r, n in self.dropped.items() if r.startswith('cloud'))}",
            "images read: " + ", ".join(f"{k} {v}" for k, v in sorted(self.images_read.items())),
        ]
        lines += [f"  dropped: {reason}: {n}" for reason, n in sorted(self.dropped.items())]
        lines += [f"  camera warning: {w}: {n}" for w, n in sorted(self.camera_warnings.items())]
        lines += [f"motion compensation: {what}: {n}" for what, n in sorted(self.motion.items())]
        lines += [
            f"WARNING: camera '{name}' labeled no cloud in the whole bag ({self.images_read[name]} "
            "of its messages read): check its topics, time_offset, delay and tolerance"
            for name in self.unused_cameras
        ]
        total = sum(self.timings_ms.values()) or 1.0
        lines.append(
            f"time {self.wall_s:.2f} s ({self.clouds_processed / max(self.wall_s, 1e-9):.2f} "
            "frames/s); per stage:"
        )
        lines += [
            f"  {stage:18s} {ms:9.1f} ms  {100 * ms / total:5.1f}%"
            for stage, ms in sorted(self.timings_ms.items(), key=lambda kv: -kv[1])
        ]
        lines.append(f"wrote {self.output}")
        return "\n".join(lines)


def _stamp(message: Any) -> int:
    return _stamp_of(message.header)


def _stamp_of(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _format_stamp(header: Any) -> str:
    return f"{int(header.stamp.sec)}.{int(header.stamp.nanosec):09d}"


def find_topics(types: dict[str, str], config: ReplayConfig) -> tuple[str, list[CameraRecord]]:
    """The cloud topic and cameras to use, from the configuration or the bag's contents.

    Found cameras: every Image topic with a CameraInfo beside it, and every
    ``<image>/compressed`` CompressedImage (image_transport's name) whose ``<image>`` has a
    CameraInfo beside it; named after the folder, e.g. ``/front/image_raw`` -> ``front``.
    """
    listing = ", ".join(f"{t} ({m})" for t, m in sorted(types.items()))
    cloud = config.cloud_topic
    if not cloud:
        clouds = [t for t, m in types.items() if m == CLOUD]
        if len(clouds) != 1:
            raise BagError(
                f"give --cloud-topic: the bag has {len(clouds)} PointCloud2 topics ({listing})"
            )
        cloud = clouds[0]
    cameras = [] if config.lidar_only else list(config.cameras)
    if not cameras and not config.lidar_only:
        cameras = _found_cameras(types, config)
        # No camera at all: a LiDAR-only robot. The summary says so (lidar_only then).
    for camera in cameras:
        image_type = COMPRESSED if camera.transport == "compressed" else IMAGE
        wanted = [(camera.data_topic, IMAGE if camera.labels_topic else image_type)]
        wanted.append((camera.info_topic, INFO))
        for topic, msgtype in wanted:
            if topic not in types:
                raise BagError(f"topic {topic} is not in the bag; it has: {listing}")
            if types[topic] != msgtype:
                raise BagError(
                    f"topic {topic} holds {types[topic]}, not {msgtype} (camera '{camera.name}', "
                    f"transport {camera.transport})"
                )
    if cloud not in types:
        raise BagError(f"topic {cloud} is not in the bag; it has: {listing}")
    if types[cloud] != CLOUD:
        raise BagError(f"topic {cloud} holds {types[cloud]}, not {CLOUD}")
    return cloud, cameras


def _found_cameras(types: dict[str, str], config: ReplayConfig) -> list[CameraRecord]:
    infos = {t.rsplit("/", 1)[0]: t for t, m in types.items() if m == INFO}
    cameras = []
    for topic, msgtype in sorted(types.items()):
        image = topic.removesuffix("/compressed") if msgtype == COMPRESSED else topic
        base = image.rsplit("/", 1)[0]
        if msgtype in (IMAGE, COMPRESSED) and base in infos:
            name = base.rsplit("/", 1)[-1] or "camera"
            if any(c.name == name for c in cameras):
                continue  # raw and compressed of one camera: the raw one (found first) wins
            cameras.append(
                CameraRecord(
                    name, topic, infos[base],
                    transport="compressed" if msgtype == COMPRESSED else "raw",
                    time_offset=config.time_offsets.get(name, 0.0),
                    tolerance=config.tolerance_s,
                )
            )  # fmt: skip
    return cameras


def read_transforms(reader: Any) -> TransformHistory:
    """The bag's transforms: ``/tf_static`` for good, ``/tf`` as time series (by stamp).

    Looked up at a time, as the live node's tf2 buffer does (a moving frame is no longer
    folded into one static tree where the last value wins).
    """
    history = TransformHistory()
    connections = [c for c in reader.connections if c.msgtype == TF]
    if not connections:  # rosbags reads *every* message for an empty list
        return history
    for connection, _, raw in reader.messages(connections=connections):
        static = connection.topic == "/tf_static"
        for transform in reader.deserialize(raw, connection.msgtype).transforms:
            history.add_transform_stamped(transform, static=static)
    return history


def calibration_from_file(path: str) -> dict[str, np.ndarray]:
    """``{camera: T_cam_from_lidar}`` from a YAML file of ``camera: [x y z qx qy qz qw]``
    (the camera's pose in the LiDAR frame, as the fusion node's extrinsics parameter)."""
    file = Path(path)
    if not file.is_file():
        raise BagError(f"calibration file not found: {file}")
    data = yaml.safe_load(file.read_text()) or {}
    result = {}
    for name, pose in data.items():
        if not isinstance(pose, list) or len(pose) != 7:
            raise BagError(f"{file}: camera '{name}' needs [x, y, z, qx, qy, qz, qw], got {pose}")
        result[name] = invert_transform(transform_from_translation_quaternion(pose[:3], pose[3:]))
    return result


class Replayer:
    """Runs one bag through the pipeline; see :func:`replay`."""

    def __init__(
        self, config: ReplayConfig, label_source: Any | None, cloud_segmenter: Any | None
    ) -> None:
        self.config = config
        self.label_source = label_source
        label_set = getattr(label_source, "label_set", None) or LabelSet.cityscapes()
        self.pipeline = Pipeline(label_source, cloud_segmenter, config.fusion, label_set)
        self.store = typestore()
        self.summary = ReplaySummary()

    def run(self, bag: str | Path, output: str | Path, progress: bool = False) -> ReplaySummary:
        start = time.perf_counter()
        with open_bag(bag, self.store) as reader:
            cloud_topic, cameras = find_topics(topic_types(reader), self.config)
            extrinsics = (
                calibration_from_file(self.config.calibration) if self.config.calibration else None
            )
            needs_tf = extrinsics is None or bool(self.config.fixed_frame)
            tree = read_transforms(reader) if needs_tf else None
            if self.config.deskew not in ("auto", "on", "off"):
                raise BagError(f"deskew must be auto, on or off, not {self.config.deskew!r}")
            if self.config.deskew == "on" and not self.config.fixed_frame:
                raise BagError("--deskew on needs --fixed-frame (the LiDAR's pose over the sweep)")
            if self.config.fixed_frame and not (tree and tree.dynamic):
                raise BagError(
                    f"fixed frame '{self.config.fixed_frame}' given but the bag has no /tf: "
                    "motion compensation needs the LiDAR's pose over time"
                )
            # The output appears only when the whole bag went through (see new_bag).
            with new_bag(output, self.store, self.config.storage) as writer:
                try:
                    self._write_preamble(writer, reader)
                    self._replay(reader, writer, cloud_topic, cameras, tree, extrinsics, progress)
                except (BagError, TransformError, ReplayModelError):
                    raise
                except Exception as error:  # sqlite/mcap/CDR errors of a broken bag
                    raise BagError(
                        f"cannot read bag {bag} after {self.summary.clouds_read} clouds "
                        f"({type(error).__name__}: {error}); is it truncated?"
                    ) from None
        self.summary.wall_s = time.perf_counter() - start
        self.summary.output = str(output)
        return self.summary

    # ------------------------------------------------------------------ internals
    def _write_preamble(self, writer: BagWriter, reader: Any) -> None:
        description = getattr(self.label_source, "description", "no 2D source")
        spec = getattr(self.label_source, "spec", None)
        if spec is not None:  # the contract the model ran with, and where each part came from
            description += f"; model spec: {spec.describe()} (sources: {dict(spec.sources)})"
        writer.set_custom_data(CONFIG_KEY, self.config.describe(description))
        start = reader.start_time
        if has_own_messages(self.store):
            message = bagmsg.class_map(
                self.store, self.pipeline.label_set, bagmsg.header(self.store, start, "")
            )
            writer.write(f"{self.config.output_prefix}/class_map", message, start, latched=True)
        tf = [c for c in reader.connections if c.topic == "/tf_static"]
        # (an empty list would make rosbags read every message of the bag)
        for connection, timestamp, raw in reader.messages(connections=tf) if tf else ():
            writer.write(
                "/tf_static", reader.deserialize(raw, connection.msgtype), timestamp, latched=True
            )

    def _replay(
        self, reader: Any, writer: BagWriter, cloud_topic: str, cameras: list[CameraTopics],
        tree: TransformHistory | None, extrinsics: dict[str, np.ndarray] | None, progress: bool,
    ) -> None:  # fmt: skip
        if not cameras:
            self.summary.lidar_only = True
            self._replay_lidar_only(reader, writer, cloud_topic)
            return
        matcher = StampMatcher([c.sync() for c in cameras], max_pending=self.config.max_pending)
        index_of_image = {c.data_topic: i for i, c in enumerate(cameras)}
        self.summary.cameras_used.update({c.name: 0 for c in cameras})
        camera_of_info = {c.info_topic: c for c in cameras}
        models: dict[str, tuple[CameraModel | None, str, str]] = {}
        topics = {cloud_topic, *index_of_image, *camera_of_info}
        connections = [c for c in reader.connections if c.topic in topics]
        total = sum(c.msgcount for c in connections if c.topic == cloud_topic)
        timings = self.summary.timings_ms
        read_start = time.perf_counter()
        for connection, timestamp, raw in reader.messages(connections=connections):
            message = reader.deserialize(raw, connection.msgtype)
            timings["read"] += (time.perf_counter() - read_start) * 1e3
            topic = connection.topic
            if topic == cloud_topic:
                self.summary.clouds_read += 1
                released = matcher.add_cloud(_stamp(message), (message, timestamp))
            elif topic in index_of_image:
                self.summary.images_read[cameras[index_of_image[topic]].name] += 1
                released = matcher.add_camera(index_of_image[topic], _stamp(message), message)
            else:
                camera = camera_of_info[topic]
                models[camera.name] = self._camera_model(message, camera.projection)
                released = []
            for frame in released:
                self._process(frame, cameras, models, tree, extrinsics, writer)
            if progress and topic == cloud_topic:
                print(
                    f"\rreplay: {self.summary.clouds_read}/{total} clouds", end="", file=sys.stderr
                )
            read_start = time.perf_counter()
        for frame in matcher.flush():
            self._process(frame, cameras, models, tree, extrinsics, writer)
        if progress:
            print(file=sys.stderr)
        for reason, count in matcher.stats.dropped.items():
            self.summary.dropped[reason] += count

    def _replay_lidar_only(self, reader: Any, writer: BagWriter, cloud_topic: str) -> None:
        """Every cloud through the LiDAR segmenter into ``<prefix>/segmented_points``."""
        segmenter = self.pipeline.cloud_segmenter
        if segmenter is None:
            raise BagError("a LiDAR-only replay needs the LiDAR segmenter (drop --no-lidar-...)")
        topic = f"{self.config.output_prefix}/segmented_points"
        connections = [c for c in reader.connections if c.topic == cloud_topic]
        timings = self.summary.timings_ms
        for connection, timestamp, raw in reader.messages(connections=connections):
            message = reader.deserialize(raw, connection.msgtype)
            self.summary.clouds_read += 1
            try:
                cloud = pointcloud2_to_array(message)
                start = time.perf_counter()
                segmentation = segmenter.segment(cloud_xyz(cloud))
                timings["segment_cloud"] += (time.perf_counter() - start) * 1e3
            except ValueError as error:
                self.summary.dropped[f"cloud: malformed PointCloud2 ({error})"] += 1
                continue
            fields = {"lidar_class": segmentation.lidar_class.astype(np.uint8, copy=False)}
            if segmentation.cluster_id is not None:
                fields["cluster"] = segmentation.cluster_id.astype(np.int32, copy=False)
            start = time.perf_counter()
            output = append_fields(without_fields(cloud, fields), fields)
            writer.write(topic, bagmsg.pointcloud2(self.store, output, message.header), timestamp)
            timings["write"] += (time.perf_counter() - start) * 1e3
            self.summary.clouds_processed += 1

    @staticmethod
    def _camera_model(message: Any, projection: str) -> tuple[CameraModel | None, str, str]:
        try:
            model = camera_model_from_camera_info(message, projection)  # type: ignore[arg-type]
            return model, message.header.frame_id, ""
        except ValueError as error:
            return None, message.header.frame_id, f"bad CameraInfo: {error}"

    def _process(
        self, frame: Any, cameras: list[CameraTopics], models: dict, tree: TransformHistory | None,
        extrinsics: dict[str, np.ndarray] | None, writer: BagWriter,
    ) -> None:  # fmt: skip
        timings = self.summary.timings_ms
        cloud_msg, log_time = frame.cloud
        start = time.perf_counter()
        try:
            cloud = pointcloud2_to_array(cloud_msg)
        except ValueError as error:
            self.summary.dropped[f"cloud: malformed PointCloud2 ({error})"] += 1
            return
        inputs, warnings, headers, used, motions = [], [], [], [], []
        for index, (camera, match) in enumerate(zip(cameras, frame.cameras, strict=True)):
            if match is None:
                warnings.append(f"camera '{camera.name}': no image within its time window")
                continue
            try:
                camera_input = self._camera_input(
                    camera, match.item, cloud_msg, models, tree, extrinsics
                )
                motion = (0.0, 0.0)
                if self.config.fixed_frame:
                    camera_input, motion = self._compensate(
                        camera_input, camera, match.item.header, cloud_msg.header, tree
                    )
                # The point's `camera` field: the index in the configured list, as live.
                inputs.append(replace(camera_input, index=index))
                headers.append(match.item.header)
                used.append(camera)
                motions.append(motion)
            except (BagError, TransformError, ValueError) as error:
                warnings.append(f"camera '{camera.name}': {error}")
        for warning in warnings:
            self.summary.camera_warnings[warning] += 1
        fusion_xyz = None
        if self.config.fixed_frame and self.config.deskew != "off" and inputs:
            try:
                fusion_xyz, how = self._deskew(cloud, cloud_msg.header, tree)
            except (TimeFieldError, TransformError) as error:
                self.summary.dropped[f"cloud: cannot de-skew ({error})"] += 1
                return
            self.summary.motion[how] += 1
        timings["convert"] += (time.perf_counter() - start) * 1e3
        try:
            start = time.perf_counter()
            self.summary.cameras_used.update(c.name for c in used)
            inputs = [
                self._segment(camera_input, camera, header, cloud_msg.header)
                for camera_input, camera, header in zip(inputs, used, headers, strict=True)
            ]
            timings["segment_cameras"] += (time.perf_counter() - start) * 1e3
            result = self.pipeline.process(
                Frame(cloud, inputs, frame.stamp_ns, cloud_msg.header.frame_id, fusion_xyz)
            )
        except ValueError as error:
            self.summary.dropped[f"cloud: pipeline refused it ({error})"] += 1
            return
        for stage, ms in result.timings_ms.items():
            timings[stage] += ms
        start = time.perf_counter()
        self._write(
            writer, log_time, cloud_msg, cloud, result, inputs, headers, warnings, len(cameras),
            motions,
        )  # fmt: skip
        timings["write"] += (time.perf_counter() - start) * 1e3
        if self.config.pictures:
            start = time.perf_counter()
            self._picture(cloud, result, inputs, cloud_msg.header)
            timings["pictures"] += (time.perf_counter() - start) * 1e3
        self.summary.clouds_processed += 1

    def _segment(
        self, camera_input: CameraInput, camera: CameraTopics, image_header: Any, cloud_header: Any
    ) -> CameraInput:
        """``camera_input`` with its label image made by the pipeline's label source.

        Done here, one camera at a time, rather than inside ``Pipeline.process`` (which then
        takes the labels as they are) only so that a model failure can name the camera,
        topic and stamp it failed on. A ValueError (an image the engine refuses) still
        drops the frame as before; any other error is a ReplayModelError.
        """
        if camera_input.labels is not None:
            return camera_input
        try:
            segmentation, description = self.pipeline.segment_camera(camera_input)
        except ValueError:
            raise
        except Exception as error:  # ONNX Runtime, torch, TensorRT, out of memory...
            source = self.pipeline.label_source_for(camera.name)
            model = getattr(source, "description", "") or type(source).__name__
            text = " ".join(str(error).split())[:300] or type(error).__name__
            height, width = camera_input.image.shape[:2]
            raise ReplayModelError(
                f"model failure: {model} failed on camera '{camera.name}' "
                f"({camera.image_topic}, image stamp {_format_stamp(image_header)}, "
                f"{width}x{height}; cloud stamp {_format_stamp(cloud_header)}): {text}"
            ) from error
        return camera_input.segmented(segmentation, description)

    def _compensate(
        self, camera_input: CameraInput, camera: CameraRecord, image_header: Any,
        cloud_header: Any, tree: TransformHistory,
    ) -> tuple[CameraInput, tuple[float, float]]:  # fmt: skip
        """Move the sweep to where the vehicle was when this camera exposed (module
        ``core/motion.py``): LiDAR pose in the fixed frame at the cloud's and the image's
        stamp (+ the camera's time offset, which puts its stamps on the LiDAR's clock)."""
        cloud_ns = _stamp_of(cloud_header)
        image_ns = _stamp_of(image_header) + round(camera.time_offset * 1e9)
        delta = motion_delta(
            tree, self.config.fixed_frame, cloud_header.frame_id, cloud_ns, image_ns
        )
        compensated = replace(camera_input, T_cam_from_lidar=camera_input.T_cam_from_lidar @ delta)
        return compensated, describe_motion(delta)

    def _deskew(
        self, cloud: np.ndarray, header: Any, tree: TransformHistory
    ) -> tuple[np.ndarray | None, str]:
        """The sweep's points moved to the cloud's stamp, each from its own firing time, with
        the LiDAR's poses from the bag's /tf (``core/deskew.py``), and what was done. Without
        a time field: None under deskew auto, TimeFieldError under on."""
        stamp = _stamp_of(header)
        try:
            field = find_time_field(cloud.dtype.names, self.config.time_field)
        except TimeFieldError:
            if self.config.deskew == "on" or self.config.time_field:
                raise
            return None, "not de-skewed (no per-point time field)"
        offsets = point_offsets(cloud, field, stamp)
        fixed, lidar = self.config.fixed_frame, header.frame_id

        def delta_at(knots: np.ndarray) -> np.ndarray:
            return np.stack([
                motion_delta(tree, fixed, lidar, stamp + round(k * 1e9), stamp) for k in knots
            ])  # fmt: skip

        return deskew(cloud_xyz(cloud), offsets, delta_at), f"de-skewed (time field '{field}')"

    def _camera_input(
        self, camera: CameraTopics, image_msg: Any, cloud_msg: Any, models: dict,
        tree: TransformHistory | None, extrinsics: dict[str, np.ndarray] | None,
    ) -> CameraInput:  # fmt: skip
        model, frame_id, error = models.get(camera.name, (None, "", "no CameraInfo yet"))
        if model is None:
            raise BagError(error)
        if camera.has_extrinsics:  # the record's own pose wins over TF and --calibration
            transform = camera.T_cam_from_lidar()
        elif extrinsics is not None:
            if camera.name not in extrinsics:
                raise BagError(f"no extrinsics for it in {self.config.calibration}")
            transform = extrinsics[camera.name]
        else:  # TF at the cloud's stamp (the chain camera <- LiDAR is usually static)
            transform = tree.lookup(
                frame_id or image_msg.header.frame_id, cloud_msg.header.frame_id,
                _stamp(cloud_msg),
            )  # fmt: skip
        if camera.labels_topic:
            labels = image_to_array(image_msg)
            if labels.ndim != 2:
                raise BagError(
                    f"{camera.labels_topic} holds {image_msg.encoding}, not mono8/mono16"
                )
            return CameraInput(
                name=camera.name, model=model, T_cam_from_lidar=transform, labels=labels,
                frame_id=frame_id, labels_description=f"label images from {camera.labels_topic}",
            )  # fmt: skip
        if camera.transport == "compressed":
            image = compressed_image_to_array(image_msg)
            if image.ndim != 3:
                raise BagError(f"{camera.image_topic}: a {image_msg.format!r} image, not color")
            image = np.ascontiguousarray(image[..., :3])
        else:
            image = image_to_rgb8(image_msg)
        return CameraInput(
            name=camera.name, model=model, T_cam_from_lidar=transform, image=image,
            frame_id=frame_id,
        )  # fmt: skip

    def _write(
        self, writer: BagWriter, log_time: int, cloud_msg: Any, cloud: np.ndarray, result: Any,
        inputs: list[CameraInput], headers: list[Any], warnings: list[str], expected: int,
        motions: list[tuple[float, float]],
    ) -> None:  # fmt: skip
        prefix, store = self.config.output_prefix, self.store
        header = cloud_msg.header
        labeled = append_fields(cloud, labeled_fields(result))
        ids, counts = np.unique(result.fusion.label, return_counts=True)
        self.summary.class_counts.update(dict(zip(ids.tolist(), counts.tolist(), strict=True)))
        writer.write(
            f"{prefix}/labeled_points", bagmsg.pointcloud2(store, labeled, header), log_time
        )
        colored = rgb_cloud(cloud_xyz(cloud), result.fusion.label, self.pipeline.label_set)
        writer.write(
            f"{prefix}/labeled_points_rgb", bagmsg.pointcloud2(store, colored, header), log_time
        )
        if self.config.write_label_images:
            encoding = self.pipeline.label_set.image_encoding
            for camera, segmentation, image_header in zip(
                inputs, result.segmentations, headers, strict=True
            ):
                message = bagmsg.image(store, segmentation.labels, encoding, image_header)
                writer.write(f"{prefix}/{camera.name}/labels", message, log_time)
        if has_own_messages(store):
            status = bagmsg.fusion_status(
                store, result, header, cameras_expected=expected,
                frame_ids=[c.frame_id for c in inputs], warnings=warnings,
                camera_indices=[c.index for c in inputs], motions=motions,
            )  # fmt: skip
            writer.write(f"{prefix}/fusion_status", status, log_time)

    def _picture(
        self, cloud: np.ndarray, result: Any, inputs: list[CameraInput], header: Any
    ) -> None:
        """Labeled points over each camera's image: shows the projection is right."""
        import cv2

        from seg_perception.core.transforms import transform_points
        from seg_perception.visualize import overlay_points

        folder = Path(self.config.pictures)
        folder.mkdir(parents=True, exist_ok=True)
        xyz = cloud_xyz(cloud)
        colors = self.pipeline.label_set.colorize(result.fusion.label)
        for index, camera in enumerate(inputs):
            projection = camera.model.project(transform_points(camera.T_cam_from_lidar, xyz))
            shown = projection.valid & (result.fusion.camera == index)
            background = camera.image
            if background is None:
                background = self.pipeline.label_set.colorize(camera.labels)
            picture = overlay_points(
                background, projection.uv[shown], projection.depth[shown], colors[shown]
            )
            stamp = f"{header.stamp.sec}.{header.stamp.nanosec:09d}"
            path = folder / f"overlay_{camera.name}_{stamp}.png"
            cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


def replay(
    bag: str | Path,
    output: str | Path,
    config: ReplayConfig,
    label_source: Any | None,
    cloud_segmenter: Any | None = None,
    progress: bool = False,
) -> ReplaySummary:
    """Replay ``bag`` into ``output``; returns the summary (every cloud accounted for).

    ``output`` appears only when the whole bag went through: on any error (BagError,
    ReplayModelError when the 2D model fails on a frame, Ctrl-C) nothing is left there.
    """
    return Replayer(config, label_source, cloud_segmenter).run(bag, output, progress)
