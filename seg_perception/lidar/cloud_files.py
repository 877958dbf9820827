"""Cloud files <-> numpy structured arrays: PCD, KITTI ``.bin`` and ``.npy``.

PCD (v0.7, what PCL, Autoware, CloudCompare and open3d write) goes through ``pypcd4``:
``ascii``, ``binary`` and ``binary_compressed``, every field with its own type (x, y, z,
intensity, ring, t, label, ...; ``COUNT > 1`` becomes a sub-array), NaN kept, and organized
clouds (``HEIGHT > 1``) read as ``(HEIGHT, WIDTH)`` arrays and written back as such.
pypcd4 parses and composes the header and reads and writes the binary encodings; where it
departs from PCL or open3d we correct it here (measured; see the functions): its ascii
writer prints floats as ``%.10f`` (a float32 below 0.1 loses digits: we write exact text),
its ascii reader splits on single spaces (open3d ends every line with one: we let numpy
split on any whitespace), and it splits a ``COUNT > 1`` field of a binary_compressed file
element by element where PCL stores it point by point. Data LZF cannot shrink is written
``DATA binary`` by pypcd4 (a valid file that says so).

Every problem with a file (truncated, unknown encoding or type, header fields whose
counts disagree, no x/y/z, ...) is one :class:`CloudFileError` line naming the file.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

#: The PCD ``DATA`` encodings, in the order of the PCD spec.
PCD_ENCODINGS = ("ascii", "binary", "binary_compressed")
#: The cloud file types read by :func:`read_cloud` (``.bin``: KITTI float32 x, y, z, i).
READ_SUFFIXES = (".pcd", ".bin", ".npy")
#: The cloud file types written by :func:`write_cloud`.
WRITE_SUFFIXES = (".pcd", ".npy")
#: PCD TYPE/SIZE <-> numpy (PCD has no bool or float16).
_PCD_TYPES = {
    ("F", 4): "f4", ("F", 8): "f8",
    ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
    ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
}  # fmt: skip
#: The header keys PCL writes, in its order (VERSION and VIEWPOINT may be missing).
_HEADER_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT",
                "POINTS", "DATA")  # fmt: skip
#: PCL marks padding bytes with a field named "_"; they are not data.
PADDING = "_"
#: Largest header we look through for its DATA line.
_MAX_HEADER_BYTES = 65536


class CloudFileError(ValueError):
    """A cloud file that cannot be read or written, in one line that names the file."""


# --------------------------------------------------------------------------- any file
def read_cloud(path: str | Path) -> np.ndarray:
    """A cloud file as a numpy structured array (or, for a plain ``.npy``, as stored).

    ``.pcd``: :func:`read_pcd` (organized files come back ``(HEIGHT, WIDTH)``); ``.bin``:
    KITTI float32 x, y, z, intensity; ``.npy``: the array as saved (structured, organized
    or a plain ``(N, >=3)`` array).
    """
    path = Path(path)
    if not path.is_file():
        raise OSError(f"cloud file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".pcd":
        return read_pcd(path)
    if suffix == ".bin":
        return read_kitti_bin(path)
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as error:  # not an .npy, truncated, object arrays
            raise CloudFileError(f"{path}: not a readable .npy array ({_line(error)})") from None
    raise CloudFileError(
        f"{path}: unsupported cloud format {suffix!r} (use {', '.join(READ_SUFFIXES)})"
    )


def write_cloud(path: str | Path, cloud: np.ndarray, encoding: str = "binary") -> Path:
    """Write ``cloud`` as ``.pcd`` (:func:`write_pcd`, ``encoding``) or ``.npy`` (as is)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pcd":
        return write_pcd(path, cloud, encoding)
    if suffix == ".npy":
        np.save(path, np.asarray(cloud), allow_pickle=False)
        return path
    raise CloudFileError(f"{path}: use a .pcd or .npy file to write a cloud")


def read_kitti_bin(path: str | Path) -> np.ndarray:
    """A KITTI ``.bin`` scan (float32 x, y, z, intensity per point) as a structured array."""
    from seg_perception.lidar.evaluation import read_scan

    scan = read_scan(path)  # (N, 4) little-endian float32, its size checked
    dtype = np.dtype([(name, "<f4") for name in ("x", "y", "z", "intensity")])
    return np.ascontiguousarray(scan).view(dtype).reshape(-1)


