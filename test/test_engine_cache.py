"""TensorRT engine cache: keys, sidecars, lookups, mismatch messages and atomic writes.

All of this is plain Python and runs without TensorRT or a GPU; the checks that decide
whether a user's ``.engine`` may be loaded happen before TensorRT is imported, with this
machine's GPU/TensorRT injected as a :class:`BuildEnvironment`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from seg_perception.engines.base import EngineLoadError
from seg_perception.engines.config import EngineConfig
from seg_perception.engines.engine_cache import (
    ENGINE_FORMAT_VERSION,
    BuildEnvironment,
    EngineCacheError,
    EngineKey,
    EngineRecord,
    atomic_write_bytes,
    atomic_writer,
    engine_path_for,
    explain_mismatch,
    find_cached_engine,
    onnx_digest,
    plan_engine_load,
    read_record,
    rebuild_command,
    rebuild_reason,
    save_engine,
    sidecar_path,
    verify_engine_file,
)
from seg_perception.engines.tensorrt_engine import TensorRTEngine

A100 = BuildEnvironment("10.3.0", "NVIDIA A100-SXM4-80GB", "8.0")
H100 = BuildEnvironment("10.5.0", "NVIDIA H100 80GB HBM3", "9.0")
SIZE = (512, 1024)


def make_key(**changes) -> EngineKey:
    key = EngineKey.create("ab" * 32, A100, "fp16", (SIZE, SIZE, SIZE))
    return replace(key, **{"format_version": 1, **changes})


def record_fields(key: EngineKey, onnx_path: str = "/models/segformer.onnx", **extra) -> dict:
    fields = {
        "key": key,
        "onnx_path": onnx_path,
        "built_at": "2024-05-01T12:00:00+00:00",
        "build_seconds": 95.5,
        "input_name": "pixel_values",
        "output_name": "logits",
    }
    fields.update(extra)
    return fields


def write_engine(folder: Path, key: EngineKey, data: bytes = b"serialized-engine" * 64, **extra):
    path = engine_path_for(folder, "segformer", key)
    record = save_engine(path, data, record_fields(key, **extra))
    return path, record


# --------------------------------------------------------------------------- keys
def test_digest_is_stable_and_short():
    key = make_key()
    # A literal: the digest must not change between runs, machines or Python versions,
    # or every user's cached engines would be rebuilt.
    assert key.digest() == "873cb8e9e4f48312"
    assert make_key().digest() == key.digest()
    assert EngineKey.from_json(key.to_json()).digest() == key.digest()


@pytest.mark.parametrize(
    "field, value",
    [
        ("onnx_sha256", "cd" * 32),
        ("tensorrt_version", "10.5.0"),
        ("gpu_name", "NVIDIA H100 80GB HBM3"),
        ("compute_capability", "9.0"),
        ("precision", "int8"),
        ("min_shape", (256, 512)),
        ("opt_shape", (384, 768)),
        ("max_shape", (1024, 2048)),
        ("calibration_hash", "ef" * 32),
        ("format_version", 2),
    ],
)
def test_every_field_changes_the_digest(field, value):
    assert make_key(**{field: value}).digest() != make_key().digest()


def test_key_json_round_trip_and_validation():
    key = make_key(min_shape=(256, 512), max_shape=(1024, 2048), calibration_hash="ff")
    again = EngineKey.from_json(key.to_json())
    assert again == key
    assert again.is_dynamic and not make_key().is_dynamic
    assert again.environment == A100
    with pytest.raises(EngineCacheError, match="not valid JSON"):
        EngineKey.from_json("{not json")
    data = key.to_dict()
    del data["gpu_name"]
    with pytest.raises(EngineCacheError, match="gpu_name"):
        EngineKey.from_dict(data)
    with pytest.raises(EngineCacheError, match="bad value"):
        EngineKey.from_dict({**key.to_dict(), "min_shape": [0, 5]})


# --------------------------------------------------------------------------- mismatch messages
def test_explain_mismatch_names_each_difference():
    base = make_key()
    assert explain_mismatch(base, base) == []
    assert explain_mismatch(base, make_key(tensorrt_version="10.5.0")) == [
        "TensorRT 10.3.0 -> 10.5.0"
    ]
    assert explain_mismatch(base, make_key(gpu_name="NVIDIA H100")) == [
        "GPU 'NVIDIA A100-SXM4-80GB' -> 'NVIDIA H100'"
    ]
    assert explain_mismatch(base, make_key(compute_capability="9.0")) == [
        "compute capability 8.0 -> 9.0"
    ]
    assert explain_mismatch(base, make_key(precision="int8")) == ["precision fp16 -> int8"]
    (onnx,) = explain_mismatch(base, make_key(onnx_sha256="cd" * 32))
    assert onnx.startswith("ONNX file changed")
    (shapes,) = explain_mismatch(base, make_key(min_shape=(256, 512), max_shape=(1024, 2048)))
    assert shapes == "input shapes 512x1024 -> 256x512..1024x2048, opt 512x1024"
    (calibration,) = explain_mismatch(base, make_key(calibration_hash="12" * 32))
    assert "calibration images changed" in calibration and "none" in calibration
    (version,) = explain_mismatch(base, make_key(format_version=2))
    assert version.startswith("engine format 1 -> 2")
    several = explain_mismatch(base, make_key(tensorrt_version="10.5.0", precision="fp32"))
    assert several == ["TensorRT 10.3.0 -> 10.5.0", "precision fp16 -> fp32"]


# --------------------------------------------------------------------------- sidecars
def test_sidecar_round_trip(tmp_path):
    key = make_key()
    path, record = write_engine(tmp_path, key, label_set={"name": "x", "classes": [{"name": "a"}]})
    assert path.name == f"segformer.{key.digest()}.engine"
    assert sidecar_path(path) == path.with_suffix(".json")
    loaded = read_record(path)
    assert loaded == record
    assert loaded.key == key and loaded.engine_bytes == path.stat().st_size
    assert loaded.build_seconds == 95.5 and loaded.label_set["name"] == "x"
    on_disk = json.loads(sidecar_path(path).read_text())
    assert on_disk["digest"] == key.digest() and on_disk["key"]["gpu_name"] == A100.gpu_name


def test_corrupt_sidecar_is_a_clear_error(tmp_path):
    path, _ = write_engine(tmp_path, make_key())
    sidecar_path(path).write_text('{"format": "seg_perception.tensorrt_engine", "key": ')
    with pytest.raises(EngineCacheError, match="corrupt") as error:
        read_record(path)
    assert str(sidecar_path(path)) in str(error.value)
    sidecar_path(path).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(EngineCacheError, match="not a seg_perception engine sidecar"):
        read_record(path)
    # Loading that engine directly reports the sidecar problem (EngineLoadError subclass).
    with pytest.raises(EngineLoadError, match="sidecar"):
        plan_engine_load(path, A100)


def test_record_without_sidecar_is_none(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"x")
    assert read_record(engine) is None


# --------------------------------------------------------------------------- lookups
def test_find_cached_engine_hit_and_misses(tmp_path, caplog):
    key = make_key()
    assert find_cached_engine(tmp_path / "absent", key) is None
    assert find_cached_engine(tmp_path, key) is None
    path, _ = write_engine(tmp_path, key)
    assert find_cached_engine(tmp_path, key) == path
    assert find_cached_engine(tmp_path, key, onnx_stem="segformer") == path
    assert find_cached_engine(tmp_path, key, onnx_stem="other") is None
    assert find_cached_engine(tmp_path, make_key(precision="fp32")) is None
    assert find_cached_engine(tmp_path, make_key(gpu_name="NVIDIA H100")) is None

    # A sidecar that claims another key under this digest's file name: not trusted.
    other = make_key(tensorrt_version="9.9.9")
    sidecar = json.loads(sidecar_path(path).read_text())
    sidecar["key"] = other.to_dict()
    sidecar_path(path).write_text(json.dumps(sidecar))
    with caplog.at_level(logging.INFO):
        assert find_cached_engine(tmp_path, key) is None
    assert "TensorRT 9.9.9 -> 10.3.0" in caplog.text


def test_truncated_or_orphan_engines_are_misses(tmp_path, caplog):
    key = make_key()
    path, record = write_engine(tmp_path, key)
    path.write_bytes(path.read_bytes()[:100])  # an engine cut short
    with caplog.at_level(logging.WARNING):
        assert find_cached_engine(tmp_path, key) is None
    assert "truncated" in caplog.text
    with pytest.raises(EngineCacheError, match="truncated"):
        verify_engine_file(path, record)
    path.write_bytes(b"X" * record.engine_bytes)  # same size, other bytes
    with pytest.raises(EngineCacheError, match="checksum"):
        verify_engine_file(path, record)
    # An engine without its sidecar (a build killed between the two writes) is a miss.
    sidecar_path(path).unlink()
    assert find_cached_engine(tmp_path, key) is None
    # A corrupt sidecar is a miss with a warning, not a crash: the build replaces it.
    sidecar_path(path).write_text("garbage")
    assert find_cached_engine(tmp_path, key) is None


def test_empty_engine_is_a_clear_error(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"")
    with pytest.raises(EngineCacheError, match="empty"):
        plan_engine_load(engine, A100)


def test_rebuild_reason_explains_the_newest_stale_engine(tmp_path):
    key = make_key()
    assert "no cached engine" in rebuild_reason(tmp_path, "segformer", key)
    write_engine(tmp_path, key)
    reason = rebuild_reason(tmp_path, "segformer", key.with_environment(H100))
    assert "TensorRT 10.3.0 -> 10.5.0" in reason
    assert "GPU 'NVIDIA A100-SXM4-80GB' -> 'NVIDIA H100 80GB HBM3'" in reason


# --------------------------------------------------------------------------- atomic writes
def test_atomic_write_leaves_nothing_when_the_writer_raises(tmp_path):
    target = tmp_path / "model.engine"
    with pytest.raises(RuntimeError, match="build interrupted"), atomic_writer(target) as stream:
        stream.write(b"half an engine")
        raise RuntimeError("build interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "model.engine"
    atomic_write_bytes(target, b"old engine")
    with pytest.raises(KeyboardInterrupt), atomic_writer(target) as stream:
        stream.write(b"new")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old engine"
    assert [p.name for p in tmp_path.iterdir()] == ["model.engine"]
    atomic_write_bytes(target, memoryview(b"new engine"))
    assert target.read_bytes() == b"new engine"


def test_onnx_digest_covers_external_data(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"graph")
    alone = onnx_digest(onnx)
    (tmp_path / "m.onnx.data").write_bytes(b"weights")
    assert onnx_digest(onnx) != alone
    with pytest.raises(EngineLoadError, match="ONNX model not found"):
        onnx_digest(tmp_path / "missing.onnx")


# --------------------------------------------------------------------------- direct engines
def test_engine_for_another_gpu_names_both_and_the_rebuild_command(tmp_path):
    """A user's .engine from an A100 on an H100 machine, its ONNX gone: refused, explained."""
    engine = tmp_path / "segformer_a100.engine"
    save_engine(engine, b"engine-bytes" * 10, record_fields(make_key(), "/gone/segformer.onnx"))
    config = EngineConfig(model=str(engine), backend="tensorrt", device="cuda")
    # The check runs before TensorRT is imported, with this machine's setup injected.
    with pytest.raises(EngineLoadError) as error:
        TensorRTEngine(config, environment=H100)
    message = str(error.value)
    assert "NVIDIA A100-SXM4-80GB" in message and "NVIDIA H100 80GB HBM3" in message
    assert "TensorRT 10.3.0 -> 10.5.0" in message
    assert f"seg-perception build-engine --onnx /gone/segformer.onnx --output {engine}" in message
    assert "--precision fp16 --input-size 512 1024" in message
    assert "no longer exists" in message


