"""TensorRT backend: builds (and caches) an engine from ONNX, runs it on torch CUDA memory.

Written against the TensorRT 10 Python API: ``Builder`` / ``OnnxParser`` /
``build_serialized_network`` to build, ``Runtime.deserialize_cuda_engine`` to load, the
name-based IO tensor API (``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``)
and ``IExecutionContext.set_input_shape`` / ``set_tensor_address`` /
``execute_async_v3`` to run. Device buffers are torch CUDA tensors and the engine runs on
torch's current stream, so no pycuda / cuda-python is needed and the output feeds the
GPU post-processing in :mod:`seg_perception.engines.torch_postprocess` directly.

``model`` is either

* an ``.onnx`` file: the engine is looked up in the cache (``cache_dir``, default the
  ONNX's folder) by an :class:`~seg_perception.engines.engine_cache.EngineKey` (ONNX hash,
  TensorRT version, GPU, precision, shape profile, calibration set) and built when absent
  or stale, with a log line saying why; or
* a serialized ``.engine`` / ``.plan``: loaded as is. When its sidecar says it was built
  for another GPU or TensorRT version it is rebuilt from the ONNX the sidecar names, or,
  if that is gone, refused with a message naming both setups and the rebuild command.

TensorRT itself is imported lazily: this module imports (and its cache checks run)
without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.labels import LabelSet, LabelSetError
from seg_perception.engines.base import EngineLoadError, SegmentationEngine
from seg_perception.engines.config import EngineConfig
from seg_perception.engines.engine_cache import (
    ENGINE_FORMAT_VERSION,
    BuildEnvironment,
    EngineCacheError,
    EngineKey,
    EngineRecord,
    Shape,
    atomic_write_bytes,
    build_lock,
    calibration_cache_path,
    engine_not_found,
    engine_path_for,
    explain_mismatch,
    format_profile,
    format_shape,
    matching_record,
    onnx_digest,
    plan_engine_load,
    read_record,
    rebuild_command,
    rebuild_reason,
    save_engine,
    sha256_file,
    utc_now,
)
from seg_perception.engines.preprocess import EngineInputError, Preprocessor
from seg_perception.engines.spec import META_LABEL_SET, ModelSpecError, resolve_for_config

LOG = logging.getLogger(__name__)

#: Builder workspace limit (MiB) unless ``config.extra["workspace_mb"]`` says otherwise.
DEFAULT_WORKSPACE_MB = 4096
CALIBRATION_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
INSTALL_HINT = (
    "install NVIDIA's TensorRT Python wheels on a machine with a CUDA GPU "
    "(pip install tensorrt, which downloads from NVIDIA's index)"
)

EnvironmentSource = BuildEnvironment | Callable[[], BuildEnvironment] | None


class EngineDeserializeError(EngineLoadError):
    """TensorRT rejected a serialized engine (another version/GPU, or corrupt)."""


# --------------------------------------------------------------------------- availability
def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise EngineLoadError(
            f"the tensorrt backend needs TensorRT, which is not installed: {INSTALL_HINT}"
        ) from None
    except Exception as error:  # a broken install raises OSError & co.
        raise EngineLoadError(
            f"TensorRT is installed but cannot be imported ({type(error).__name__}: {error}); "
            "check that its CUDA libraries match the driver"
        ) from None
    return tensorrt


def _import_torch_cuda(device_index: int = 0) -> Any:
    try:
        import torch
    except ImportError:
        raise EngineLoadError(
            "the tensorrt backend needs torch (with CUDA) for device memory"
        ) from None
    if not torch.cuda.is_available():
        raise EngineLoadError(
            "the tensorrt backend needs a CUDA device, but torch sees none (no GPU, no driver, "
            "or a CPU-only torch build); use backend onnxruntime or torch on the CPU"
        )
    if device_index >= torch.cuda.device_count():
        raise EngineLoadError(
            f"device cuda:{device_index} requested but only {torch.cuda.device_count()} CUDA "
            "device(s) exist"
        )
    return torch


def tensorrt_available() -> tuple[bool, str]:
    """(True, version) when engines can be built and run here, else (False, why not)."""
    try:
        trt = _import_tensorrt()
        _import_torch_cuda()
    except EngineLoadError as error:
        return False, str(error)
    return True, f"TensorRT {trt.__version__}"


def device_index(config: EngineConfig) -> int:
    """The CUDA device to use; TensorRT always runs on a GPU, so "cpu" means cuda:0."""
    if config.device.startswith("cuda:"):
        return int(config.device.split(":", 1)[1])
    return 0


def current_environment(index: int = 0) -> BuildEnvironment:
    """This machine's TensorRT version and GPU (needs tensorrt and a CUDA device)."""
    trt = _import_tensorrt()
    torch = _import_torch_cuda(index)
    major, minor = torch.cuda.get_device_capability(index)
    return BuildEnvironment(
        str(trt.__version__), torch.cuda.get_device_name(index), f"{major}.{minor}"
    )


