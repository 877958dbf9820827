"""Shared pieces of the benchmark scripts: one core, timing, and the real KITTI frame.

Benchmarks pin themselves to one CPU core and one BLAS thread before numpy loads, so the
figures are comparable with the targets ("under 15 ms on one core") and between runs.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

DATA = Path(
    os.environ.get("SEG_PERCEPTION_DATA", Path(__file__).resolve().parents[2] / "shared/data")
)
KITTI_RAW = DATA / "kitti_raw_2011_09_26"


def median_ms(func: Callable[[], object], runs: int = 51) -> float:
    """Median wall time of ``func`` in milliseconds, after one warm-up call."""
    func()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def kitti_scan(frame: int = 0) -> np.ndarray | None:
    """(N, 4) float32 KITTI raw scan, or None when the shared data is absent."""
    path = KITTI_RAW / f"velodyne_points/data/{frame:010d}.bin"
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4) if path.is_file() else None
