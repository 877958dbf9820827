#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, in one call (at most 8 minutes): the CUDA/TensorRT tests
# CI skips, SegFormer-B0 512x1024 throughput (PyTorch CUDA fp16, TensorRT fp16, agreement
# with fp32), GPU vs CPU post-processing and a short CUDA training run, then one table.
# Exit: 0 all passed, 1 a check failed (TensorRT missing included), 3 skipped: no usable
# NVIDIA GPU here. Needs a CUDA build of torch (and TensorRT for its rows) in the Python
# it runs: the project's venv when set up and no other venv is active, else $PYTHON or
# python3. See bench/gpu_check.py.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f install/setup.bash ] && [ -x .venv/bin/python ]; then
  # shellcheck disable=SC1091
  source scripts/env.sh
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
timeout --kill-after=10 480 "$PY" bench/gpu_check.py "$@"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "gpu_check: FAILED: did not finish within 8 minutes" >&2
  exit 1
fi
exit "$rc"