def structured_cloud(cloud: np.ndarray) -> np.ndarray:
    """``cloud`` as a structured array: a plain ``(N, C>=3)`` array becomes float32 fields
    x, y, z(, intensity, c4, c5, ...); a structured one is returned as it is."""
    cloud = np.asarray(cloud)
    if cloud.dtype.names is not None:
        return cloud
    if cloud.ndim != 2 or cloud.shape[1] < 3:
        raise CloudFileError(f"a plain cloud array must be (N, >=3), got shape {cloud.shape}")
    names = ["x", "y", "z", "intensity"][: cloud.shape[1]]
    names += [f"c{i}" for i in range(len(names), cloud.shape[1])]
    out = np.empty(len(cloud), dtype=[(name, "<f4") for name in names])
    for column, name in enumerate(names):
        out[name] = cloud[:, column]
    return out


# --------------------------------------------------------------------------- PCD
def read_pcd(path: str | Path) -> np.ndarray:
    """A PCD file (ascii, binary or binary_compressed) as a structured array.

    One field per PCD field with its own type (``COUNT > 1``: a sub-array field), padding
    fields ``_`` left out; shape ``(POINTS,)``, or ``(HEIGHT, WIDTH)`` when HEIGHT > 1.
    """
    from pypcd4 import PointCloud

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise OSError(f"cloud file {path}: {error.strerror or error}") from None
    header, data_start = _split_header(path, raw)
    meta = _parse_header(path, header)
    _check_data(path, meta, len(raw) - data_start, raw[data_start : data_start + 8])
    try:
        if meta.data.value == "ascii":
            # pypcd4 splits on single spaces; open3d ends its lines with one, CloudCompare
            # may use tabs: any whitespace separates values here.
            text = io.BytesIO(raw[data_start:])
            cloud = np.loadtxt(text, dtype=meta.build_dtype(), ndmin=1, comments="#")
        else:
            cloud = PointCloud.from_fileobj(io.BytesIO(raw)).pc_data
    except Exception as error:  # whatever bad data makes the reader raise: one line
        raise CloudFileError(f"{path}: bad {meta.data.value} PCD data ({_line(error)})") from None
    cloud = np.asarray(cloud).reshape(-1)
    if len(cloud) != meta.points:
        raise CloudFileError(
            f"{path}: {len(cloud)} points of data, the header says POINTS {meta.points} "
            "(truncated?)"
        )
    return _from_pypcd4(meta, cloud)


def write_pcd(path: str | Path, cloud: np.ndarray, encoding: str = "binary") -> Path:
    """Write a structured array as a PCD file, every field with its own type.

    An organized ``(H, W)`` array is written with HEIGHT H and WIDTH W; a flat one with
    HEIGHT 1. Sub-array fields become ``COUNT > 1``. ``encoding`` is one of
    :data:`PCD_ENCODINGS`; ascii keeps every value exact (float32 to 9 significant digits,
    float64 to 17).
    """
    from pypcd4 import Encoding, PointCloud

    path = Path(path)
    if encoding not in PCD_ENCODINGS:
        raise CloudFileError(
            f"{path}: unknown PCD encoding {encoding!r} (use {', '.join(PCD_ENCODINGS)})"
        )
    cloud = np.asarray(cloud)
    if cloud.dtype.names is None:
        raise CloudFileError(f"{path}: a PCD file needs a structured array with named fields")
    if cloud.ndim not in (1, 2):
        raise CloudFileError(f"{path}: a cloud is (N,) or organized (H, W), got {cloud.shape}")
    meta, packed = _to_pypcd4(path, cloud, encoding)
    try:
        with path.open("wb") as stream:
            if encoding == "ascii":
                stream.write(meta.compose_header(Encoding.ASCII).encode("ascii"))
                _write_ascii(stream, packed)
            else:
                PointCloud(meta, packed).save(stream, encoding=Encoding(encoding))
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None
    return path


