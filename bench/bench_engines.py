"""2D engine speed: PyTorch vs ONNX Runtime (and CUDA / TensorRT where present), one run.

SegFormer-B0 with random weights (no trained weights can be downloaded here), end to end:
preprocessing, network and postprocessing back to the camera's resolution, on
(a) a 1024x512 street image with the network at 512x1024, and
(b) a KITTI 1242x375 frame with the network at its native 375x1242 (not a multiple of 32).
Prints per-stage medians, the share of time outside the network, the speed-up over
PyTorch and label agreement with PyTorch's labels.

Run: ``python bench/bench_engines.py [--runs N]``; images come from ../shared/data when
present, else from the generated scene.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import cv2
import numpy as np
from _common import DATA

from seg_perception.engines.benchmark import format_table, run_benchmark
from seg_perception.engines.config import EngineConfig


def _image(path: str, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """(h, w) RGB image from the shared data, or the generated scene resized to it."""
    full = DATA / path
    if full.is_file():
        image = cv2.cvtColor(cv2.imread(str(full)), cv2.COLOR_BGR2RGB)
        if image.shape[:2] == size:
            return image, path
    from seg_perception.sample import generate_scene

    scene = generate_scene(0).image
    return cv2.resize(scene, (size[1], size[0]), interpolation=cv2.INTER_AREA), "generated scene"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    # The benchmark uses the machine's cores (both runtimes default to all of them).
    print(f"cores: {os.cpu_count()}; runs per backend: {args.runs} (median)")
    cases = [
        ("cityscapes/demo_no_gt/mmseg_demo.png", (512, 1024)),
        ("kitti_raw_2011_09_26/image_02/data/0000000000.png", (375, 1242)),
    ]
    with tempfile.TemporaryDirectory() as cache:
        for path, size in cases:
            image, source = _image(path, size)
            config = EngineConfig(
                model="random:segformer-b0", input_size=None, resize="none", cache_dir=cache
            )
            timings, notes = run_benchmark(config, image, runs=args.runs)
            print(f"\n== {source}")
            print(format_table(timings, image.shape, f"{size[0]}x{size[1]} (native)"))
            for note in notes:
                print("  " + note)
            by_name = {t.name: t for t in timings}
            if {"torch-cpu-fp32", "onnxruntime-cpu-fp32"} <= set(by_name):
                ratio = (
                    by_name["torch-cpu-fp32"].total_ms / by_name["onnxruntime-cpu-fp32"].total_ms
                )
                print(f"ONNX Runtime vs PyTorch (CPU, end to end): {ratio:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
