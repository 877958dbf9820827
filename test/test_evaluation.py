"""``seg-perception eval``: pictures, the JSON report and the CLI end to end on real data
(kitti_semantics, SemanticKITTI), with predictions derived from the ground truth so the
scores are known."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import data_path

from seg_perception.core.labels import LabelSet
from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.evaluation import cli as eval_cli
from seg_perception.evaluation import report

CITYSCAPES = LabelSet.cityscapes()
IGNORE = 255
ROAD, SIDEWALK, CAR, TRUCK = 0, 1, 13, 14


@pytest.fixture
def seg_cli(monkeypatch):
    """``seg_perception.cli.main`` with the ``eval`` subcommand, whether or not the CLI
    already registers it."""
    from seg_perception import cli

    original = cli.build_parser

    def build() -> argparse.ArgumentParser:
        parser = original()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "eval" not in commands.choices:
            eval_cli.add_parsers(commands)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    return cli.main


def _png_size(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable PNG"
    return image.shape[1], image.shape[0]


def _kitti_semantics() -> Path:
    return data_path("kitti_semantics/training")


def _derived_predictions(tmp_path: Path, change) -> tuple[Path, list[np.ndarray]]:
    """Write ``change(truth)`` for every ground-truth frame; return the folder and truths."""
    truth_dir = _kitti_semantics() / "semantic_trainIds"
    folder = tmp_path / "pred"
    folder.mkdir(parents=True)
    truths = []
    for path in sorted(truth_dir.glob("*.png")):
        truth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        truths.append(truth)
        cv2.imwrite(str(folder / path.name), change(truth.copy()))
    return folder, truths


# --------------------------------------------------------------------------- pictures
def test_error_map_colors():
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    truth = np.array([[0, 1, IGNORE], [2, 2, 2]], dtype=np.uint8)
    pred = np.array([[0, 2, 0], [2, IGNORE, 1]], dtype=np.uint8)
    errors = report.error_map(image, pred, truth, IGNORE)
    assert tuple(errors[0, 1]) == report.WRONG
    assert tuple(errors[0, 2]) == report.IGNORED
    assert tuple(errors[1, 1]) == report.MISSED
    assert tuple(errors[1, 2]) == report.WRONG
    assert tuple(errors[0, 0]) == tuple(errors[1, 0]) == (55, 55, 55)  # dim gray: right


def test_charts_are_drawn_for_any_class_count():
    rng = np.random.default_rng(0)
    truth = rng.choice([0, 1, 2, 13, IGNORE], size=(50, 80)).astype(np.uint8)
    pred = np.where(rng.random(truth.shape) < 0.7, truth, 5).astype(np.uint8)
    pred[0, :5] = IGNORE
    cm = ConfusionMatrix(class_ids=CITYSCAPES.ids).update(pred, truth)
    bars = report.iou_bar_chart(cm, CITYSCAPES, "a title")
    heat = report.confusion_heatmap(cm, CITYSCAPES, "a title")
    assert bars.dtype == np.uint8 and bars.shape[2] == 3
    assert bars.shape[0] > 19 * 25 and bars.shape[1] > 600
    # 19 classes + the "unlabeled" column, at least 40 px a cell
    assert heat.shape[0] > 19 * 40 and heat.shape[1] > 20 * 40
    two = ConfusionMatrix(2).update(np.array([0, 1]), np.array([0, 0]))
    small = report.confusion_heatmap(two, LabelSet("x", (0, 1), ("a", "b"), ((9, 9, 9),) * 2))
    assert small.shape[0] > 2 * 40


def test_image_panel_is_two_by_two_with_a_legend():
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    truth = np.zeros((30, 40), dtype=np.uint8)
    panel = report.image_frame_panel(image, truth, truth, CITYSCAPES, IGNORE, "f")
    assert panel.shape[1] == 2 * 40 + 4
    assert panel.shape[0] > 2 * 30


def test_write_json_is_strict(tmp_path):
    path = report.write_json(tmp_path / "r.json", {"a": float("nan"), "b": [np.int64(3), 1.5]})
    assert json.loads(path.read_text()) == {"a": None, "b": [3, 1.5]}


def test_choose_frames():
    names = ["a", "b", "c", "d"]
    assert eval_cli.choose_frames(names, None) == names[: eval_cli.DEFAULT_DRAWN]
    assert eval_cli.choose_frames(names, ["all"]) == names
    assert eval_cli.choose_frames(names, ["none"]) == []
    assert eval_cli.choose_frames(names, ["d.png", "b"]) == ["d", "b"]
    with pytest.raises(ValueError, match="no frame named x"):
        eval_cli.choose_frames(names, ["x"])


def test_semantickitti_mapping_to_ground_obstacle():
    raw = np.array([0, 1, 40, 44, 48, 49, 60, 72, 10, 50, 70, 252], dtype=np.uint32)
    labels = raw | (np.uint32(7) << 16)  # instance ids in the upper bits are dropped
    mapped = eval_cli.semantickitti_ground_obstacle(labels)
    np.testing.assert_array_equal(mapped, [255, 255, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="123 are not SemanticKITTI classes"):
        eval_cli.semantickitti_ground_obstacle(np.array([40, 123], dtype=np.uint32))
    lidar = np.array([0, 1, 2], dtype=np.uint8)  # unknown, ground, obstacle
    np.testing.assert_array_equal(eval_cli.lidar_class_to_points(lidar), [255, 0, 1])


# --------------------------------------------------------------------------- eval images
def test_eval_images_truth_against_itself(seg_cli, tmp_path, capsys):
    root = _kitti_semantics()
    out = tmp_path / "out"
    argv = ["eval", "images", "--predictions", str(root / "semantic_trainIds")]
    assert seg_cli([*argv, "--out", str(out), "--frames", "000001_10"]) == 0
    printed = capsys.readouterr().out
    assert "mIoU 1.0000" in printed and "road" in printed
    data = json.loads((out / "report.json").read_text())
    overall = data["overall"]
    assert overall["mean_iou"] == 1.0 and overall["accuracy"] == 1.0
    assert overall["frames"] == 5
    for entry in overall["classes"]:
        assert entry["iou"] == (1.0 if entry["support"] else None)
    assert len(data["frames"]) == 5
    assert data["pictures"] == ["confusion.png", "frame_000001_10.png", "iou.png"]
    width, height = _png_size(out / "frame_000001_10.png")
    assert width == 2 * 1242 + 4 and 2 * 375 < height < 2 * 375 + 200
    for name in ("iou.png", "confusion.png"):
        width, height = _png_size(out / name)
        assert 500 < width < 3000 and 400 < height < 3000


def test_eval_images_with_swapped_classes_gives_known_scores(seg_cli, tmp_path, capsys):
    """road <-> sidewalk swapped and car predicted as truck: those classes score known
    IoUs, every other class stays perfect."""

    def change(truth):
        out = truth.copy()
        out[truth == ROAD] = SIDEWALK
        out[truth == SIDEWALK] = ROAD
        out[truth == CAR] = TRUCK
        return out

    predictions, truths = _derived_predictions(tmp_path, change)
    out = tmp_path / "out"
    root = _kitti_semantics()
    argv = ["eval", "images", "--predictions", str(predictions), "--out", str(out)]
    assert seg_cli([*argv, "--frames", "none", "--images", str(root / "image_2")]) == 0
    capsys.readouterr()
    data = json.loads((out / "report.json").read_text())
    iou = {c["name"]: c["iou"] for c in data["overall"]["classes"]}
    everything = np.concatenate([t.reshape(-1) for t in truths])
    count = {k: int(np.count_nonzero(everything == k)) for k in (CAR, TRUCK)}
    assert iou["road"] == 0.0 and iou["sidewalk"] == 0.0 and iou["car"] == 0.0
    assert iou["truck"] == pytest.approx(count[TRUCK] / (count[TRUCK] + count[CAR]))
    present = set(np.unique(everything)) - {IGNORE}
    others = [CITYSCAPES.names[k] for k in present - {ROAD, SIDEWALK, CAR, TRUCK}]
    assert all(iou[name] == 1.0 for name in others)
    expected = (len(others) + iou["truck"]) / len(present)
    assert data["overall"]["mean_iou"] == pytest.approx(expected)
    changed = np.isin(everything, [ROAD, SIDEWALK, CAR]).sum()
    scored = np.count_nonzero(everything != IGNORE)
    assert data["overall"]["accuracy"] == pytest.approx(1 - changed / scored)
    assert data["pictures"] == ["confusion.png", "iou.png"]


def test_eval_images_shifted_prediction_matches_a_direct_count(seg_cli, tmp_path, capsys):
    """The truth shifted 8 px right: every class's IoU equals a direct boolean count."""
    shift = 8

    def change(truth):
        out = np.full_like(truth, IGNORE)
        out[:, shift:] = truth[:, :-shift]
        return out

    predictions, truths = _derived_predictions(tmp_path, change)
    out = tmp_path / "out"
    assert seg_cli(["eval", "images", "--predictions", str(predictions), "--out", str(out)]) == 0
    capsys.readouterr()
    data = json.loads((out / "report.json").read_text())
    truth = np.concatenate([t.reshape(-1) for t in truths])
    pred = np.concatenate([change(t).reshape(-1) for t in truths])
    scored = truth != IGNORE
    for entry in data["overall"]["classes"]:
        k = entry["id"]
        inter = np.count_nonzero(scored & (truth == k) & (pred == k))
        union = np.count_nonzero(scored & ((truth == k) | (pred == k)))
        assert entry["iou"] == (pytest.approx(inter / union) if union else None)
    # the 8 unlabeled columns of each frame are misses of their true class
    missed = np.count_nonzero(scored & (pred == IGNORE))
    assert sum(data["overall"]["missed"]) == missed > 0
    assert len(list(out.glob("frame_*.png"))) == eval_cli.DEFAULT_DRAWN


