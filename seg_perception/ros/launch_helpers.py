"""What the launch files in ``launch/`` start, decided in plain Python.

Each launch file declares the arguments listed in :data:`LAUNCH_ARGUMENTS` and, once
``ros2 launch`` has their values, calls :func:`plan` (from an ``OpaqueFunction``) to turn
them into :class:`NodeSpec` s: which nodes, their names, namespaces, parameter files,
parameter overrides and topic remappings. All of that is validated here, with one clear
sentence per mistake, and tested without ``launch`` (which is not on PyPI).
:func:`generate_launch_description` turns a plan into ``launch`` / ``launch_ros`` actions;
it is the only code that imports them, and only when it runs.

Topology (namespace ``<ns>``, default ``seg_perception``; one camera ``<name>`` of
``cameras``):

* separate nodes (default): ``/<ns>/<name>/<name>_segmentation`` (image from the
  ``image_topic_pattern``; publishes ``/<ns>/<name>/labels``, ``confidence``,
  ``color_mask``, ``overlay``, ``class_map``), ``/<ns>/lidar_segmentation`` (``lidar_topic``
  -> ``/<ns>/segmented_points``) and ``/<ns>/fusion`` (``/<ns>/segmented_points`` + the
  labels + the ``camera_info_topic_pattern`` -> ``/<ns>/labeled_points``,
  ``labeled_points_rgb``, ``fusion_status``, ``class_map``);
* ``single_process:=true``: ``/<ns>/pipeline`` alone, with the fusion's outputs and, per
  camera, ``/<ns>/<name>/labels`` and ``overlay``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = "seg_perception"
MAX_CAMERAS = 8

#: Executables installed in ``lib/seg_perception`` -> the module whose ``main`` they run.
EXECUTABLES = {
    "camera_segmentation_node": "seg_perception.ros.nodes.camera_segmentation",
    "lidar_segmentation_node": "seg_perception.ros.nodes.lidar_segmentation",
    "fusion_node": "seg_perception.ros.nodes.fusion",
    "pipeline_node": "seg_perception.ros.nodes.pipeline",
}

#: The environment variable that points Fast DDS at an XML profile, and its newer alias:
#: when either is set, the user chose a profile and the launch files leave it alone.
FASTDDS_PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
FASTDDS_PROFILE_VARIABLES = (FASTDDS_PROFILE_VARIABLE, "FASTDDS_DEFAULT_PROFILES_FILE")

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_TOKEN = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN_RE = re.compile(rf"^{_TOKEN}$")
_NAME_RE = re.compile(rf"^/?{_TOKEN}(/{_TOKEN})*$")  # a topic name or namespace, no "~"


class LaunchArgumentError(ValueError):
    """A launch argument that cannot work; the message says which and why."""


@dataclass(frozen=True)
class ShareFile:
    """A file installed in ``share/seg_perception`` (``FindPackageShare`` at launch time)."""

    parts: tuple[str, ...]

    def path(self, share: str | Path) -> str:
        return str(Path(share, *self.parts))


@dataclass(frozen=True)
class Argument:
    """One ``DeclareLaunchArgument``: name, default (text or a share file), description."""

    name: str
    default: str | ShareFile
    description: str


@dataclass(frozen=True)
class NodeSpec:
    """A node to start: what ``launch_ros.actions.Node`` is given."""

    executable: str
    name: str
    #: Relative to the launch namespace (``""``: the launch namespace itself).
    namespace: str
    #: Parameter files (paths, applied in order) and dicts of overrides (applied last).
    parameters: tuple[str | dict[str, Any], ...]
    remappings: tuple[tuple[str, str], ...]
    package: str = PACKAGE
    arguments: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaunchPlan:
    """Everything one launch file starts, from its argument values."""

    #: Pushed with ``PushRosNamespace`` around the nodes (``""``: none).
    namespace: str
    nodes: tuple[NodeSpec, ...]
    use_sim_time: bool
    log_level: str
    #: The Fast DDS profile to load when the user has not chosen one (``""``: none).
    fastdds_profile: str
    #: rviz2, started outside the namespace (``None``: not started).
    rviz: NodeSpec | None = None
    notes: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------- arguments
def _config(node: str) -> ShareFile:
    return ShareFile(("config", f"{node}.yaml"))


_ARGS = {
    a.name: a
    for a in (
        Argument("namespace", "seg_perception", "ROS namespace of the nodes (empty: none). "
                 "Camera nodes live one level deeper, in <namespace>/<camera>."),
        Argument("cameras", "front", f"Comma-separated camera names, 1-{MAX_CAMERAS} distinct "
                 "ROS name tokens, e.g. 'front,left,right'."),
        Argument("image_topic_pattern", "/{name}/image_raw", "Absolute sensor_msgs/Image topic "
                 "of each camera; {name} is the camera name (compressed: <topic>/compressed)."),
        Argument("camera_info_topic_pattern", "/{name}/camera_info", "Absolute "
                 "sensor_msgs/CameraInfo topic of each camera; {name} is the camera name."),
        Argument("lidar_topic", "/points_raw", "Absolute sensor_msgs/PointCloud2 topic of the "
                 "LiDAR."),
        Argument("model", "", "engine.model: ONNX file, TensorRT engine, Hugging Face folder or "
                 "hub id (empty: the parameter file's)."),
        Argument("backend", "", "engine.backend: auto, onnxruntime, torch or tensorrt (empty: "
                 "the parameter file's)."),
        Argument("device", "", "engine.device: cpu, cuda or cuda:N (empty: the parameter "
                 "file's)."),
        Argument("label_set", "", "Label set of the model: cityscapes or a label-set YAML; "
                 "sets engine.label_set and the fusion's label_set together (empty: the "
                 "parameter files')."),
        Argument("publish_confidence", "false", "true: camera nodes publish "
                 "<camera>/confidence and the fusion uses it (use_confidence)."),
        Argument("lidar_segmentation", "true", "true: run the LiDAR segmentation node and fuse "
                 "its output; false: fuse the raw lidar_topic (separate nodes only)."),
        Argument("single_process", "false", "true: one pipeline node instead of camera, LiDAR "
                 "and fusion nodes (no serialization between stages)."),
        Argument("params_file", "", "Extra ROS 2 parameter file given to every node after its "
                 "own; key sections by node name (/**/fusion:, /**/front_segmentation:, ...)."),
        Argument("camera_params_file", _config("camera_segmentation"), "Parameter file of the "
                 "camera segmentation nodes."),
        Argument("lidar_params_file", _config("lidar_segmentation"), "Parameter file of the "
                 "LiDAR segmentation node."),
        Argument("fusion_params_file", _config("fusion"), "Parameter file of the fusion node "
                 "(per-camera extrinsics, offsets and windows: camera.<name>.*)."),
        Argument("pipeline_params_file", _config("pipeline"), "Parameter file of the pipeline "
                 "node (single_process:=true)."),
        Argument("use_sim_time", "false", "true: every node (and rviz2) uses /clock, e.g. when "
                 "playing a bag with --clock."),
        Argument("rviz", "false", "true: also start rviz2 with rviz_config."),
        Argument("rviz_config", ShareFile(("rviz", "seg_perception.rviz")), "RViz config file."),
        Argument("log_level", "info", f"Log level of the nodes: {', '.join(LOG_LEVELS)}."),
        Argument("fastdds_profile", ShareFile(("config", "fastdds_large_messages.xml")),
                 f"Fast DDS XML profile (32 MB shared memory for large images and clouds, UDP "
                 f"on the loopback interface only) exported as {FASTDDS_PROFILE_VARIABLE} "
                 f"unless that is already set; empty: leave the environment alone (do that "
                 f"when other hosts must see these nodes)."),
        # fusion.launch.py only
        Argument("points_topic", "segmented_points", "PointCloud2 the fusion labels (relative "
                 "names resolve in the namespace)."),
        Argument("labels_topic_pattern", "", "Label image (mono8/mono16) topic of each camera, "
                 "{name} is the camera name (empty: <namespace>/<name>/labels, where the "
                 "camera segmentation nodes publish)."),
        Argument("use_confidence", "false", "true: also subscribe <namespace>/<name>/confidence "
                 "(32FC1) per camera."),
    )
}  # fmt: skip

_ENGINE = ("model", "backend", "device", "label_set")


def _arguments(names: tuple[str, ...], params_file: str | None = None) -> tuple[Argument, ...]:
    arguments = [_ARGS[name] for name in names]
    if params_file:
        own = Argument("params_file", _config(params_file), f"ROS 2 parameter file of the "
                       f"{params_file} node(s).")  # fmt: skip
        arguments.insert(names.index("use_sim_time"), own)
    return tuple(arguments)


#: The arguments each launch file declares, in order.
LAUNCH_ARGUMENTS: dict[str, tuple[Argument, ...]] = {
    "perception": _arguments((
        "namespace", "cameras", "image_topic_pattern", "camera_info_topic_pattern",
        "lidar_topic", *_ENGINE, "publish_confidence", "lidar_segmentation", "single_process",
        "params_file", "camera_params_file", "lidar_params_file", "fusion_params_file",
        "pipeline_params_file", "use_sim_time", "rviz", "rviz_config", "log_level",
        "fastdds_profile",
    )),
    "camera_segmentation": _arguments((
        "namespace", "cameras", "image_topic_pattern", *_ENGINE, "publish_confidence",
        "use_sim_time", "log_level", "fastdds_profile",
    ), "camera_segmentation"),
    "lidar_segmentation": _arguments((
        "namespace", "lidar_topic", "use_sim_time", "log_level", "fastdds_profile",
    ), "lidar_segmentation"),
    "fusion": _arguments((
        "namespace", "cameras", "camera_info_topic_pattern", "points_topic",
        "labels_topic_pattern", "use_confidence", "label_set", "use_sim_time", "log_level",
        "fastdds_profile",
    ), "fusion"),
    "pipeline": _arguments((
        "namespace", "cameras", "image_topic_pattern", "camera_info_topic_pattern",
        "lidar_topic", *_ENGINE, "use_sim_time", "rviz", "rviz_config", "log_level",
        "fastdds_profile",
    ), "pipeline"),
}  # fmt: skip


def default_values(launch_file: str, share: str | Path) -> dict[str, str]:
    """The arguments' defaults as ``ros2 launch`` evaluates them, for a given share folder."""
    return {
        a.name: a.default.path(share) if isinstance(a.default, ShareFile) else a.default
        for a in LAUNCH_ARGUMENTS[launch_file]
    }


