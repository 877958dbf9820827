"""Ground segmentation speed on one core: ours against Patchwork++ and linefit.

Prints, measured in this one run on one pinned core: the median time of our
``segment_ground`` (default parameters: the sensor height and tilt are estimated from
each cloud), of Patchwork++ (``pypatchworkpp``, its KITTI defaults) and of linefit (its
KITTI configuration, one thread), and the ratios peer / ours, on

* the SemanticKITTI scan 00/000000 (~125k points, an (N, 4) array), and
* a generated 131,072-point organized OS1-128 sweep (a warehouse; a structured
  (128, 1024) cloud as an Ouster driver publishes it, NaN holes included), which the
  peers get as its valid points (they cannot read organized clouds).

The peers are timed through their public Python APIs, including their conversion of the
result to a ground mask. The three are called in turn, run after run, so that load from
other processes on the machine falls on all of them alike; each figure is a median.
Target: ours no slower than Patchwork++ on both clouds.

Run: ``python bench/bench_ground.py`` (the KITTI scan needs ../shared/data; the peers
are optional: ``pip install pypatchworkpp==1.4.1 linefit``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from _common import DATA, pin_one_core

pin_one_core()

import numpy as np

from seg_perception.lidar.evaluation import (
    LINEFIT_KITTI,
    LinefitGround,
    PatchworkGround,
    linefit_available,
    patchwork_available,
    read_scan,
)
from seg_perception.lidar.ground import segment_ground
from seg_perception.sample.ground_scenes import make_ground_scene

#: Calls of each method (in turn).
RUNS = 41


def interleaved_ms(funcs: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median wall time (ms) of each function, called in turn ``runs`` times after one
    warm-up call each."""
    for func in funcs.values():
        func()
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(runs):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}


def bench_cloud(name: str, cloud: np.ndarray, points: np.ndarray, height: float) -> bool:
    """Time ours on ``cloud`` and the peers on ``points`` (its valid (N, 4) points)."""
    result = segment_ground(cloud)
    size = cloud.size if cloud.dtype.names else len(cloud)
    layout = "x".join(map(str, cloud.shape)) if cloud.dtype.names else f"{len(cloud)}x4"
    print(f"{name}: {size} points ({layout}; {len(points)} valid), one core")
    print(
        f"  ours: ground {int(result.ground.sum())}, estimated sensor height "
        f"{result.sensor_height:.3f} m, roll/pitch {result.tilt_deg[0]:.2f}/"
        f"{result.tilt_deg[1]:.2f} deg"
    )
    funcs: dict[str, Callable[[], object]] = {"ours": lambda: segment_ground(cloud)}
    if patchwork_available():
        patchwork = PatchworkGround(sensor_height=height)
        funcs["Patchwork++"] = lambda: patchwork(points)
    else:
        print("  Patchwork++ is not installed (pip install pypatchworkpp==1.4.1)")
    if linefit_available():
        linefit = LinefitGround({**LINEFIT_KITTI, "important": {"height": height}})
        xyz = np.ascontiguousarray(points[:, :3])
        funcs["linefit"] = lambda: linefit(xyz)
    ms = interleaved_ms(funcs, RUNS)
    print(f"  ours (segment_ground, defaults)      {ms['ours']:8.2f} ms")
    met = True
    for peer in ("Patchwork++", "linefit"):
        if peer in ms:
            print(f"  {peer:<37}{ms[peer]:8.2f} ms")
            print(f"  {f'ratio {peer} / ours':<37}{ms[peer] / ms['ours']:8.2f} x")
    if "Patchwork++" in ms:
        met = ms["ours"] <= ms["Patchwork++"]
        print("  target: ours no slower than Patchwork++:", "met" if met else "NOT met")
    return met


def main() -> int:
    met = []
    kitti = DATA / "semantickitti/sequences/00/velodyne/000000.bin"
    if kitti.is_file():
        scan = read_scan(kitti)
        met.append(bench_cloud("SemanticKITTI 00/000000", scan, scan, 1.73))
    else:
        print(f"no KITTI scan at {kitti}: skipped", file=sys.stderr)
    scene = make_ground_scene("warehouse", 0)
    cloud = scene.cloud(organized=True)
    met.append(bench_cloud("organized OS1-128 warehouse sweep", cloud, scene.points, 1.2))
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