def test_eval_images_with_a_random_model_scores_near_zero(seg_cli, tmp_path, capsys):
    """An engine run end to end (random weights: no trained model here), on small crops."""
    root = _kitti_semantics()
    images, truths = tmp_path / "images", tmp_path / "truth"
    images.mkdir()
    truths.mkdir()
    for name in ("000000_10.png", "000001_10.png"):
        image = cv2.imread(str(root / "image_2" / name))
        truth = cv2.imread(str(root / "semantic_trainIds" / name), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(images / name), image[100:228, 300:556])
        cv2.imwrite(str(truths / name), truth[100:228, 300:556])
    saved, out = tmp_path / "saved", tmp_path / "out"
    argv = ["eval", "images", "--truth", str(truths), "--images", str(images)]
    argv += ["--model", "random:segformer-b0", "--backend", "torch"]
    assert seg_cli([*argv, "--out", str(out), "--save-predictions", str(saved)]) == 0
    capsys.readouterr()
    data = json.loads((out / "report.json").read_text())
    assert data["source"]["model"] == "random:segformer-b0"
    assert data["overall"]["mean_iou"] < 0.3
    for name in ("000000_10.png", "000001_10.png"):
        assert cv2.imread(str(saved / name), cv2.IMREAD_UNCHANGED).shape == (128, 256)
    assert _png_size(out / "frame_000000_10.png")[0] == 2 * 256 + 4


