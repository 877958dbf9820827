"""A regression suite of generated bags: a shell loop of ``replay`` against ``fleet``.

Makes ``--bags`` bags with ``make-bag`` (one frame each by default), then in this one run:

* serial: ``seg-perception replay`` once per bag, one process after another (what a shell
  loop does today: every bag pays Python start-up, imports and the model load);
* ``seg-perception fleet`` with 1 and 2 workers on a local Ray (each worker loads the model
  once);

and prints frames/s for each, the per-bag start-up cost the fleet saves, and whether every
bag's fleet output equals its serial replay (labels, lidar classes, label images, stored
configuration). Not pinned to one core: the fleet's workers are the parallelism.

Run: ``python bench/bench_fleet.py [--bags 40] [--frames 1]`` after ``source scripts/env.sh``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))  # the palette ONNX model of the tests


def run(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "seg_perception.cli", *argv], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr[-800:]}")
    return time.perf_counter() - start


def same(a: Path, b: Path) -> bool:
    from seg_perception.bag.regress import read_output

    one, two = read_output(a), read_output(b)
    if one.config != two.config or one.clouds.keys() != two.clouds.keys():
        return False
    clouds = all(
        np.array_equal(v, two.clouds[s][k]) for s, f in one.clouds.items() for k, v in f.items()
    )
    return clouds and all(np.array_equal(v, two.images[k]) for k, v in one.images.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bags", type=int, default=40)
    parser.add_argument("--frames", type=int, default=1)
    args = parser.parse_args()
    from onnx_models import label_set_yaml, palette_model

    from seg_perception.bag.scene_bag import write_scene_bag

    root = Path(tempfile.mkdtemp(prefix="bench_fleet_"))
    start = time.perf_counter()
    for index in range(args.bags):
        write_scene_bag(root / "bags" / f"drive_{index:03d}", frames=args.frames, seed=index)
    print(f"made {args.bags} bags of {args.frames} frame(s) in {time.perf_counter() - start:.1f} s")
    model = palette_model(root / "palette.onnx")
    labels = label_set_yaml(root / "palette.yaml")
    options = ["--cloud-topic", "/lidar/points", "--model", str(model), "--label-set", str(labels)]
    bags = sorted((root / "bags").iterdir())
    frames = args.bags * args.frames

    serial_s = sum(run(["replay", str(b), "--out", str(root / "serial" / b.name), *options])
                   for b in bags)  # fmt: skip
    fleet_s = {}
    for workers in (1, 2):
        out = root / f"fleet{workers}"
        fleet_s[workers] = run(["fleet", str(root / "bags" / "*"), "--out", str(out),
                                "--workers", str(workers), *options])  # fmt: skip
    report = json.loads((root / "fleet1" / "fleet_report.json").read_text())
    inside = sum(r["seconds"] for r in report["bags"])  # the bags' own time in the workers
    load = sum(r["engine_load_s"] for r in report["bags"])
    identical = sum(same(root / "fleet2" / b.name, root / "serial" / b.name) for b in bags)

    print(f"{args.bags} bags, {frames} frames (ONNX palette model, 1242x375, 64 beams)")
    print(f"  serial `replay` per bag     {serial_s:7.1f} s  {frames / serial_s:6.2f} frames/s")
    for workers, seconds in fleet_s.items():
        print(f"  fleet, {workers} worker(s)          {seconds:7.1f} s  {frames / seconds:6.2f} "
              f"frames/s  ({serial_s / seconds:.2f}x serial)")  # fmt: skip
    print(f"  start-up paid per bag by the serial loop: {(serial_s - inside) / args.bags:.2f} s "
          f"(process, imports, model load {load:.2f} s once per worker in the fleet)")  # fmt: skip
    print(f"  fleet output identical to serial replay: {identical}/{args.bags} bags")
    return 0 if identical == args.bags else 1


if __name__ == "__main__":
    raise SystemExit(main())
