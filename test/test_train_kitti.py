"""Fine-tuning a Hugging Face folder on the KITTI semantic benchmark frames (KITTI layout,
labelIds remapped to Cityscapes train ids), then scoring the exported ONNX + spec with
``seg-perception eval images``. Skips without ../shared/data."""

from __future__ import annotations

import json

from conftest import data_path

from seg_perception.cli import main


def test_finetune_a_folder_on_kitti_and_score_the_export(tmp_path, capsys):
    root = data_path("kitti_semantics/training")
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessorPil,
    )

    # A "pretrained" folder with its own processor (random weights: no hub here) and 7
    # classes, so fine-tuning for 19 must re-initialize its head.
    folder = tmp_path / "pretrained"
    config = SegformerConfig(num_labels=7, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                             decoder_hidden_size=32)  # fmt: skip
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    SegformerImageProcessorPil(size={"height": 94, "width": 310}).save_pretrained(folder)
    out = tmp_path / "run"
    assert main(["train", "--data", str(root), "--label-set", "cityscapes-labelids",
                 "--model", str(folder), "--epochs", "1", "--batch-size", "2", "--crop", "94",
                 "155", "--workers", "0", "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "4 training and 1 validation image(s) (kitti layout" in printed
    assert "19 ids remapped" in printed and "re-initialized for 19" in printed
    assert "input fixed 94x310" in printed and f"the image processor of {folder}" in printed
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    spec = (out / "model.yaml").read_text()
    assert "size: [94, 310]" in spec and "cityscapes19" in spec

    report = tmp_path / "eval"
    assert main(["eval", "images", "--model", str(out / "model.onnx"),
                 "--truth", str(root / "semantic_trainIds"), "--images", str(root / "image_2"),
                 "--out", str(report), "--frames", "none"]) == 0  # fmt: skip
    scores = json.loads((report / "report.json").read_text())
    assert len(scores["frames"]) == 5
    assert 0.0 <= scores["overall"]["mean_iou"] <= 1.0
