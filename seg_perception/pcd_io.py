"""Binary PCD (v0.7) files from/to numpy structured arrays.

Why our own: the labeled cloud carries arbitrary extra fields (label, confidence, camera,
ring...) and open3d's writers only keep xyz/rgb/normals. A binary PCD is the structured
array's bytes behind a small text header, readable by PCL, CloudCompare and open3d's
tensor API, so the writer and reader are a few vectorized lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_TYPE_OF_KIND = {"i": "I", "u": "U", "f": "F"}


def write_pcd(path: str | Path, cloud: np.ndarray) -> Path:
    """Write a structured array (one field per PCD field; sub-arrays become COUNT > 1)."""
    cloud = np.asarray(cloud).reshape(-1)
    if cloud.dtype.names is None:
        raise ValueError("write_pcd needs a structured array with named fields")
    names, sizes, types, counts, formats = [], [], [], [], []
    for name in cloud.dtype.names:
        field_dtype = cloud.dtype.fields[name][0]
        base = field_dtype.base
        if base.kind not in _TYPE_OF_KIND:
            raise ValueError(f"field '{name}' has unsupported dtype {base}")
        count = int(np.prod(field_dtype.shape)) if field_dtype.shape else 1
        names.append(name)
        sizes.append(str(base.itemsize))
        types.append(_TYPE_OF_KIND[base.kind])
        counts.append(str(count))
        formats.append(
            (base.newbyteorder("<"), field_dtype.shape) if count > 1 else base.newbyteorder("<")
        )
    packed = np.empty(cloud.shape, dtype=np.dtype({"names": names, "formats": formats}))
    for name in names:
        packed[name] = cloud[name]
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        f"FIELDS {' '.join(names)}\nSIZE {' '.join(sizes)}\nTYPE {' '.join(types)}\n"
        f"COUNT {' '.join(counts)}\nWIDTH {packed.size}\nHEIGHT 1\n"
        f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {packed.size}\nDATA binary\n"
    )
    path = Path(path)
    with path.open("wb") as stream:
        stream.write(header.encode("ascii"))
        stream.write(packed.tobytes())
    return path


def read_pcd(path: str | Path) -> np.ndarray:
    """Read a binary PCD written by :func:`write_pcd` (or PCL) into a structured array."""
    raw = Path(path).read_bytes()
    header: dict[str, list[str]] = {}
    offset = 0
    while True:
        end = raw.index(b"\n", offset)
        line = raw[offset:end].decode("ascii").strip()
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    if header["DATA"][0] != "binary":
        raise ValueError(f"{path}: only binary PCD is supported, got DATA {header['DATA'][0]}")
    kinds = {v: k for k, v in _TYPE_OF_KIND.items()}
    formats = []
    for size, kind, count in zip(header["SIZE"], header["TYPE"], header["COUNT"], strict=True):
        base = np.dtype(f"<{kinds[kind]}{size}")
        formats.append((base, (int(count),)) if int(count) > 1 else base)
    dtype = np.dtype({"names": header["FIELDS"], "formats": formats})
    points = int(header["POINTS"][0])
    return np.frombuffer(raw, dtype=dtype, count=points, offset=offset).copy()
