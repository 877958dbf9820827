"""``seg-perception train``'s data side: layouts, label sets, augmentation, and every bad
input refused in one line before any training step."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml
from conftest import data_path

from seg_perception.cli import main
from seg_perception.engines.preprocess import Preprocessor
from seg_perception.training.augment import AugmentConfig, SegmentationDataset, normalize
from seg_perception.training.datasets import DataError, DataSource, find_samples
from seg_perception.training.labels import IGNORE_INDEX, TrainLabels
from seg_perception.training.model import fingerprint

TINY = ["--config", "segformer-b0", "--set", "hidden_sizes=[8,16,32,64]",
        "--set", "depths=[1,1,1,1]", "--set", "decoder_hidden_size=32"]  # fmt: skip


def plain_folder(root, names=("a", "b", "c"), label_names=None, size=(24, 40), ids=(0, 13)):
    """images/ + labels/ with random pixels and labels drawn from ``ids``."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name in names:
        cv2.imwrite(
            str(root / "images" / f"{name}.png"), rng.integers(0, 255, (*size, 3), np.uint8)
        )
    for name in label_names or names:
        label = rng.choice(np.asarray(ids, np.uint8), size=size)
        cv2.imwrite(str(root / "labels" / f"{name}.png"), label)
    return root


def train_error(capsys, *args):
    """Run ``train`` expecting a refusal: (the one stderr line, out folder contents)."""
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seg-perception train: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


# ------------------------------------------------------------------ bad input, one line each
def test_mismatched_names_are_refused_before_training(tmp_path, capsys):
    data = plain_folder(tmp_path / "d", names=("a", "b"), label_names=("a", "c"))
    line = train_error(capsys, "--data", str(data), *TINY, "--out", str(tmp_path / "o"))
    assert "names do not match" in line and "images/b.png: no labels/b.png" in line
    assert "labels/c.png" in line
    assert not (tmp_path / "o").exists()  # nothing built, nothing trained


def test_label_ids_outside_the_label_set_are_refused(tmp_path, capsys):
    data = plain_folder(tmp_path / "d", ids=(0, 13, 40))
    line = train_error(capsys, "--data", str(data), *TINY, "--out", str(tmp_path / "o"))
    assert "label id(s) 40 in" in line and "labels/a.png and 2 more file(s)" in line
    assert "'ignore' or 'remap'" in line
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


def test_label_ids_covered_by_ignore_or_remap_are_accepted(tmp_path):
    labels = TrainLabels.from_dict(
        {"classes": [{"id": 0, "name": "road"}, {"id": 1, "name": "car"}],
         "ignore": [0], "remap": {7: 0, 26: 1}}, "inline")  # fmt: skip
    assert labels.unknown(np.array([0, 7, 26, 255])) == []
    assert labels.unknown(np.array([1, 8])) == [1, 8]  # with a remap, only remapped ids
    mapped = labels.to_train_ids(np.array([[7, 26, 0, 255]]))
    assert mapped.tolist() == [[0, 1, IGNORE_INDEX, IGNORE_INDEX]]


def test_empty_folder_is_refused(tmp_path, capsys):
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "labels").mkdir()
    line = train_error(capsys, "--data", str(tmp_path / "d"), *TINY, "--out", str(tmp_path / "o"))
    assert "images is empty" in line


def test_folder_of_unknown_layout_is_refused(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    line = train_error(capsys, "--data", str(tmp_path / "d"), *TINY, "--out", str(tmp_path / "o"))
    assert "none of the known layouts" in line


def test_model_without_a_segmentation_head_is_refused(tmp_path, capsys):
    from transformers import BertConfig

    BertConfig(num_hidden_layers=1).save_pretrained(tmp_path / "bert")
    data = plain_folder(tmp_path / "d")
    line = train_error(
        capsys, "--data", str(data), "--model", str(tmp_path / "bert"), "--out", str(tmp_path / "o")
    )
    assert "'bert' model" in line and "without a semantic segmentation head" in line
    assert "segformer" in line  # the families that have one are listed


def test_resume_from_another_models_checkpoint_is_refused(tmp_path, capsys):
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    other = SegformerForSemanticSegmentation(
        SegformerConfig(num_labels=19, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1])
    )
    checkpoint = tmp_path / "other.pt"
    torch.save({"fingerprint": fingerprint(other), "epoch": 3}, checkpoint)
    data = plain_folder(tmp_path / "d")
    line = train_error(capsys, "--data", str(data), *TINY, "--out", str(tmp_path / "o"),
                       "--resume", str(checkpoint))  # fmt: skip
    assert "checkpoint of another model" in line and "parameter" in line
    assert not (tmp_path / "o" / "history.json").exists()  # no validation, no step


