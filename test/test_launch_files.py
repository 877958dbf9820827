"""The launch files: their topology, argument checks, and the graph they start.

``launch`` / ``launch_ros`` / ``launch_testing`` are not on PyPI, so three levels:

1. Pure Python (always): :mod:`seg_perception.ros.launch_helpers` decides which nodes start
   with which names, namespaces, parameters and remappings; every launch file compiles and
   hands its own name to it; the README documents every argument.
2. Over real DDS (needs rclpy and the built messages): the nodes a plan describes are
   started as processes with the very ``--ros-args`` that ``launch_ros.actions.Node`` gives
   them, fed synthetic camera and LiDAR frames on the sensor topics, and the labeled cloud
   must come out on the planned topics, for the separate nodes and the single process.
3. A real ``launch_testing`` test of ``perception.launch.py`` (needs a ROS 2 installation
   with launch_testing and the package installed). It is defined only when
   ``SEG_PERCEPTION_LAUNCH_TEST=1``, so plain pytest collects this file as a normal module;
   ``test_perception_launch_with_launch_testing`` runs it through the ``launch_test``
   runner, and skips with the reason where launch_testing is not importable. On a ROS
   installation it can also be run directly:
   ``SEG_PERCEPTION_LAUNCH_TEST=1 launch_test test/test_launch_files.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from seg_perception.ros import launch_helpers as lh
from seg_perception.ros.launch_helpers import LaunchArgumentError, plan

REPO = Path(__file__).resolve().parents[1]
LAUNCH_DIR = REPO / "launch"
LAUNCH_TEST_ENV = "SEG_PERCEPTION_LAUNCH_TEST"


def _importable(module: str) -> bool:
    """Whether the real ``module`` imports (the repository's ``launch/`` folder would pass
    as a namespace package named ``launch``: look for a name the real one has)."""
    attribute = {"launch": "LaunchDescription", "launch_ros": "actions"}.get(module, "__file__")
    try:
        imported = importlib.import_module(module)
        if module == "launch_ros":
            importlib.import_module("launch_ros.actions")
    except ImportError:
        return False
    return getattr(imported, attribute, None) is not None


def _values(launch_file: str, **given: str) -> dict[str, str]:
    """Argument values as ``ros2 launch`` evaluates them, the package share being the repo."""
    values = lh.default_values(launch_file, REPO)
    values.update(given)
    return values


def _by_name(the_plan: lh.LaunchPlan) -> dict[str, lh.NodeSpec]:
    return {spec.name: spec for spec in the_plan.nodes}


def _overrides(spec: lh.NodeSpec) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for entry in spec.parameters:
        if isinstance(entry, dict):
            merged.update(entry)
    return merged


def _files(spec: lh.NodeSpec) -> list[str]:
    return [entry for entry in spec.parameters if isinstance(entry, str)]


# =========================================================================== 1. pure Python
def test_parse_cameras():
    assert lh.parse_cameras("front") == ["front"]
    assert lh.parse_cameras(" front , left,rear_2 ,") == ["front", "left", "rear_2"]
    assert len(lh.parse_cameras(",".join(f"c{i}" for i in range(8)))) == 8
    for bad, reason in (
        ("", "1-8"),
        (" , ", "1-8"),
        (",".join(f"c{i}" for i in range(9)), "1-8"),
        ("front,front", "distinct"),
        ("2nd", "not a ROS name token"),
        ("front-left", "not a ROS name token"),
        ("front/left", "not a ROS name token"),
    ):
        with pytest.raises(LaunchArgumentError, match=reason):
            lh.parse_cameras(bad)


def test_topic_patterns():
    assert lh.topic_for("/{name}/image_raw", "front", "p") == "/front/image_raw"
    assert lh.topic_for("/sensors/cam_{name}/image", "left", "p") == "/sensors/cam_left/image"
    assert lh.camera_topics("/{name}/camera_info", ["a", "b"], "p") == {
        "a": "/a/camera_info",
        "b": "/b/camera_info",
    }
    # One camera may use a fixed topic; several may not share one.
    assert lh.camera_topics("/camera/image_raw", ["front"], "p") == {"front": "/camera/image_raw"}
    with pytest.raises(LaunchArgumentError, match=r"same topic: put \{name\} in it"):
        lh.camera_topics("/camera/image_raw", ["front", "left"], "image_topic_pattern")
    with pytest.raises(LaunchArgumentError, match=r"only use the placeholder \{name\}"):
        lh.topic_for("/{camera}/image_raw", "front", "image_topic_pattern")
    with pytest.raises(LaunchArgumentError, match="absolute"):
        lh.topic_for("{name}/image_raw", "front", "image_topic_pattern")
    assert lh.topic_for("{name}/labels", "front", "p", absolute=False) == "front/labels"
    for bad in ("/front//image", "/front/image/", "/2d/image", "/front image"):
        with pytest.raises(LaunchArgumentError, match="not a valid ROS topic name"):
            lh.check_topic(bad, "lidar_topic")


def test_scalar_arguments():
    assert lh.parse_bool("True", "x") is True
    assert lh.parse_bool("0", "x") is False
    with pytest.raises(LaunchArgumentError, match="'rviz' must be true or false, got 'maybe'"):
        lh.parse_bool("maybe", "rviz")
    assert lh.parse_log_level("DEBUG") == "debug"
    assert lh.parse_log_level("warning") == "warn"
    with pytest.raises(LaunchArgumentError, match="log_level"):
        lh.parse_log_level("verbose")
    assert lh.parse_namespace("") == lh.parse_namespace("/") == ""
    assert lh.parse_namespace("robot1/perception/") == "robot1/perception"
    assert lh.parse_namespace("/abs") == "/abs"
    with pytest.raises(LaunchArgumentError, match="namespace"):
        lh.parse_namespace("my-robot")
    assert lh.full_namespace("seg_perception", "front") == "/seg_perception/front"
    assert lh.full_namespace("", "") == "/"
    assert lh.engine_overrides({"model": " m.onnx ", "backend": "", "device": "cuda:1"}) == {
        "engine.model": "m.onnx",
        "engine.device": "cuda:1",
    }
    with pytest.raises(LaunchArgumentError, match="backend"):
        lh.engine_overrides({"backend": "openvino"})


def test_fastdds_profile_is_set_only_when_the_user_chose_none():
    profile = "/share/config/fastdds_large_messages.xml"
    assert lh.fastdds_profile_to_set(profile, {}) == profile
    assert lh.fastdds_profile_to_set(profile, {"FASTRTPS_DEFAULT_PROFILES_FILE": ""}) == profile
    assert lh.fastdds_profile_to_set(profile, {"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}) == ""
    assert lh.fastdds_profile_to_set(profile, {"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}) == ""
    assert lh.fastdds_profile_to_set("none", {}) == ""  # fastdds_profile:=none turns it off
    assert lh.fastdds_profile_to_set(" None ", {}) == ""
    assert lh.fastdds_profile_to_set("", {}) == ""  # the same from Python


def test_none_switches_an_optional_argument_off_where_empty_text_cannot():
    """``ros2 launch`` refuses ``name:=`` ("malformed launch argument"): ``none`` stands in."""
    assert lh.given("none") == lh.given(" NONE ") == lh.given("") == lh.given(None) == ""
    assert lh.given(" /p.yaml ") == "/p.yaml" and lh.given("nonexistent") == "nonexistent"
    assert lh.parse_namespace("none") == ""
    assert lh.engine_overrides({"model": "none", "backend": "None", "device": "cpu"}) == {
        "engine.device": "cpu"
    }
    for launch_file, arguments in lh.LAUNCH_ARGUMENTS.items():
        for argument in arguments:
            # A default ros2 launch could not be given back on the command line would be odd.
            assert argument.default != "", (launch_file, argument.name)
            if argument.default == lh.NONE:
                assert argument.none, f"{argument.name} defaults to none but says not what it means"
            if argument.none:
                assert argument.description.endswith(f"'none': {argument.none}."), argument.name
        optional = {a.name for a in arguments if a.none}
        with_none = plan(launch_file, _values(launch_file, **dict.fromkeys(optional, "none")))
        with_empty = plan(launch_file, _values(launch_file, **dict.fromkeys(optional, "")))
        assert with_none == with_empty, launch_file
        assert with_none.namespace == "" and with_none.fastdds_profile == ""
        for spec in with_none.nodes:  # no file at all: only the launch arguments' overrides
            assert _files(spec) == [], (launch_file, spec.name)
    the_plan = plan("perception", _values("perception", rviz="true", rviz_config="none"))
    assert the_plan.rviz is not None and the_plan.rviz.arguments == ()  # rviz2's own config


def test_perception_default_topology():
    the_plan = plan("perception", _values("perception", model="/models/b0.onnx"))
    assert the_plan.namespace == "seg_perception"
    assert the_plan.use_sim_time is False and the_plan.log_level == "info"
    assert the_plan.rviz is None and the_plan.notes == ()
    assert the_plan.fastdds_profile == str(REPO / "config/fastdds_large_messages.xml")
    nodes = _by_name(the_plan)
    assert list(nodes) == ["front_segmentation", "lidar_segmentation", "fusion"]

    camera = nodes["front_segmentation"]
    assert (camera.package, camera.executable) == ("seg_perception", "camera_segmentation_node")
    assert lh.full_namespace(the_plan.namespace, camera.namespace) == "/seg_perception/front"
    assert dict(camera.remappings) == {
        "image": "/front/image_raw",
        "image/compressed": "/front/image_raw/compressed",
    }
    assert _files(camera) == [str(REPO / "config/camera_segmentation.yaml")]
    assert _overrides(camera) == {"engine.model": "/models/b0.onnx", "publish_confidence": False}

    lidar = nodes["lidar_segmentation"]
    assert lidar.executable == "lidar_segmentation_node" and lidar.namespace == ""
    assert dict(lidar.remappings) == {"points": "/points_raw"}
    assert _files(lidar) == [str(REPO / "config/lidar_segmentation.yaml")]
    assert _overrides(lidar) == {}

    fusion = nodes["fusion"]
    assert fusion.executable == "fusion_node" and fusion.namespace == ""
    # Relative: /seg_perception/segmented_points, the LiDAR node's output; the labels are
    # /seg_perception/front/labels without a remap, where the camera node publishes them.
    assert dict(fusion.remappings) == {
        "points": "segmented_points",
        "front/camera_info": "/front/camera_info",
    }
    assert _files(fusion) == [str(REPO / "config/fusion.yaml")]
    assert _overrides(fusion) == {"cameras": ["front"], "use_confidence": False}
    for spec in the_plan.nodes:  # dict overrides come after every file
        assert all(isinstance(p, str) for p in spec.parameters[: len(_files(spec))])


def test_perception_several_cameras_and_options():
    the_plan = plan(
        "perception",
        _values(
            "perception",
            namespace="robot1/perception",
            cameras="front,left,rear",
            image_topic_pattern="/sensors/{name}/image_rect",
            camera_info_topic_pattern="/sensors/{name}/info",
            lidar_topic="/velodyne_points",
            backend="onnxruntime",
            device="cuda",
            label_set="/labels/mine.yaml",
            publish_confidence="true",
            params_file="/tmp/site.yaml",
            use_sim_time="true",
            rviz="True",
            log_level="DEBUG",
            fastdds_profile="none",
        ),
    )
    assert the_plan.namespace == "robot1/perception"
    assert the_plan.use_sim_time is True and the_plan.log_level == "debug"
    assert the_plan.fastdds_profile == ""
    nodes = _by_name(the_plan)
    assert list(nodes) == [
        "front_segmentation", "left_segmentation", "rear_segmentation", "lidar_segmentation",
        "fusion",
    ]  # fmt: skip
    for name in ("front", "left", "rear"):
        camera = nodes[f"{name}_segmentation"]
        assert camera.namespace == name
        assert dict(camera.remappings)["image"] == f"/sensors/{name}/image_rect"
        assert _files(camera) == [str(REPO / "config/camera_segmentation.yaml"), "/tmp/site.yaml"]
        assert _overrides(camera) == {
            "engine.backend": "onnxruntime",
            "engine.device": "cuda",
            "engine.label_set": "/labels/mine.yaml",
            "publish_confidence": True,
        }
    assert dict(nodes["lidar_segmentation"].remappings) == {"points": "/velodyne_points"}
    fusion = nodes["fusion"]
    assert dict(fusion.remappings) == {
        "points": "segmented_points",
        "front/camera_info": "/sensors/front/info",
        "left/camera_info": "/sensors/left/info",
        "rear/camera_info": "/sensors/rear/info",
    }
    assert _overrides(fusion) == {
        "cameras": ["front", "left", "rear"],
        "use_confidence": True,
        "label_set": "/labels/mine.yaml",
    }
    assert _files(fusion)[-1] == "/tmp/site.yaml"
    rviz = the_plan.rviz
    assert rviz is not None and (rviz.package, rviz.executable) == ("rviz2", "rviz2")
    assert rviz.arguments == ("-d", str(REPO / "rviz/seg_perception.rviz"))


def test_perception_without_lidar_segmentation_fuses_the_raw_cloud():
    nodes = _by_name(plan("perception", _values("perception", lidar_segmentation="false")))
    assert list(nodes) == ["front_segmentation", "fusion"]
    assert dict(nodes["fusion"].remappings)["points"] == "/points_raw"


def test_perception_single_process():
    the_plan = plan(
        "perception",
        _values(
            "perception",
            single_process="true",
            cameras="front,left",
            model="/models/b0.onnx",
            label_set="cityscapes",
            publish_confidence="true",
            lidar_segmentation="false",
            namespace="",
        ),
    )
    assert the_plan.namespace == ""
    (pipeline,) = the_plan.nodes
    assert (pipeline.executable, pipeline.name, pipeline.namespace) == (
        "pipeline_node", "pipeline", ""
    )  # fmt: skip
    assert dict(pipeline.remappings) == {
        "points": "/points_raw",
        "front/image": "/front/image_raw",
        "front/image/compressed": "/front/image_raw/compressed",  # transport: compressed
        "front/camera_info": "/front/camera_info",
        "left/image": "/left/image_raw",
        "left/image/compressed": "/left/image_raw/compressed",
        "left/camera_info": "/left/camera_info",
    }
    assert _files(pipeline) == [str(REPO / "config/pipeline.yaml")]
    assert _overrides(pipeline) == {
        "cameras": ["front", "left"],
        "engine.model": "/models/b0.onnx",
        "engine.label_set": "cityscapes",
        "label_set": "cityscapes",
    }
    assert len(the_plan.notes) == 2  # publish_confidence and lidar_segmentation are ignored


def test_per_node_launch_files():
    cameras = plan("camera_segmentation", _values("camera_segmentation", cameras="a,b"))
    assert [(s.name, s.namespace) for s in cameras.nodes] == [
        ("a_segmentation", "a"), ("b_segmentation", "b")
    ]  # fmt: skip
    assert _files(cameras.nodes[0]) == [str(REPO / "config/camera_segmentation.yaml")]
    assert cameras.rviz is None

    (lidar,) = plan("lidar_segmentation", _values("lidar_segmentation")).nodes
    assert _files(lidar) == [str(REPO / "config/lidar_segmentation.yaml")]
    assert dict(lidar.remappings) == {"points": "/points_raw"}
    (lidar,) = plan(
        "lidar_segmentation", _values("lidar_segmentation", lidar_params_file="/own.yaml")
    ).nodes
    assert _files(lidar) == ["/own.yaml"]

    (fusion,) = plan(
        "fusion",
        _values(
            "fusion",
            cameras="front,left",
            labels_topic_pattern="/isaac/{name}/raw_segmentation_mask",
            use_confidence="true",
        ),
    ).nodes
    assert dict(fusion.remappings) == {
        "points": "segmented_points",
        "front/camera_info": "/front/camera_info",
        "front/labels": "/isaac/front/raw_segmentation_mask",
        "left/camera_info": "/left/camera_info",
        "left/labels": "/isaac/left/raw_segmentation_mask",
    }
    assert _overrides(fusion) == {"cameras": ["front", "left"], "use_confidence": True}
    assert _files(fusion) == [str(REPO / "config/fusion.yaml")]

    pipeline_plan = plan("pipeline", _values("pipeline", rviz="true"))
    assert [s.executable for s in pipeline_plan.nodes] == ["pipeline_node"]
    assert pipeline_plan.rviz is not None


#: The argument naming each node's own parameter file, the same in every launch file.
OWN_FILE = {
    "camera_segmentation_node": ("camera_params_file", "camera_segmentation"),
    "lidar_segmentation_node": ("lidar_params_file", "lidar_segmentation"),
    "fusion_node": ("fusion_params_file", "fusion"),
    "pipeline_node": ("pipeline_params_file", "pipeline"),
    "clicked_object_node": ("clicked_object_params_file", "clicked_object"),
}


@pytest.mark.parametrize(
    ("launch_file", "extra"),
    [(f, {}) for f in lh.LAUNCH_ARGUMENTS] + [("perception", {"single_process": "true"})],
)
def test_params_file_means_the_same_in_every_launch_file(launch_file, extra):
    """``params_file`` is applied after the node's own file; ``<node>_params_file`` replaces it."""
    the_plan = plan(launch_file, _values(launch_file, params_file="/site.yaml", **extra))
    assert the_plan.nodes
    for spec in the_plan.nodes:
        own, config = OWN_FILE[spec.executable]
        assert _files(spec) == [str(REPO / f"config/{config}.yaml"), "/site.yaml"], spec.name
        replaced = plan(launch_file, _values(launch_file, **{own: "/mine.yaml"}, **extra))
        (same,) = [s for s in replaced.nodes if s.name == spec.name]
        assert _files(same) == ["/mine.yaml"], spec.name
        # The same file twice is given once.
        twice = plan(launch_file, _values(launch_file, params_file="/a.yaml", **{own: "/a.yaml"},
                                          **extra))  # fmt: skip
        assert _files(next(s for s in twice.nodes if s.name == spec.name)) == ["/a.yaml"]


