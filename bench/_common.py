"""Shared pieces of the benchmark scripts: one core, timing, and the real KITTI frame.

Benchmarks whose targets are "on one core" call :func:`pin_one_core` before numpy loads,
so their figures are comparable with the targets and between runs; the others (network
inference, the ROS graph, replay) use the machine's cores as a user would. This module
itself imports numpy only inside its functions: OpenBLAS reads its thread count when numpy
loads, and a second BLAS thread on a process pinned to one core stalls every product
(measured: fusion's reference looked 3x slower than it is).
"""

from __future__ import annotations

import os


def pin_one_core() -> None:
    """One CPU core and one BLAS/OpenMP thread for this process (call it before numpy is
    imported; it says so when numpy came first)."""
    import sys

    if "numpy" in sys.modules:
        print("pin_one_core: numpy was imported first, BLAS may run 2 threads", file=sys.stderr)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


import time
from collections.abc import Callable
from pathlib import Path

DATA = Path(
    os.environ.get("SEG_PERCEPTION_DATA", Path(__file__).resolve().parents[2] / "shared/data")
)
KITTI_RAW = DATA / "kitti_raw_2011_09_26"


def median_ms(func: Callable[[], object], runs: int = 51) -> float:
    """Median wall time of ``func`` in milliseconds, after one warm-up call."""
    import numpy as np

    func()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def kitti_scan(frame: int = 0):  # -> np.ndarray | None
    """(N, 4) float32 KITTI raw scan, or None when the shared data is absent."""
    import numpy as np

    path = KITTI_RAW / f"velodyne_points/data/{frame:010d}.bin"
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4) if path.is_file() else None
