"""Replay throughput and where the time goes: bag I/O and conversions vs the pipeline.

Replays ../shared/data/rosbags/kitti_2011_09_26_ros2 (5 KITTI frames, 1242x375 images,
~114k-point clouds) into an mcap bag, once with SegFormer-B0 (random weights, ONNX Runtime,
network at the native 375x1242: a realistic CPU model) and once with a tiny palette ONNX
model (the pipeline's fixed costs dominate: the worst case for the I/O share). Prints
frames/s and each stage's share; "I/O and conversions" = read + convert + write.

Run: ``python bench/bench_replay.py`` (target: I/O and conversions under 15%).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import DATA

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

from onnx_models import palette_model

from seg_perception.bag.replay import ReplayConfig, replay
from seg_perception.engines import EngineConfig, create_engine
from seg_perception.lidar.segmenter import GeometricCloudSegmenter

IO_STAGES = ("read", "convert", "write")


def main() -> int:
    bag = DATA / "rosbags/kitti_2011_09_26_ros2"
    if not bag.is_dir():
        print(f"needs the KITTI bag at {bag}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        engines = {
            "SegFormer-B0 (random weights, ONNX Runtime, 375x1242)": EngineConfig(
                model="random:segformer-b0", input_size=None, resize="none", cache_dir=str(work)
            ),
            "palette ONNX (tiny network)": EngineConfig(
                model=str(palette_model(work / "palette.onnx")), input_size=None, resize="none"
            ),
        }
        for index, (name, config) in enumerate(engines.items()):
            engine = create_engine(config)
            engine.segment(__import__("numpy").zeros((375, 1242, 3), "uint8"))  # warm-up
            summary = replay(
                bag, work / f"out{index}", ReplayConfig(), engine, GeometricCloudSegmenter()
            )
            total = sum(summary.timings_ms.values())
            io = sum(summary.timings_ms[s] for s in IO_STAGES)
            print(f"\n== {name}")
            print(
                f"{summary.clouds_processed} frames in {summary.wall_s:.2f} s: "
                f"{summary.clouds_processed / summary.wall_s:.2f} frames/s"
            )
            for stage, ms in sorted(summary.timings_ms.items(), key=lambda kv: -kv[1]):
                per_frame = ms / summary.clouds_processed
                print(f"  {stage:16s} {per_frame:8.1f} ms/frame {100 * ms / total:6.1f}%")
            print(f"I/O and conversions: {100 * io / total:.1f}% of the time (target < 15%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