def _prefix_with(tmp_path: Path, files: dict[str, int]) -> Any:
    """A stand-in for ``get_package_prefix`` over an install prefix holding ``files`` (mode)."""
    for relative, mode in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(mode)

    def package_prefix(package: str) -> str:
        if not (tmp_path / "lib" / package).is_dir():
            raise KeyError(f"package '{package}' not found")  # PackageNotFoundError is one
        return str(tmp_path)

    return package_prefix


def test_a_missing_rviz2_is_found_before_anything_starts(tmp_path):
    rviz = lh.rviz_node({"rviz": "true", "rviz_config": "/r.rviz"})
    assert rviz is not None and rviz.arguments == ("-d", "/r.rviz")
    installed = _prefix_with(tmp_path / "ok", {"lib/rviz2/rviz2": 0o755})
    assert lh.missing_executable(rviz, installed) == ""
    assert lh.missing_executable(rviz, _prefix_with(tmp_path / "none", {})) == (
        "package 'rviz2' is not installed"
    )
    not_executable = _prefix_with(tmp_path / "broken", {"lib/rviz2/rviz2": 0o644})
    assert "has no executable 'rviz2'" in lh.missing_executable(rviz, not_executable)
    if _importable("ament_index_python"):  # the real lookup, the one launch_ros uses
        from ament_index_python.packages import get_package_prefix

        expected = "" if _rviz2_installed() else "package 'rviz2' is not installed"
        assert lh.missing_executable(rviz, get_package_prefix) == expected

    wanted = plan("perception", _values("perception", rviz="true"))
    assert lh.without_missing_tools(wanted, installed) == wanted
    skipped = lh.without_missing_tools(wanted, _prefix_with(tmp_path / "none", {}))
    assert skipped.rviz is None and skipped.nodes == wanted.nodes  # the rest still starts
    (warning,) = skipped.notes
    assert warning.startswith("WARNING: rviz:=true, but package 'rviz2' is not installed")
    unwanted = plan("perception", _values("perception"))
    assert lh.without_missing_tools(unwanted, _prefix_with(tmp_path / "none", {})) == unwanted


