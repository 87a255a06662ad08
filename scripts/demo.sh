#!/usr/bin/env bash
# Set up (idempotent) and run the main job on the embedded default: a tiny model on CPU.
# Extra arguments go to `simko demo` (e.g. --out runs/demo --minutes 12).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec .venv/bin/simko demo "$@"
