"""Point coordinates out of any cloud layout: the one place that knows where x, y, z live."""

from __future__ import annotations

from typing import Any

import numpy as np


class CloudLayoutError(ValueError):
    """A cloud without the fields or shape needed to read coordinates."""


def cloud_xyz(points: np.ndarray, dtype: Any = None) -> np.ndarray:
    """Return x, y, z as a contiguous native-endian ``(N, 3)`` array.

    ``points`` is a structured array with x, y, z fields (organized ``(H, W)`` clouds are
    flattened) or a plain ``(N, >=3)`` array. The dtype is the common type of the three
    fields (float32 for the usual clouds, float64 if any is float64) unless ``dtype`` is
    given. NaN/inf points are kept: the caller decides what they mean.
    """
    points = np.asarray(points)
    names = points.dtype.names
    if names is None:
        if points.ndim != 2 or points.shape[1] < 3:
            raise CloudLayoutError(
                f"points must be a structured cloud or an (N, >=3) array, got shape {points.shape}"
            )
        target = np.dtype(dtype or points.dtype).newbyteorder("=")
        return np.ascontiguousarray(points[:, :3], dtype=target)
    missing = [axis for axis in ("x", "y", "z") if axis not in names]
    if missing:
        raise CloudLayoutError(f"cloud has no {', '.join(missing)} field(s); fields: {names}")
    if dtype is None:
        dtype = np.result_type(*(points.dtype.fields[a][0].base for a in "xyz"))
    out = np.empty((points.size, 3), dtype=np.dtype(dtype).newbyteorder("="))
    for column, axis in enumerate("xyz"):
        out[:, column] = points[axis].reshape(-1)
    return out