def _rviz2_installed() -> bool:
    try:
        from ament_index_python.packages import get_package_prefix

        get_package_prefix("rviz2")
    except (ImportError, LookupError):
        return False
    return True


def test_bad_arguments_are_refused_with_the_reason():
    with pytest.raises(LaunchArgumentError, match="no argument"):
        plan("lidar_segmentation", {"cameras": "front"})
    with pytest.raises(LaunchArgumentError, match="same topic"):
        plan("perception", _values("perception", cameras="a,b", image_topic_pattern="/cam/image"))
    with pytest.raises(LaunchArgumentError, match="single_process"):
        plan("perception", _values("perception", single_process="yes please"))
    with pytest.raises(LaunchArgumentError, match="lidar_topic"):
        plan("perception", _values("perception", lidar_topic="points_raw"))
    with pytest.raises(ValueError, match="unknown launch file"):
        plan("everything", {})


def test_every_launch_file_compiles_and_uses_its_own_plan():
    files = sorted(LAUNCH_DIR.glob("*.launch.py"))
    assert {f.name.removesuffix(".launch.py") for f in files} == set(lh.LAUNCH_ARGUMENTS)
    for path in files:
        source = path.read_text(encoding="utf-8")
        compile(source, str(path), "exec")  # byte-compiles
        tree = ast.parse(source)
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "generate_launch_description" in functions, path.name
        calls = [
            node
            for node in ast.walk(functions["generate_launch_description"])
            if isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "generate_launch_description"
        ]
        assert len(calls) == 1, path.name
        assert ast.literal_eval(calls[0].args[0]) == path.name.removesuffix(".launch.py")
        # Importable without launch: the helpers import it only when the launch file runs.
        spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert callable(module.generate_launch_description)


