"""Launch files reading the camera record: a rig file gives each camera's topics, transport
and camera.<name>.* parameters, the same file replay reads (``core/rig.py``); mistakes are
one sentence before anything starts."""

from __future__ import annotations

import pytest
import yaml

from seg_perception.core.rig import NODE_FIELDS, Rig
from seg_perception.ros.launch_helpers import LaunchArgumentError, plan

RIG = {
    "cameras": [
        {
            "name": "front", "image_topic": "/cam_front/image_rect/compressed",
            "info_topic": "/cam_front/camera_info", "transport": "compressed",
            "projection": "rectified", "delay": 0.01,
            "extrinsics": [1.5, 0.0, -0.3, -0.5, 0.5, -0.5, 0.5],
        },
        {"name": "back", "image_topic": "/cam_back/image_raw", "time_offset": 0.002},
    ]
}  # fmt: skip


@pytest.fixture
def rig_file(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(RIG))
    return str(path)


def node(the_plan, name):
    (spec,) = [n for n in the_plan.nodes if n.name == name]
    return spec


def overrides(spec) -> dict:
    return {k: v for p in spec.parameters if isinstance(p, dict) for k, v in p.items()}


def test_the_pipeline_takes_topics_transport_and_parameters_from_the_rig(rig_file):
    spec = node(plan("pipeline", {"rig": rig_file}), "pipeline")
    remaps = dict(spec.remappings)
    assert remaps["front/image/compressed"] == "/cam_front/image_rect/compressed"
    assert remaps["front/image"] == "/cam_front/image_rect"
    assert remaps["front/camera_info"] == "/cam_front/camera_info"
    assert remaps["back/image"] == "/cam_back/image_raw"
    assert remaps["back/camera_info"] == "/back/camera_info"  # not in the file: the pattern's
    params = overrides(spec)
    assert params["cameras"] == ["front", "back"]
    assert params["camera.front.transport"] == "compressed"
    assert params["camera.front.projection"] == "rectified"
    assert params["camera.front.delay"] == 0.01
    assert params["camera.front.extrinsics"] == RIG["cameras"][0]["extrinsics"]
    assert params["camera.back.time_offset"] == 0.002
    assert params["camera.back.transport"] == "raw"  # the record's default where it is silent
    rig = Rig.from_yaml(rig_file)
    for record in rig.cameras:  # every node field of every record, nothing else
        for name in NODE_FIELDS:
            assert f"camera.{record.name}.{name}" in params


def test_separate_nodes_follow_the_same_records(rig_file):
    the_plan = plan("perception", {"rig": rig_file})
    front = node(the_plan, "front_segmentation")
    assert dict(front.remappings)["image/compressed"] == "/cam_front/image_rect/compressed"
    assert overrides(front)["compressed"] is True
    back = node(the_plan, "back_segmentation")
    assert "compressed" not in overrides(back)
    fusion = node(the_plan, "fusion")
    assert dict(fusion.remappings)["front/camera_info"] == "/cam_front/camera_info"
    assert overrides(fusion)["camera.front.delay"] == 0.01


def test_without_a_rig_the_patterns_and_parameter_files_stand():
    spec = node(plan("pipeline", {"cameras": "left,right"}), "pipeline")
    assert dict(spec.remappings)["left/image"] == "/left/image_raw"
    assert not [k for k in overrides(spec) if k.startswith("camera.")]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"cameras": "front,back"}, "rig and cameras both set the cameras"),
        ({"image_topic_pattern": "/{name}/image"}, "rig and image_topic_pattern both set"),
    ],
)
def test_a_rig_and_camera_arguments_together_are_refused(rig_file, values, expected):
    with pytest.raises(LaunchArgumentError, match=expected):
        plan("pipeline", {"rig": rig_file, **values})


def test_a_bad_rig_file_is_one_sentence(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"cameras": [{"name": "front", "transport": "h264"}]}))
    with pytest.raises(LaunchArgumentError, match=r"rig.*camera.front.transport is 'h264'"):
        plan("pipeline", {"rig": str(bad)})
    with pytest.raises(LaunchArgumentError, match="rig file not found"):
        plan("fusion", {"rig": str(tmp_path / "missing.yaml")})
    topic = tmp_path / "topic.yaml"
    topic.write_text(yaml.safe_dump({"cameras": [{"name": "front", "image_topic": "img"}]}))
    with pytest.raises(LaunchArgumentError, match="camera 'front': image_topic"):
        plan("camera_segmentation", {"rig": str(topic)})