def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    data = plain_folder(tmp_path / "d")
    line = train_error(capsys, "--data", str(data), *TINY, "--device", "cuda",
                       "--out", str(tmp_path / "o"))  # fmt: skip
    assert "torch sees no CUDA GPU" in line


def test_an_earlier_runs_checkpoint_is_not_overwritten(tmp_path, capsys):
    data = plain_folder(tmp_path / "d")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "checkpoint.pt").write_bytes(b"x")
    line = train_error(capsys, "--data", str(data), *TINY, "--out", str(tmp_path / "o"))
    assert "--resume to continue" in line


def test_colour_label_pictures_are_refused(tmp_path):
    data = plain_folder(tmp_path / "d")
    cv2.imwrite(str(data / "labels" / "b.png"), np.zeros((24, 40, 3), np.uint8))
    from seg_perception.training.datasets import check_labels

    _, samples = find_samples(DataSource(data))
    with pytest.raises(DataError, match="RGB picture: labels must be single-channel"):
        check_labels(samples, TrainLabels.load("cityscapes"))


def test_label_sets_need_class_ids_0_to_n(tmp_path):
    path = tmp_path / "sparse.yaml"
    path.write_text(yaml.safe_dump({"classes": [{"id": 0, "name": "a"}, {"id": 5, "name": "b"}]}))
    with pytest.raises(ValueError, match=r"class ids 0\.\.1"):
        TrainLabels.load(str(path))


# ------------------------------------------------------------------ layouts
def test_cityscapes_layout_pairs_leftimg8bit_with_gtfine():
    root = data_path("cityscapes/mmseg_pseudo")
    layout, samples = find_samples(DataSource(root))
    assert layout == "cityscapes" and len(samples) == 1
    assert samples[0].label.name == "frankfurt_000000_000294_gtFine_labelTrainIds.png"
    _, ids = find_samples(DataSource(root, labels="labelIds"))
    assert ids[0].label.name.endswith("_gtFine_labelIds.png")


def test_kitti_labelids_remap_reproduces_the_benchmarks_train_ids():
    # The data set ships both: semantic/ (labelIds) and semantic_trainIds/ (converted by
    # its publisher), an independent check of the shipped cityscapes-labelids remap.
    root = data_path("kitti_semantics/training")
    layout, samples = find_samples(DataSource(root))
    assert layout == "kitti" and len(samples) == 5 and samples[0].label.parent.name == "semantic"
    labels = TrainLabels.load("cityscapes-labelids")
    for sample in samples:
        ids = cv2.imread(str(sample.label), cv2.IMREAD_UNCHANGED)
        expected = cv2.imread(str(root / "semantic_trainIds" / sample.label.name), -1)
        np.testing.assert_array_equal(labels.to_train_ids(ids), expected)


# ------------------------------------------------------------------ samples
def test_samples_are_normalized_like_the_engines_and_deterministic(tmp_path):
    data = plain_folder(tmp_path / "d", size=(30, 50))
    _, samples = find_samples(DataSource(data))
    pre = Preprocessor(input_size=(30, 50), resize="stretch", resample="bilinear_pil")
    plain = AugmentConfig(crop=(30, 50), scale_range=(1, 1), flip=False, photometric=False)
    dataset = SegmentationDataset(samples, TrainLabels.load("cityscapes"), pre, plain)
    image, label = dataset[0]
    rgb = cv2.cvtColor(cv2.imread(str(samples[0].image)), cv2.COLOR_BGR2RGB)
    np.testing.assert_allclose(image[None], pre(rgb)[0], atol=1e-5)  # the engine's own input
    assert label.dtype == np.int64 and set(np.unique(label)) <= {0, 13}
    # Augmented: crops bigger than the image are padded with "ignore"; same draw, same sample.
    augmented = AugmentConfig(crop=(40, 64), scale_range=(0.5, 0.5))
    dataset = SegmentationDataset(samples, TrainLabels.load("cityscapes"), pre, augmented, seed=3)
    image, label = dataset[1]
    assert image.shape == (3, 40, 64) and (label == IGNORE_INDEX).mean() > 0.5
    again, _ = dataset[1]
    np.testing.assert_array_equal(image, again)
    dataset.set_epoch(1)
    assert not np.array_equal(dataset[1][0], image)
    np.testing.assert_allclose(normalize(np.zeros((1, 1, 3)), pre)[:, 0, 0], pre(
        np.zeros((1, 1, 3), np.uint8))[0][0, :, 0, 0], atol=1e-6)  # fmt: skip


