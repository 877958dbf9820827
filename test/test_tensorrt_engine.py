"""TensorRT backend.

The first group runs everywhere: the module imports without TensorRT, the constructor says
plainly when TensorRT is missing, and the profile / key helpers are plain Python. The
second group needs TensorRT and a CUDA GPU (skipped otherwise, with the reason): it builds
fp16/fp32 engines from a random-weight SegFormer-B0 ONNX and checks them against ONNX
Runtime, the cache (hit, rebuild on a key change) and the rebuild of an engine that was
built for another GPU.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from seg_perception.engines.base import EngineLoadError
from seg_perception.engines.config import EngineConfig
from seg_perception.engines.engine_cache import (
    BuildEnvironment,
    read_record,
    save_engine,
    sidecar_path,
)
from seg_perception.engines.postprocess import logits_to_labels
from seg_perception.engines.tensorrt_engine import (
    TensorRTEngine,
    build_engine,
    engine_key,
    profile_shapes,
    tensorrt_available,
)

REPO = Path(__file__).resolve().parents[1]
NET = (128, 256)  # small network input: quick builds, same code paths


def _tensorrt_importable() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt  # noqa: F401
    except Exception:  # a broken install counts as absent here
        return False
    return True


# --------------------------------------------------------------------------- without TensorRT
def test_module_imports_without_loading_tensorrt():
    code = (
        "import sys, seg_perception.engines.tensorrt_engine, "
        "seg_perception.engines.engine_cache; print('tensorrt' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.skipif(_tensorrt_importable(), reason="tensorrt is installed here")
def test_without_tensorrt_the_constructor_says_it_is_not_installed(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not really onnx")
    config = EngineConfig(model=str(onnx), backend="tensorrt", precision="fp16")
    with pytest.raises(EngineLoadError, match="TensorRT, which is not installed"):
        TensorRTEngine(config)
    available, reason = tensorrt_available()
    assert not available and "not installed" in reason


def test_missing_onnx_and_non_onnx_models_are_specific_errors(tmp_path):
    with pytest.raises(EngineLoadError, match="ONNX model not found"):
        TensorRTEngine(EngineConfig(model=str(tmp_path / "absent.onnx"), backend="tensorrt"))
    with pytest.raises(EngineLoadError, match=r"needs an \.onnx model"):
        TensorRTEngine(EngineConfig(model="random:segformer-b0", backend="tensorrt"))
    with pytest.raises(EngineLoadError, match="ONNX model not found"):
        build_engine(EngineConfig(backend="tensorrt"), tmp_path / "absent.onnx")


def test_profile_defaults_to_the_network_size():
    config = EngineConfig(backend="tensorrt", input_size=(512, 1024))
    assert profile_shapes(config) == ((512, 1024),) * 3


def test_dynamic_profile_and_its_errors():
    config = EngineConfig(
        backend="tensorrt", input_size=(512, 1024), min_shape=(256, 512), max_shape=(1024, 2048)
    )
    assert profile_shapes(config) == ((256, 512), (512, 1024), (1024, 2048))
    camera_size = EngineConfig(
        backend="tensorrt", input_size=None, resize="none", min_shape=(300, 600),
        opt_shape=(375, 1242), max_shape=(400, 1300),
    )  # fmt: skip
    assert profile_shapes(camera_size)[1] == (375, 1242)
    with pytest.raises(EngineLoadError, match="min_shape, opt_shape and max_shape"):
        profile_shapes(EngineConfig(backend="tensorrt", input_size=None, resize="none"))
    with pytest.raises(EngineLoadError, match="min <= opt <= max"):
        profile_shapes(
            EngineConfig(backend="tensorrt", input_size=(512, 1024), min_shape=(600, 512))
        )
    with pytest.raises(EngineLoadError, match="outside the TensorRT profile"):
        profile_shapes(
            EngineConfig(
                backend="tensorrt",
                input_size=(512, 1024),
                min_shape=(128, 128),
                opt_shape=(256, 256),
                max_shape=(256, 256),
            )
        )


def test_int8_key_depends_on_the_calibration_images(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"graph")
    images = tmp_path / "calibration"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((8, 8, 3), np.uint8))
    env = BuildEnvironment("10.5.0", "NVIDIA H100", "9.0")
    config = EngineConfig(
        backend="tensorrt", precision="int8", calibration_images=str(images), input_size=NET
    )
    first = engine_key(config, onnx, env)
    assert first.calibration_hash and first.precision == "int8"
    cv2.imwrite(str(images / "b.png"), np.full((8, 8, 3), 80, np.uint8))
    assert engine_key(config, onnx, env).calibration_hash != first.calibration_hash
    fp16 = EngineConfig(backend="tensorrt", precision="fp16", input_size=NET)
    assert engine_key(fp16, onnx, env).calibration_hash == ""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EngineLoadError, match="has no images"):
        engine_key(
            EngineConfig(
                backend="tensorrt",
                precision="int8",
                calibration_images=str(empty),
                input_size=NET,
            ),
            onnx,
            env,
        )


# --------------------------------------------------------------------------- a stand-in TensorRT
# CI has neither TensorRT nor a GPU, so the glue around them (build -> cache -> load ->
# bind -> run) is also exercised against a small stand-in that mimics the TensorRT 10
# Python API surface used (Builder, OnnxParser, build_serialized_network, Runtime,
# name-based IO tensors, set_input_shape / set_tensor_address / execute_async_v3) on CPU
# memory. It checks our control flow, not TensorRT; the GPU tests below check TensorRT.
# A "fake ONNX" is JSON after a magic line; its "network" computes logits of class c as
# (c + 1) * the mean of the input's first channel over 4 x 4 blocks.
FAKE_MAGIC = b"FAKE-ONNX\n"


def fake_onnx(path: Path, height: int | str = -1, width: int | str = -1, classes: int = 5) -> Path:
    graph = {
        "inputs": [{"name": "pixel_values", "shape": [1, 3, height, width]}],
        "outputs": [{"name": "logits", "shape": [1, classes, -1, -1]}],
    }
    path.write_bytes(FAKE_MAGIC + json.dumps(graph).encode())
    return path


def make_fake_tensorrt(version: str = "10.99.0", fp16_flag: bool = True, int8: bool = True):
    import ctypes
    import enum
    import types

    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.DataType = enum.Enum("DataType", "FLOAT HALF INT8 INT32 BOOL UINT8 INT64 BF16")
    trt.TensorIOMode = enum.Enum("TensorIOMode", "NONE INPUT OUTPUT")
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", "WORKSPACE")
    trt.BuilderFlag = enum.Enum(
        "BuilderFlag", " ".join(["TF32"] + ["FP16"] * fp16_flag + ["INT8"] * int8)
    )
    calls: dict[str, list] = {"flags": [], "cleared": [], "calibration_batches": []}
    trt.calls = calls

    class ILogger:
        Severity = enum.Enum("Severity", "INTERNAL_ERROR ERROR WARNING INFO VERBOSE")

        def __init__(self) -> None:
            pass

    trt.ILogger = ILogger
    trt.init_libnvinfer_plugins = lambda logger, namespace: True

    if int8:

        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                pass

        trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2

    class Tensor:
        def __init__(self, name, shape):
            self.name, self.shape = name, tuple(shape)

    class Network:
        def __init__(self):
            self.inputs, self.outputs = [], []

        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_input(self, i):
            return self.inputs[i]

        def get_output(self, i):
            return self.outputs[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse_from_file(self, path):
            data = Path(path).read_bytes()
            if not data.startswith(FAKE_MAGIC):
                self.errors = ["In node -1 (parseGraph): INVALID_GRAPH: not a model"]
                return False
            graph = json.loads(data[len(FAKE_MAGIC) :])
            self.network.inputs = [Tensor(t["name"], t["shape"]) for t in graph["inputs"]]
            self.network.outputs = [Tensor(t["name"], t["shape"]) for t in graph["outputs"]]
            return True

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, i):
            return self.errors[i]

    trt.OnnxParser = OnnxParser

    class Profile:
        def set_shape(self, name, low, opt, high):
            self.shapes = {name: [list(low), list(opt), list(high)]}

    class BuilderConfig:
        int8_calibrator = None

        def __init__(self):
            self.profiles = []

        def set_memory_pool_limit(self, pool, size):
            assert pool == trt.MemoryPoolType.WORKSPACE and size > 0

        def set_flag(self, flag):
            calls["flags"].append(flag.name)

        def clear_flag(self, flag):
            calls["cleared"].append(flag.name)

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

        def set_calibration_profile(self, profile):
            self.calibration_profile = profile

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            return Network()

        def create_builder_config(self):
            return BuilderConfig()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calibrator = config.int8_calibrator
            if calibrator is not None and calibrator.read_calibration_cache() is None:
                names = [network.get_input(0).name]
                while (pointers := calibrator.get_batch(names)) is not None:
                    calls["calibration_batches"].append(pointers)
                calibrator.write_calibration_cache(b"calibration table")
            (tensor,) = network.inputs
            profile = config.profiles[0].shapes[tensor.name] if config.profiles else None
            plan = {
                "input": [tensor.name, list(tensor.shape), profile],
                "outputs": [[t.name, list(t.shape)] for t in network.outputs],
            }
            return b"PLAN" + json.dumps(plan).encode()

    trt.Builder = Builder

    class Context:
        def __init__(self, engine):
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            if name in self.shapes:
                return self.shapes[name]
            _, _, h, w = next(iter(self.shapes.values()))
            return (1, self.engine.classes, h // 4, w // 4)

        def set_tensor_address(self, name, pointer):
            self.addresses[name] = pointer
            return True

        def execute_async_v3(self, stream):
            calls.setdefault("streams", []).append(stream)

            def view(name, shape):
                count = int(np.prod(shape))
                buffer = (ctypes.c_float * count).from_address(self.addresses[name])
                return np.ctypeslib.as_array(buffer).reshape(shape)

            (name,) = self.shapes
            image = view(name, self.shapes[name])[0, 0]
            h, w = image.shape
            blocks = image.reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
            for output in self.engine.outputs:
                out = view(output, self.get_tensor_shape(output))
                out[0] = blocks[None] * np.arange(1, self.engine.classes + 1)[:, None, None]
            return True

    class Engine:
        def __init__(self, plan):
            (self.input, self.input_shape, self.profile) = plan["input"]
            self.outputs = [name for name, _ in plan["outputs"]]
            self.classes = plan["outputs"][0][1][1]
            self.names = [self.input, *self.outputs]

        num_io_tensors = property(lambda self: len(self.names))

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == self.input else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return trt.DataType.FLOAT

        def get_tensor_shape(self, name):
            if name == self.input:
                return tuple(-1 if self.profile else d for d in self.input_shape)
            return (1, self.classes, -1, -1)

        def get_tensor_profile_shape(self, name, index):
            return [tuple(s) for s in self.profile]

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, data):
            if not data.startswith(b"PLAN"):
                self.logger.log(ILogger.Severity.ERROR, "Serialization assertion magicTag failed")
                return None
            return Engine(json.loads(data[4:]))

    trt.Runtime = Runtime
    return trt


class _CpuTorch:
    """torch, with the few CUDA calls the engine makes mapped onto the CPU."""

    def __init__(self) -> None:
        import contextlib
        import types

        import torch

        self._torch = torch
        default = types.SimpleNamespace(cuda_stream=0, synchronize=lambda: None)
        side = types.SimpleNamespace(
            cuda_stream=1, synchronize=lambda: None, wait_stream=lambda other: None
        )
        self.cuda = types.SimpleNamespace(
            device=lambda index: contextlib.nullcontext(),
            current_stream=lambda device=None: default,
            Stream=lambda device=None: side,
        )

    def device(self, *args, **kwargs):
        return self._torch.device("cpu")

    def __getattr__(self, name):
        return getattr(self._torch, name)


@pytest.fixture
def fake_trt(monkeypatch):
    from seg_perception.engines import tensorrt_engine

    trt = make_fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(tensorrt_engine, "_TRT_LOGGER", None)
    monkeypatch.setattr(tensorrt_engine, "_import_torch_cuda", lambda index=0: _CpuTorch())
    return trt


FAKE_ENV = BuildEnvironment("10.99.0", "Fake GPU", "9.0")


def _fake_config(model: Path, cache: Path, **changes) -> EngineConfig:
    values = {"model": str(model), "backend": "tensorrt", "device": "cuda", "precision": "fp16"}
    values.update({"input_size": (64, 96), "cache_dir": str(cache), "label_set": ""})
    values.update(changes)
    return EngineConfig(**values)


def test_stand_in_build_cache_load_and_run(fake_trt, tmp_path, caplog):
    onnx = fake_onnx(tmp_path / "net.onnx")
    config = _fake_config(onnx, tmp_path / "cache")
    with caplog.at_level(logging.INFO):
        engine = TensorRTEngine(config, environment=FAKE_ENV)
    assert "building TensorRT engine for net.onnx (fp16, 64x96): this takes" in caplog.text
    assert "built in" in caplog.text and "cached at" in caplog.text
    assert fake_trt.calls["flags"] == ["FP16"]
    assert engine.engine_path.parent == tmp_path / "cache"
    record = read_record(engine.engine_path)
    assert record.key.gpu_name == "Fake GPU" and record.onnx_path == str(onnx.resolve())
    assert (record.input_name, record.output_name) == ("pixel_values", "logits")
    assert engine.shape_range == ((64, 96),) * 3

    # Run: the stand-in's logits are (c + 1) * block means of channel 0, so the label is
    # the last class where that mean is positive and the first where it is negative.
    image = np.zeros((48, 80, 3), np.uint8)
    image[:, :40] = 255
    result = engine.segment(image)
    assert result.labels.shape == (48, 80) and result.confidence.shape == (48, 80)
    assert (result.labels[:, :30] == 4).all() and (result.labels[:, 50:] == 0).all()
    assert fake_trt.calls["streams"] == [1]  # a side stream, not the legacy default one

    # Cache hit: no second build, sidecar untouched.
    caplog.clear()
    before = sidecar_path(engine.engine_path).read_text()
    with caplog.at_level(logging.INFO):
        TensorRTEngine(config, environment=FAKE_ENV)
    assert "building" not in caplog.text and "using cached TensorRT engine" in caplog.text
    assert sidecar_path(engine.engine_path).read_text() == before

    # Another TensorRT version: a new engine beside the old one, and the log says why.
    caplog.clear()
    newer = BuildEnvironment("10.100.0", "Fake GPU", "9.0")
    with caplog.at_level(logging.INFO):
        rebuilt = TensorRTEngine(config, environment=newer)
    assert "TensorRT 10.99.0 -> 10.100.0" in caplog.text
    assert rebuilt.engine_path != engine.engine_path and engine.engine_path.is_file()

    # fp32 means fp32: TF32 is switched off.
    TensorRTEngine(_fake_config(onnx, tmp_path / "cache", precision="fp32"), environment=newer)
    assert fake_trt.calls["cleared"] == ["TF32"]


def test_stand_in_dynamic_profile_and_direct_engine(fake_trt, tmp_path, caplog):
    onnx = fake_onnx(tmp_path / "net.onnx")
    config = _fake_config(
        onnx, tmp_path, input_size=None, resize="none", min_shape=(32, 32), max_shape=(128, 256)
    )
    output = build_engine(config, onnx, output=tmp_path / "net.engine", environment=FAKE_ENV)
    assert output == tmp_path / "net.engine" and sidecar_path(output).is_file()
    direct = _fake_config(output, tmp_path, input_size=None, resize="none")
    engine = TensorRTEngine(direct, environment=FAKE_ENV)
    assert engine.shape_range == ((32, 32), (128, 256), (128, 256))
    assert engine.segment(np.zeros((64, 128, 3), np.uint8)).labels.shape == (64, 128)
    assert engine.segment(np.zeros((40, 200, 3), np.uint8)).labels.shape == (40, 200)
    with pytest.raises(ValueError, match="outside the TensorRT engine's profile"):
        engine.segment(np.zeros((16, 16, 3), np.uint8))

    # The same .engine on "another GPU": rebuilt in place from the ONNX its sidecar names.
    other = BuildEnvironment("10.99.0", "Other GPU", "8.6")
    TensorRTEngine(_fake_config(output, tmp_path), environment=other)
    assert read_record(output).key.gpu_name == "Other GPU"
    assert read_record(output).key.shapes == ((32, 32), (128, 256), (128, 256))

    # build_engine reuses an up-to-date engine unless forced.
    mtime = output.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO):
        build_engine(config, onnx, output=output, environment=other)
    assert output.stat().st_mtime_ns == mtime and "building" not in caplog.text
    with caplog.at_level(logging.INFO):
        build_engine(config, onnx, output=output, environment=other, force=True)
    assert "rebuild forced" in caplog.text and "building TensorRT engine" in caplog.text


def test_stand_in_engine_rejected_by_tensorrt_is_rebuilt_once(fake_trt, tmp_path, caplog):
    onnx = fake_onnx(tmp_path / "net.onnx")
    config = _fake_config(onnx, tmp_path)
    built = TensorRTEngine(config, environment=FAKE_ENV)
    # A sidecar that matches, over bytes TensorRT rejects (e.g. after a driver change).
    record = read_record(built.engine_path)
    fields = {name: getattr(record, name) for name in ("key", "onnx_path", "built_at")}
    save_engine(built.engine_path, b"rejected", {**fields, "build_seconds": 1.0})
    with caplog.at_level(logging.WARNING):
        engine = TensorRTEngine(config, environment=FAKE_ENV)
    assert "cannot deserialize" in caplog.text and "rebuilding it from" in caplog.text
    assert engine.engine_path.read_bytes().startswith(b"PLAN")


def test_stand_in_errors_are_specific(fake_trt, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 not a model")
    with pytest.raises(EngineLoadError, match=r"cannot parse the ONNX model.*INVALID_GRAPH"):
        TensorRTEngine(_fake_config(garbage, tmp_path), environment=FAKE_ENV)
    onnx = fake_onnx(tmp_path / "net.onnx")
    with pytest.raises(EngineLoadError, match=r"no input 'images'; its inputs are \['pixel_"):
        TensorRTEngine(_fake_config(onnx, tmp_path, input_name="images"), environment=FAKE_ENV)
    with pytest.raises(EngineLoadError, match=r"no output 'out'; its outputs are \['logits'\]"):
        TensorRTEngine(_fake_config(onnx, tmp_path, output_name="out"), environment=FAKE_ENV)
    fixed = fake_onnx(tmp_path / "fixed.onnx", height=512, width=1024)
    with pytest.raises(EngineLoadError, match=r"fixed at .*set input_size to \(512, 1024\)"):
        TensorRTEngine(_fake_config(fixed, tmp_path), environment=FAKE_ENV)
    with pytest.raises(EngineLoadError, match="output_kind 'class_ids' expects 3"):
        TensorRTEngine(_fake_config(onnx, tmp_path, output_kind="class_ids"), environment=FAKE_ENV)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    # An engine whose bytes TensorRT rejects (no sidecar to check against).
    bogus = tmp_path / "bogus.engine"
    bogus.write_bytes(b"not a plan")
    with pytest.raises(EngineLoadError, match=r"cannot deserialize.*magicTag"):
        TensorRTEngine(_fake_config(bogus, tmp_path), environment=FAKE_ENV)


def test_stand_in_int8_calibrates_through_the_preprocessor(fake_trt, tmp_path):
    onnx = fake_onnx(tmp_path / "net.onnx")
    images = tmp_path / "calibration"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"{i}.png"), np.full((30, 50, 3), 40 * i, np.uint8))
    config = _fake_config(onnx, tmp_path, precision="int8", calibration_images=str(images))
    engine = TensorRTEngine(config, environment=FAKE_ENV)
    assert fake_trt.calls["flags"] == ["FP16", "INT8"]
    assert len(fake_trt.calls["calibration_batches"]) == 3
    assert engine.engine_path.with_suffix(".calib").read_bytes() == b"calibration table"
    assert read_record(engine.engine_path).key.calibration_hash


def test_stand_in_tensorrt_11_explains_removed_precision_flags(monkeypatch, tmp_path):
    from seg_perception.engines import tensorrt_engine

    monkeypatch.setitem(
        sys.modules, "tensorrt", make_fake_tensorrt("11.0.0", fp16_flag=False, int8=False)
    )
    monkeypatch.setattr(tensorrt_engine, "_TRT_LOGGER", None)
    monkeypatch.setattr(tensorrt_engine, "_import_torch_cuda", lambda index=0: _CpuTorch())
    onnx = fake_onnx(tmp_path / "net.onnx")
    env = BuildEnvironment("11.0.0", "Fake GPU", "9.0")
    with pytest.raises(EngineLoadError, match=r"TensorRT 11\.0\.0 has no FP16 builder flag"):
        TensorRTEngine(_fake_config(onnx, tmp_path), environment=env)
    images = tmp_path / "calibration"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((8, 8, 3), np.uint8))
    sys.modules["tensorrt"].BuilderFlag = make_fake_tensorrt().BuilderFlag  # FP16 back
    with pytest.raises(EngineLoadError, match="no implicit int8 calibration"):
        TensorRTEngine(
            _fake_config(onnx, tmp_path, precision="int8", calibration_images=str(images)),
            environment=env,
        )
    engine = TensorRTEngine(_fake_config(onnx, tmp_path, precision="fp32"), environment=env)
    assert engine.backend == "tensorrt"


# --------------------------------------------------------------------------- with TensorRT + GPU
@pytest.fixture(scope="module")
def gpu() -> None:
    pytest.importorskip(
        "tensorrt", reason="TensorRT is not installed (NVIDIA wheels; needs a CUDA machine)"
    )
    import torch

    if not torch.cuda.is_available():
        pytest.skip("TensorRT tests need a CUDA GPU; torch sees none")


@pytest.fixture(scope="module")
def segformer_onnx(gpu, tmp_path_factory) -> Path:
    """A random-weight SegFormer-B0 exported with dynamic H/W (opset 17, legacy exporter)."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    model = SegformerForSemanticSegmentation(
        SegformerConfig(
            num_labels=19,
            hidden_sizes=[32, 64, 160, 256],
            depths=[2, 2, 2, 2],
            decoder_hidden_size=256,
        )
    ).eval()

    class Logits(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.inner(pixel_values=pixel_values).logits

    path = tmp_path_factory.mktemp("onnx") / "segformer_b0.onnx"
    with torch.no_grad():
        torch.onnx.export(
            Logits(model).eval(),
            (torch.randn(1, 3, *NET),),
            str(path),
            input_names=["pixel_values"],
            output_names=["logits"],
            dynamic_axes={
                "pixel_values": {2: "height", 3: "width"},
                "logits": {2: "logits_height", 3: "logits_width"},
            },
            opset_version=17,
            dynamo=False,
        )
    return path


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A smooth street-like image (noise blurred), larger than the network input."""
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (24, 48, 3), dtype=np.uint8)
    return cv2.resize(small, (620, 300), interpolation=cv2.INTER_CUBIC)


def _config(onnx: Path, cache: Path, **changes) -> EngineConfig:
    values = {
        "model": str(onnx),
        "backend": "tensorrt",
        "device": "cuda",
        "precision": "fp16",
        "input_size": NET,
        "cache_dir": str(cache),
        "extra": {"workspace_mb": 1024},
    }
    values.update(changes)
    return EngineConfig(**values)


def _argmax_agreement(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(agreement over all cells, agreement where the reference's top-2 margin is clear).

    Random-weight logits are tiny (std ~0.03) and some cells are near-ties that any
    rounding flips (fp16 on the CPU flips ~0.4% of them); "clear" means a top-2 margin
    above 2% of the logits' standard deviation.
    """
    top2 = np.sort(reference, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 0.02 * reference.std()
    same = ours.argmax(0) == reference.argmax(0)
    return float(same.mean()), float(same[clear].mean())


def _ort_logits(onnx: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"pixel_values": batch})[0][0]


@pytest.fixture(scope="module")
def fp16_engine(segformer_onnx, tmp_path_factory) -> TensorRTEngine:
    cache = tmp_path_factory.mktemp("engines")
    return TensorRTEngine(_config(segformer_onnx, cache))


def test_fp16_engine_matches_onnx_runtime(fp16_engine, segformer_onnx, image):
    batch, box = fp16_engine.preprocessor(image)
    reference = _ort_logits(segformer_onnx, batch)
    logits = fp16_engine.logits(image)
    assert logits.is_cuda and tuple(logits.shape) == reference.shape
    overall, clear = _argmax_agreement(logits.float().cpu().numpy(), reference)
    assert clear >= 0.99 and overall >= 0.97, f"fp16 argmax agreement {overall:.4f} / {clear:.4f}"
    # The full pipeline: labels at the camera's resolution, post-processed on the GPU.
    result = fp16_engine.segment(image)
    expected, _ = logits_to_labels(reference, box, result.labels.dtype)
    assert result.labels.shape == image.shape[:2] and result.confidence.shape == image.shape[:2]
    assert (result.labels == expected).mean() >= 0.97
    assert fp16_engine.backend == "tensorrt" and fp16_engine.timings.network > 0


def test_second_construction_is_a_cache_hit(fp16_engine, segformer_onnx, caplog):
    path = fp16_engine.engine_path
    before = json.loads(sidecar_path(path).read_text())
    mtime = path.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        again = TensorRTEngine(_config(segformer_onnx, path.parent))
    assert again.engine_path == path
    after = json.loads(sidecar_path(path).read_text())
    assert (after["built_at"], after["build_seconds"]) == (
        before["built_at"],
        before["build_seconds"],
    )
    assert path.stat().st_mtime_ns == mtime
    assert "building TensorRT engine" not in caplog.text
    assert "using cached TensorRT engine" in caplog.text


def test_key_change_rebuilds_and_says_why(fp16_engine, segformer_onnx, image, caplog):
    cache = fp16_engine.engine_path.parent
    with caplog.at_level(logging.INFO):
        fp32 = TensorRTEngine(_config(segformer_onnx, cache, precision="fp32"))
    assert fp32.engine_path != fp16_engine.engine_path
    assert fp16_engine.engine_path.is_file()  # engines for other keys are kept
    assert "precision fp16 -> fp32" in caplog.text
    assert "building TensorRT engine for segformer_b0.onnx (fp32, 128x256)" in caplog.text
    assert "cached at" in caplog.text
    batch, _ = fp32.preprocessor(image)
    reference = _ort_logits(segformer_onnx, batch)
    overall, clear = _argmax_agreement(fp32.logits(image).float().cpu().numpy(), reference)
    assert clear >= 0.999 and overall >= 0.99, f"fp32 argmax agreement {overall:.4f} / {clear:.4f}"


def test_dynamic_profile_runs_at_camera_size(segformer_onnx, tmp_path, image):
    config = _config(
        segformer_onnx,
        tmp_path,
        input_size=None,
        resize="none",
        min_shape=(128, 256),
        opt_shape=(300, 620),
        max_shape=(320, 640),
    )
    engine = TensorRTEngine(config)
    assert engine.shape_range == ((128, 256), (300, 620), (320, 640))
    assert engine.segment(image).labels.shape == image.shape[:2]
    assert engine.segment(image[:200, :400].copy()).labels.shape == (200, 400)
    with pytest.raises(ValueError, match="outside the TensorRT engine's profile"):
        engine.segment(np.zeros((100, 100, 3), np.uint8))


def test_engine_built_for_another_gpu_is_rebuilt_from_its_onnx(
    fp16_engine, segformer_onnx, tmp_path, caplog
):
    engine = tmp_path / "copied_from_a100.engine"
    record = read_record(fp16_engine.engine_path)
    stale_key = record.key.with_environment(
        BuildEnvironment("10.0.1", "NVIDIA A100-SXM4-80GB", "8.0")
    )
    save_engine(
        engine,
        fp16_engine.engine_path.read_bytes(),
        {
            "key": stale_key,
            "onnx_path": str(segformer_onnx),
            "built_at": record.built_at,
            "build_seconds": record.build_seconds,
        },
    )
    with caplog.at_level(logging.INFO):
        loaded = TensorRTEngine(_config(engine, tmp_path))
    assert "NVIDIA A100-SXM4-80GB" in caplog.text and "rebuilding it from" in caplog.text
    assert read_record(engine).key.gpu_name == fp16_engine.record.key.gpu_name
    assert loaded.engine_path == engine


def test_wrong_binding_names_list_the_real_ones(segformer_onnx, tmp_path):
    with pytest.raises(EngineLoadError, match=r"no input 'images'.*\['pixel_values'\]"):
        TensorRTEngine(_config(segformer_onnx, tmp_path, input_name="images"))
    with pytest.raises(EngineLoadError, match=r"no output 'out'.*\['logits'\]"):
        build_engine(_config(segformer_onnx, tmp_path, output_name="out"), segformer_onnx)


def test_unparsable_onnx_reports_the_parser_errors(gpu, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage that is not a protobuf model")
    with pytest.raises(EngineLoadError, match="TensorRT cannot parse the ONNX model"):
        TensorRTEngine(_config(broken, tmp_path))
    assert not list(tmp_path.glob("*.engine"))
