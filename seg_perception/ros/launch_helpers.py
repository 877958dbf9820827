"""What the launch files in ``launch/`` start, decided in plain Python.

Each launch file declares the arguments listed in :data:`LAUNCH_ARGUMENTS` and, once
``ros2 launch`` has their values, calls :func:`plan` (from an ``OpaqueFunction``) to turn
them into :class:`NodeSpec` s: which nodes, their names, namespaces, parameter files,
parameter overrides and topic remappings. All of that is validated here, with one clear
sentence per mistake, and tested without ``launch`` (which is not on PyPI).
:func:`generate_launch_description` turns a plan into ``launch`` / ``launch_ros`` actions;
it is the only code that imports them, and only when it runs.

Two rules every launch file follows, because the real ``ros2 launch`` forces them:

* ``ros2 launch`` refuses an empty ``name:=`` ("malformed launch argument"), so an optional
  argument is switched off with the word :data:`NONE` (``none``); ``""`` still works for
  Python callers (``IncludeLaunchDescription``).
* ``launch_ros`` looks a node's executable up only when that node starts, after the nodes
  before it were spawned, and a missing one ends launch and orphans them. So optional tools
  (rviz2) are looked up before anything starts (:func:`without_missing_tools`) and skipped,
  with a warning, when absent.

Topology (namespace ``<ns>``, default ``seg_perception``; one camera ``<name>`` of
``cameras``):

* separate nodes (default): ``/<ns>/<name>/<name>_segmentation`` (image from the
  ``image_topic_pattern``; publishes ``/<ns>/<name>/labels``, ``confidence``,
  ``color_mask``, ``overlay``, ``class_map``), ``/<ns>/lidar_segmentation`` (``lidar_topic``
  -> ``/<ns>/segmented_points``) and ``/<ns>/fusion`` (``/<ns>/segmented_points`` + the
  labels + the ``camera_info_topic_pattern`` -> ``/<ns>/labeled_points``,
  ``labeled_points_rgb``, ``fusion_status``, ``class_map``);
* ``single_process:=true``: ``/<ns>/pipeline`` alone, with the fusion's outputs and, per
  camera, ``/<ns>/<name>/labels`` and ``overlay``;
* ``clicked_object.launch.py``: ``/<ns>/clicked_object`` on the cameras' images, the LiDAR
  and ``click_topic``, publishing ``/<ns>/selected_points``, ``selected_object`` and
  ``selected_markers``.

Parameters of a node, last wins: its own file (``<node>_params_file``), the extra
``params_file``, then the overrides the launch arguments set.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from seg_perception.ros.launch_topics import (
    _NAME_RE,
    MAX_CAMERAS,
    NONE,
    LaunchArgumentError,
    camera_topics,
    check_topic,
    given,
    image_remappings,
    launch_cameras,
    parse_cameras,
    record_overrides,
    topic_for,
)

__all__ = ["LaunchArgumentError", "camera_topics", "parse_cameras", "topic_for"]

PACKAGE = "seg_perception"

#: Executables installed in ``lib/seg_perception`` -> the module whose ``main`` they run.
EXECUTABLES = {
    "camera_segmentation_node": "seg_perception.ros.nodes.camera_segmentation",
    "lidar_segmentation_node": "seg_perception.ros.nodes.lidar_segmentation",
    "fusion_node": "seg_perception.ros.nodes.fusion",
    "pipeline_node": "seg_perception.ros.nodes.pipeline",
    "clicked_object_node": "seg_perception.ros.nodes.clicked_object",
}

#: The environment variable that points Fast DDS at an XML profile, and its newer alias:
#: when either is set, the user chose a profile and the launch files leave it alone.
FASTDDS_PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
FASTDDS_PROFILE_VARIABLES = (FASTDDS_PROFILE_VARIABLE, "FASTDDS_DEFAULT_PROFILES_FILE")

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


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
    about: str
    #: What the value ``none`` means; ``""``: the argument always needs a value.
    none: str = ""

    @property
    def description(self) -> str:
        """What ``--show-args`` prints: the meaning, then what ``none`` does."""
        return f"{self.about} '{NONE}': {self.none}." if self.none else self.about


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
    #: Logged before the nodes start (ignored arguments, skipped tools).
    notes: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------- arguments
def _config(node: str) -> ShareFile:
    return ShareFile(("config", f"{node}.yaml"))


_OWN_FILE = "no file, the node's built-in defaults"
_ARGS = {
    a.name: a
    for a in (
        Argument("namespace", "seg_perception", "ROS namespace of the nodes. Camera nodes live "
                 "one level deeper, in <namespace>/<camera>.", "no namespace"),
        Argument("cameras", "front", f"Comma-separated camera names, 1-{MAX_CAMERAS} distinct "
                 "ROS name tokens, e.g. 'front,left,right'."),
        Argument("rig", NONE, "Rig file (YAML, as replay --rig): per camera its name, "
                 "image_topic, info_topic, transport, projection, time_offset, delay, "
                 "tolerance, extrinsics. Replaces cameras and the topic patterns, and sets "
                 "each camera's camera.<name>.* parameters (its defaults where it is silent).",
                 "cameras and the topic patterns"),
        Argument("image_topic_pattern", "/{name}/image_raw", "Absolute sensor_msgs/Image topic "
                 "of each camera; {name} is the camera name (compressed: <topic>/compressed)."),
        Argument("camera_info_topic_pattern", "/{name}/camera_info", "Absolute "
                 "sensor_msgs/CameraInfo topic of each camera; {name} is the camera name."),
        Argument("lidar_topic", "/points_raw", "Absolute sensor_msgs/PointCloud2 topic of the "
                 "LiDAR."),
        Argument("model", NONE, "engine.model: ONNX file, TensorRT engine, Hugging Face folder "
                 "or hub id.", "the parameter file's"),
        Argument("backend", NONE, f"engine.backend: {', '.join(BACKENDS)}.",
                 "the parameter file's"),
        Argument("device", NONE, "engine.device: cpu, cuda or cuda:N.", "the parameter file's"),
        Argument("spec", NONE, "engine.spec: the model spec YAML (input color, scale, mean, std, "
                 "size; output kind, classes, void channels).",
                 "<model>.yaml beside the model, if any"),
        Argument("engine", NONE, "Any other engine.* parameters, as a YAML mapping of "
                 "EngineConfig fields, e.g. \"{channel_order: bgr, mean: [0.406, 0.456, "
                 "0.485], multiple_of: 32}\" (applied after the parameter files).",
                 "the parameter files'"),
        Argument("label_set", NONE, "Label set of the model: cityscapes or a label-set YAML; "
                 "sets engine.label_set and the fusion's label_set together.",
                 "the parameter files'"),
        Argument("publish_confidence", "false", "true: camera nodes publish "
                 "<camera>/confidence and the fusion uses it (use_confidence)."),
        Argument("lidar_segmentation", "true", "true: run the LiDAR segmentation node and fuse "
                 "its output; false: fuse the raw lidar_topic (separate nodes only)."),
        Argument("single_process", "false", "true: one pipeline node instead of camera, LiDAR "
                 "and fusion nodes (no serialization between stages)."),
        Argument("params_file", NONE, "Extra ROS 2 parameter file given to every node after its "
                 "own file; key sections by node name (/**/fusion:, /**/front_segmentation:, "
                 "...).", "no extra file"),
        Argument("camera_params_file", _config("camera_segmentation"), "Parameter file of the "
                 "camera segmentation nodes.", _OWN_FILE),
        Argument("lidar_params_file", _config("lidar_segmentation"), "Parameter file of the "
                 "LiDAR segmentation node.", _OWN_FILE),
        Argument("fusion_params_file", _config("fusion"), "Parameter file of the fusion node "
                 "(per-camera extrinsics, offsets and windows: camera.<name>.*).", _OWN_FILE),
        Argument("pipeline_params_file", _config("pipeline"), "Parameter file of the pipeline "
                 "node.", _OWN_FILE),
        Argument("use_sim_time", "false", "true: every node (and rviz2) uses /clock, e.g. when "
                 "playing a bag with --clock."),
        Argument("rviz", "false", "true: also start rviz2 with rviz_config (skipped with a "
                 "warning when rviz2 is not installed)."),
        Argument("rviz_config", ShareFile(("rviz", "seg_perception.rviz")), "RViz config file.",
                 "rviz2's own default"),
        Argument("log_level", "info", f"Log level of the nodes: {', '.join(LOG_LEVELS)}."),
        Argument("fastdds_profile", ShareFile(("config", "fastdds_large_messages.xml")),
                 f"Fast DDS XML profile (32 MB shared memory for large images and clouds, UDP "
                 f"on the loopback interface only) exported as {FASTDDS_PROFILE_VARIABLE} "
                 f"unless that is already set.", "leave the environment alone (do that when "
                 "other hosts must see these nodes)"),
        # fusion.launch.py only
        Argument("points_topic", "segmented_points", "PointCloud2 the fusion labels (relative "
                 "names resolve in the namespace)."),
        Argument("labels_topic_pattern", NONE, "Label image (mono8/mono16) topic of each "
                 "camera; {name} is the camera name.", "<namespace>/<name>/labels, where the "
                 "camera segmentation nodes publish"),
        Argument("use_confidence", "false", "true: also subscribe <namespace>/<name>/confidence "
                 "(32FC1) per camera."),
        # clicked_object.launch.py only
        Argument("click_topic", "/clicked_point", "Absolute geometry_msgs/PointStamped topic of "
                 "the clicks (RViz's Publish Point tool)."),
        Argument("clicked_object_params_file", _config("clicked_object"), "Parameter file of "
                 "the clicked-object node.", _OWN_FILE),
    )
}  # fmt: skip

_ENGINE = ("model", "backend", "device", "spec", "label_set")
#: The engine launch arguments: the common ones by name, the rest through ``engine``.
_ENGINE_ARGUMENTS = (*_ENGINE, "engine")
_COMMON = ("use_sim_time", "log_level", "fastdds_profile")

#: The arguments each launch file declares, in order.
LAUNCH_ARGUMENTS: dict[str, tuple[Argument, ...]] = {
    launch_file: tuple(_ARGS[name] for name in names)
    for launch_file, names in {
        "perception": (
            "namespace", "cameras", "rig", "image_topic_pattern", "camera_info_topic_pattern",
            "lidar_topic", *_ENGINE_ARGUMENTS, "publish_confidence", "lidar_segmentation",
            "single_process", "params_file", "camera_params_file", "lidar_params_file",
            "fusion_params_file", "pipeline_params_file", "rviz", "rviz_config", *_COMMON,
        ),
        "camera_segmentation": (
            "namespace", "cameras", "rig", "image_topic_pattern", *_ENGINE_ARGUMENTS,
            "publish_confidence", "params_file", "camera_params_file", *_COMMON,
        ),
        "lidar_segmentation": (
            "namespace", "lidar_topic", "params_file", "lidar_params_file", *_COMMON,
        ),
        "fusion": (
            "namespace", "cameras", "rig", "camera_info_topic_pattern", "points_topic",
            "labels_topic_pattern", "use_confidence", "label_set", "params_file",
            "fusion_params_file", *_COMMON,
        ),
        "pipeline": (
            "namespace", "cameras", "rig", "image_topic_pattern", "camera_info_topic_pattern",
            "lidar_topic", *_ENGINE_ARGUMENTS, "params_file", "pipeline_params_file", "rviz",
            "rviz_config", *_COMMON,
        ),
        "clicked_object": (
            "namespace", "cameras", "rig", "image_topic_pattern", "camera_info_topic_pattern",
            "lidar_topic", "click_topic", *_ENGINE_ARGUMENTS, "params_file",
            "clicked_object_params_file", "rviz", "rviz_config", *_COMMON,
        ),
    }.items()
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


def parse_namespace(text: str) -> str:
    """A namespace to push: ``""`` (none, also ``none`` and ``/``), ``a/b`` or ``/a/b``."""
    namespace = given(text)
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


def engine_overrides(values: Mapping[str, str]) -> dict[str, Any]:
    """``engine.*`` parameters from the model/backend/device/spec/label_set arguments given."""
    overrides = {
        f"engine.{name}": given(values.get(name)) for name in _ENGINE if given(values.get(name))
    }
    overrides.update(engine_mapping(values.get("engine")))
    backend = overrides.get("engine.backend")
    if backend and backend not in BACKENDS:
        raise LaunchArgumentError(
            f"launch argument 'backend' must be {', '.join(BACKENDS)} or {NONE}, got '{backend}'"
        )
    return overrides


def engine_mapping(text: str | None) -> dict[str, Any]:
    """``engine.*`` parameters from the ``engine`` argument: a YAML mapping of EngineConfig
    fields, each checked as the node will (engines/options.py), so a typo or a wrong type
    stops the launch with the field's name instead of a node exiting later."""
    import yaml

    from seg_perception.engines.options import engine_options, ros_checked

    text = given(text)
    if not text:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise LaunchArgumentError(f"launch argument 'engine' is not YAML: {error}") from None
    if not isinstance(data, dict):
        raise LaunchArgumentError(
            f"launch argument 'engine' must be a mapping like \"{{mean: [0.5, 0.5, 0.5]}}\", "
            f"got '{text}'"
        )
    options = {o.name: o for o in engine_options()}
    unknown = sorted(str(k) for k in data if k not in options)
    if unknown:
        raise LaunchArgumentError(
            f"launch argument 'engine' has unknown field(s) {', '.join(unknown)}; known: "
            f"{', '.join(options)}"
        )
    try:
        return {f"engine.{k}": ros_checked(options[k], v) for k, v in data.items()}
    except ValueError as error:
        raise LaunchArgumentError(f"launch argument 'engine': {error}") from None