def _resolve_environment(source: EnvironmentSource, index: int) -> BuildEnvironment:
    if isinstance(source, BuildEnvironment):
        return source
    if source is not None:
        return source()
    return current_environment(index)


# --------------------------------------------------------------------------- keys from config
def profile_shapes(config: EngineConfig) -> tuple[Shape, Shape, Shape]:
    """The (h, w) min / opt / max the engine is built for.

    Default: fixed at the preprocessor's network size. Any of min/opt/max given makes the
    profile dynamic; missing ones default to the network size (opt also to max).
    """
    size = tuple(config.input_size) if config.input_size and config.resize != "none" else None
    if size is None and config.resize != "none":  # a fixed size the model's spec states
        try:
            policy = resolve_for_config(config).size
        except ModelSpecError as error:
            raise EngineLoadError(str(error)) from None
        size = policy.size if policy.kind == "fixed" else None
    given = (config.min_shape, config.opt_shape, config.max_shape)
    if all(s is None for s in given):
        if size is None:
            raise EngineLoadError(
                "the network runs at each camera's size (no fixed input_size in the "
                "configuration or the model's spec), so a TensorRT engine needs a shape range: "
                "set min_shape, opt_shape and max_shape (h, w), or input_size"
            )
        return size, size, size  # type: ignore[return-value]
    low = config.min_shape or size
    high = config.max_shape or size
    opt = config.opt_shape or size or high
    if low is None or high is None or opt is None:
        raise EngineLoadError(
            "a dynamic TensorRT profile needs min_shape and max_shape (h, w) when input_size "
            "is not set"
        )
    try:
        low, opt, high = (tuple(int(v) for v in s) for s in (low, opt, high))
    except (TypeError, ValueError):
        raise EngineLoadError(f"profile shapes must be (h, w) integers, got {given}") from None
    if any(len(s) != 2 or min(s) <= 0 for s in (low, opt, high)):
        raise EngineLoadError(f"profile shapes must be positive (h, w), got {low}, {opt}, {high}")
    if not all(a <= b <= c for a, b, c in zip(low, opt, high, strict=True)):
        raise EngineLoadError(
            f"profile shapes must satisfy min <= opt <= max per dimension, got min {low}, "
            f"opt {opt}, max {high}"
        )
    if size is not None and not all(a <= s <= c for a, s, c in zip(low, size, high, strict=True)):
        raise EngineLoadError(
            f"input_size {size} lies outside the TensorRT profile "
            f"{format_profile((low, opt, high))}"
        )
    return low, opt, high  # type: ignore[return-value]


def calibration_files(folder: str | Path) -> list[Path]:
    path = Path(folder)
    if not path.is_dir():
        raise EngineLoadError(f"calibration_images folder not found: {path}")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in CALIBRATION_SUFFIXES)
    if not files:
        raise EngineLoadError(
            f"calibration_images folder {path} has no images ({', '.join(CALIBRATION_SUFFIXES)})"
        )
    return files


