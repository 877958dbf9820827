"""The 2D engines: parity between backends, outputs at camera resolution, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="needs onnxruntime")
pytest.importorskip("onnx", reason="needs onnx")

from onnx_models import label_set_yaml, palette_model, palette_picture

from seg_perception.core.pipeline import CameraInput, Frame, Pipeline
from seg_perception.engines import (
    EngineConfig,
    EngineConfigError,
    EngineInputError,
    EngineLoadError,
    create_engine,
)
from seg_perception.engines.onnx_engine import OnnxRuntimeEngine
from seg_perception.sample import generate_scene

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- palette model
@pytest.mark.parametrize("resize", ["stretch", "keep_aspect_pad", "none"])
def test_labels_come_back_at_camera_resolution_from_the_right_place(tmp_path, resize):
    model = palette_model(tmp_path / "palette.onnx")
    image, truth = palette_picture(375, 1242)
    engine = create_engine(
        EngineConfig(
            model=str(model),
            input_size=(512, 512) if resize != "none" else None,
            resize=resize,
            label_set=str(label_set_yaml(tmp_path / "labels.yaml")),
        )
    )
    result = engine.segment(image)
    assert result.labels.shape == (375, 1242) and result.labels.dtype == np.uint8
    assert result.confidence.shape == (375, 1242) and result.confidence.dtype == np.float32
    assert np.all((result.confidence > 0) & (result.confidence <= 1))
    # Away from region borders (a few network cells wide) every pixel has its region's class.
    inner = _inner_mask(truth, margin=12)
    assert inner.mean() > 0.8
    np.testing.assert_array_equal(result.labels[inner], truth[inner])


def _inner_mask(truth: np.ndarray, margin: int) -> np.ndarray:
    import cv2

    edges = np.zeros(truth.shape, np.uint8)
    edges[:-1] |= (truth[:-1] != truth[1:]).astype(np.uint8)
    edges[:, :-1] |= (truth[:, :-1] != truth[:, 1:]).astype(np.uint8)
    near_edge = cv2.dilate(edges, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return near_edge == 0


def test_keep_aspect_pad_maps_padding_out(tmp_path):
    # A very wide picture in a square network input: 3/4 of the input is padding. If the
    # padding were mapped back, the lower image half would take the padding's class.
    model = palette_model(tmp_path / "palette.onnx")
    image, truth = palette_picture(200, 800)
    engine = create_engine(
        EngineConfig(model=str(model), input_size=(512, 512), resize="keep_aspect_pad")
    )
    batch, box = engine.preprocessor(image)
    assert box.resized == (128, 512) and box.network_size == (512, 512)
    assert np.all(batch[0, :, 128:, :] == 0)  # padding is the mean color, 0 once normalized
    labels = engine.segment(image).labels
    inner = _inner_mask(truth, margin=12)
    np.testing.assert_array_equal(labels[inner], truth[inner])


def test_models_that_output_class_ids(tmp_path):
    model = palette_model(tmp_path / "ids.onnx", class_ids=True)
    image, truth = palette_picture(300, 600)
    engine = create_engine(
        EngineConfig(model=str(model), input_size=None, resize="none", output_kind="class_ids")
    )
    result = engine.segment(image)
    assert result.confidence is None and result.labels.shape == (300, 600)
    inner = _inner_mask(truth, margin=6)
    np.testing.assert_array_equal(result.labels[inner], truth[inner])


def test_engine_is_a_pipeline_label_source(tmp_path):
    scene = generate_scene(0)
    engine = create_engine(
        EngineConfig(model=str(palette_model(tmp_path / "p.onnx")), input_size=(256, 512))
    )
    camera = CameraInput(
        "front", scene.intrinsics.to_camera_model(), scene.T_cam_from_lidar, image=scene.image
    )
    result = Pipeline(label_source=engine).process(Frame(scene.points, [camera]))
    assert result.segmentations[0].labels.shape == scene.label_image.shape
    assert result.label_sources == [engine.description]
    assert "onnxruntime" in engine.description
    assert result.fusion.points_labeled > 10000


# ----------------------------------------------------------------------------- SegFormer parity
@pytest.fixture(scope="module")
def segformer_b0(tmp_path_factory):
    pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip("transformers", reason="needs transformers")
    from seg_perception.engines.export import export_onnx
    from seg_perception.engines.torch_engine import TorchEngine

    config = EngineConfig(model="random:segformer-b0", input_size=None, resize="none")
    path = tmp_path_factory.mktemp("onnx") / "segformer-b0.onnx"
    report = export_onnx(config, path, check_sizes=[(64, 96)])
    return config, path, TorchEngine(config), report


@pytest.mark.parametrize("size", [(512, 1024), (375, 1242)])
def test_pytorch_and_onnxruntime_agree_on_segformer_b0(segformer_b0, size):
    config, path, torch_engine, _ = segformer_b0
    ort_engine = OnnxRuntimeEngine(EngineConfig(**{**config.__dict__, "model": str(path)}))
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    expected, actual = torch_engine.logits(image), ort_engine.logits(image)
    assert expected.shape == actual.shape == (19, -(-size[0] // 4), -(-size[1] // 4))
    assert np.abs(expected - actual).max() < 1e-3
    assert (expected.argmax(0) == actual.argmax(0)).mean() >= 0.999
    a, b = torch_engine.segment(image), ort_engine.segment(image)
    assert a.labels.shape == b.labels.shape == size
    assert (a.labels == b.labels).mean() >= 0.999


def test_export_writes_label_set_metadata_and_reports_the_check(segformer_b0):
    _, path, _, report = segformer_b0
    assert report.checks[0].max_abs_logit_diff < 1e-3 and report.checks[0].argmax_agreement >= 0.999
    engine = OnnxRuntimeEngine(EngineConfig(model=str(path), input_size=None, resize="none"))
    assert engine.label_set.name == "cityscapes19" and engine.label_set.names[13] == "car"


def test_auto_backend_on_cpu_exports_once_and_runs_onnxruntime(tmp_path):
    pytest.importorskip("transformers", reason="needs transformers")
    config = EngineConfig(
        model="random:segformer-b0", cache_dir=str(tmp_path), input_size=(128, 256)
    )
    engine = create_engine(config)
    assert engine.backend == "onnxruntime"
    cached = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    create_engine(config)  # second time: the cached export is reused
    assert cached[0].stat().st_mtime_ns == mtime


# ----------------------------------------------------------------------------- bad input
def test_missing_model_file(tmp_path):
    with pytest.raises(EngineLoadError, match="ONNX model not found"):
        create_engine(EngineConfig(model=str(tmp_path / "nope.onnx")))


def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    with pytest.raises(EngineLoadError, match=r"ONNX Runtime cannot load .*bad.onnx.*valid ONNX"):
        create_engine(EngineConfig(model=str(bad)))


def test_input_and_output_names_are_checked(tmp_path):
    model = str(palette_model(tmp_path / "p.onnx"))
    with pytest.raises(
        EngineLoadError,
        match=r"no input 'pixel_values' \(configuration\); its inputs are \['images'\]",
    ):
        create_engine(EngineConfig(model=model, input_name="pixel_values"))
    with pytest.raises(EngineLoadError, match=r"no output 'out' .*its outputs are \['logits'\]"):
        create_engine(EngineConfig(model=model, output_name="out"))
    with pytest.raises(
        EngineLoadError, match=r"rank 4 but output kind 'class_ids' \(configuration\) expects 3"
    ):
        create_engine(EngineConfig(model=model, output_kind="class_ids"))


def test_hub_id_while_offline_says_what_to_do():
    pytest.importorskip("transformers", reason="needs transformers")
    code = (
        "from seg_perception.engines import EngineConfig, create_engine\n"
        "try:\n"
        "    create_engine(EngineConfig(model='nvidia/segformer-b0-finetuned-cityscapes-1024-1024',"
        " backend='torch'))\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home"}
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert "EngineLoadError could not load hub model" in completed.stdout
    assert "huggingface-cli download" in completed.stdout


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10), np.uint8), r"H x W x 3"),
        (np.zeros((10, 10, 4), np.uint8), r"H x W x 3"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_images_get_specific_errors(tmp_path, image, message):
    engine = create_engine(EngineConfig(model=str(palette_model(tmp_path / "p.onnx"))))
    with pytest.raises(EngineInputError, match=message):
        engine.segment(image)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backend": "tflite"}, "backend must be one of"),
        ({"precision": "fp16"}, "needs a GPU"),
        ({"device": "gpu0"}, "device must be"),
        ({"resize": "crop"}, "resize must be"),
        ({"resize": "stretch"}, "needs input_size"),
        ({"colour": "red"}, r"unknown engine parameter\(s\): colour"),
    ],
)
def test_bad_engine_configuration(values, message):
    with pytest.raises(EngineConfigError, match=message):
        EngineConfig.from_dict(values)


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    torch = pytest.importorskip("torch", reason="needs torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(EngineLoadError, match="no CUDA"):
        create_engine(EngineConfig(model=str(palette_model(tmp_path / "p.onnx")), device="cuda"))
