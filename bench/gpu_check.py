"""Everything the CPU-only CI cannot check, in one call on a machine with an NVIDIA GPU.

``scripts/gpu_check.sh`` runs this (under an 8-minute limit). Steps, each with a budget:

1. **tests**: the CUDA and TensorRT tests CI skips (``test/test_tensorrt_engine.py`` and
   the ``cuda``/``gpu``/``tensorrt`` tests of the engine test files), with pytest;
2. **throughput**: SegFormer-B0 at a 512x1024 network input through the package's
   engines: PyTorch CUDA fp32 (the reference), PyTorch CUDA fp16 and TensorRT fp16
   (engine built from the verified ONNX export), median network and end-to-end times,
   and each one's label agreement with fp32. The Cityscapes SegFormer-B0 is used when it
   is in the Hugging Face cache (trained weights: agreement means something), else random
   weights (said in the table);
3. **post-processing**: the same CUDA logits post-processed on the GPU
   (``engines/torch_postprocess.py``) and on the CPU (``engines/postprocess.py``):
   times, label agreement and the largest confidence difference;
4. **training**: ``seg-perception train --device cuda`` (AMP) on generated scenes for a
   few epochs: images/s, loss, validation mIoU, and the ONNX export check.

One summary table at the end. Exit status: 0 every check passed, 1 a check failed
(TensorRT missing included: its rows say how to install it), 3 skipped: no usable NVIDIA
GPU here (no ``nvidia-smi`` or no CUDA build of torch), with the reason.

Run: ``scripts/gpu_check.sh`` (or ``python bench/gpu_check.py [--runs N]``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXIT_FAILED, EXIT_SKIPPED = 1, 3
B0_HUB = "nvidia/segformer-b0-finetuned-cityscapes-1024-1024"
NETWORK = (512, 1024)
TEST_FILES = ["test/test_tensorrt_engine.py"]
TEST_SELECTED = ["test/test_engines.py", "test/test_engine_cache.py", "test/test_cli_engines.py"]
TRT_INSTALL = (
    "TensorRT is missing: pip install tensorrt-cu12 (NVIDIA's index: "
    "--extra-index-url https://pypi.nvidia.com), then rerun"
)

Row = tuple[str, str, str]  # (check, PASS / FAIL / SKIP, figures or reason)


def probe() -> tuple[bool, str]:
    """(usable GPU, what was found) without importing anything heavy first."""
    if shutil.which("nvidia-smi") is None:
        return False, "no nvidia-smi on PATH: this machine has no NVIDIA driver / GPU"
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build: install a CUDA build"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
    name = torch.cuda.get_device_name(0)
    return True, f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}"


def tensorrt_version() -> str | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return str(tensorrt.__version__)


# --------------------------------------------------------------------------- 1. tests
def run_tests(budget_s: float) -> list[Row]:
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    env = {**os.environ, "SEG_TEST_DOMAIN_BASE": os.environ.get("SEG_TEST_DOMAIN_BASE", "90")}
    rows = []
    for files, select in ((TEST_FILES, []), (TEST_SELECTED, ["-k", "cuda or gpu or tensorrt"])):
        try:
            done = subprocess.run(
                [*command, *files, *select], cwd=ROOT, env=env, capture_output=True,
                text=True, timeout=budget_s / 2,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            rows.append((f"tests {' '.join(files)}", "FAIL", f"over {budget_s / 2:.0f} s"))
            continue
        lines = done.stdout.strip().splitlines()
        summary = lines[-1] if lines else done.stderr.strip()[-200:]
        skips = [line for line in lines if line.startswith("SKIPPED")]
        status = "PASS" if done.returncode in (0, 5) and "failed" not in summary else "FAIL"
        figure = summary + (f"; first skip: {skips[0][:120]}" if skips else "")
        rows.append((f"tests {' '.join(Path(f).name for f in files)}", status, figure))
    return rows


# --------------------------------------------------------------------------- 2. throughput
def test_image() -> tuple:
    """A real Cityscapes frame when the shared data is here, else a generated scene."""
    import cv2

    data = Path(os.environ.get("SEG_PERCEPTION_DATA", ROOT.parent / "shared" / "data"))
    path = data / "cityscapes/full_res/frankfurt_000000_000294_leftImg8bit.png"
    if path.is_file():
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), "Cityscapes frame"
    from seg_perception.sample import generate_scene

    return generate_scene(0).image, "generated scene"


def b0_model() -> tuple[str, str]:
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(B0_HUB, "config.json"), str):
            return B0_HUB, "Cityscapes weights"
    except ImportError:
        pass
    return "random:segformer-b0", "random weights"


def throughput(runs: int) -> tuple[list[Row], object]:
    from seg_perception.engines.benchmark import time_engine
    from seg_perception.engines.config import EngineConfig
    from seg_perception.engines.factory import create_engine

    image, what = test_image()
    model, weights = b0_model()
    base = EngineConfig(model=model, backend="torch", device="cuda", input_size=NETWORK,
                        resize="stretch")  # fmt: skip
    variants = [
        ("PyTorch CUDA fp32", base),
        ("PyTorch CUDA fp16", replace(base, precision="fp16")),
        ("TensorRT fp16", replace(base, backend="tensorrt", precision="fp16")),
    ]
    rows, reference, fp32_engine = [], None, None
    for name, config in variants:
        label = f"B0 {NETWORK[0]}x{NETWORK[1]} {name}"
        if config.backend == "tensorrt" and tensorrt_version() is None:
            rows.append((label, "FAIL", TRT_INSTALL))
            continue
        try:
            engine = create_engine(config)
            timing = time_engine(engine, image, runs)
            labels = engine.segment(image).labels
        except Exception as error:  # report it and go on with the other checks
            rows.append((label, "FAIL", f"{type(error).__name__}: {str(error)[:160]}"))
            continue
        if reference is None:
            reference, fp32_engine = labels, engine
        agreement = float((labels == reference).mean())
        # Random weights give near-ties that fp16 rounding flips; trained ones rarely do.
        ok = agreement >= (0.99 if model == B0_HUB else 0.9)
        rows.append((
            label, "PASS" if ok else "FAIL",
            f"network {timing.network_ms:.2f} ms ({1000 / timing.network_ms:.0f} fps), end to "
            f"end {timing.total_ms:.1f} ms; labels = fp32 {100 * agreement:.3f}% "
            f"({weights}, {what})",
        ))  # fmt: skip
    return rows, (fp32_engine, image)


# --------------------------------------------------------------------------- 3. post-processing
def postprocess(engine: object, image: object, runs: int) -> list[Row]:
    import numpy as np
    import torch

    if engine is None:
        return [("post-processing GPU vs CPU", "FAIL", "no CUDA fp32 engine to take logits from")]
    batch, box = engine.preprocessor(image)  # type: ignore[attr-defined]
    logits = engine._infer(batch)  # type: ignore[attr-defined]  # (C, h, w) on the GPU
    host = logits.float().cpu().numpy()

    def timed(func: Callable[[], object]) -> tuple[object, float]:
        times, out = [], None
        for _ in range(runs + 1):
            torch.cuda.synchronize()
            start = time.perf_counter()
            out = func()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return out, 1000 * float(np.median(times[1:]))

    gpu, gpu_ms = timed(lambda: engine._postprocess(logits, box))  # type: ignore[attr-defined]
    cpu, cpu_ms = timed(lambda: engine._postprocess(host, box))  # type: ignore[attr-defined]
    agreement = float((gpu.labels == cpu.labels).mean())  # type: ignore[attr-defined]
    diff = float(np.abs(gpu.confidence - cpu.confidence).max())  # type: ignore[attr-defined]
    ok = agreement >= 0.999 and diff < 1e-3
    return [(
        "post-processing GPU vs CPU", "PASS" if ok else "FAIL",
        f"GPU {gpu_ms:.2f} ms, CPU {cpu_ms:.1f} ms ({cpu_ms / gpu_ms:.1f}x); labels equal "
        f"{100 * agreement:.3f}%, max |confidence diff| {diff:.1e} "
        f"({image.shape[1]}x{image.shape[0]} image)",  # type: ignore[attr-defined]
    )]  # fmt: skip


# --------------------------------------------------------------------------- 4. training
def training(budget_epochs: int) -> list[Row]:
    from seg_perception.training.generated import write_generated_images
    from seg_perception.training.progress import library_bars_off
    from seg_perception.training.run import TrainRequest, run_training

    with tempfile.TemporaryDirectory() as tmp, library_bars_off():
        root = Path(tmp)
        write_generated_images(root / "train", 32, first_seed=3000, scale=0.5, progress=False)
        write_generated_images(root / "val", 4, first_seed=4000, scale=0.5, progress=False)
        request = TrainRequest(
            data=[root / "train"], val=[root / "val"], out=root / "run",
            config="segformer-b0", crop=(128, 256),
            settings={"epochs": budget_epochs, "batch_size": 8, "device": "cuda", "workers": 2},
        )  # fmt: skip
        start = time.perf_counter()
        summary = run_training(request)
        seconds = time.perf_counter() - start
    history = summary["history"]
    learned = history[-1]["train_loss"] < history[1]["train_loss"]
    exported = summary["final"].get("onnx_agreement", 0) >= 0.999
    rate = max(h["images_per_second"] for h in history[1:])
    return [(
        "CUDA training (AMP), B0 128x256 crops", "PASS" if learned and exported else "FAIL",
        f"{rate:.0f} img/s, loss {history[1]['train_loss']:.3f} -> "
        f"{history[-1]['train_loss']:.3f}, val mIoU {history[-1]['val_miou']:.3f}, ONNX = "
        f"PyTorch {100 * summary['final'].get('onnx_agreement', 0):.3f}%, {seconds:.0f} s",
    )]  # fmt: skip


# --------------------------------------------------------------------------- main
def table(rows: list[Row], header: str) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [header, f"{'check':<{width}}  result  figures"]
    lines += [f"{name:<{width}}  {status:<6}  {figures}" for name, status, figures in rows]
    return "\n".join(lines)


def guarded(rows: list[Row], name: str, step: Callable[[], list[Row]]) -> None:
    """Run one step; an exception is that step's failure, not the end of the check."""
    try:
        rows.extend(step())
    except Exception as error:
        rows.append((name, "FAIL", f"{type(error).__name__}: {str(error)[:200]}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs per figure")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the training check")
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    usable, found = probe()
    trt = tensorrt_version()
    header = f"gpu_check: {found}; TensorRT {trt or 'not installed'}"
    if not usable:
        checks = ("tests", "throughput", "post-processing GPU vs CPU", "CUDA training")
        print(table([(c, "SKIP", found) for c in checks], header))
        print(f"gpu_check: SKIPPED: no usable NVIDIA GPU ({found}); nothing was checked")
        return EXIT_SKIPPED
    rows: list[Row] = []
    if not args.skip_tests:
        guarded(rows, "tests", lambda: run_tests(budget_s=200))
    engine_and_image: list[object] = [(None, None)]

    def measure() -> list[Row]:
        found_rows, engine_and_image[0] = throughput(args.runs)
        return found_rows

    guarded(rows, "throughput", measure)
    engine, image = engine_and_image[0]  # type: ignore[misc]
    guarded(rows, "post-processing GPU vs CPU", lambda: postprocess(engine, image, args.runs))
    guarded(rows, "CUDA training", lambda: training(args.epochs))
    print(table(rows, header))
    failed = [name for name, status, _ in rows if status == "FAIL"]
    elapsed = time.perf_counter() - start
    if failed:
        print(f"gpu_check: FAILED ({len(failed)} of {len(rows)}: {', '.join(failed)}) "
              f"in {elapsed:.0f} s")  # fmt: skip
        return EXIT_FAILED
    print(f"gpu_check: all {len(rows)} checks passed in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