def calibration_hash(files: list[Path], preprocessor: Preprocessor, root: Path) -> str:
    """Identifies a calibration set: file names and contents, and the preprocessing."""
    digest = hashlib.sha256(repr(preprocessor).encode())
    for file in files:
        digest.update(f"{file.relative_to(root)}:{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def engine_key(config: EngineConfig, onnx_path: Path, environment: BuildEnvironment) -> EngineKey:
    shapes = profile_shapes(config)
    calibration = ""
    if config.precision == "int8" and config.calibration_images:
        root = Path(config.calibration_images)
        calibration = calibration_hash(calibration_files(root), config.preprocessor(), root)
    return EngineKey.create(
        onnx_digest(onnx_path), environment, config.precision, shapes, calibration
    )


def cache_dir_for(config: EngineConfig, onnx_path: Path) -> Path:
    return Path(config.cache_dir).expanduser() if config.cache_dir else Path(onnx_path).parent


def _onnx_label_set(onnx_path: Path) -> dict[str, Any] | None:
    """The label set from the ONNX metadata (engines do not keep ONNX metadata)."""
    try:
        import onnx

        model = onnx.load(str(onnx_path), load_external_data=False)
        for prop in model.metadata_props:
            if prop.key == META_LABEL_SET:
                return json.loads(prop.value)
    except Exception as error:  # the metadata is optional
        LOG.debug("no label set read from %s: %s", onnx_path, error)
    return None


# --------------------------------------------------------------------------- TensorRT glue
_TRT_LOGGER: Any = None


def _trt_logger(trt: Any) -> Any:
    """One process-wide TensorRT logger forwarding to Python logging, keeping recent errors.

    TensorRT wants the same logger for its builder and runtimes, alive as long as they are.
    """
    global _TRT_LOGGER
    if _TRT_LOGGER is not None:
        return _TRT_LOGGER
    severity = trt.ILogger.Severity
    levels = {
        severity.INTERNAL_ERROR: logging.ERROR,
        severity.ERROR: logging.ERROR,
        severity.WARNING: logging.WARNING,
        severity.INFO: logging.DEBUG,
        severity.VERBOSE: logging.DEBUG,
    }

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, level: Any, message: str) -> None:
            if level in (severity.INTERNAL_ERROR, severity.ERROR):
                self.errors = [*self.errors[-19:], message]
            LOG.log(levels.get(level, logging.DEBUG), "TensorRT: %s", message)

    _TRT_LOGGER = _Logger()
    return _TRT_LOGGER


def _recent_errors(logger: Any) -> str:
    errors = getattr(logger, "errors", [])
    return "; ".join(errors[-3:]) if errors else "see the TensorRT log above"


def torch_dtype(trt: Any, torch: Any, dtype: Any) -> Any:
    table = {
        "FLOAT": torch.float32,
        "HALF": torch.float16,
        "BF16": torch.bfloat16,
        "INT8": torch.int8,
        "UINT8": torch.uint8,
        "INT32": torch.int32,
        "INT64": torch.int64,
        "BOOL": torch.bool,
    }
    for name, value in table.items():
        if hasattr(trt.DataType, name) and dtype == getattr(trt.DataType, name):
            return value
    raise EngineLoadError(f"TensorRT tensor type {dtype} has no torch equivalent here")


def _calibration_batches(config: EngineConfig, shape: Shape) -> Iterator[np.ndarray]:
    import cv2

    preprocessor = replace(
        config.preprocessor(),
        input_size=shape,
        resize=config.resize if config.resize in ("stretch", "keep_aspect_pad") else "stretch",
    )
    for file in calibration_files(config.calibration_images):
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            LOG.warning("skipping unreadable calibration image %s", file)
            continue
        batch, _ = preprocessor(np.ascontiguousarray(image[..., ::-1]))
        yield batch