def test_defaults_name_files_the_package_installs():
    """Share-file defaults point at files of launch/, config/, rviz/ (installed to share/)."""
    for arguments in lh.LAUNCH_ARGUMENTS.values():
        for argument in arguments:
            if isinstance(argument.default, lh.ShareFile):
                assert argument.default.parts[0] in ("config", "rviz", "launch")
                assert Path(argument.default.path(REPO)).is_file(), argument


def test_every_launch_file_plans_with_its_defaults():
    for launch_file in lh.LAUNCH_ARGUMENTS:
        the_plan = plan(launch_file, _values(launch_file))
        assert the_plan.nodes, launch_file
        assert all(s.executable in lh.EXECUTABLES for s in the_plan.nodes)


def _readme_rows() -> list[tuple[str, str]]:
    """(first cell without backticks, the whole row) of each table row in launch/README.md."""
    rows = []
    for line in (LAUNCH_DIR / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            rows.append((line.split("|")[1].strip().strip("`"), line))
    return rows


def test_readme_documents_every_argument():
    readme = (LAUNCH_DIR / "README.md").read_text(encoding="utf-8")
    rows = _readme_rows()
    documented = dict(rows)
    for launch_file, arguments in lh.LAUNCH_ARGUMENTS.items():
        assert f"{launch_file}.launch.py" in documented, launch_file
        if launch_file != "perception":  # the per-node table lists exactly what each declares
            name = f"{launch_file}.launch.py"
            (row,) = [r for key, r in rows if key == name and "`namespace`" in r]
            listed = set(re.findall(r"`(\w+)`", row.split("|")[2]))
            assert listed == {a.name for a in arguments}, launch_file
        for argument in arguments:
            assert argument.name in documented, f"no table row for {argument.name}"
            if argument.none:
                assert "`none`" in documented[argument.name], f"{argument.name}: what is none?"
    # ros2 launch refuses name:= (empty), so the README must never suggest it for an argument.
    names = "|".join({a.name for args in lh.LAUNCH_ARGUMENTS.values() for a in args})
    empty = re.search(rf"\b({names}):=(`|\s|$)", readme, re.MULTILINE)
    assert empty is None, f"an empty {empty and empty.group(0)} example"
    assert "(empty)" not in readme


def test_the_parameters_the_launch_files_set_exist_on_the_nodes():
    """An override naming a parameter a node does not declare would stop that node."""
    pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
    pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")
    from seg_perception.ros.nodes.camera_segmentation import CameraSegmentationNode
    from seg_perception.ros.nodes.clicked_object import ClickedObjectNode
    from seg_perception.ros.nodes.fusion import FusionNode
    from seg_perception.ros.nodes.lidar_segmentation import LidarSegmentationNode
    from seg_perception.ros.nodes.pipeline import PipelineNode
    from seg_perception.ros.params import COMMON_PARAMS

    declared = {
        "camera_segmentation_node": CameraSegmentationNode.PARAMS,
        "lidar_segmentation_node": LidarSegmentationNode.PARAMS,
        "fusion_node": FusionNode.PARAMS,
        "pipeline_node": PipelineNode.PARAMS,
        "clicked_object_node": ClickedObjectNode.PARAMS,
    }
    everything = {
        "model": "m", "backend": "torch", "device": "cuda", "label_set": "cityscapes",
        "publish_confidence": "true",
    }  # fmt: skip
    for launch_file in lh.LAUNCH_ARGUMENTS:
        values = _values(launch_file)
        values.update({k: v for k, v in everything.items() if k in values})
        if "use_confidence" in values:
            values["use_confidence"] = "true"
        for single in ("false", "true") if launch_file == "perception" else ("false",):
            if launch_file == "perception":
                values["single_process"] = single
            for spec in plan(launch_file, values).nodes:
                names = {p.name for p in COMMON_PARAMS + declared[spec.executable]}
                assert set(_overrides(spec)) <= names, (launch_file, spec.name)


# ------------------------------------------------ the launch code, against a recording double
class _Recorded:
    """Stands for a launch / launch_ros class: keeps what it was constructed with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def _fake_launch_modules(package_prefix: Any) -> dict[str, Any]:
    """Minimal stand-ins for the names the helpers import, with the real keyword names.

    ``package_prefix`` stands for ``ament_index_python.packages.get_package_prefix``.

    Not launch: only enough to run :func:`generate_launch_description` and the opaque
    function here, so their code paths and the keywords they pass are exercised. The real
    API is exercised by the launch_testing test on a ROS installation.
    """
    import types

    class LaunchConfiguration(_Recorded):
        def perform(self, context: Any) -> str:
            return context.launch_configurations[self.args[0]]

    class EnvironmentVariable(_Recorded):
        def __init__(self, name: str, *, default_value: str = "") -> None:
            super().__init__(name, default_value=default_value)

        def perform(self, context: Any) -> str:
            return context.environment.get(self.args[0], self.kwargs["default_value"])

    class Node(_Recorded):
        def __init__(
            self, *, executable, package=None, name=None, namespace=None, exec_name=None,
            parameters=None, remappings=None, ros_arguments=None, arguments=None, **kwargs,
        ) -> None:  # fmt: skip
            super().__init__(
                executable=executable, package=package, name=name, namespace=namespace,
                parameters=parameters, remappings=remappings, ros_arguments=ros_arguments,
                arguments=arguments, **kwargs,
            )  # fmt: skip

    class DeclareLaunchArgument(_Recorded):
        def __init__(self, name, *, default_value=None, description=None, choices=None, **kw):
            super().__init__(name, default_value=default_value, description=description)

    class OpaqueFunction(_Recorded):
        def __init__(self, *, function, args=None, kwargs=None, **kw) -> None:
            super().__init__(function=function)

    class SetParameter(_Recorded):
        def __init__(self, name, value, **kwargs) -> None:
            super().__init__(name=name, value=value)

    def classes(*names: str) -> dict[str, type]:
        return {n: type(n, (_Recorded,), {}) for n in names}

    launch = types.ModuleType("launch")
    launch.LaunchDescription = classes("LaunchDescription")["LaunchDescription"]
    actions = types.ModuleType("launch.actions")
    for n, c in classes("GroupAction", "LogInfo", "SetEnvironmentVariable").items():
        setattr(actions, n, c)
    actions.DeclareLaunchArgument = DeclareLaunchArgument
    actions.OpaqueFunction = OpaqueFunction
    substitutions = types.ModuleType("launch.substitutions")
    substitutions.LaunchConfiguration = LaunchConfiguration
    substitutions.EnvironmentVariable = EnvironmentVariable
    substitutions.PathJoinSubstitution = classes("PathJoinSubstitution")["PathJoinSubstitution"]
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = Node
    ros_actions.PushRosNamespace = classes("PushRosNamespace")["PushRosNamespace"]
    ros_actions.SetParameter = SetParameter
    ros_substitutions = types.ModuleType("launch_ros.substitutions")
    ros_substitutions.FindPackageShare = classes("FindPackageShare")["FindPackageShare"]
    ament_packages = types.ModuleType("ament_index_python.packages")
    ament_packages.get_package_prefix = package_prefix
    return {
        "launch": launch, "launch.actions": actions, "launch.substitutions": substitutions,
        "launch_ros": launch_ros, "launch_ros.actions": ros_actions,
        "launch_ros.substitutions": ros_substitutions,
        "ament_index_python.packages": ament_packages,
    }  # fmt: skip


def _flatten(actions: list[Any]) -> list[Any]:
    out = []
    for action in actions:
        out.append(action)
        if type(action).__name__ == "GroupAction":
            out += _flatten(list(action.args[0]))
    return out


@pytest.mark.parametrize(
    ("environment", "rviz_installed"),
    [({}, True), ({"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}, True), ({}, False)],
)
def test_launch_description_code_with_a_recording_double(
    monkeypatch, tmp_path, environment, rviz_installed
):
    if _importable("launch_ros"):
        pytest.skip("launch_ros is installed: the launch_testing test covers the real thing")
    installed = {"lib/rviz2/rviz2": 0o755} if rviz_installed else {}
    for name, module in _fake_launch_modules(_prefix_with(tmp_path, installed)).items():
        monkeypatch.setitem(sys.modules, name, module)
    description = lh.generate_launch_description("perception")
    *declared, opaque = description.args[0]
    names = [d.args[0] for d in declared]
    assert names == [a.name for a in lh.LAUNCH_ARGUMENTS["perception"]]
    share_default = declared[names.index("fusion_params_file")].kwargs["default_value"]
    assert share_default.args[0][1:] == ["config", "fusion.yaml"]  # PathJoinSubstitution
    params_file = declared[names.index("params_file")].kwargs
    assert params_file["default_value"] == "none"  # ros2 launch could not pass "" back
    assert params_file["description"].endswith("'none': no extra file.")

    class Context:
        launch_configurations = _values("perception", cameras="front,left", rviz="true")

    Context.environment = environment
    (group,) = opaque.kwargs["function"](Context())
    actions = _flatten([group])
    kinds = [type(a).__name__ for a in actions]
    profile_set = "SetEnvironmentVariable" in kinds
    assert profile_set == (not environment)
    if profile_set:
        env_action = actions[kinds.index("SetEnvironmentVariable")]
        assert env_action.args == (
            "FASTRTPS_DEFAULT_PROFILES_FILE",
            str(REPO / "config/fastdds_large_messages.xml"),
        )
    set_parameter = actions[kinds.index("SetParameter")]
    assert set_parameter.kwargs == {"name": "use_sim_time", "value": False}
    # The namespace is pushed first in the nodes' own group; rviz2 stays outside it.
    (namespaced,) = [
        a for a in actions
        if type(a).__name__ == "GroupAction" and type(a.args[0][0]).__name__ == "PushRosNamespace"
    ]  # fmt: skip
    push, *inside = namespaced.args[0]
    assert push.args == ("seg_perception",)
    planned = ["front_segmentation", "left_segmentation", "lidar_segmentation", "fusion"]
    assert [n.kwargs["name"] for n in inside] == planned
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    logs = [a.kwargs["msg"] for a in actions if type(a).__name__ == "LogInfo"]
    if rviz_installed:
        assert [n.kwargs["name"] for n in nodes] == [*planned, "rviz2"] and logs == []
        assert nodes[-1].kwargs["arguments"] == ["-d", str(REPO / "rviz/seg_perception.rviz")]
    else:  # decided before any node starts: the others run, rviz2 is not even declared
        assert [n.kwargs["name"] for n in nodes] == planned
        (warning,) = logs
        assert warning.startswith("seg_perception: WARNING: rviz:=true, but package 'rviz2'")
        assert kinds.index("LogInfo") < kinds.index("Node")
    fusion = nodes[3].kwargs
    assert fusion["package"] == "seg_perception" and fusion["executable"] == "fusion_node"
    assert fusion["namespace"] is None  # the pushed namespace itself
    assert fusion["ros_arguments"] == ["--log-level", "info"]
    assert fusion["parameters"] == [
        str(REPO / "config/fusion.yaml"), {"cameras": ["front", "left"], "use_confidence": False}
    ]  # fmt: skip
    assert nodes[0].kwargs["namespace"] == "front"


# =========================================================================== 2. over DDS
#: The camera's optical frame in the LiDAR frame (x forward, y left, z up): looking along +x.
EXTRINSICS = [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5]
WIDTH, HEIGHT, F = 96, 64, 50.0
WALL_X = 10.0


def _synthetic_points() -> np.ndarray:
    """A wall 10 m ahead covering the whole picture, and some ground in front of it."""
    us, vs = np.meshgrid(np.arange(2, WIDTH, 4), np.arange(2, HEIGHT, 4))
    y_left = -(us.ravel() - WIDTH / 2) / F * WALL_X
    z_up = -(vs.ravel() - HEIGHT / 2) / F * WALL_X
    gx, gy = np.meshgrid(np.arange(3.0, 9.0, 0.5), np.arange(-4.0, 4.0, 0.5))
    xyz = np.concatenate(
        [
            np.stack([np.full_like(y_left, WALL_X), y_left, z_up], axis=1),
            np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, -1.73)], axis=1),
        ]
    )
    points = np.zeros(len(xyz), dtype=[(n, "<f4") for n in ("x", "y", "z", "intensity")])
    points["x"], points["y"], points["z"] = xyz.T
    points["intensity"] = 1.0
    return points


def _expected_wall_labels(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the wall points above the horizon and the palette class they show."""
    from onnx_models import palette_picture

    _, truth = palette_picture(HEIGHT, WIDTH)
    wall = np.flatnonzero((points["x"] == WALL_X) & (points["z"] > 0))
    u = np.round(-points["y"][wall] / WALL_X * F + WIDTH / 2).astype(int)
    v = np.round(-points["z"][wall] / WALL_X * F + HEIGHT / 2).astype(int)
    return wall, truth[v, u]


def _has_labels(cloud: Any) -> bool:
    """Whether a labeled cloud (PointCloud2) carries labels: any point not 255 (unlabeled).

    The fusion may release a cloud before any label image matched it (labels arrive 1.4-4.5 s
    after the image on a CPU), with every point unlabeled: legal, but not what is checked.
    """
    from seg_perception.ros.pointcloud2 import pointcloud2_to_array

    return bool(np.any(pointcloud2_to_array(cloud)["label"] != 255))


def _synthetic_frame(stamp_ns: int) -> tuple[Any, Any, Any]:
    """(Image rgb8, CameraInfo, PointCloud2) with one stamp."""
    from builtin_interfaces.msg import Time
    from onnx_models import palette_picture
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from seg_perception.ros.image_conversions import array_to_image
    from seg_perception.ros.pointcloud2 import array_to_pointcloud2

    stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    picture, _ = palette_picture(HEIGHT, WIDTH)
    image = array_to_image(picture, "rgb8", Header(stamp=stamp, frame_id="camera_optical"))
    info = CameraInfo(
        header=Header(stamp=stamp, frame_id="camera_optical"),
        width=WIDTH,
        height=HEIGHT,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=[F, 0.0, WIDTH / 2, 0.0, F, HEIGHT / 2, 0.0, 0.0, 1.0],
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=[F, 0.0, WIDTH / 2, 0.0, 0.0, F, HEIGHT / 2, 0.0, 0.0, 0.0, 1.0, 0.0],
    )
    cloud = array_to_pointcloud2(_synthetic_points(), Header(stamp=stamp, frame_id="lidar"))
    return image, info, cloud


def _write_inputs(folder: Path) -> dict[str, str]:
    """The palette model, its label set and an extra parameter file with the extrinsics."""
    from onnx_models import label_set_yaml, palette_model

    model = palette_model(folder / "palette.onnx")
    labels = label_set_yaml(folder / "palette.yaml")
    extra = folder / "site.yaml"
    sections = {
        f"/**/{node}": {"ros__parameters": {"camera": {"front": {"extrinsics": list(EXTRINSICS)}}}}
        for node in ("fusion", "pipeline")
    }
    extra.write_text(yaml.safe_dump(sections))
    return {"model": str(model), "label_set": str(labels), "params_file": str(extra)}


def _node_command(
    spec: lh.NodeSpec, the_plan: lh.LaunchPlan, folder: Path, index: int
) -> list[str]:
    """The command ``launch_ros.actions.Node`` runs for ``spec``, with this Python.

    Node passes ``--ros-args -r __node:=NAME -r __ns:=NS``, then ``--params-file`` for
    each entry of ``parameters`` in order (dicts written to a ``/**:`` YAML file), then
    ``-r from:=to`` per remapping; ``SetParameter`` adds ``use_sim_time``.
    """
    command = [sys.executable, "-m", lh.EXECUTABLES[spec.executable], *spec.arguments]
    command += ["--ros-args", "--log-level", the_plan.log_level]
    command += ["-r", f"__node:={spec.name}"]
    command += ["-r", f"__ns:={lh.full_namespace(the_plan.namespace, spec.namespace)}"]
    command += ["-p", f"use_sim_time:={str(the_plan.use_sim_time).lower()}"]
    for number, entry in enumerate(spec.parameters):
        if isinstance(entry, dict):
            path = folder / f"launch_params_{index}_{number}.yaml"
            path.write_text(yaml.safe_dump({"/**": {"ros__parameters": entry}}))
            entry = str(path)
        command += ["--params-file", entry]
    for old, new in spec.remappings:
        command += ["-r", f"{old}:={new}"]
    return command


@pytest.mark.parametrize("single_process", ["false", "true"])
def test_the_planned_graph_labels_the_cloud_over_dds(tmp_path, single_process):
    rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
    pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")
    pytest.importorskip("onnxruntime", reason="needs onnxruntime")
    pytest.importorskip("onnx", reason="needs onnx to write the test model")
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from ros_helpers import next_domain, output_of, running_nodes, spin_until
    from seg_perception.msg import ClassMap
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from seg_perception.ros.pointcloud2 import pointcloud2_to_array

    namespace = f"lt_{os.getpid()}"
    the_plan = plan(
        "perception",
        _values(
            "perception",
            namespace=namespace,
            image_topic_pattern=f"/{namespace}_in/{{name}}/image",
            camera_info_topic_pattern=f"/{namespace}_in/{{name}}/info",
            lidar_topic=f"/{namespace}_in/points",
            publish_confidence="true",
            single_process=single_process,
            **_write_inputs(tmp_path),
        ),
    )
    commands = [_node_command(s, the_plan, tmp_path, i) for i, s in enumerate(the_plan.nodes)]
    domain = next_domain()
    with running_nodes(commands, domain) as processes:
        context = rclpy.context.Context()
        rclpy.init(context=context, domain_id=domain)
        try:
            node = rclpy.create_node("sensor_player", context=context)
            reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            latched = QoSProfile(
                depth=1,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            image_pub = node.create_publisher(Image, f"/{namespace}_in/front/image", reliable)
            info_pub = node.create_publisher(CameraInfo, f"/{namespace}_in/front/info", reliable)
            cloud_pub = node.create_publisher(PointCloud2, f"/{namespace}_in/points", reliable)
            received: dict[str, list[Any]] = {"cloud": [], "labels": [], "class_map": []}
            subscriptions = [
                node.create_subscription(
                    PointCloud2, f"/{namespace}/labeled_points", received["cloud"].append,
                    reliable,
                ),
                node.create_subscription(
                    Image, f"/{namespace}/front/labels", received["labels"].append, reliable
                ),
                node.create_subscription(
                    ClassMap, f"/{namespace}/class_map", received["class_map"].append, latched
                ),
            ]  # fmt: skip
            executor = rclpy.executors.SingleThreadedExecutor(context=context)
            executor.add_node(node)
            connected = spin_until(
                executor,
                lambda: (
                    (
                        all(p.get_subscription_count() for p in (image_pub, info_pub, cloud_pub))
                        and all(s.get_publisher_count() for s in subscriptions)
                    )
                    or any(p.poll() is not None for p in processes)
                ),
                timeout=60,
            )
            if not connected or any(p.poll() is not None for p in processes):
                pytest.fail(
                    "the planned nodes did not connect on the planned topics:\n"
                    + "\n".join(output_of(p) for p in processes if p.poll() is not None)
                )
            planned = {(s.name, lh.full_namespace(namespace, s.namespace)) for s in the_plan.nodes}
            spin_until(executor, lambda: planned <= set(node.get_node_names_and_namespaces()), 20)
            assert planned <= set(node.get_node_names_and_namespaces()), "names / namespaces"
            stamps = []
            deadline = time.monotonic() + 40
            while sum(map(_has_labels, received["cloud"])) < 2 and time.monotonic() < deadline:
                stamp = 1_700_000_000_000_000_000 + len(stamps) * 100_000_000
                stamps.append(stamp)
                image, info, cloud = _synthetic_frame(stamp)
                info_pub.publish(info)
                spin_until(executor, lambda: False, 0.05)
                image_pub.publish(image)
                cloud_pub.publish(cloud)
                spin_until(executor, lambda: False, 0.4)
        finally:
            rclpy.shutdown(context=context)
        for process in processes:
            process.send_signal(2)
        codes = [process.wait(timeout=20) for process in processes]
    logs = "\n".join(output_of(p) for p in processes)
    assert codes == [0] * len(processes), logs
    assert sum(map(_has_labels, received["cloud"])) >= 2, logs
    assert received["labels"] and received["class_map"], logs
    assert [c.name for c in received["class_map"][0].classes][:4] == ["c0", "c1", "c2", "c3"]
    points = _synthetic_points()
    wall, truth = _expected_wall_labels(points)
    for message in received["cloud"]:
        stamp = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
        assert stamp in stamps and message.header.frame_id == "lidar"
        got = pointcloud2_to_array(message)
        np.testing.assert_array_equal(got["x"], points["x"])  # the input's fields are kept
        assert {"label", "confidence", "camera", "lidar_class"} <= set(got.dtype.names)
        if not _has_labels(message):  # released before its labels: every point unlabeled
            continue
        agreement = np.mean(got["label"][wall] == truth)
        assert agreement > 0.9, f"{agreement:.0%} of the wall points have the picture's class"


# ===================================================================== 3. launch_testing
def test_perception_launch_with_launch_testing(tmp_path):
    """Run this file's launch test (below) through the real ``launch_test`` runner."""
    for module in ("launch", "launch_ros", "launch_testing"):
        if not _importable(module):
            pytest.skip(
                f"{module} is not importable: it comes with a ROS 2 installation, not from "
                "PyPI (the plan and the graph it starts are tested above without it)"
            )
    pytest.importorskip("onnx", reason="needs onnx to write the test model")
    from ros_helpers import next_domain, ros_env

    env = ros_env(next_domain())
    env[LAUNCH_TEST_ENV] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "test"), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "launch_testing.launch_test", __file__,
         "--junit-xml", str(tmp_path / "launch_test.xml")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]