def test_engine_for_another_tensorrt_is_rebuilt_when_its_onnx_exists(tmp_path):
    onnx = tmp_path / "segformer.onnx"
    onnx.write_bytes(b"fake onnx")
    engine = tmp_path / "segformer.engine"
    save_engine(engine, b"engine-bytes" * 10, record_fields(make_key(), str(onnx)))
    plan = plan_engine_load(engine, H100)
    assert plan.action == "rebuild" and plan.onnx_path == onnx
    assert plan.key.environment == H100
    assert plan.key.onnx_sha256 == onnx_digest(onnx)
    assert plan.key.precision == "fp16" and plan.key.shapes == (SIZE, SIZE, SIZE)
    assert plan.key.format_version == ENGINE_FORMAT_VERSION
    assert "TensorRT 10.3.0 -> 10.5.0" in plan.reason and "rebuilding it from" in plan.reason
    # Same machine: loaded as is.
    same = plan_engine_load(engine, A100)
    assert same.action == "load" and same.record is not None


def test_corrupt_engine_is_rebuilt_from_its_onnx_or_refused(tmp_path):
    onnx = tmp_path / "segformer.onnx"
    onnx.write_bytes(b"fake onnx")
    engine = tmp_path / "segformer.engine"
    save_engine(engine, b"engine-bytes" * 10, record_fields(make_key(), str(onnx)))
    engine.write_bytes(b"engine-by")
    assert plan_engine_load(engine, A100).action == "rebuild"
    onnx.unlink()
    with pytest.raises(EngineLoadError, match=r"truncated.*seg-perception build-engine"):
        plan_engine_load(engine, A100)


