"""scripts/gpu_check.sh where there is no usable GPU: a clear skip (exit 3), nothing run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def gpu_check(path: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path}
    command = [shutil.which("bash"), str(REPO / "scripts/gpu_check.sh")]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_without_a_gpu_it_skips_clearly(tmp_path):
    import torch

    if torch.cuda.is_available():
        import pytest

        pytest.skip("this machine has a GPU: run scripts/gpu_check.sh itself")
    empty = tmp_path / "bin"
    empty.mkdir()
    for tool in ("python3", "timeout", "dirname"):  # what the script needs, not nvidia-smi
        (empty / tool).symlink_to(shutil.which(tool))
    done = gpu_check(str(empty))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "gpu_check: SKIPPED: no usable NVIDIA GPU (no nvidia-smi on PATH" in done.stdout
    assert done.stdout.count("SKIP ") == 4  # every row of the table says so
    assert "Traceback" not in done.stderr


def test_a_driver_without_a_cuda_torch_is_named(tmp_path):
    import torch

    if torch.version.cuda is not None:
        import pytest

        pytest.skip("torch is a CUDA build here")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: fake'\n")
    (fake / "nvidia-smi").chmod(0o755)
    done = gpu_check(f"{fake}:{os.environ['PATH']}")
    assert done.returncode == 3
    assert "is a CPU-only build: install a CUDA build" in done.stdout
