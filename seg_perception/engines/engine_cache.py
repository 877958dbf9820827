"""Serialized TensorRT engines on disk: what makes one valid, where it lives, how it is written.

A TensorRT engine only runs on the GPU model and TensorRT version that built it, and only
means what it was built from (the ONNX file, precision, input-shape profile, int8
calibration set). Using a stale engine either fails to deserialize or, worse, runs a model
other than the one configured. So every engine is stored with a JSON *sidecar* holding the
:class:`EngineKey` it was built for, and the key's digest is part of the file name:

    <cache_dir>/<onnx_stem>.<digest>.engine     the serialized engine
    <cache_dir>/<onnx_stem>.<digest>.json       key, ONNX path, build time, engine checksum

Engines for several GPUs / TensorRT versions can share one cache folder (an NFS home, a
fleet image) without overwriting each other. Files are written atomically (temp file,
fsync, rename), the engine before its sidecar, so an interrupted build never leaves an
engine that looks valid; the sidecar's checksum catches truncated or corrupt engines.

Nothing here imports TensorRT: the checks run (and are tested) on machines without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from seg_perception.engines.base import EngineLoadError

LOG = logging.getLogger(__name__)

#: Bump when the way this package builds engines changes (profiles, flags, IO handling):
#: every cached engine is then rebuilt once.
ENGINE_FORMAT_VERSION = 1
SIDECAR_FORMAT = "seg_perception.tensorrt_engine"
ENGINE_SUFFIX = ".engine"
DIGEST_LENGTH = 16

Shape = tuple[int, int]


class EngineCacheError(EngineLoadError):
    """A cache entry that cannot be used: corrupt sidecar, truncated engine, bad key."""


# --------------------------------------------------------------------------- keys
@dataclass(frozen=True)
class BuildEnvironment:
    """The part of a key that the machine decides: TensorRT and the GPU."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.6"

    def describe(self) -> str:
        return (
            f"GPU '{self.gpu_name}' (compute capability {self.compute_capability}), "
            f"TensorRT {self.tensorrt_version}"
        )


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on; equal keys = interchangeable engines."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    min_shape: Shape
    opt_shape: Shape
    max_shape: Shape
    calibration_hash: str = ""
    format_version: int = ENGINE_FORMAT_VERSION

    @classmethod
    def create(
        cls,
        onnx_sha256: str,
        environment: BuildEnvironment,
        precision: str,
        shapes: tuple[Shape, Shape, Shape],
        calibration_hash: str = "",
    ) -> EngineKey:
        return cls(
            onnx_sha256=onnx_sha256,
            tensorrt_version=environment.tensorrt_version,
            gpu_name=environment.gpu_name,
            compute_capability=environment.compute_capability,
            precision=precision,
            min_shape=_shape(shapes[0]),
            opt_shape=_shape(shapes[1]),
            max_shape=_shape(shapes[2]),
            calibration_hash=calibration_hash,
        )

    @property
    def environment(self) -> BuildEnvironment:
        return BuildEnvironment(self.tensorrt_version, self.gpu_name, self.compute_capability)

    @property
    def shapes(self) -> tuple[Shape, Shape, Shape]:
        return self.min_shape, self.opt_shape, self.max_shape

    @property
    def is_dynamic(self) -> bool:
        return not (self.min_shape == self.opt_shape == self.max_shape)

    def with_environment(self, environment: BuildEnvironment) -> EngineKey:
        return replace(
            self,
            tensorrt_version=environment.tensorrt_version,
            gpu_name=environment.gpu_name,
            compute_capability=environment.compute_capability,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("min_shape", "opt_shape", "max_shape"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Any) -> EngineKey:
        if not isinstance(data, dict):
            raise EngineCacheError(
                f"an engine key must be a JSON object, got {type(data).__name__}"
            )
        names = {f for f in cls.__dataclass_fields__}
        missing = sorted(names - set(data) - {"calibration_hash", "format_version"})
        if missing:
            raise EngineCacheError(f"engine key lacks {', '.join(missing)}")
        try:
            values = {name: data[name] for name in names if name in data}
            for name in ("min_shape", "opt_shape", "max_shape"):
                values[name] = _shape(values[name])
            for name in ("onnx_sha256", "tensorrt_version", "gpu_name", "compute_capability"):
                values[name] = str(values[name])
            values["precision"] = str(values["precision"])
            values["calibration_hash"] = str(values.get("calibration_hash", ""))
            values["format_version"] = int(values.get("format_version", 0))
        except (TypeError, ValueError) as error:
            raise EngineCacheError(f"engine key has a bad value: {error}") from None
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EngineKey:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise EngineCacheError(f"engine key is not valid JSON: {error}") from None
        return cls.from_dict(data)

    def digest(self) -> str:
        """A short hash of the key, stable across runs and Python versions."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_LENGTH]


def _shape(value: Any) -> Shape:
    height, width = (int(v) for v in value)
    if height <= 0 or width <= 0:
        raise ValueError(f"shape must be positive (h, w), got {value}")
    return height, width


def format_shape(shape: Shape) -> str:
    return f"{shape[0]}x{shape[1]}"


def format_profile(shapes: tuple[Shape, Shape, Shape]) -> str:
    low, opt, high = shapes
    if low == opt == high:
        return format_shape(opt)
    return f"{format_shape(low)}..{format_shape(high)}, opt {format_shape(opt)}"


# --------------------------------------------------------------------------- mismatch
def explain_environment(stored: BuildEnvironment, current: BuildEnvironment) -> list[str]:
    """How a machine differs from the one an engine was built on (empty: same)."""
    changes = []
    if stored.tensorrt_version != current.tensorrt_version:
        changes.append(f"TensorRT {stored.tensorrt_version} -> {current.tensorrt_version}")
    if stored.gpu_name != current.gpu_name:
        changes.append(f"GPU '{stored.gpu_name}' -> '{current.gpu_name}'")
    if stored.compute_capability != current.compute_capability:
        changes.append(
            f"compute capability {stored.compute_capability} -> {current.compute_capability}"
        )
    return changes


def explain_mismatch(stored: EngineKey, current: EngineKey) -> list[str]:
    """Human-readable differences between the key an engine was built for and the wanted one."""
    changes = []
    if stored.format_version != current.format_version:
        changes.append(
            f"engine format {stored.format_version} -> {current.format_version} "
            "(seg_perception builds engines differently now)"
        )
    changes += explain_environment(stored.environment, current.environment)
    if stored.precision != current.precision:
        changes.append(f"precision {stored.precision} -> {current.precision}")
    if stored.onnx_sha256 != current.onnx_sha256:
        changes.append(
            f"ONNX file changed (sha256 {stored.onnx_sha256[:12]} -> {current.onnx_sha256[:12]})"
        )
    if stored.shapes != current.shapes:
        changes.append(
            f"input shapes {format_profile(stored.shapes)} -> {format_profile(current.shapes)}"
        )
    if stored.calibration_hash != current.calibration_hash:
        before = stored.calibration_hash[:12] or "none"
        after = current.calibration_hash[:12] or "none"
        changes.append(f"int8 calibration images changed ({before} -> {after})")
    return changes


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class EngineRecord:
    """The sidecar of one engine file: its key and how it was built."""

    key: EngineKey
    onnx_path: str
    engine_sha256: str
    engine_bytes: int
    built_at: str  # ISO 8601, UTC
    build_seconds: float
    input_name: str = ""
    output_name: str = ""
    #: The label set the ONNX declared in its metadata (engines lose ONNX metadata).
    label_set: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SIDECAR_FORMAT,
            "digest": self.key.digest(),
            "key": self.key.to_dict(),
            "onnx_path": self.onnx_path,
            "engine_sha256": self.engine_sha256,
            "engine_bytes": self.engine_bytes,
            "built_at": self.built_at,
            "build_seconds": round(self.build_seconds, 3),
            "input_name": self.input_name,
            "output_name": self.output_name,
            "label_set": self.label_set,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: Any) -> EngineRecord:
        if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
            raise EngineCacheError(
                f"not a seg_perception engine sidecar (format != {SIDECAR_FORMAT})"
            )
        try:
            return cls(
                key=EngineKey.from_dict(data["key"]),
                onnx_path=str(data.get("onnx_path", "")),
                engine_sha256=str(data["engine_sha256"]),
                engine_bytes=int(data["engine_bytes"]),
                built_at=str(data.get("built_at", "")),
                build_seconds=float(data.get("build_seconds", 0.0)),
                input_name=str(data.get("input_name", "")),
                output_name=str(data.get("output_name", "")),
                label_set=data.get("label_set"),
                extra=dict(data.get("extra") or {}),
            )
        except KeyError as error:
            raise EngineCacheError(f"sidecar lacks {error}") from None
        except (TypeError, ValueError) as error:
            raise EngineCacheError(f"sidecar has a bad value: {error}") from None


def sidecar_path(engine_path: Path) -> Path:
    return Path(engine_path).with_suffix(".json")


def calibration_cache_path(engine_path: Path) -> Path:
    return Path(engine_path).with_suffix(".calib")


def engine_path_for(cache_dir: Path, onnx_stem: str, key: EngineKey) -> Path:
    return Path(cache_dir) / f"{onnx_stem}.{key.digest()}{ENGINE_SUFFIX}"


def read_record(engine_path: Path) -> EngineRecord | None:
    """The sidecar of an engine; None when it has none; EngineCacheError when it is corrupt."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EngineCacheError(
            f"engine sidecar {path} is corrupt ({error}); delete it and the engine beside it "
            "to rebuild"
        ) from None
    try:
        return EngineRecord.from_dict(data)
    except EngineCacheError as error:
        raise EngineCacheError(
            f"engine sidecar {path} is invalid: {error}; delete it and the engine beside it "
            "to rebuild"
        ) from None


