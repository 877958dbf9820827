#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, plus ruff. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/env.sh
ruff check .
python -m pytest "$@"