def _make_calibrator(
    trt: Any, torch: Any, config: EngineConfig, shape: Shape, cache_file: Path, device: Any
) -> Any:
    """An IInt8EntropyCalibrator2 fed by ``config.calibration_images`` (implicit int8)."""
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None or not hasattr(trt.BuilderFlag, "INT8"):
        raise EngineLoadError(
            f"TensorRT {trt.__version__} has no implicit int8 calibration (removed in TensorRT "
            "11): quantize the ONNX explicitly (Q/DQ nodes, e.g. with NVIDIA Model Optimizer) "
            "and build it with precision fp16, or use TensorRT 10"
        )
    if not config.calibration_images and not cache_file.is_file():
        raise EngineLoadError(
            "precision int8 needs calibration_images (a folder of typical camera images) or "
            f"an existing calibration cache {cache_file}"
        )

    class _Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.batches = (
                _calibration_batches(config, shape) if config.calibration_images else iter(())
            )
            self.count = 0
            self.buffer = None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                batch = next(self.batches)
            except StopIteration:
                LOG.info("int8 calibration: %d images done", self.count)
                return None
            self.count += 1
            if self.count % 50 == 0:
                LOG.info("int8 calibration: %d images", self.count)
            self.buffer = torch.from_numpy(batch).to(device).contiguous()
            return [int(self.buffer.data_ptr())] * len(names)

        def read_calibration_cache(self) -> bytes | None:
            if cache_file.is_file():
                LOG.info("int8 calibration: using cache %s", cache_file)
                return cache_file.read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            atomic_write_bytes(cache_file, bytes(cache))
            LOG.info("int8 calibration cache written to %s", cache_file)

    return _Calibrator()


def _parse_onnx(trt: Any, builder: Any, logger: Any, onnx_path: Path) -> Any:
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)).strip() for i in range(parser.num_errors)]
        raise EngineLoadError(
            f"TensorRT cannot parse the ONNX model {onnx_path}: "
            + (" | ".join(errors[:5]) or "no error reported")
            + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else "")
        )
    return network, parser


def _network_io(network: Any, config: EngineConfig) -> tuple[Any, str]:
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    names = [t.name for t in inputs]
    input_name = config.input_name or names[0]
    if input_name not in names:
        raise EngineLoadError(
            f"ONNX model has no input '{input_name}'; its inputs are {names} (set input_name)"
        )
    if len(inputs) != 1:
        raise EngineLoadError(
            f"the tensorrt backend feeds one image input, but the model has inputs {names}"
        )
    output_name = config.output_name or outputs[0]
    if output_name not in outputs:
        raise EngineLoadError(
            f"ONNX model has no output '{output_name}'; its outputs are {outputs} (set output_name)"
        )
    tensor = inputs[0]
    shape = tuple(tensor.shape)
    if len(shape) != 4 or shape[1] not in (3, -1):
        raise EngineLoadError(
            f"ONNX input '{input_name}' has shape {shape}; expected (N, 3, H, W) images"
        )
    return tensor, output_name