def test_repeat_factor_sampling_follows_the_lvis_rule():
    from seg_perception.training.sampling import epoch_plan, repeat_factors

    # 10 images; class 1 in 1 of them (f 0.1), class 2 in 4 (f 0.4), class 0 everywhere.
    present = np.zeros((10, 3), bool)
    present[:, 0] = True
    present[0, 1] = True
    present[[0, 1, 2, 3], 2] = True
    factors = repeat_factors(present, 0.4)
    # r_1 = sqrt(0.4 / 0.1) = 2, r_2 = max(1, sqrt(0.4 / 0.4)) = 1; an image takes its max.
    np.testing.assert_allclose(factors, [2.0] + [1.0] * 9)
    np.testing.assert_allclose(repeat_factors(present, 0.9)[:4], [3.0, 1.5, 1.5, 1.5])
    assert (repeat_factors(present, 0.0) == 1).all()
    with pytest.raises(ValueError, match="--repeat-rare must be >= 0"):
        repeat_factors(present, -1)
    # Epoch length fixed at round(3 + 3 x 1.5 + 6) = 14: 12 whole copies + 2 of images 1-3.
    factors = repeat_factors(present, 0.9)
    plans = [epoch_plan(factors, 0, e) for e in range(400)]
    assert len({len(p) for p in plans}) == 1 and len(plans[0]) == round(factors.sum())
    seen = np.mean([np.bincount(p, minlength=10) for p in plans], axis=0)
    assert seen[0] == 3 and (seen[4:] == 1).all()
    np.testing.assert_allclose(seen[1:4], 1 + 2 / 3, atol=0.06)


def test_repeated_images_get_different_augmentations(tmp_path):
    data = plain_folder(tmp_path / "d")
    _, samples = find_samples(DataSource(data))
    pre = Preprocessor(input_size=(30, 50), resize="stretch", resample="bilinear_pil")
    augmented = AugmentConfig(crop=(16, 16), scale_range=(0.5, 1.5))
    dataset = SegmentationDataset(
        samples[:1], TrainLabels.load("cityscapes"), pre, augmented, repeat=np.array([3.0])
    )
    assert len(dataset) == 3
    first, second = dataset[0][0], dataset[1][0]
    assert not np.array_equal(first, second)


def test_make_images_writes_the_generator_frames_in_the_plain_layout(tmp_path, capsys):
    from seg_perception.sample import generate_scene
    from seg_perception.training.generated import scaled_camera

    assert main(["make-images", str(tmp_path / "g"), "--scenes", "2", "--seed", "7",
                 "--scale", "0.1"]) == 0  # fmt: skip
    layout, samples = find_samples(DataSource(tmp_path / "g"))
    assert layout == "plain" and [s.name for s in samples] == ["scene_000007", "scene_000008"]
    # The cheap LiDAR used for speed does not change the camera frames.
    scene = generate_scene(8, camera=scaled_camera(0.1))
    image = cv2.cvtColor(cv2.imread(str(samples[1].image)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(image, scene.image)
    np.testing.assert_array_equal(cv2.imread(str(samples[1].label), -1), scene.label_image)
    labels = TrainLabels.load(str(tmp_path / "g" / "label_set.yaml"))
    assert labels.label_set.names == TrainLabels.load("cityscapes").label_set.names
    assert main(["make-images", str(tmp_path / "g"), "--scenes", "1"]) == 2  # not empty
    assert "is not empty" in capsys.readouterr().err


def test_balanced_crops_find_rare_classes():
    from seg_perception.training.augment import scale_and_crop

    label = np.zeros((100, 400), np.uint8)
    label[40:44, 380:384] = 6  # a traffic light: 16 of 40,000 pixels
    image = np.zeros((100, 400, 3), np.uint8)
    rng = np.random.default_rng(0)

    def share(balanced: float) -> float:
        config = AugmentConfig(crop=(50, 100), scale_range=(1, 1), balanced_crops=balanced)
        hits = [
            (scale_and_crop(image, label, config, rng, np.zeros(3))[1] == 6).any()
            for _ in range(300)
        ]
        return float(np.mean(hits))

    assert share(0.0) < 0.15  # random crops rarely see it
    assert 0.4 < share(1.0) < 0.65  # half the crops pick it: one of two classes