def fastdds_profile_to_set(profile: str, environment: Mapping[str, str]) -> str:
    """The profile to export, or ``""`` when none is wanted or the user already chose one."""
    if any(environment.get(variable) for variable in FASTDDS_PROFILE_VARIABLES):
        return ""
    return given(profile)


# --------------------------------------------------------------------------- planning
def _parameters(
    values: Mapping[str, str], own_file: str, overrides: Mapping[str, Any]
) -> tuple[str | dict[str, Any], ...]:
    """The node's own file, then the extra ``params_file``, then the overrides (last wins)."""
    files = [given(values.get(name)) for name in (own_file, "params_file")]
    unique = [path for i, path in enumerate(files) if path and path not in files[:i]]
    return (*unique, *([dict(overrides)] if overrides else []))


def camera_segmentation_nodes(values: Mapping[str, str]) -> list[NodeSpec]:
    records = launch_cameras(values, images=True, infos=False)
    overrides = engine_overrides(values)
    overrides["publish_confidence"] = parse_bool(
        values.get("publish_confidence", "false"), "publish_confidence"
    )
    return [
        NodeSpec(
            executable="camera_segmentation_node",
            name=f"{record.name}_segmentation",
            namespace=record.name,
            parameters=_parameters(
                values, "camera_params_file",
                {**overrides, "compressed": True} if record.transport == "compressed"
                else overrides,
            ),
            remappings=tuple(image_remappings(record)),
        )
        for record in records
    ]  # fmt: skip


