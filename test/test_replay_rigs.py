"""Replay on rigs that are not KITTI: compressed cameras, a rig file, camera indices.

The generated-scene bag (exact truth) written three ways: raw Images, lossless PNG
CompressedImages on ``<topic>/compressed`` (image_transport's name), and JPEG. The PNG bag
must replay to labeled clouds identical to the raw bag's, field for field; the JPEG bag
must replay and label. A rig file (the nodes' camera record) must be read by replay with
its per-camera settings; a camera missing from a frame must not shift the other cameras'
indices.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from seg_perception.bag.io import BagError, open_bag
from seg_perception.bag.replay import ReplayConfig, replay
from seg_perception.bag.scene_bag import write_scene_bag
from seg_perception.cli import main
from seg_perception.core.rig import CameraRecord
from seg_perception.ros.pointcloud2 import pointcloud2_to_array

pytest.importorskip("onnxruntime", reason="needs onnxruntime")


def labeled_clouds(path) -> list[np.ndarray]:
    with open_bag(path) as reader:
        return [
            np.array(pointcloud2_to_array(reader.deserialize(raw, c.msgtype)))
            for c, _, raw in reader.messages()
            if c.topic.endswith("/labeled_points")
        ]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rig_bags")
    return {
        kind: write_scene_bag(folder / kind, frames=2, compressed="" if kind == "raw" else kind)
        for kind in ("raw", "png", "jpeg")
    }


def test_png_compressed_replays_exactly_like_raw_and_jpeg_labels(bags, tmp_path, capsys):
    outputs = {}
    for kind, bag in bags.items():
        out = tmp_path / kind
        image = "/front/image_raw" + ("" if kind == "raw" else "/compressed")
        argv = ["replay", str(bag), "--cloud-topic", "/lidar/points", "--out", str(out)]
        argv += ["--camera", f"front:{image}:/front/camera_info"]
        argv += ["--model", "random:segformer-b0", "--input-size", "64", "128"]
        assert main(argv) == 0
        outputs[kind] = labeled_clouds(out)
    capsys.readouterr()
    assert len(outputs["raw"]) == len(outputs["png"]) == 2
    for raw, png in zip(outputs["raw"], outputs["png"], strict=True):
        for field in ("label", "confidence", "camera", "lidar_class", "cluster"):
            np.testing.assert_array_equal(png[field], raw[field], err_msg=field)
        assert (raw["label"] != 255).sum() > 1000
    assert all((c["label"] != 255).sum() > 1000 for c in outputs["jpeg"])


def test_found_cameras_include_compressed_topics(bags, tmp_path):
    summary = replay(bags["png"], tmp_path / "o", ReplayConfig(cloud_topic="/lidar/points"), None)
    assert summary.images_read == {"front": 2}  # found as /front/image_raw/compressed


def test_a_rig_file_sets_each_camera_and_a_missing_camera_keeps_the_indices(
    bags, tmp_path, capsys
):
    rig = tmp_path / "rig.yaml"
    rig.write_text(
        yaml.safe_dump(
            {
                "cameras": [
                    # Never matches (1 s off): its index 0 must stay unused, not taken over.
                    {"name": "ghost", "image_topic": "/front/image_raw",
                     "info_topic": "/front/camera_info", "labels_topic": "/truth/front/labels",
                     "time_offset": 1.0, "tolerance": 0.01},
                    {"name": "front", "image_topic": "/front/image_raw",
                     "info_topic": "/front/camera_info", "labels_topic": "/truth/front/labels",
                     "projection": "rectified"},
                ]
            }
        )
    )  # fmt: skip
    out = tmp_path / "o"
    argv = ["replay", str(bags["raw"]), "--cloud-topic", "/lidar/points", "--rig", str(rig)]
    assert main([*argv, "--out", str(out), "--no-lidar-segmentation"]) == 0
    printed = capsys.readouterr().out
    assert "WARNING: camera 'ghost' labeled no cloud in the whole bag" in printed
    assert "camera 'front' labeled no cloud" not in printed
    for cloud in labeled_clouds(out):
        labeled = cloud["label"] != 255
        assert labeled.sum() > 1000
        assert set(np.unique(cloud["camera"][labeled]).tolist()) == {1}


def test_bad_rigs_are_one_line(tmp_path):
    from seg_perception.bag.cli import _cameras

    rig = tmp_path / "rig.yaml"
    cases = {
        "{cameras: [{name: a, transport: h264}]}": "camera.a.transport is 'h264'",
        "{cameras: [{name: a, lens: fisheye}]}": r"unknown key\(s\) lens",
        "{cams: []}": "a 'cameras' list",
        "{cameras: [{name: a, extrinsics: [1, 2]}]}": "camera.a.extrinsics needs 7 numbers",
    }
    for text, message in cases.items():
        rig.write_text(text)
        with pytest.raises(BagError, match=message):
            _cameras([], str(rig))
    with pytest.raises(BagError, match="not both"):
        _cameras(["a:/x:/y"], str(rig))
    assert _cameras(["a:/x/compressed:/y"])[0] == CameraRecord(
        "a", "/x/compressed", "/y", transport="compressed"
    )