def _split_header(path: Path, raw: bytes) -> tuple[list[str], int]:
    """The header lines (comments and blanks left out) and where the data starts."""
    lines, offset = [], 0
    while True:
        end = raw.find(b"\n", offset, offset + _MAX_HEADER_BYTES)
        if end < 0:
            what = "empty" if not raw else "no DATA line: not a PCD file, or a truncated header"
            raise CloudFileError(f"{path}: {what}")
        try:
            line = raw[offset:end].decode("ascii").strip()
        except UnicodeDecodeError:
            raise CloudFileError(f"{path}: not a PCD file (binary bytes in the header)") from None
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        key = line.split()[0].upper()
        if key not in _HEADER_KEYS:
            raise CloudFileError(f"{path}: unknown PCD header line {line[:60]!r}")
        lines.append(line)
        if key == "DATA":
            return lines, offset


def _parse_header(path: Path, lines: list[str]) -> Any:
    """pypcd4's MetaData of the header, checked so its reader gets only what it handles."""
    from pydantic import ValidationError
    from pypcd4 import MetaData

    values = {line.split()[0].upper(): line.split()[1:] for line in lines}
    for key in ("FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "POINTS"):
        if not values.get(key):
            raise CloudFileError(f"{path}: the PCD header has no {key} line")
    data = values["DATA"][0].lower() if values["DATA"] else ""
    if data not in PCD_ENCODINGS:
        raise CloudFileError(
            f"{path}: unknown PCD encoding DATA {data!r} (one of {', '.join(PCD_ENCODINGS)})"
        )
    fields = values["FIELDS"]
    for key in ("SIZE", "TYPE", "COUNT"):
        if len(values[key]) != len(fields):
            raise CloudFileError(
                f"{path}: {len(fields)} FIELDS but {len(values[key])} {key} values "
                f"({' '.join(fields)} / {' '.join(values[key])})"
            )
    named = [name for name in fields if name != PADDING]
    duplicates = sorted({name for name in named if named.count(name) > 1})
    if duplicates:
        raise CloudFileError(f"{path}: field(s) {', '.join(duplicates)} appear twice in FIELDS")
    for name, kind, size in zip(fields, values["TYPE"], values["SIZE"], strict=True):
        if (kind.upper(), int(size) if size.isdigit() else size) not in _PCD_TYPES:
            raise CloudFileError(
                f"{path}: field {name!r} has TYPE {kind} SIZE {size}, which is not a PCD type "
                "(F 4/8, U or I 1/2/4/8)"
            )
    if data == "binary_compressed" and PADDING in fields:
        raise CloudFileError(
            f"{path}: binary_compressed PCD with padding fields '_' is not supported: "
            "save it as binary (pcl_convert_pcd_ascii_binary <in> <out> 1)"
        )
    try:
        meta = MetaData.parse_header(lines)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]).upper()
        raise CloudFileError(f"{path}: bad PCD header {where}: {first['msg']}") from None
    except ValueError as error:  # a number that is not one
        raise CloudFileError(f"{path}: bad PCD header ({_line(error)})") from None
    if meta.width * meta.height != meta.points:
        raise CloudFileError(
            f"{path}: WIDTH {meta.width} x HEIGHT {meta.height} is not POINTS {meta.points}"
        )
    return meta


def _check_data(path: Path, meta: Any, size: int, head: bytes) -> None:
    """Refuse data shorter than the header promises (pypcd4 would read fewer points)."""
    point_bytes = sum(
        int(np.dtype(_PCD_TYPES[(t, s)]).itemsize) * c
        for t, s, c in zip(meta.type, meta.size, meta.count, strict=True)
    )
    encoding = meta.data.value
    if encoding == "binary" and size < meta.points * point_bytes:
        raise CloudFileError(
            f"{path}: truncated binary PCD: {size} data bytes, POINTS {meta.points} x "
            f"{point_bytes} bytes need {meta.points * point_bytes}"
        )
    if encoding == "binary_compressed" and meta.points:
        if size < 8:
            raise CloudFileError(f"{path}: truncated binary_compressed PCD: no data sizes")
        compressed, uncompressed = struct.unpack("<II", head)
        if uncompressed != meta.points * point_bytes:
            raise CloudFileError(
                f"{path}: binary_compressed data holds {uncompressed} bytes, POINTS "
                f"{meta.points} x {point_bytes} bytes need {meta.points * point_bytes}"
            )
        if size - 8 < compressed:
            raise CloudFileError(
                f"{path}: truncated binary_compressed PCD: {size - 8} of {compressed} "
                "compressed bytes"
            )