def lidar_segmentation_node(values: Mapping[str, str]) -> NodeSpec:
    return NodeSpec(
        executable="lidar_segmentation_node",
        name="lidar_segmentation",
        namespace="",
        parameters=_parameters(values, "lidar_params_file", {}),
        remappings=(("points", check_topic(values["lidar_topic"], "lidar_topic")),),
    )


def _camera_overrides(values: Mapping[str, str], records: list) -> dict[str, Any]:
    """``cameras`` in order, and with a rig file every camera's ``camera.<name>.*``."""
    overrides: dict[str, Any] = {"cameras": [r.name for r in records]}
    if given(values.get("rig")):
        overrides.update(record_overrides(records))
    return overrides


def fusion_node(values: Mapping[str, str], points: str, use_confidence: bool) -> NodeSpec:
    records = launch_cameras(values, images=False, infos=True)
    labels_pattern = given(values.get("labels_topic_pattern"))  # fusion.launch.py only
    names = [r.name for r in records]
    labels = {r.name: r.labels_topic for r in records if r.labels_topic}
    if labels_pattern:
        pattern = camera_topics(labels_pattern, names, "labels_topic_pattern", absolute=False)
        labels = {**pattern, **labels}
    remappings = [("points", points)]
    for record in records:
        remappings.append((f"{record.name}/camera_info", record.info_topic))
        if record.name in labels:
            remappings.append((f"{record.name}/labels", labels[record.name]))
    overrides = {**_camera_overrides(values, records), "use_confidence": use_confidence}
    if given(values.get("label_set")):
        overrides["label_set"] = given(values["label_set"])
    return NodeSpec(
        executable="fusion_node",
        name="fusion",
        namespace="",
        parameters=_parameters(values, "fusion_params_file", overrides),
        remappings=tuple(remappings),
    )