def _build_serialized(
    trt: Any,
    torch: Any,
    config: EngineConfig,
    onnx_path: Path,
    key: EngineKey,
    engine_path: Path,
    index: int,
) -> tuple[bytes, str, str]:
    """Parse, configure and build; returns (engine bytes, input name, output name)."""
    logger = _trt_logger(trt)
    logger.errors = []
    if hasattr(trt, "init_libnvinfer_plugins"):
        trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    network, _parser = _parse_onnx(trt, builder, logger, onnx_path)
    tensor, output_name = _network_io(network, config)
    input_name = tensor.name
    shape = tuple(tensor.shape)
    builder_config = builder.create_builder_config()
    workspace_mb = int(config.extra.get("workspace_mb", DEFAULT_WORKSPACE_MB))
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)

    profile = None
    if any(d == -1 for d in shape):
        if shape[0] not in (-1, 1):
            raise EngineLoadError(f"ONNX input '{input_name}' has batch {shape[0]}; need 1")
        for axis, name in ((2, "height"), (3, "width")):
            fixed = shape[axis]
            wanted = {s[axis - 2] for s in key.shapes}
            if fixed != -1 and wanted != {fixed}:
                raise EngineLoadError(
                    f"ONNX input '{input_name}' has a fixed {name} of {fixed}, but the engine "
                    f"is wanted for {format_profile(key.shapes)}; set input_size / profile "
                    "shapes to match, or export the ONNX with dynamic H/W"
                )
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, *[(1, 3, *s) for s in key.shapes])
        builder_config.add_optimization_profile(profile)
    else:
        if shape[0] != 1 or any(s != tuple(shape[2:]) for s in key.shapes):
            raise EngineLoadError(
                f"ONNX input '{input_name}' is fixed at {shape}, but the engine is wanted for "
                f"batch 1 and {format_profile(key.shapes)}; set input_size to "
                f"{tuple(shape[2:])} (no min/opt/max shapes) or export with dynamic H/W"
            )

    if key.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        # TensorRT allows TF32 (10-bit mantissa) by default; fp32 here means fp32.
        builder_config.clear_flag(trt.BuilderFlag.TF32)
    if key.precision in ("fp16", "int8"):
        fp16 = getattr(trt.BuilderFlag, "FP16", None)
        if fp16 is None:
            raise EngineLoadError(
                f"TensorRT {trt.__version__} has no FP16 builder flag (TensorRT 11 builds "
                "strongly typed networks only): convert the ONNX to fp16 first (NVIDIA Model "
                "Optimizer AutoCast) and build it with precision fp32"
            )
        builder_config.set_flag(fp16)
    if key.precision == "int8":
        device = torch.device("cuda", index)
        calibrator = _make_calibrator(
            trt, torch, config, key.opt_shape, calibration_cache_path(engine_path), device
        )
        builder_config.set_flag(trt.BuilderFlag.INT8)
        builder_config.int8_calibrator = calibrator
        if profile is not None:
            builder_config.set_calibration_profile(profile)

    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise EngineLoadError(
            f"TensorRT failed to build an engine from {onnx_path} ({key.precision}, "
            f"{format_profile(key.shapes)}): {_recent_errors(logger)}"
        )
    return bytes(serialized), input_name, output_name


def _build_and_save(
    config: EngineConfig, onnx_path: Path, key: EngineKey, engine_path: Path, index: int
) -> EngineRecord:
    trt = _import_tensorrt()
    torch = _import_torch_cuda(index)
    LOG.info(
        "building TensorRT engine for %s (%s, %s): this takes a few minutes",
        onnx_path.name,
        key.precision,
        format_profile(key.shapes),
    )
    start = time.perf_counter()
    with torch.cuda.device(index):
        data, input_name, output_name = _build_serialized(
            trt, torch, config, onnx_path, key, engine_path, index
        )
    seconds = time.perf_counter() - start
    record = save_engine(
        engine_path,
        data,
        {
            "key": key,
            "onnx_path": str(onnx_path.resolve()),
            "built_at": utc_now(),
            "build_seconds": seconds,
            "input_name": input_name,
            "output_name": output_name,
            "label_set": _onnx_label_set(onnx_path),
            "extra": {"workspace_mb": int(config.extra.get("workspace_mb", DEFAULT_WORKSPACE_MB))},
        },
    )
    LOG.info("built in %.0f s, cached at %s", seconds, engine_path)
    return record


