#!/usr/bin/env bash
# Set up (idempotent) and run the main job on the embedded generated street scene:
# writes demo_output/ (labeled cloud, overlay and bird's-eye pictures) and prints accuracy.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/env.sh
seg-perception demo --out "${DEMO_OUT:-demo_output}" "$@"