def _from_pypcd4(meta: Any, data: np.ndarray) -> np.ndarray:
    """pypcd4's flat record array -> ours: COUNT > 1 as sub-arrays, padding dropped."""
    names, formats = [], []
    for name, kind, size, count in zip(meta.fields, meta.type, meta.size, meta.count, strict=True):
        if name.startswith("#$%&~~"):  # pypcd4's stand-in name for a "_" padding field
            continue
        base = np.dtype(_PCD_TYPES[(kind, size)])
        names.append(name)
        formats.append((base, (count,)) if count > 1 else base)
    out = np.empty(len(data), dtype=np.dtype({"names": names, "formats": formats}))
    for name, count in zip(meta.fields, meta.count, strict=True):
        if name not in names:
            continue
        if count == 1:
            out[name] = data[name]
            continue
        parts = [data[f"{name}__{i:04d}"] for i in range(count)]
        if meta.data.value == "binary_compressed":
            # PCL stores a field's values point by point ([p0 c0, p0 c1, p1 c0, ...]);
            # pypcd4 hands out consecutive runs of that block as the components.
            out[name] = np.concatenate(parts).reshape(len(data), count)
        else:
            out[name] = np.stack(parts, axis=1)
    return out.reshape(meta.height, meta.width) if meta.height > 1 else out


def _to_pypcd4(path: Path, cloud: np.ndarray, encoding: str) -> tuple[Any, np.ndarray]:
    """pypcd4's MetaData and a packed little-endian copy of ``cloud`` (any field order,
    offsets or padding of the input)."""
    from pypcd4 import MetaData

    names, sizes, kinds, counts, formats = [], [], [], [], []
    for name in cloud.dtype.names:
        field = cloud.dtype.fields[name][0]
        base = field.base
        if base.kind not in "fiu" or (base.kind == "f" and base.itemsize not in (4, 8)):
            raise CloudFileError(
                f"{path}: field {name!r} is {base}; PCD holds float32/64 and (u)int8-64 "
                "(convert it first)"
            )
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or name == PADDING:
            raise CloudFileError(f"{path}: field name {name!r} cannot be a PCD field name")
        count = int(np.prod(field.shape)) if field.shape else 1
        names.append(name)
        sizes.append(base.itemsize)
        kinds.append(base.kind.upper())
        counts.append(count)
        little = base.newbyteorder("<")
        formats.append((little, (count,)) if count > 1 else little)
    flat = cloud.reshape(-1)
    packed = np.empty(flat.shape, dtype=np.dtype({"names": names, "formats": formats}))
    for name in names:
        packed[name] = flat[name].reshape(packed[name].shape)
    height, width = cloud.shape if cloud.ndim == 2 else (1, cloud.size)
    meta = MetaData(
        fields=tuple(names),
        size=tuple(sizes),
        type=tuple(kinds),
        count=tuple(counts),
        width=width,
        height=height,
        points=flat.size,
        data=encoding,
    )
    return meta, packed


def _write_ascii(stream: Any, packed: np.ndarray) -> None:
    """One text line per point, exact: pypcd4 prints floats as ``%.10f``, which keeps only
    ~6 significant digits of a value like 1.2345678e-05 (measured); ``%.9g`` round-trips
    every float32 and ``%.17g`` every float64. NaN and inf are written as nan and inf."""
    formats = []
    for name in packed.dtype.names:
        field = packed.dtype.fields[name][0]
        base = field.base
        text = {"f": "%.9g" if base.itemsize == 4 else "%.17g", "i": "%d", "u": "%d"}[base.kind]
        formats += [text] * (int(np.prod(field.shape)) if field.shape else 1)
    columns = [
        packed[name].reshape(len(packed), -1).astype(object)
        if packed.dtype.fields[name][0].base.kind in "iu"
        else packed[name].reshape(len(packed), -1)
        for name in packed.dtype.names
    ]
    rows = np.concatenate(columns, axis=1) if columns else np.empty((len(packed), 0))
    np.savetxt(stream, rows, fmt=" ".join(formats))


def _line(error: BaseException) -> str:
    """An exception's message on one line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."
