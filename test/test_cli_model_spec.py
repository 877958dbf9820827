"""The model spec through the commands: eval and replay read a sidecar exactly as the
engine and the live nodes do (one loader), and replay records the spec it used.

The model is the BGR CNN with its own mean/std and a void channel of test_model_spec; it
labels its palette picture exactly only when run by its sidecar.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml

pytest.importorskip("onnxruntime", reason="needs onnxruntime")

from onnx_models import contract_model
from test_model_spec import BGR_MEAN, BGR_STD, COLORS, bgr_picture

from seg_perception.cli import main


@pytest.fixture
def bgr_onnx(tmp_path):
    unused = np.column_stack([np.full(15, 200), np.zeros(15), 120 + 8 * np.arange(15)])
    model = contract_model(
        tmp_path / "bgr.onnx", np.vstack([COLORS[:4], unused, COLORS[4:]]),
        bgr=True, mean=BGR_MEAN, std=BGR_STD,
    )  # fmt: skip
    sidecar = {
        "input": {"color": "bgr", "scale": 1 / 255, "mean": list(BGR_MEAN), "std": list(BGR_STD)},
        "classes": "cityscapes",
        "void": [19],
    }
    (tmp_path / "bgr.yaml").write_text(yaml.safe_dump(sidecar))
    return model


def test_eval_images_runs_the_model_by_its_sidecar(bgr_onnx, tmp_path, capsys):
    picture, truth = bgr_picture(96, 192)
    images, truths, saved = tmp_path / "images", tmp_path / "truth", tmp_path / "saved"
    for folder in (images, truths):
        folder.mkdir()
    cv2.imwrite(str(images / "a.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(truths / "a.png"), truth)
    argv = ["eval", "images", "--truth", str(truths), "--images", str(images)]
    argv += ["--model", str(bgr_onnx), "--out", str(tmp_path / "out")]
    assert main([*argv, "--save-predictions", str(saved)]) == 0
    capsys.readouterr()
    predicted = cv2.imread(str(saved / "a.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(predicted, truth)  # void band 255, the rest exact
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["overall"]["mean_iou"] == pytest.approx(1.0)


def test_replay_runs_the_model_by_its_sidecar_and_records_it(bgr_onnx, tmp_path, capsys):
    from seg_perception.bag.io import open_bag
    from seg_perception.bag.regress import custom_data
    from seg_perception.bag.replay import CONFIG_KEY
    from seg_perception.engines import EngineConfig, create_engine
    from seg_perception.ros.image_conversions import image_to_array

    bag = tmp_path / "scene"
    assert main(["make-bag", str(bag), "--frames", "2"]) == 0
    out = tmp_path / "out"
    argv = ["replay", str(bag), "--cloud-topic", "/lidar/points", "--model", str(bgr_onnx)]
    assert main([*argv, "--out", str(out)]) == 0
    capsys.readouterr()
    engine = create_engine(EngineConfig(model=str(bgr_onnx)))
    config = json.loads(custom_data(out)[CONFIG_KEY])
    assert "void channels [19]" in config["engine"] and "bgr.yaml" in config["engine"]
    with open_bag(bag) as reader:
        images = [
            image_to_array(reader.deserialize(raw, c.msgtype))
            for c, _, raw in reader.messages()
            if c.topic == "/front/image_raw"
        ]
    with open_bag(out) as reader:
        labels = [
            image_to_array(reader.deserialize(raw, c.msgtype))
            for c, _, raw in reader.messages()
            if c.topic.endswith("/labels")
        ]
    assert len(images) == len(labels) == 2
    for image, replayed in zip(images, labels, strict=True):
        np.testing.assert_array_equal(replayed, engine.segment(image).labels)


def test_demo_runs_the_model_by_its_sidecar(bgr_onnx, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(bgr_onnx), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert "bgr.onnx" in summary["label_source"] and "bgr.onnx" in printed
    assert (out / "camera_labels.png").is_file()


def test_a_bad_sidecar_stops_a_command_with_one_line_and_exit_2(bgr_onnx, tmp_path, capsys):
    sidecar = bgr_onnx.with_suffix(".yaml")
    sidecar.write_text(yaml.safe_dump({"input": {"mean": [0.4, "zero", 0.5]}}))
    argv = ["eval", "images", "--images", str(tmp_path), "--truth", str(tmp_path)]
    assert main([*argv, "--model", str(bgr_onnx)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and str(sidecar) in error and "input.mean must be a finite" in error