def write_record(engine_path: Path, record: EngineRecord) -> Path:
    path = sidecar_path(engine_path)
    atomic_write_bytes(path, (json.dumps(record.to_dict(), indent=2) + "\n").encode())
    return path


def verify_engine_file(engine_path: Path, record: EngineRecord | None = None) -> None:
    """Raise EngineCacheError for a missing, empty, truncated or corrupted engine file."""
    path = Path(engine_path)
    if not path.is_file():
        raise EngineCacheError(f"TensorRT engine not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise EngineCacheError(f"TensorRT engine {path} is empty (an interrupted build?)")
    if record is None:
        return
    if size != record.engine_bytes:
        raise EngineCacheError(
            f"TensorRT engine {path} is {size} bytes but was written with "
            f"{record.engine_bytes}: truncated or replaced"
        )
    if sha256_file(path) != record.engine_sha256:
        raise EngineCacheError(f"TensorRT engine {path} does not match its checksum: corrupt")


def save_engine(engine_path: Path, data: bytes, record_fields: dict[str, Any]) -> EngineRecord:
    """Write an engine and then its sidecar, both atomically. Returns the record written.

    ``record_fields`` are the :class:`EngineRecord` fields other than the checksum and size.
    """
    engine_path = Path(engine_path)
    view = memoryview(data)
    atomic_write_bytes(engine_path, view)
    record = EngineRecord(
        engine_sha256=hashlib.sha256(view).hexdigest(), engine_bytes=view.nbytes, **record_fields
    )
    write_record(engine_path, record)
    return record


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- lookup
def find_cached_engine(
    cache_dir: Path, key: EngineKey, onnx_stem: str | None = None, verify: bool = True
) -> Path | None:
    """The engine in ``cache_dir`` built for exactly ``key``, or None.

    An entry whose sidecar is missing, corrupt or names another key, or whose engine is
    truncated, is a miss (it gets rebuilt and replaced); the reason is logged.
    ``onnx_stem`` narrows the lookup to ``<onnx_stem>.<digest>.engine``.
    """
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return None
    digest = key.digest()
    if onnx_stem is not None:
        candidates = [cache_dir / f"{onnx_stem}.{digest}{ENGINE_SUFFIX}"]
    else:
        candidates = sorted(cache_dir.glob(f"*.{digest}{ENGINE_SUFFIX}"))
    for path in candidates:
        if matching_record(path, key, verify) is not None:
            return path
    return None


def matching_record(engine_path: Path, key: EngineKey, verify: bool = True) -> EngineRecord | None:
    """The record of ``engine_path`` if it is an intact engine built for ``key``, else None.

    Why an existing engine does not match is logged (it is then rebuilt and replaced).
    """
    path = Path(engine_path)
    if not path.is_file():
        return None
    try:
        record = read_record(path)
        if record is None:
            LOG.info("ignoring %s: it has no sidecar %s", path, sidecar_path(path).name)
            return None
        if record.key != key:
            LOG.info(
                "ignoring %s: built for another setup (%s)",
                path,
                "; ".join(explain_mismatch(record.key, key)) or "digest collision",
            )
            return None
        if verify:
            verify_engine_file(path, record)
    except EngineCacheError as error:
        LOG.warning("ignoring cached engine: %s", error)
        return None
    return record


def cached_records(cache_dir: Path, onnx_stem: str) -> list[tuple[Path, EngineRecord]]:
    """Every readable engine sidecar for one ONNX stem in a cache folder, newest first."""
    found = []
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return found
    for path in cache_dir.glob(f"{onnx_stem}.*.json"):
        engine = path.with_suffix(ENGINE_SUFFIX)
        try:
            record = read_record(engine)
        except EngineCacheError:
            continue
        if record is not None:
            found.append((engine, record))
    found.sort(key=lambda item: item[1].built_at, reverse=True)
    return found


def rebuild_reason(cache_dir: Path, onnx_stem: str, key: EngineKey) -> str:
    """Why no engine matched: the differences to the newest cached one, for the log line."""
    records = cached_records(cache_dir, onnx_stem)
    if not records:
        return f"no cached engine in {cache_dir}"
    path, record = records[0]
    changes = explain_mismatch(record.key, key)
    if not changes:
        return f"cached engine {path.name} is incomplete or corrupt"
    return f"cached engine {path.name} was built for another setup: {'; '.join(changes)}"


# --------------------------------------------------------------------------- direct engines
def _cli_shape(shape: Shape) -> str:
    """A shape as the CLI takes it: two integers, H W."""
    return f"{shape[0]} {shape[1]}"


def rebuild_command(
    onnx_path: Path | str | None, output: Path | str, key: EngineKey | None = None
) -> str:
    """The ``seg-perception build-engine`` command line that rebuilds an engine here."""
    parts = ["seg-perception build-engine", f"--onnx {onnx_path or 'MODEL.onnx'}"]
    parts.append(f"--output {output}")
    if key is not None:
        parts.append(f"--precision {key.precision}")
        if key.is_dynamic:
            parts += [
                f"--min-shape {_cli_shape(key.min_shape)}",
                f"--opt-shape {_cli_shape(key.opt_shape)}",
                f"--max-shape {_cli_shape(key.max_shape)}",
            ]
        else:
            parts.append(f"--input-size {_cli_shape(key.opt_shape)}")
        if key.calibration_hash:
            parts.append("--calibration-images DIR")
    return " ".join(parts)


def engine_not_found(engine_path: Path) -> EngineLoadError:
    return EngineLoadError(
        f"TensorRT engine not found: {engine_path}. Build one on this machine with "
        f"`{rebuild_command(None, engine_path)}`, or pass the .onnx as the model "
        "(an engine is then built and cached automatically)"
    )


@dataclass(frozen=True)
class LoadPlan:
    """What to do with an engine file a user named: load it, or rebuild it from its ONNX."""

    action: Literal["load", "rebuild"]
    engine_path: Path
    record: EngineRecord | None
    #: For a rebuild: the ONNX to build from and the key to build for.
    onnx_path: Path | None = None
    key: EngineKey | None = None
    reason: str = ""


def plan_engine_load(
    engine_path: Path, environment: BuildEnvironment, onnx_sha256: Any = None
) -> LoadPlan:
    """Decide how to use a ``.engine`` the user passed directly, before touching TensorRT.

    With a sidecar, the engine's TensorRT version and GPU are compared with this machine's.
    On a mismatch (or a corrupt engine) it is rebuilt in place from the ONNX the sidecar
    names when that file still exists; otherwise EngineLoadError says what differs and
    gives the command that rebuilds it. ``onnx_sha256`` (path -> hex digest) is injectable
    for tests; it defaults to :func:`onnx_digest`.
    """
    engine_path = Path(engine_path)
    hasher = onnx_sha256 or onnx_digest
    if not engine_path.exists():
        raise engine_not_found(engine_path)
    record = read_record(engine_path)
    onnx = Path(record.onnx_path) if record and record.onnx_path else None
    onnx_ok = onnx is not None and onnx.is_file()
    if record is None:
        verify_engine_file(engine_path)
        return LoadPlan("load", engine_path, None, reason="no sidecar: GPU/TensorRT not checked")

    def rebuild(reason: str) -> LoadPlan:
        assert onnx is not None and record is not None
        key = replace(record.key.with_environment(environment), onnx_sha256=hasher(onnx))
        key = replace(key, format_version=ENGINE_FORMAT_VERSION)
        return LoadPlan("rebuild", engine_path, record, onnx, key, reason)

    try:
        verify_engine_file(engine_path, record)
    except EngineCacheError as error:
        if onnx_ok:
            return rebuild(f"{error}; rebuilding it from {onnx}")
        raise EngineLoadError(
            f"{error}. Rebuild it with `{rebuild_command(onnx, engine_path, record.key)}`"
        ) from None
    changes = explain_environment(record.key.environment, environment)
    if record.key.format_version != ENGINE_FORMAT_VERSION:
        changes.append(f"engine format {record.key.format_version} -> {ENGINE_FORMAT_VERSION}")
    if not changes:
        return LoadPlan("load", engine_path, record, reason="built on this GPU and TensorRT")
    what = "; ".join(changes)
    if onnx_ok:
        return rebuild(
            f"TensorRT engine {engine_path} was built for another setup ({what}); "
            f"rebuilding it from {onnx}"
        )
    raise EngineLoadError(
        f"TensorRT engine {engine_path} was built for {record.key.environment.describe()}, "
        f"but this machine has {environment.describe()} ({what}). Engines only run on the GPU "
        "model and TensorRT version that built them. Rebuild it on this machine: "
        f"`{rebuild_command(onnx, engine_path, record.key)}`"
        + (f" (the ONNX it was built from, {onnx}, no longer exists)" if onnx else "")
    )


# --------------------------------------------------------------------------- files
def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def onnx_digest(path: Path) -> str:
    """sha256 of an ONNX model, including its external-data file (``<name>.data``) if any."""
    path = Path(path)
    if not path.is_file():
        raise EngineLoadError(f"ONNX model not found: {path}")
    digest = sha256_file(path)
    external = path.with_name(path.name + ".data")
    if external.is_file():
        digest = hashlib.sha256(f"{digest}:{sha256_file(external)}".encode()).hexdigest()
    return digest


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[Any]:
    """A binary stream that becomes ``path`` only when the block completes without error.

    The data goes to a temporary file in the same folder, is flushed to disk and renamed
    over ``path`` (atomic on POSIX). If the block raises, the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    with atomic_writer(path) as stream:
        stream.write(data)


@contextlib.contextmanager
def build_lock(engine_path: Path) -> Iterator[None]:
    """Serialize builds of one engine across processes (several nodes starting at once).

    The second process waits, then finds the first one's engine in the cache. Taken before
    a build, it also fails fast (EngineCacheError) when the folder is not writable. A no-op
    where ``fcntl`` does not exist.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(engine_path).with_suffix(".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = path.open("a")
    except OSError as error:
        raise EngineCacheError(
            f"cannot write TensorRT engines to {path.parent} ({error.strerror}): set cache_dir "
            "to a writable folder"
        ) from None
    with stream:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(stream.fileno(), fcntl.LOCK_UN)
