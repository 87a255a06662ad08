# Sourced by the scripts: project-local caches so runs never touch $HOME or download anything.
# Usage: source scripts/env.sh   (from the repository root or anywhere)
SIMKO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SIMKO_ROOT
export SIMKO_CACHE="${SIMKO_CACHE:-$SIMKO_ROOT/.cache}"
mkdir -p "$SIMKO_CACHE"/{vllm,inductor,torch_extensions,ray,tmp,hf,triton}
export VLLM_CACHE_ROOT="$SIMKO_CACHE/vllm"
export TORCHINDUCTOR_CACHE_DIR="$SIMKO_CACHE/inductor"
export TORCH_EXTENSIONS_DIR="$SIMKO_CACHE/torch_extensions"
export TRITON_CACHE_DIR="$SIMKO_CACHE/triton"
export HF_HOME="$SIMKO_CACHE/hf"
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export RAY_TMPDIR="$SIMKO_CACHE/ray"
export RAY_AUTH_TOKEN_PATH="$SIMKO_CACHE/ray/auth_token"
export RAY_USAGE_STATS_ENABLED=0
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export VLLM_ENABLE_V1_MULTIPROCESSING="${VLLM_ENABLE_V1_MULTIPROCESSING:-0}"
export VLLM_NO_USAGE_STATS=1
export DO_NOT_TRACK=1
export TMPDIR="$SIMKO_CACHE/tmp"
