"""``seg-perception train`` on generated scenes: a short CPU run learns (loss down,
validation mIoU up on held-out scenes), resumes from its checkpoint, and exports an ONNX
model whose labels agree with PyTorch and with transformers' own processor and
post-processing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seg_perception.cli import main
from seg_perception.training.datasets import read_image

TINY = ["--config", "segformer-b0", "--set", "hidden_sizes=[8,16,32,64]",
        "--set", "depths=[1,1,1,1]", "--set", "decoder_hidden_size=32"]  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")
    # Training and validation scenes never share a seed.
    assert main(["make-images", str(root / "train"), "--scenes", "12", "--seed", "100",
                 "--scale", "0.2"]) == 0  # fmt: skip
    assert main(["make-images", str(root / "val"), "--scenes", "3", "--seed", "500",
                 "--scale", "0.2"]) == 0  # fmt: skip
    return root


@pytest.fixture(scope="module")
def trained(generated):
    out = generated / "run"
    args = ["train", "--data", str(generated / "train"), "--val", str(generated / "val"),
            *TINY, "--input-size", "75", "248", "--crop", "64", "128", "--scale-range", "0.75",
            "1.5", "--batch-size", "4", "--lr", "5e-3", "--workers", "0", "--seed", "1",
            "--out", str(out)]  # fmt: skip
    assert main([*args, "--epochs", "8", "--no-export"]) == 0
    first = json.loads((out / "history.json").read_text())
    assert main([*args, "--epochs", "12", "--resume"]) == 0
    return out, first, json.loads((out / "history.json").read_text())


def test_training_lowers_the_loss_and_raises_validation_miou(trained):
    _, _, history = trained
    # 36 steps of a 0.12 M-parameter SegFormer on 248x75 frames: it learns the big
    # classes (road, buildings, cars), which is all this budget can show.
    assert [h["epoch"] for h in history] == list(range(13))
    assert history[0]["train_loss"] is None  # validated before the first step
    assert history[-1]["train_loss"] < 0.7 * history[1]["train_loss"]
    assert history[-1]["val_miou"] > history[0]["val_miou"] + 0.05
    assert history[-1]["val_accuracy"] > 0.5 > history[0]["val_accuracy"]


def test_resume_continues_from_the_checkpoint(trained):
    out, first, history = trained
    import torch

    assert history[: len(first)] == first  # epochs 0-3 are the first run's, not redone
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["epoch"] == 12 and state["history"] == history


def test_the_export_agrees_with_pytorch_and_with_transformers(trained, generated, capsys):
    out, _, _ = trained
    assert (out / "model.onnx").is_file() and (out / "model.yaml").is_file()
    import torch
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    from seg_perception.engines.config import EngineConfig
    from seg_perception.engines.factory import create_engine

    engine = create_engine(EngineConfig(model=str(out / "model.onnx")))
    assert engine.spec.size.size == (75, 248) and engine.label_set.name == "cityscapes19"
    assert engine.spec.source("mean") == str(out / "model.yaml")  # the sidecar is read
    # Reference: transformers' own processor, model and post-processing on the HF folder.
    processor = AutoImageProcessor.from_pretrained(out / "model")
    model = AutoModelForSemanticSegmentation.from_pretrained(out / "model").eval()
    same = total = 0
    for path in sorted((generated / "val" / "images").iterdir()):
        image = read_image(path)
        with torch.inference_mode():
            outputs = model(**processor(images=image, return_tensors="pt"))
        expected = processor.post_process_semantic_segmentation(
            outputs, target_sizes=[image.shape[:2]]
        )[0].numpy()
        labels = engine.segment(image).labels
        same += int(np.count_nonzero(labels == expected))
        total += expected.size
    assert same / total >= 0.999


def test_train_prints_the_export_check(generated, tmp_path, capsys):
    assert main(["train", "--data", str(generated / "val"), *TINY, "--input-size", "75", "248",
                 "--epochs", "1", "--batch-size", "2", "--workers", "0",
                 "--out", str(tmp_path / "o")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "epoch 0: train loss -, val mIoU" in printed and "epoch 1: train loss" in printed
    agreement = [line for line in printed.splitlines() if "end to end: label agreement" in line]
    assert agreement and float(agreement[0].rsplit(" ", 1)[1].rstrip("%")) >= 99.9
    assert "argmax agreement 100.000%" in printed or "argmax agreement 99.9" in printed