def ensure_engine(
    config: EngineConfig,
    onnx_path: Path,
    environment: BuildEnvironment,
    output: Path | None = None,
    force: bool = False,
) -> tuple[Path, EngineRecord]:
    """The engine for ``onnx_path`` under ``config``: from the cache, else freshly built."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EngineLoadError(f"ONNX model not found: {onnx_path}")
    index = device_index(config)
    key = engine_key(config, onnx_path, environment)
    cache_dir = cache_dir_for(config, onnx_path)
    engine_path = Path(output) if output else engine_path_for(cache_dir, onnx_path.stem, key)

    def cached() -> EngineRecord | None:
        return None if force else matching_record(engine_path, key)

    record = cached()
    if record is not None:
        LOG.info("using cached TensorRT engine %s", engine_path)
        return engine_path, record
    reason = _rebuild_reason(cache_dir, onnx_path.stem, key, engine_path, output, force)
    LOG.info("TensorRT engine needed for %s: %s", onnx_path.name, reason)
    with build_lock(engine_path):
        record = cached()  # another process may have built it while we waited
        if record is not None:
            LOG.info("using TensorRT engine %s built by another process", engine_path)
            return engine_path, record
        return engine_path, _build_and_save(config, onnx_path, key, engine_path, index)


def _rebuild_reason(
    cache_dir: Path, stem: str, key: EngineKey, engine_path: Path, output: Path | None, force: bool
) -> str:
    """Why an engine gets built, for the log line."""
    if force and engine_path.is_file():
        return "rebuild forced"
    if output is None:
        return rebuild_reason(cache_dir, stem, key)
    if not engine_path.is_file():
        return f"{engine_path} does not exist yet"
    try:
        stale = read_record(engine_path)
    except EngineCacheError as error:
        return str(error)
    if stale is None:
        return f"{engine_path} has no sidecar saying what it was built for"
    changes = explain_mismatch(stale.key, key) or ["the engine file is incomplete or corrupt"]
    return f"{engine_path} was built for another setup: {'; '.join(changes)}"


def build_engine(
    config: EngineConfig,
    onnx_path: Path,
    output: Path | None = None,
    force: bool = False,
    environment: EnvironmentSource = None,
) -> Path:
    """Build (offline) the engine for ``onnx_path``; returns its path.

    ``output`` None writes into the cache (``config.cache_dir`` or the ONNX's folder) under
    the key's digest, where :class:`TensorRTEngine` finds it. An up-to-date engine is
    reused unless ``force``. A sidecar ``.json`` is written beside the engine.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EngineLoadError(f"ONNX model not found: {onnx_path}")
    env = _resolve_environment(environment, device_index(config))
    path, _ = ensure_engine(config, onnx_path, env, output=output, force=force)
    return path


# --------------------------------------------------------------------------- the engine
class TensorRTEngine(SegmentationEngine):
    """A serialized TensorRT engine run on torch CUDA buffers; output stays on the GPU."""

    backend = "tensorrt"

    def __init__(self, config: EngineConfig, environment: EnvironmentSource = None) -> None:
        kind = config.model_kind
        path = Path(config.model)
        if kind not in ("onnx", "tensorrt"):
            raise EngineLoadError(
                f"the tensorrt backend needs an .onnx model (an engine is built from it and "
                f"cached) or a serialized .engine/.plan, not '{config.model}'; export a Hugging "
                "Face model to ONNX first (seg-perception export)"
            )
        if kind == "onnx" and not path.is_file():
            raise EngineLoadError(f"ONNX model not found: {path}")
        if kind == "tensorrt" and not path.exists():
            raise engine_not_found(path)
        index = device_index(config)
        if config.device == "cpu":
            LOG.debug("TensorRT runs on the GPU: using cuda:0 for device 'cpu'")
        env = _resolve_environment(environment, index)
        # Every check that needs no TensorRT happens above and here, before TensorRT loads.
        if kind == "onnx":
            engine_path, record = ensure_engine(config, path, env)
        else:
            plan = plan_engine_load(path, env)
            if plan.action == "rebuild":
                assert plan.onnx_path is not None and plan.key is not None
                LOG.warning("%s", plan.reason)
                # Rebuilt as it was built before (precision, shapes: plan.key), same tensors.
                previous = plan.record
                rebuild_config = replace(
                    config,
                    input_name=config.input_name or (previous.input_name if previous else None),
                    output_name=config.output_name or (previous.output_name if previous else None),
                )
                with build_lock(path):
                    record = _build_and_save(rebuild_config, plan.onnx_path, plan.key, path, index)
            else:
                LOG.info("loading TensorRT engine %s (%s)", path, plan.reason)
                record = plan.record
            engine_path = path
        try:
            self._load(engine_path, config, index, record)
        except EngineDeserializeError as error:
            # The sidecar looked right but TensorRT disagrees (a driver or CUDA change, a
            # copied file): rebuild once from the ONNX when we know it.
            onnx = Path(record.onnx_path) if record and record.onnx_path else None
            if onnx is None or not onnx.is_file():
                raise
            LOG.warning("%s; rebuilding it from %s", error, onnx)
            if kind == "onnx":
                engine_path, record = ensure_engine(config, onnx, env, force=True)
            else:
                key = replace(
                    record.key.with_environment(env),  # type: ignore[union-attr]
                    onnx_sha256=onnx_digest(onnx),
                    format_version=ENGINE_FORMAT_VERSION,
                )
                with build_lock(engine_path):
                    record = _build_and_save(config, onnx, key, engine_path, index)
            self._load(engine_path, config, index, record)
        self.engine_path = engine_path
        self.record = record
        try:
            spec = resolve_for_config(config)
        except ModelSpecError as error:
            raise EngineLoadError(str(error)) from None
        if spec.label_set is None:
            spec = replace(spec, label_set=self._label_set(config, record))
        super().__init__(spec, str(engine_path))
        self._check_network_size(config)

    # ------------------------------------------------------------------ loading
    def _load(
        self, engine_path: Path, config: EngineConfig, index: int, record: EngineRecord | None
    ) -> None:
        trt = _import_tensorrt()
        torch = _import_torch_cuda(index)
        self._trt, self._torch = trt, torch
        self.device = torch.device("cuda", index)
        logger = _trt_logger(trt)
        logger.errors = []
        data = Path(engine_path).read_bytes()
        with torch.cuda.device(index):
            self.runtime = trt.Runtime(logger)
            self.engine = self.runtime.deserialize_cuda_engine(data)
            if self.engine is None:
                onnx = record.onnx_path if record else None
                command = rebuild_command(onnx, engine_path, record.key if record else None)
                raise EngineDeserializeError(
                    f"TensorRT {trt.__version__} cannot deserialize {engine_path} "
                    f"({_recent_errors(logger)}). Engines only load on the TensorRT version and "
                    f"GPU model that built them; rebuild it on this machine with `{command}`"
                )
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise EngineLoadError(
                    f"TensorRT could not create an execution context for {engine_path} "
                    f"(out of GPU memory?): {_recent_errors(logger)}"
                )
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [
            n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT
        ]
        self.output_names = [
            n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT
        ]
        self.input_name, self.output_name = self._check_io(config, record)
        self._dtypes = {n: torch_dtype(trt, torch, self.engine.get_tensor_dtype(n)) for n in names}
        self._input_dtype = self._dtypes[self.input_name]
        engine_shape = tuple(self.engine.get_tensor_shape(self.input_name))
        if any(d == -1 for d in engine_shape):
            low, opt, high = self.engine.get_tensor_profile_shape(self.input_name, 0)
            self.shape_range = (tuple(low)[2:], tuple(opt)[2:], tuple(high)[2:])
        else:
            fixed = engine_shape[2:]
            self.shape_range = (fixed, fixed, fixed)
        self._bound_shape: tuple[int, ...] | None = None
        self._side_stream: Any = None
        self._output_shapes: dict[str, tuple[int, ...]] = {}

    def _check_io(self, config: EngineConfig, record: EngineRecord | None) -> tuple[str, str]:
        input_name = (
            config.input_name or (record.input_name if record else "") or self.input_names[0]
        )
        output_name = (
            config.output_name or (record.output_name if record else "") or self.output_names[0]
        )
        if input_name not in self.input_names:
            raise EngineLoadError(
                f"TensorRT engine has no input '{input_name}'; its inputs are "
                f"{self.input_names} (set input_name)"
            )
        if len(self.input_names) != 1:
            raise EngineLoadError(
                f"the tensorrt backend feeds one image input, but the engine has inputs "
                f"{self.input_names}"
            )
        if output_name not in self.output_names:
            raise EngineLoadError(
                f"TensorRT engine has no output '{output_name}'; its outputs are "
                f"{self.output_names} (set output_name)"
            )
        rank = len(self.engine.get_tensor_shape(output_name))
        kind = config.output_kind or "logits"
        expected = 3 if kind == "class_ids" else 4
        if rank != expected:
            raise EngineLoadError(
                f"TensorRT output '{output_name}' has rank {rank} but output_kind "
                f"'{kind}' expects {expected} ((N, C, h, w) logits or (N, h, w) class ids)"
            )
        return input_name, output_name

    @staticmethod
    def _label_set(config: EngineConfig, record: EngineRecord | None) -> LabelSet:
        if config.label_set:
            return LabelSet.from_name_or_path(config.label_set)
        if record is not None and record.label_set:
            try:
                return LabelSet.from_dict(record.label_set)
            except (LabelSetError, ValueError) as error:
                raise EngineLoadError(
                    f"the engine sidecar's label set is invalid: {error}"
                ) from None
        return LabelSet.cityscapes()

    def _check_network_size(self, config: EngineConfig) -> None:
        if config.resize == "none" or not config.input_size:
            return
        size = tuple(config.input_size)
        low, _, high = self.shape_range
        if not all(a <= s <= b for a, s, b in zip(low, size, high, strict=True)):
            raise EngineLoadError(
                f"the TensorRT engine accepts inputs {format_profile(self.shape_range)} "
                f"(h x w) but input_size is {format_shape(size)}; rebuild the engine for it or "
                "change input_size"
            )

    # ------------------------------------------------------------------ inference
    def _bind_shape(self, shape: tuple[int, ...]) -> None:
        low, _, high = self.shape_range
        height, width = shape[2:]
        if not (low[0] <= height <= high[0] and low[1] <= width <= high[1]):
            raise EngineInputError(
                f"a {height}x{width} input is outside the TensorRT engine's profile "
                f"{format_profile(self.shape_range)}; rebuild with a wider min/max shape"
            )
        if not self.context.set_input_shape(self.input_name, shape):
            raise EngineLoadError(f"TensorRT rejected input shape {shape} for '{self.input_name}'")
        shapes = {n: tuple(self.context.get_tensor_shape(n)) for n in self.output_names}
        for name, out in shapes.items():
            if any(d < 0 for d in out):
                raise EngineLoadError(
                    f"TensorRT output '{name}' has a data-dependent shape {out}; not supported"
                )
        self._output_shapes = shapes
        self._bound_shape = shape

    def _infer(self, batch: np.ndarray) -> Any:
        torch = self._torch
        with torch.cuda.device(self.device):
            tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            if tensor.dtype != self._input_dtype:
                tensor = tensor.to(self._input_dtype)
            tensor = tensor.contiguous()
            shape = tuple(tensor.shape)
            if shape != self._bound_shape:
                self._bind_shape(shape)
            outputs = {
                name: torch.empty(out, dtype=self._dtypes[name], device=self.device)
                for name, out in self._output_shapes.items()
            }
            self.context.set_tensor_address(self.input_name, tensor.data_ptr())
            for name, buffer in outputs.items():
                self.context.set_tensor_address(name, buffer.data_ptr())
            # TensorRT adds synchronizations on the legacy default stream (handle 0), so
            # run on torch's current stream unless that is the default one.
            stream = torch.cuda.current_stream(self.device)
            if stream.cuda_stream == 0:
                if self._side_stream is None:
                    self._side_stream = torch.cuda.Stream(self.device)
                self._side_stream.wait_stream(stream)  # the input copy is on `stream`
                stream = self._side_stream
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise EngineLoadError(
                    f"TensorRT execution failed on a {shape} input: "
                    f"{_recent_errors(_trt_logger(self._trt))}"
                )
            # Outputs are read on the current stream after this; it also keeps the per-stage
            # timings of base.segment honest (the network time includes the GPU work).
            stream.synchronize()
        return outputs[self.output_name][0]