def test_rerun_removes_its_own_stale_pictures(seg_cli, tmp_path, capsys):
    root = _kitti_semantics()
    out = tmp_path / "out"
    argv = ["eval", "images", "--predictions", str(root / "semantic_trainIds"), "--out", str(out)]
    assert seg_cli([*argv, "--frames", "all"]) == 0
    (out / "mine.png").write_bytes(b"not ours")
    assert seg_cli([*argv, "--frames", "000002_10"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.glob("*.png")) == [
        "confusion.png",
        "frame_000002_10.png",
        "iou.png",
        "mine.png",
    ]


# --------------------------------------------------------------------------- bad inputs
def _error(seg_cli, capsys, argv: list[str], expected: str) -> None:
    assert seg_cli(argv) == 2
    err = capsys.readouterr().err
    assert "seg-perception eval: error:" in err and expected in err, err


def test_eval_images_bad_inputs(seg_cli, tmp_path, capsys):
    root = _kitti_semantics()
    truth_dir = root / "semantic_trainIds"
    out = ["--out", str(tmp_path / "out")]
    _error(
        seg_cli,
        capsys,
        ["eval", "images", "--truth", str(tmp_path / "nope"), "--predictions", str(truth_dir)],
        "does not exist",
    )
    _error(seg_cli, capsys, ["eval", "images", *out], "give --predictions DIR")
    _error(
        seg_cli,
        capsys,
        ["eval", "images", "--predictions", str(truth_dir), "--model", "x.onnx", *out],
        "not both",
    )
    _error(
        seg_cli,
        capsys,
        ["eval", "images", "--predictions", str(truth_dir), "--frames", "zzz", *out],
        "no frame named zzz",
    )
    # a prediction of the wrong size
    small, _ = _derived_predictions(tmp_path / "a", lambda t: t[:100, :200].copy())
    _error(
        seg_cli,
        capsys,
        ["eval", "images", "--predictions", str(small), *out],
        "is 200x100 but its ground truth",
    )
    # ids that are not classes
    odd, _ = _derived_predictions(tmp_path / "b", lambda t: np.where(t == 0, 40, t))
    _error(
        seg_cli,
        capsys,
        ["eval", "images", "--predictions", str(odd), *out],
        "label id(s) 40 that are neither a class (0-18) nor the ignore id 255",
    )
    # a color ground truth instead of trainIds
    _error(
        seg_cli,
        capsys,
        ["eval", "images", "--truth", str(root / "semantic_rgb"), "--predictions", str(odd), *out],
        "expected a single-channel id PNG",
    )
    # a missing prediction file
    partial = tmp_path / "partial"
    shutil.copytree(truth_dir, partial)
    (partial / "000003_10.png").unlink()
    _error(
        seg_cli,
        capsys,
        ["eval", "images", "--predictions", str(partial), *out],
        "no prediction 000003_10.png",
    )


def test_eval_images_below_target_exits_one(seg_cli, tmp_path, capsys):
    predictions, _ = _derived_predictions(tmp_path, lambda t: np.where(t == 0, 1, t))
    argv = ["eval", "images", "--predictions", str(predictions), "--out", str(tmp_path / "o")]
    assert seg_cli([*argv, "--min-miou", "0.99"]) == 1
    assert "below target: mIoU" in capsys.readouterr().out


# --------------------------------------------------------------------------- eval points
def test_eval_points_on_semantickitti(seg_cli, tmp_path, capsys):
    from seg_perception.lidar import evaluation
    from seg_perception.lidar.ground import segment_ground

    data = data_path("semantickitti")
    out = tmp_path / "out"
    argv = ["eval", "points", "--data", str(data), "--out", str(out), "--frames", "000001"]
    assert seg_cli(argv) == 0
    printed = capsys.readouterr().out
    assert "ground" in printed and "obstacle" in printed
    report_data = json.loads((out / "report.json").read_text())
    classes = {c["name"]: c for c in report_data["overall"]["classes"]}
    assert set(classes) == {"ground", "obstacle"}
    # ground scores are exactly eval-ground's (same mapping, same segmenter)
    scans = evaluation.find_scans(data)
    results = evaluation.evaluate_ground(scans, {"ours": lambda p: segment_ground(p).ground})
    ground = evaluation.total_scores(results)["ours"]
    assert classes["ground"]["iou"] == pytest.approx(ground.iou)
    assert classes["ground"]["precision"] == pytest.approx(ground.precision)
    assert classes["ground"]["recall"] == pytest.approx(ground.recall)
    assert report_data["overall"]["scored"] == ground.scored
    assert classes["ground"]["iou"] > 0.8 and classes["obstacle"]["iou"] > 0.8
    assert len(report_data["frames"]) == len(scans)
    assert report_data["pictures"] == [
        "confusion.png",
        "iou.png",
        "scan_000001_birds_eye.png",
        "scan_000001_range.png",
    ]
    width, height = _png_size(out / "scan_000001_birds_eye.png")
    assert width == 3 * 800 + 8 and 800 < height < 1000
    width, height = _png_size(out / "scan_000001_range.png")
    assert width == 2048 and 3 * 64 * 4 < height < 3 * 64 * 4 + 250


def test_eval_points_bad_inputs(seg_cli, tmp_path, capsys):
    out = ["--out", str(tmp_path / "out")]
    _error(
        seg_cli, capsys, ["eval", "points", "--data", str(tmp_path), *out], "no SemanticKITTI scans"
    )
    data = data_path("semantickitti")
    _error(
        seg_cli,
        capsys,
        ["eval", "points", "--data", str(data), "--scans", "999999", *out],
        "999999 not found",
    )
    # labels with a class SemanticKITTI does not have
    folder = tmp_path / "seq"
    (folder / "velodyne").mkdir(parents=True)
    (folder / "labels").mkdir()
    points = np.zeros((3, 4), dtype="<f4")
    points.tofile(folder / "velodyne" / "000000.bin")
    np.array([40, 50, 77], dtype="<u4").tofile(folder / "labels" / "000000.label")
    _error(
        seg_cli,
        capsys,
        ["eval", "points", "--data", str(folder), *out],
        "77 are not SemanticKITTI classes",
    )
    np.array([40, 50], dtype="<u4").tofile(folder / "labels" / "000000.label")
    _error(seg_cli, capsys, ["eval", "points", "--data", str(folder), *out], "2 labels for a scan")