if os.environ.get(LAUNCH_TEST_ENV) == "1":
    import unittest

    import launch_testing
    import launch_testing.actions
    import launch_testing.asserts
    import launch_testing.markers
    from launch.actions import IncludeLaunchDescription, RegisterEventHandler
    from launch.event_handlers import OnShutdown
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    from launch import LaunchDescription

    NAMESPACE = "seg_launch_test"

    @launch_testing.markers.keep_alive
    def generate_test_description():
        """perception.launch.py (this checkout's) with the palette model and synthetic topics.

        The nodes and parameter files come from the installed package (FindPackageShare).
        The model and the extra parameter file go to a temporary folder, removed when launch
        shuts down (the nodes read them at start-up only); ``inputs`` reaches the tests.
        """
        inputs = tempfile.TemporaryDirectory(prefix="seg_perception_launch_test_")
        arguments = {
            "namespace": NAMESPACE,
            "cameras": "front",
            "image_topic_pattern": f"/{NAMESPACE}_in/{{name}}/image",
            "camera_info_topic_pattern": f"/{NAMESPACE}_in/{{name}}/info",
            "lidar_topic": f"/{NAMESPACE}_in/points",
            "publish_confidence": "true",
            **_write_inputs(Path(inputs.name)),
        }
        perception = IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(LAUNCH_DIR / "perception.launch.py")),
            launch_arguments=arguments.items(),
        )
        remove_inputs = RegisterEventHandler(
            OnShutdown(on_shutdown=lambda event, context: inputs.cleanup())
        )
        return (
            LaunchDescription([perception, remove_inputs, launch_testing.actions.ReadyToTest()]),
            {"inputs": inputs},
        )

    class TestPerceptionLaunch(unittest.TestCase):
        @classmethod
        def setUpClass(cls):
            import rclpy

            rclpy.init()
            cls.node = rclpy.create_node("seg_perception_launch_test")

        @classmethod
        def tearDownClass(cls):
            import rclpy

            cls.node.destroy_node()
            rclpy.shutdown()

        def test_nodes_start_where_planned(self):
            expected = {
                ("front_segmentation", f"/{NAMESPACE}/front"),
                ("lidar_segmentation", f"/{NAMESPACE}"),
                ("fusion", f"/{NAMESPACE}"),
            }
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if expected <= set(self.node.get_node_names_and_namespaces()):
                    return
                time.sleep(0.2)
            self.fail(f"nodes missing: {expected - set(self.node.get_node_names_and_namespaces())}")

        def test_labeled_cloud_comes_out(self):
            """Frames go in until a cloud with labels comes out (or 90 s pass).

            The first clouds may legally come out unlabeled (released before the first label
            image exists), so this waits for labels rather than taking the first cloud.
            """
            import rclpy
            from rclpy.qos import QoSProfile, ReliabilityPolicy
            from sensor_msgs.msg import CameraInfo, Image, PointCloud2

            from seg_perception.ros.pointcloud2 import pointcloud2_to_array

            reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            image_pub = self.node.create_publisher(Image, f"/{NAMESPACE}_in/front/image", reliable)
            info_pub = self.node.create_publisher(
                CameraInfo, f"/{NAMESPACE}_in/front/info", reliable
            )
            cloud_pub = self.node.create_publisher(PointCloud2, f"/{NAMESPACE}_in/points", reliable)
            received: list[Any] = []
            self.node.create_subscription(
                PointCloud2, f"/{NAMESPACE}/labeled_points", received.append, reliable
            )
            labeled: list[Any] = []
            deadline = time.monotonic() + 90
            count = 0
            while not labeled and time.monotonic() < deadline:
                image, info, cloud = _synthetic_frame(1_700_000_000_000_000_000 + count * 10**8)
                count += 1
                info_pub.publish(info)
                rclpy.spin_once(self.node, timeout_sec=0.05)
                image_pub.publish(image)
                cloud_pub.publish(cloud)
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    rclpy.spin_once(self.node, timeout_sec=0.05)
                labeled = [message for message in received if _has_labels(message)]
            self.assertTrue(
                labeled,
                f"{len(received)} cloud(s) on the launch file's output topic after {count} "
                "frames, none with labels",
            )
            got = pointcloud2_to_array(labeled[0])
            wall, truth = _expected_wall_labels(_synthetic_points())
            self.assertGreater(float(np.mean(got["label"][wall] == truth)), 0.9)
            self.assertIn("lidar_class", got.dtype.names)

    @launch_testing.post_shutdown_test()
    class TestPerceptionShutdown(unittest.TestCase):
        def test_every_node_exits_cleanly(self, proc_info):
            launch_testing.asserts.assertExitCodes(proc_info)

        def test_the_inputs_are_removed(self, inputs):
            self.assertFalse(Path(inputs.name).exists(), "the launch test left its inputs behind")