def pipeline_node(values: Mapping[str, str]) -> NodeSpec:
    records = launch_cameras(values, images=True, infos=True)
    remappings = [("points", check_topic(values["lidar_topic"], "lidar_topic"))]
    for record in records:
        remappings += image_remappings(record, prefix=f"{record.name}/")
        remappings.append((f"{record.name}/camera_info", record.info_topic))
    overrides = {**_camera_overrides(values, records), **engine_overrides(values)}
    if "engine.label_set" in overrides:
        overrides["label_set"] = overrides["engine.label_set"]
    return NodeSpec(
        executable="pipeline_node",
        name="pipeline",
        namespace="",
        parameters=_parameters(values, "pipeline_params_file", overrides),
        remappings=tuple(remappings),
    )


def clicked_object_node(values: Mapping[str, str]) -> NodeSpec:
    """The clicked-object node on the cameras' raw images, the LiDAR and the clicks."""
    records = launch_cameras(values, images=True, infos=True)
    compressed = [r.name for r in records if r.transport == "compressed"]
    if compressed:
        raise LaunchArgumentError(
            f"camera(s) {', '.join(compressed)}: the clicked_object node reads raw images "
            "only (sensor_msgs/Image); give their raw image topics"
        )
    remappings = [
        ("points", check_topic(values["lidar_topic"], "lidar_topic")),
        ("clicked_point", check_topic(values["click_topic"], "click_topic")),
    ]
    for record in records:
        remappings.append((f"{record.name}/image", record.image_topic))
        remappings.append((f"{record.name}/camera_info", record.info_topic))
    overrides = {**_camera_overrides(values, records), **engine_overrides(values)}
    return NodeSpec(
        executable="clicked_object_node",
        name="clicked_object",
        namespace="",
        parameters=_parameters(values, "clicked_object_params_file", overrides),
        remappings=tuple(remappings),
    )