# --------------------------------------------------------------------------- parsing
def parse_bool(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise LaunchArgumentError(f"launch argument '{name}' must be true or false, got '{text}'")


def parse_cameras(text: str) -> list[str]:
    """``"front, left"`` -> ``["front", "left"]``: 1-8 distinct ROS name tokens."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not 1 <= len(names) <= MAX_CAMERAS:
        raise LaunchArgumentError(
            f"launch argument 'cameras' needs 1-{MAX_CAMERAS} comma-separated names, got '{text}'"
        )
    for name in names:
        if not _TOKEN_RE.match(name):
            raise LaunchArgumentError(
                f"camera name '{name}' is not a ROS name token (letters, digits and _, "
                "not starting with a digit)"
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LaunchArgumentError(f"camera names must be distinct: {', '.join(duplicates)} repeat")
    return names


def parse_namespace(text: str) -> str:
    """A namespace to push: ``""`` (none), relative ``a/b`` or absolute ``/a/b``."""
    namespace = text.strip()
    if namespace in ("", "/"):
        return ""
    namespace = namespace.rstrip("/")
    if not _NAME_RE.match(namespace):
        raise LaunchArgumentError(
            f"launch argument 'namespace' is not a valid ROS namespace: '{text}'"
        )
    return namespace


def parse_log_level(text: str) -> str:
    level = text.strip().lower()
    if level == "warning":
        level = "warn"
    if level not in LOG_LEVELS:
        raise LaunchArgumentError(
            f"launch argument 'log_level' must be one of {', '.join(LOG_LEVELS)}, got '{text}'"
        )
    return level


def check_topic(topic: str, argument: str, absolute: bool = True) -> str:
    topic = topic.strip()
    if not _NAME_RE.match(topic):
        raise LaunchArgumentError(
            f"launch argument '{argument}' gives '{topic}', not a valid ROS topic name"
        )
    if absolute and not topic.startswith("/"):
        raise LaunchArgumentError(
            f"launch argument '{argument}' must give an absolute topic (starting with /), got "
            f"'{topic}': relative names would resolve differently in each node's namespace"
        )
    return topic


def topic_for(pattern: str, camera: str, argument: str, absolute: bool = True) -> str:
    """The topic of ``camera`` from a pattern such as ``/{name}/image_raw``."""
    topic = pattern.replace("{name}", camera)
    if "{" in topic or "}" in topic:
        raise LaunchArgumentError(
            f"launch argument '{argument}' ('{pattern}') may only use the placeholder {{name}}"
        )
    return check_topic(topic, argument, absolute)


def camera_topics(
    pattern: str, cameras: list[str], argument: str, absolute: bool = True
) -> dict[str, str]:
    """Camera name -> topic; distinct cameras must get distinct topics."""
    topics = {name: topic_for(pattern, name, argument, absolute) for name in cameras}
    if len(cameras) > 1 and len(set(topics.values())) < len(cameras):
        raise LaunchArgumentError(
            f"launch argument '{argument}' ('{pattern}') gives every camera the same topic: "
            "put {name} in it"
        )
    return topics


def engine_overrides(values: Mapping[str, str]) -> dict[str, Any]:
    """``engine.*`` parameters from the model/backend/device/label_set arguments given."""
    overrides = {}
    for argument, parameter in (
        ("model", "engine.model"),
        ("backend", "engine.backend"),
        ("device", "engine.device"),
        ("label_set", "engine.label_set"),
    ):
        value = values.get(argument, "").strip()
        if value:
            overrides[parameter] = value
    backend = overrides.get("engine.backend")
    if backend and backend not in ("auto", "onnxruntime", "torch", "tensorrt"):
        raise LaunchArgumentError(
            f"launch argument 'backend' must be auto, onnxruntime, torch or tensorrt, got "
            f"'{backend}'"
        )
    return overrides


def fastdds_profile_to_set(profile: str, environment: Mapping[str, str]) -> str:
    """The profile to export, or ``""`` when none is wanted or the user already chose one."""
    if not profile.strip():
        return ""
    if any(environment.get(variable) for variable in FASTDDS_PROFILE_VARIABLES):
        return ""
    return profile.strip()


# --------------------------------------------------------------------------- planning
def _files(values: Mapping[str, str], own: str) -> list[str | dict[str, Any]]:
    """A node's own parameter file, then the shared extra one (when given)."""
    files: list[str | dict[str, Any]] = []
    for name in (own, "params_file"):
        path = values.get(name, "").strip()
        if path and path not in files:
            files.append(path)
    return files


def _with_overrides(
    files: list[str | dict[str, Any]], overrides: dict[str, Any]
) -> tuple[str | dict[str, Any], ...]:
    return tuple(files + ([overrides] if overrides else []))


def camera_segmentation_nodes(values: Mapping[str, str], params_key: str) -> list[NodeSpec]:
    cameras = parse_cameras(values["cameras"])
    images = camera_topics(values["image_topic_pattern"], cameras, "image_topic_pattern")
    overrides = engine_overrides(values)
    overrides["publish_confidence"] = parse_bool(
        values.get("publish_confidence", "false"), "publish_confidence"
    )
    return [
        NodeSpec(
            executable="camera_segmentation_node",
            name=f"{camera}_segmentation",
            namespace=camera,
            parameters=_with_overrides(_files(values, params_key), dict(overrides)),
            remappings=(
                ("image", images[camera]),
                ("image/compressed", f"{images[camera]}/compressed"),
            ),
        )
        for camera in cameras
    ]  # fmt: skip


def lidar_segmentation_node(values: Mapping[str, str], params_key: str) -> NodeSpec:
    return NodeSpec(
        executable="lidar_segmentation_node",
        name="lidar_segmentation",
        namespace="",
        parameters=tuple(_files(values, params_key)),
        remappings=(("points", check_topic(values["lidar_topic"], "lidar_topic")),),
    )


def fusion_node(
    values: Mapping[str, str],
    params_key: str,
    points: str,
    use_confidence: bool,
    labels_pattern: str = "",
) -> NodeSpec:
    cameras = parse_cameras(values["cameras"])
    infos = camera_topics(values["camera_info_topic_pattern"], cameras, "camera_info_topic_pattern")
    remappings = [("points", points)]
    labels = (
        camera_topics(labels_pattern, cameras, "labels_topic_pattern", absolute=False)
        if labels_pattern.strip()
        else {}
    )
    for camera in cameras:
        remappings.append((f"{camera}/camera_info", infos[camera]))
        if camera in labels:
            remappings.append((f"{camera}/labels", labels[camera]))
    overrides: dict[str, Any] = {"cameras": cameras, "use_confidence": use_confidence}
    if values.get("label_set", "").strip():
        overrides["label_set"] = values["label_set"].strip()
    return NodeSpec(
        executable="fusion_node",
        name="fusion",
        namespace="",
        parameters=_with_overrides(_files(values, params_key), overrides),
        remappings=tuple(remappings),
    )


def pipeline_node(values: Mapping[str, str], params_key: str) -> NodeSpec:
    cameras = parse_cameras(values["cameras"])
    images = camera_topics(values["image_topic_pattern"], cameras, "image_topic_pattern")
    infos = camera_topics(values["camera_info_topic_pattern"], cameras, "camera_info_topic_pattern")
    remappings = [("points", check_topic(values["lidar_topic"], "lidar_topic"))]
    for camera in cameras:
        remappings.append((f"{camera}/image", images[camera]))
        remappings.append((f"{camera}/camera_info", infos[camera]))
    overrides: dict[str, Any] = {"cameras": cameras, **engine_overrides(values)}
    if "engine.label_set" in overrides:
        overrides["label_set"] = overrides["engine.label_set"]
    return NodeSpec(
        executable="pipeline_node",
        name="pipeline",
        namespace="",
        parameters=_with_overrides(_files(values, params_key), overrides),
        remappings=tuple(remappings),
    )


def rviz_node(values: Mapping[str, str]) -> NodeSpec | None:
    if not parse_bool(values.get("rviz", "false"), "rviz"):
        return None
    config = values.get("rviz_config", "").strip()
    return NodeSpec(
        executable="rviz2",
        name="rviz2",
        namespace="",
        parameters=(),
        remappings=(),
        package="rviz2",
        arguments=("-d", config) if config else (),
    )


def plan(launch_file: str, values: Mapping[str, str]) -> LaunchPlan:
    """The nodes ``launch/<launch_file>.launch.py`` starts for these argument values.

    ``values`` maps every declared argument to its text (``ros2 launch`` fills in the
    defaults); missing optional ones count as empty. Raises :class:`LaunchArgumentError`.
    """
    if launch_file not in LAUNCH_ARGUMENTS:
        raise ValueError(
            f"unknown launch file '{launch_file}': one of {', '.join(LAUNCH_ARGUMENTS)}"
        )
    unknown = sorted(set(values) - {a.name for a in LAUNCH_ARGUMENTS[launch_file]})
    if unknown:
        raise LaunchArgumentError(
            f"{launch_file}.launch.py has no argument(s) {', '.join(unknown)}"
        )
    defaults = {a.name: a.default for a in LAUNCH_ARGUMENTS[launch_file]}
    values = {**{n: d for n, d in defaults.items() if isinstance(d, str)}, **values}
    notes: list[str] = []
    nodes: list[NodeSpec] = []
    if launch_file == "perception":
        if parse_bool(values["single_process"], "single_process"):
            nodes.append(pipeline_node(values, "pipeline_params_file"))
            if parse_bool(values["publish_confidence"], "publish_confidence"):
                notes.append("publish_confidence is ignored with single_process:=true")
            if not parse_bool(values["lidar_segmentation"], "lidar_segmentation"):
                notes.append("lidar_segmentation:=false is ignored with single_process:=true")
        else:
            confidence = parse_bool(values["publish_confidence"], "publish_confidence")
            nodes += camera_segmentation_nodes(values, "camera_params_file")
            points = "segmented_points"
            if parse_bool(values["lidar_segmentation"], "lidar_segmentation"):
                nodes.append(lidar_segmentation_node(values, "lidar_params_file"))
            else:
                points = check_topic(values["lidar_topic"], "lidar_topic")
            nodes.append(fusion_node(values, "fusion_params_file", points, confidence))
    elif launch_file == "camera_segmentation":
        nodes += camera_segmentation_nodes(values, "params_file")
    elif launch_file == "lidar_segmentation":
        nodes.append(lidar_segmentation_node(values, "params_file"))
    elif launch_file == "fusion":
        points = check_topic(values["points_topic"], "points_topic", absolute=False)
        confidence = parse_bool(values["use_confidence"], "use_confidence")
        nodes.append(
            fusion_node(values, "params_file", points, confidence, values["labels_topic_pattern"])
        )
    elif launch_file == "pipeline":
        nodes.append(pipeline_node(values, "params_file"))
    return LaunchPlan(
        namespace=parse_namespace(values["namespace"]),
        nodes=tuple(nodes),
        use_sim_time=parse_bool(values["use_sim_time"], "use_sim_time"),
        log_level=parse_log_level(values["log_level"]),
        fastdds_profile=values.get("fastdds_profile", "").strip(),
        rviz=rviz_node(values) if "rviz" in defaults else None,
        notes=tuple(notes),
    )


def full_namespace(launch_namespace: str, node_namespace: str) -> str:
    """Where a node ends up (given no namespace pushed from outside the launch file)."""
    parts = [p for p in (launch_namespace.strip("/"), node_namespace.strip("/")) if p]
    return "/" + "/".join(parts)


# --------------------------------------------------------------------------- launch
def generate_launch_description(launch_file: str) -> Any:
    """The ``LaunchDescription`` of ``launch/<launch_file>.launch.py``.

    Declares the file's arguments (``ros2 launch ... --show-args`` lists them) and, at
    launch time, starts the nodes :func:`plan` gives, inside one scoped ``GroupAction``:
    the Fast DDS profile (``SetEnvironmentVariable``), ``use_sim_time`` (``SetParameter``)
    and the namespace (``PushRosNamespace``) do not leak into a launch file including this
    one.
    """
    from launch.actions import (
        DeclareLaunchArgument,
        GroupAction,
        LogInfo,
        OpaqueFunction,
        SetEnvironmentVariable,
    )
    from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node, PushRosNamespace, SetParameter
    from launch_ros.substitutions import FindPackageShare

    from launch import LaunchDescription

    arguments = LAUNCH_ARGUMENTS[launch_file]

    def default(value: str | ShareFile) -> Any:
        if isinstance(value, ShareFile):
            return PathJoinSubstitution([FindPackageShare(PACKAGE), *value.parts])
        return value

    def node_action(spec: NodeSpec, log_level: str) -> Any:
        return Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace or None,
            parameters=list(spec.parameters),
            remappings=list(spec.remappings),
            arguments=list(spec.arguments),
            ros_arguments=["--log-level", log_level],
            output="screen",
        )

    def start(context: Any, *args: Any, **kwargs: Any) -> list[Any]:
        values = {a.name: LaunchConfiguration(a.name).perform(context) for a in arguments}
        the_plan = plan(launch_file, values)
        environment = {
            name: EnvironmentVariable(name, default_value="").perform(context)
            for name in FASTDDS_PROFILE_VARIABLES
        }
        actions: list[Any] = [LogInfo(msg=f"seg_perception: {note}") for note in the_plan.notes]
        profile = fastdds_profile_to_set(the_plan.fastdds_profile, environment)
        if profile:
            actions.append(SetEnvironmentVariable(FASTDDS_PROFILE_VARIABLE, profile))
        actions.append(SetParameter(name="use_sim_time", value=the_plan.use_sim_time))
        nodes = [node_action(spec, the_plan.log_level) for spec in the_plan.nodes]
        if the_plan.namespace:
            nodes.insert(0, PushRosNamespace(the_plan.namespace))
        actions.append(GroupAction(nodes))
        if the_plan.rviz is not None:
            actions.append(node_action(the_plan.rviz, the_plan.log_level))
        return [GroupAction(actions)]

    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(
                    a.name, default_value=default(a.default), description=a.description
                )
                for a in arguments
            ),
            OpaqueFunction(function=start),
        ]
    )
