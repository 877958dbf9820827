"""Offline replay of real and generated bags: determinism, accounting, readers, regressions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="needs the rosbags library")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")

from onnx_models import MEAN, STD, label_set_yaml, palette_model

from seg_perception.bag.io import EXIT_MODEL_FAILURE, BagError, open_bag
from seg_perception.bag.regress import regress
from seg_perception.bag.replay import CameraTopics, ReplayConfig, replay
from seg_perception.bag.scene_bag import PERIOD_NS, START_NS, write_scene_bag
from seg_perception.bag.testing import replay_and_compare
from seg_perception.cli import main
from seg_perception.core.fusion import FusionConfig
from seg_perception.core.rig import CameraRecord
from seg_perception.engines import EngineConfig, create_engine
from seg_perception.lidar.segmenter import GeometricCloudSegmenter
from seg_perception.ros.camera_info import camera_model_from_camera_info
from seg_perception.ros.image_conversions import image_to_array
from seg_perception.ros.pointcloud2 import cloud_xyz, pointcloud2_to_array

LABEL_FIELDS = ("confidence", "label", "camera", "lidar_class", "cluster")


@pytest.fixture(scope="module")
def palette(tmp_path_factory):
    folder = tmp_path_factory.mktemp("palette")
    model = palette_model(folder / "palette.onnx")
    return create_engine(
        EngineConfig(model=str(model), input_size=None, resize="none",
                     label_set=str(label_set_yaml(folder / "labels.yaml")))
    )  # fmt: skip


def _clouds(path: Path) -> list[np.ndarray]:
    with open_bag(path) as reader:
        connections = [c for c in reader.connections if c.topic == "/seg_perception/labeled_points"]
        return [
            np.array(pointcloud2_to_array(reader.deserialize(raw, c.msgtype)))
            for c, _, raw in reader.messages(connections=connections)
        ]


def test_kitti_replay_is_deterministic_accounted_and_readable(kitti_bag, tmp_path, palette):
    segmenter = GeometricCloudSegmenter()
    first = replay(
        kitti_bag, tmp_path / "a", ReplayConfig(pictures=str(tmp_path / "pics")), palette, segmenter
    )
    second = replay(kitti_bag, tmp_path / "b", ReplayConfig(), palette, segmenter)
    assert first.clouds_read == 5 and first.clouds_processed == 5 and first.accounted
    assert not first.dropped and second.clouds_processed == 5
    a, b = _clouds(tmp_path / "a"), _clouds(tmp_path / "b")
    assert len(a) == len(b) == 5
    for cloud_a, cloud_b in zip(a, b, strict=True):
        for name in LABEL_FIELDS:  # byte-identical label fields
            assert cloud_a[name].tobytes() == cloud_b[name].tobytes(), name
        assert np.count_nonzero(cloud_a["label"] != 255) > 10000
    assert len(list((tmp_path / "pics").glob("overlay_*.png"))) == 5

    # The mcap tools read it too, custom messages included (their schemas are embedded).
    mcap_reader = pytest.importorskip("mcap.reader", reason="needs the mcap package")
    decoder = pytest.importorskip("mcap_ros2.decoder", reason="needs mcap-ros2-support")
    (mcap_file,) = (tmp_path / "a").glob("*.mcap")
    topics = {}
    with mcap_file.open("rb") as stream:
        reader = mcap_reader.make_reader(stream, decoder_factories=[decoder.DecoderFactory()])
        for schema, channel, _, decoded in reader.iter_decoded_messages():
            topics.setdefault(channel.topic, (schema.name, decoded))
    assert topics["/seg_perception/fusion_status"][0] == "seg_perception/msg/FusionStatus"
    assert topics["/seg_perception/fusion_status"][1].points_labeled > 10000
    assert topics["/seg_perception/class_map"][1].label_set == "palette"
    assert topics["/seg_perception/labeled_points"][1].header.frame_id == "velo_link"


def test_output_clouds_project_onto_their_label_images(kitti_bag, tmp_path, palette):
    replay(kitti_bag, tmp_path / "out", ReplayConfig(), palette, None)
    with open_bag(kitti_bag) as reader:
        info = next(
            reader.deserialize(raw, c.msgtype)
            for c, _, raw in reader.messages()
            if c.msgtype == "sensor_msgs/msg/CameraInfo"
        )
        tf = next(
            reader.deserialize(raw, c.msgtype).transforms[0]
            for c, _, raw in reader.messages()
            if c.topic == "/tf_static"
        )
    from seg_perception.core.transforms import TransformTree, transform_points

    tree = TransformTree()
    tree.add_transform_stamped(tf)
    model = camera_model_from_camera_info(info)
    with open_bag(tmp_path / "out") as reader:
        images, clouds = [], []
        for connection, _, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            if connection.topic.endswith("/labels"):
                images.append(image_to_array(message))
            elif connection.topic.endswith("/labeled_points"):
                clouds.append(pointcloud2_to_array(message))
    assert len(images) == len(clouds) == 5
    T = tree.lookup("camera_color_left", "velo_link")
    for labels, cloud in zip(images, clouds, strict=True):
        projection = model.project(transform_points(T, cloud_xyz(cloud)))
        labeled = cloud["label"] != 255
        assert np.all(projection.valid[labeled])
        rows, cols = projection.pixel_indices()
        pixel_labels = np.full(len(cloud), 255, np.uint8)
        pixel_labels[projection.valid] = labels[rows, cols]
        np.testing.assert_array_equal(cloud["label"][labeled], pixel_labels[labeled])


def test_regression_from_a_flipped_setting_is_detected(kitti_bag, tmp_path, palette, capsys):
    replay(kitti_bag, tmp_path / "golden", ReplayConfig(), palette, None)
    replay(kitti_bag, tmp_path / "same", ReplayConfig(), palette, None)
    flipped = ReplayConfig(fusion=FusionConfig(occlusion=False))
    replay(kitti_bag, tmp_path / "flipped", flipped, palette, None)
    assert regress(tmp_path / "same", tmp_path / "golden").passed
    report = regress(tmp_path / "flipped", tmp_path / "golden")
    assert not report.passed
    text = report.format()
    assert "configuration changed: fusion.occlusion: True -> False" in text
    assert "label agreement" in text and "REGRESSION" in text
    assert any("unlabeled" in line and "->" in line for line in report.lines)
    assert main(["regress", str(tmp_path / "flipped"), str(tmp_path / "golden")]) == 1
    assert main(["regress", str(tmp_path / "same"), str(tmp_path / "golden")]) == 0
    assert "PASS: no regression" in capsys.readouterr().out


def test_pytest_helper_replays_and_compares(kitti_bag, tmp_path, palette):
    replay(kitti_bag, tmp_path / "golden", ReplayConfig(), palette, GeometricCloudSegmenter())
    report = replay_and_compare(kitti_bag, tmp_path / "golden", tmp_path, label_source=palette)
    assert report.passed, report.format()


def test_generated_scene_bag_replays_with_its_truth(tmp_path, capsys):
    bag = write_scene_bag(tmp_path / "scenes", frames=2, seed=3)
    camera = CameraTopics("front", "/front/image_raw", "/front/camera_info", "/truth/front/labels")
    summary = replay(
        bag,
        tmp_path / "out",
        ReplayConfig(cloud_topic="/lidar/points", cameras=[camera]),
        None,
        None,
    )
    assert summary.clouds_processed == 2 and summary.accounted
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == "/truth/points"]
        truths = [
            pointcloud2_to_array(reader.deserialize(raw, c.msgtype))["truth"]
            for c, _, raw in reader.messages(connections=connections)
        ]
    for cloud, truth in zip(_clouds(tmp_path / "out"), truths, strict=True):
        labeled = cloud["label"] != 255
        assert labeled.sum() > 10000
        assert np.mean(cloud["label"][labeled] == truth[labeled]) > 0.97


# ----------------------------------------------------------------------------- bad input
def test_missing_bag(tmp_path, capsys):
    assert (
        main(["replay", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--model", "x.onnx"])
        == 2
    )
    assert "bag not found" in capsys.readouterr().err


@pytest.mark.parametrize("keep", [4096, 0.6])
def test_truncated_bag(kitti_bag, tmp_path, capsys, keep):
    broken = tmp_path / "broken"
    shutil.copytree(kitti_bag, broken)
    (database,) = broken.glob("*.db3")
    data = database.read_bytes()
    database.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    code = main(["replay", str(broken), "--out", str(tmp_path / "o"), "--model", "x.onnx"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot open bag" in err or "cannot read bag" in err
    assert "Traceback" not in err


def test_unknown_storage_format(kitti_bag, tmp_path):
    odd = tmp_path / "odd"
    shutil.copytree(kitti_bag, odd)
    metadata = odd / "metadata.yaml"
    metadata.write_text(
        metadata.read_text().replace("storage_identifier: sqlite3", "storage_identifier: parquet")
    )
    with pytest.raises(BagError, match=r"cannot open bag"), open_bag(odd):
        pass


def test_topics_that_do_not_exist_are_listed(kitti_bag, tmp_path, palette):
    with pytest.raises(
        BagError,
        match=r"topic /velodyne_points is not in the bag; it has: .*/kitti/velo/pointcloud",
    ):
        replay(kitti_bag, tmp_path / "o", ReplayConfig(cloud_topic="/velodyne_points"), palette)
    with pytest.raises(
        BagError, match=r"holds sensor_msgs/msg/Image, not sensor_msgs/msg/PointCloud2"
    ):
        replay(
            kitti_bag,
            tmp_path / "o2",
            ReplayConfig(cloud_topic="/kitti/camera_color_left/image_raw"),
            palette,
        )


def test_clouds_without_a_matching_camera_frame_are_still_accounted(kitti_bag, tmp_path):
    # A camera offset far outside the window (in its record): no image ever matches.
    camera = CameraRecord(
        "left", "/kitti/camera_color_left/image_raw", "/kitti/camera_color_left/camera_info",
        time_offset=1.0, tolerance=0.01,
    )  # fmt: skip
    config = ReplayConfig(cameras=[camera])
    summary = replay(kitti_bag, tmp_path / "o", config, None, None)
    assert summary.accounted and summary.clouds_read == 5 and summary.clouds_processed == 5
    assert summary.camera_warnings == {"camera 'left': no image within its time window": 5}
    assert all(np.all(cloud["label"] == 255) for cloud in _clouds(tmp_path / "o"))


def test_output_bag_that_exists_is_refused(kitti_bag, tmp_path, palette):
    (tmp_path / "o").mkdir()
    with pytest.raises(BagError, match="exists already"):
        replay(kitti_bag, tmp_path / "o", ReplayConfig(), palette)


def test_golden_from_another_label_set_is_refused(kitti_bag, tmp_path, palette):
    replay(kitti_bag, tmp_path / "palette", ReplayConfig(), palette)
    scene = write_scene_bag(tmp_path / "scenes", frames=1)
    camera = CameraTopics("front", "/front/image_raw", "/front/camera_info", "/truth/front/labels")
    replay(
        scene,
        tmp_path / "scene_out",
        ReplayConfig(cloud_topic="/lidar/points", cameras=[camera]),
        None,
    )
    with pytest.raises(BagError, match="another label set"):
        regress(tmp_path / "scene_out", tmp_path / "palette")


# ----------------------------------------------------------------------------- failures
#: The generated scene bag's camera images (seeds 0-3) have top-left red 126, 108, 88, 103.
DARK_CORNER = 100


def corner_tripwire_model(path: Path) -> Path:
    """The palette model, failing at run time on images whose top-left red is < DARK_CORNER.

    The red of pixel (0, 0) below the threshold becomes a positive index into a 1-element
    table: ONNX Runtime's Gather fails on it. The model loads and runs on the other images,
    like a real network that cannot take some inputs.
    """
    import onnx
    from onnx import TensorProto, helper

    palette_model(path)
    model = onnx.load(str(path))
    graph = model.graph
    graph.node[-1].output[0] = "palette_logits"
    threshold = ((DARK_CORNER - 0.5) / 255.0 - MEAN[0]) / STD[0]
    graph.node.extend(
        [
            helper.make_node("Slice", ["images", "starts", "ends"], ["corner"]),
            helper.make_node("Sub", ["threshold", "corner"], ["under"]),
            helper.make_node("Relu", ["under"], ["positive"]),
            helper.make_node("Mul", ["positive", "hundred"], ["scaled"]),
            helper.make_node("Ceil", ["scaled"], ["rounded"]),
            helper.make_node("Cast", ["rounded"], ["index"], to=TensorProto.INT64),
            helper.make_node("Reshape", ["index", "scalar_shape"], ["index_scalar"]),
            helper.make_node("Gather", ["table", "index_scalar"], ["zero"], axis=0),
            helper.make_node("Add", ["palette_logits", "zero"], ["logits"]),
        ]
    )
    graph.initializer.extend(
        [
            helper.make_tensor("starts", TensorProto.INT64, [4], [0, 0, 0, 0]),
            helper.make_tensor("ends", TensorProto.INT64, [4], [1, 1, 1, 1]),
            helper.make_tensor("threshold", TensorProto.FLOAT, [], [float(threshold)]),
            helper.make_tensor("hundred", TensorProto.FLOAT, [], [100.0]),
            helper.make_tensor("scalar_shape", TensorProto.INT64, [0], []),
            helper.make_tensor("table", TensorProto.FLOAT, [1], [0.0]),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def leftovers(folder: Path) -> list[str]:
    """Everything in ``folder`` that looks like a (partial) output bag."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((".out", "out")))