def rviz_node(values: Mapping[str, str]) -> NodeSpec | None:
    if not parse_bool(values.get("rviz", "false"), "rviz"):
        return None
    config = given(values.get("rviz_config"))
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

    ``values`` maps declared arguments to their text (``ros2 launch`` fills in the defaults;
    missing ones take their default here). Raises :class:`LaunchArgumentError`.
    """
    if launch_file not in LAUNCH_ARGUMENTS:
        raise ValueError(
            f"unknown launch file '{launch_file}': one of {', '.join(LAUNCH_ARGUMENTS)}"
        )
    defaults = {a.name: a.default for a in LAUNCH_ARGUMENTS[launch_file]}
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise LaunchArgumentError(
            f"{launch_file}.launch.py has no argument(s) {', '.join(unknown)}"
        )
    values = {**{n: d for n, d in defaults.items() if isinstance(d, str)}, **values}

    def flag(name: str) -> bool:
        return parse_bool(values[name], name)

    notes: list[str] = []
    nodes: list[NodeSpec] = []
    if launch_file == "perception" and flag("single_process"):
        nodes.append(pipeline_node(values))
        if flag("publish_confidence"):
            notes.append("publish_confidence is ignored with single_process:=true")
        if not flag("lidar_segmentation"):
            notes.append("lidar_segmentation:=false is ignored with single_process:=true")
    elif launch_file == "perception":
        nodes += camera_segmentation_nodes(values)
        points = "segmented_points"
        if flag("lidar_segmentation"):
            nodes.append(lidar_segmentation_node(values))
        else:
            points = check_topic(values["lidar_topic"], "lidar_topic")
        nodes.append(fusion_node(values, points, flag("publish_confidence")))
    elif launch_file == "camera_segmentation":
        nodes += camera_segmentation_nodes(values)
    elif launch_file == "lidar_segmentation":
        nodes.append(lidar_segmentation_node(values))
    elif launch_file == "fusion":
        points = check_topic(values["points_topic"], "points_topic", absolute=False)
        nodes.append(fusion_node(values, points, flag("use_confidence")))
    elif launch_file == "pipeline":
        nodes.append(pipeline_node(values))
    elif launch_file == "clicked_object":
        nodes.append(clicked_object_node(values))
    return LaunchPlan(
        namespace=parse_namespace(values["namespace"]),
        nodes=tuple(nodes),
        use_sim_time=flag("use_sim_time"),
        log_level=parse_log_level(values["log_level"]),
        fastdds_profile=given(values.get("fastdds_profile")),
        rviz=rviz_node(values) if "rviz" in defaults else None,
        notes=tuple(notes),
    )


def missing_executable(spec: NodeSpec, package_prefix: Callable[[str], str]) -> str:
    """Why ``launch_ros`` would not find ``spec``'s executable (``""``: it would).

    It looks in ``<package prefix>/lib/<package>`` for an executable file of that name
    (``ExecutableInPackage``). ``package_prefix`` is
    ``ament_index_python.packages.get_package_prefix``, whose ``PackageNotFoundError`` is a
    ``KeyError``; a stub in tests.
    """
    try:
        prefix = package_prefix(spec.package)
    except (LookupError, ValueError):
        return f"package '{spec.package}' is not installed"
    libexec = Path(prefix, "lib", spec.package)
    if shutil.which(spec.executable, path=str(libexec)) is None:
        return f"package '{spec.package}' has no executable '{spec.executable}' in {libexec}"
    return ""


def without_missing_tools(the_plan: LaunchPlan, package_prefix: Callable[[str], str]) -> LaunchPlan:
    """``the_plan`` minus optional tools (rviz2) that cannot start, with a warning each.

    Checked before anything starts: a node whose executable is missing would end launch with
    exit 1 once its turn came, leaving the nodes started before it running as orphans.
    """
    if the_plan.rviz is None:
        return the_plan
    problem = missing_executable(the_plan.rviz, package_prefix)
    if not problem:
        return the_plan
    warning = f"WARNING: rviz:=true, but {problem}: starting everything else without rviz2"
    return replace(the_plan, rviz=None, notes=(*the_plan.notes, warning))


def full_namespace(launch_namespace: str, node_namespace: str) -> str:
    """Where a node ends up (given no namespace pushed from outside the launch file)."""
    parts = [p for p in (launch_namespace.strip("/"), node_namespace.strip("/")) if p]
    return "/" + "/".join(parts)


# --------------------------------------------------------------------------- launch
def generate_launch_description(launch_file: str) -> Any:
    """The ``LaunchDescription`` of ``launch/<launch_file>.launch.py``.

    Declares the file's arguments (``ros2 launch ... --show-args`` lists them) and, at
    launch time, plans the nodes (:func:`plan`), drops missing optional tools
    (:func:`without_missing_tools`) and only then starts them, inside one scoped
    ``GroupAction``: the Fast DDS profile (``SetEnvironmentVariable``), ``use_sim_time``
    (``SetParameter``) and the namespace (``PushRosNamespace``) do not leak into a launch
    file including this one.
    """
    from ament_index_python.packages import get_package_prefix
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
        the_plan = without_missing_tools(plan(launch_file, values), get_package_prefix)
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
