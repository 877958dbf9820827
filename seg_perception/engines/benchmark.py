"""Time every available backend on the same image, in one run, and compare their labels.

Used by ``seg-perception bench`` and ``bench/bench_engines.py``. Each backend segments the
same image end to end (preprocessing, network, postprocessing at the camera's resolution);
figures are medians after warm-up. Ratios are against PyTorch fp32 on the CPU, and label
agreement is measured against that backend's labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from seg_perception.engines.base import EngineLoadError, SegmentationEngine
from seg_perception.engines.config import EngineConfig
from seg_perception.engines.factory import create_engine


@dataclass
class BackendTiming:
    name: str
    total_ms: float
    preprocess_ms: float
    network_ms: float
    postprocess_ms: float
    label_agreement: float | None = None

    @property
    def outside_network(self) -> float:
        return (self.preprocess_ms + self.postprocess_ms) / self.total_ms


def candidate_configs(base: EngineConfig) -> list[tuple[str, EngineConfig]]:
    """Backends worth timing here: CPU always; CUDA and TensorRT where present."""
    configs = [
        ("torch-cpu-fp32", replace(base, backend="torch", device="cpu")),
        ("onnxruntime-cpu-fp32", replace(base, backend="onnxruntime", device="cpu")),
    ]
    try:
        import torch

        if torch.cuda.is_available():
            configs.append(("torch-cuda-fp32", replace(base, backend="torch", device="cuda")))
            configs.append(
                ("torch-cuda-fp16", replace(base, backend="torch", device="cuda", precision="fp16"))
            )
            from seg_perception.engines.tensorrt_engine import tensorrt_available

            if tensorrt_available()[0]:
                configs.append(
                    (
                        "tensorrt-fp16",
                        replace(base, backend="tensorrt", device="cuda", precision="fp16"),
                    )
                )
    except ImportError:
        pass
    return configs


def time_engine(
    engine: SegmentationEngine, image: np.ndarray, runs: int, warmup: int = 2
) -> BackendTiming:
    for _ in range(warmup):
        engine.segment(image)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        engine.segment(image)
        total = (time.perf_counter() - start) * 1e3
        t = engine.timings
        samples.append((total, t.preprocess, t.network, t.postprocess))
    median = np.median(np.asarray(samples), axis=0)
    return BackendTiming(engine.backend, *map(float, median))


def run_benchmark(
    base: EngineConfig, image: np.ndarray, runs: int = 5
) -> tuple[list[BackendTiming], list[str]]:
    """Time each candidate backend on ``image``; returns timings and skipped-backend notes."""
    timings, notes = [], []
    reference = None
    for name, config in candidate_configs(base):
        try:
            engine = create_engine(config)
        except EngineLoadError as error:
            notes.append(f"{name}: skipped ({error})")
            continue
        timing = time_engine(engine, image, runs)
        timing.name = name
        labels = engine.segment(image).labels
        if reference is None:
            reference = labels
        timing.label_agreement = float((labels == reference).mean())
        timings.append(timing)
    return timings, notes


def format_table(timings: list[BackendTiming], image_shape: tuple[int, ...], network: str) -> str:
    lines = [
        f"image {image_shape[1]}x{image_shape[0]}, network input {network}",
        f"{'backend':24s} {'total ms':>9s} {'pre':>7s} {'network':>8s} {'post':>7s} "
        f"{'outside':>8s} {'speed-up':>9s} {'labels =':>9s}",
    ]
    base = timings[0].total_ms if timings else 1.0
    for t in timings:
        lines.append(
            f"{t.name:24s} {t.total_ms:9.1f} {t.preprocess_ms:7.1f} {t.network_ms:8.1f} "
            f"{t.postprocess_ms:7.1f} {100 * t.outside_network:7.1f}% {base / t.total_ms:8.2f}x "
            f"{100 * (t.label_agreement or 0):8.3f}%"
        )
    return "\n".join(lines)
