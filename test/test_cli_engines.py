"""The engine subcommands of seg-perception: export, bench, build-engine, demo --model."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="needs onnxruntime")
pytest.importorskip("transformers", reason="needs transformers")

from seg_perception.cli import main


def test_export_writes_a_verified_onnx(tmp_path, capsys):
    output = tmp_path / "b0.onnx"
    code = main(
        [
            "export",
            "--model",
            "random:segformer-b0",
            "--output",
            str(output),
            "--input-size",
            "64",
            "96",
            "--check-size",
            "64",
            "96",
            "--check-size",
            "75",
            "124",
        ]
    )
    assert code == 0 and output.is_file()
    printed = capsys.readouterr().out
    assert "check 64x96" in printed and "check 75x124" in printed
    assert "argmax agreement 100.000%" in printed or "argmax agreement 99.9" in printed


def test_bench_times_both_cpu_backends_and_compares_labels(tmp_path, capsys):
    import cv2

    image_path = tmp_path / "street.png"
    cv2.imwrite(str(image_path), np.random.default_rng(0).integers(0, 255, (96, 160, 3), np.uint8))
    code = main(
        [
            "bench",
            "--model",
            "random:segformer-b0",
            "--image",
            str(image_path),
            "--runs",
            "1",
            "--cache-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "torch-cpu-fp32" in printed and "onnxruntime-cpu-fp32" in printed
    assert "100.000%" in printed  # ONNX Runtime's labels equal PyTorch's on this input


def test_demo_with_a_model_says_which_engine_labeled(tmp_path, capsys):
    code = main(
        [
            "demo",
            "--out",
            str(tmp_path),
            "--model",
            "random:segformer-b0",
            "--input-size",
            "128",
            "384",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "2D label source: onnxruntime engine (random:segformer-b0" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["label_source"].startswith("onnxruntime engine")


def test_demo_without_a_model_runs_the_packaged_network(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SEG_PERCEPTION_MODEL", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert "packaged street SegFormer" in capsys.readouterr().out


def test_demo_with_a_missing_model_fails_clearly(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--model", str(tmp_path / "none.onnx")]) == 2
    assert "ONNX model not found" in capsys.readouterr().err


def test_build_engine_without_tensorrt_says_what_is_missing(tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the real build is tested in test_tensorrt_engine")
    from onnx_models import palette_model

    model = palette_model(tmp_path / "p.onnx")
    assert main(["build-engine", "--onnx", str(model), "--input-size", "64", "64"]) == 2
    assert "needs TensorRT, which is not installed" in capsys.readouterr().err
