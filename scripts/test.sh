#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite. Tests start the servers they need themselves
# (redis-server, uvicorn, Ray, vLLM, DeepSpeed) on free loopback ports and stop them afterwards.
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -m "not slow"  or  bash scripts/test.sh tests/learner
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "[test] set-up failed" >&2; exit 1; }
source scripts/env.sh
.venv/bin/python -m pytest -p no:cacheprovider --timeout=900 --durations=25 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "[test] pytest collected no tests: failing on purpose" >&2
    exit 1
fi
exit "$rc"