def test_every_engine_field_is_settable_from_launch():
    """``engine:="{...}"``: any EngineConfig field, checked at launch by the field's type."""
    from seg_perception.engines.options import engine_options

    text = "{channel_order: bgr, mean: [0.406, 0.456, 0.485], multiple_of: 32, void_channels: [19]}"
    camera = plan("perception", _values("perception", engine=text)).nodes[0]
    overrides = camera.parameters[-1]
    assert overrides["engine.channel_order"] == "bgr"
    assert overrides["engine.mean"] == [0.406, 0.456, 0.485]
    assert overrides["engine.multiple_of"] == 32 and overrides["engine.void_channels"] == [19]
    pipeline = plan("pipeline", _values("pipeline", engine="{output_kind: class_ids}")).nodes[0]
    assert pipeline.parameters[-1]["engine.output_kind"] == "class_ids"
    assert {o.name for o in engine_options()} >= {"mean", "std", "scale", "resample", "spec"}
    for bad, message in (
        ("{colour: bgr}", r"unknown field\(s\) colour"),
        ("{mean: [0.4, zero, 0.5]}", r"engine.mean' needs 3 numbers"),
        ("{channel_order: gbr}", r"engine.channel_order' is 'gbr'; one of rgb, bgr"),
        ("[1, 2]", "must be a mapping"),
    ):
        with pytest.raises(LaunchArgumentError, match=message):
            plan("perception", _values("perception", engine=bad))