def test_engine_without_sidecar_is_loaded_unchecked(tmp_path):
    engine = tmp_path / "from_trtexec.plan"
    engine.write_bytes(b"engine")
    plan = plan_engine_load(engine, H100)
    assert plan.action == "load" and plan.record is None and "not checked" in plan.reason


def test_missing_engine_says_how_to_build_one(tmp_path):
    config = EngineConfig(model=str(tmp_path / "nope.engine"), backend="tensorrt")
    with pytest.raises(EngineLoadError, match=r"not found.*seg-perception build-engine"):
        TensorRTEngine(config, environment=H100)


def test_rebuild_command_for_dynamic_and_int8_keys():
    key = make_key(
        precision="int8", min_shape=(256, 512), max_shape=(1024, 2048), calibration_hash="aa"
    )
    command = rebuild_command("m.onnx", "m.engine", key)
    assert command == (
        "seg-perception build-engine --onnx m.onnx --output m.engine --precision int8 "
        "--min-shape 256 512 --opt-shape 512 1024 --max-shape 1024 2048 "
        "--calibration-images DIR"
    )


def test_record_fields_survive_json(tmp_path):
    key = make_key()
    record = EngineRecord(key, "/m.onnx", "00", 1, "t", 1.5, extra={"workspace_mb": 1024})
    assert EngineRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
