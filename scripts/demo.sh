#!/usr/bin/env bash
# Set up (idempotent) and run the main job on the embedded generated street scene: the
# packaged SegFormer segments the camera image (ONNX Runtime), its labels are fused onto
# the LiDAR cloud, and the 2D mIoU and per-point accuracy are printed next to those of the
# scene's truth labels. Writes demo_output/ (labeled cloud, pictures, summary.json).
# Extra arguments go to `seg-perception demo` (e.g. --truth-labels, --seed 3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/env.sh
seg-perception demo --out "${DEMO_OUT:-demo_output}" "$@"