def test_every_installed_executable_runs_the_module_the_launch_helpers_name():
    found = {p.name: p.read_text() for p in (REPO / "bin").glob("*_node")}
    assert set(found) == set(lh.EXECUTABLES)
    for name, text in found.items():
        assert f"from {lh.EXECUTABLES[name]} import main" in text, name
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert all(f"bin/{name}" in cmake for name in found)


def test_clicked_object_launch_file_wires_the_clicks_images_and_lidar():
    the_plan = plan("clicked_object", _values(
        "clicked_object", cameras="front,left", model="facebook/sam-vit-base", rviz="true",
        click_topic="/rviz/clicked",
    ))  # fmt: skip
    (spec,) = the_plan.nodes
    assert (spec.executable, spec.name) == ("clicked_object_node", "clicked_object")
    remaps = dict(spec.remappings)
    assert remaps["clicked_point"] == "/rviz/clicked" and remaps["points"] == "/points_raw"
    assert remaps["left/image"] == "/left/image_raw"
    assert remaps["front/camera_info"] == "/front/camera_info"
    assert _overrides(spec)["engine.model"] == "facebook/sam-vit-base"
    assert _overrides(spec)["cameras"] == ["front", "left"]
    assert the_plan.rviz is not None
    with pytest.raises(lh.LaunchArgumentError, match="click_topic"):
        plan("clicked_object", _values("clicked_object", click_topic="relative"))