def test_model_failure_is_reported_as_one_and_leaves_no_output(tmp_path, capsys):
    bag = write_scene_bag(tmp_path / "scenes", frames=4, seed=0)
    labels = str(label_set_yaml(tmp_path / "labels.yaml"))
    tripwire = corner_tripwire_model(tmp_path / "tripwire.onnx")
    args = ["replay", str(bag), "--cloud-topic", "/lidar/points", "--label-set", labels]
    out = tmp_path / "out"

    code = main([*args, "--out", str(out), "--model", str(tripwire)])
    err = capsys.readouterr().err
    assert code == EXIT_MODEL_FAILURE == 3
    (line,) = [line for line in err.splitlines() if "model failure" in line]
    stamp = START_NS + 2 * PERIOD_NS  # the third frame, the first with a dark corner
    assert f"{stamp // 10**9}.{stamp % 10**9:09d}" in line
    assert "tripwire.onnx" in line and "camera 'front'" in line and "/front/image_raw" in line
    assert "Gather" in line and "no output written" in line
    assert "cannot read bag" not in err and "Traceback" not in err
    assert leftovers(tmp_path) == []

    # The rerun with a model that works goes into the same output path.
    good = palette_model(tmp_path / "palette.onnx")
    assert main([*args, "--out", str(out), "--model", str(good)]) == 0
    assert leftovers(tmp_path) == ["out"] and len(_clouds(out)) == 4


def test_interrupted_replay_leaves_no_output(tmp_path, palette):
    bag = write_scene_bag(tmp_path / "scenes", frames=3, seed=0)
    seen = []

    class Interrupted:
        """The palette engine, with Ctrl-C pressed during the second frame."""

        label_set, description = palette.label_set, palette.description

        def segment(self, image: np.ndarray):
            seen.append(leftovers(tmp_path))
            if len(seen) == 2:
                raise KeyboardInterrupt
            return palette.segment(image)

    with pytest.raises(KeyboardInterrupt):
        replay(bag, tmp_path / "out", ReplayConfig(cloud_topic="/lidar/points"), Interrupted())
    assert seen[1][0].startswith(".out.") and seen[1][0].endswith(".partial")  # was writing
    assert leftovers(tmp_path) == []
