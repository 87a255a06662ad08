#!/usr/bin/env bash
# One Ray node of the SimKO cluster.
#
#   ray-node.sh head [RAY START OPTIONS...] -- COMMAND...   Ray head, then COMMAND (the job API) beside it
#   ray-node.sh worker [RAY START OPTIONS...]               a worker node joining $SIMKO_RAY_HEAD
#
# Environment: SIMKO_RAY_HEAD (host:port of the head, workers), SIMKO_GPUS (GPUs this node claims,
# default 0), SIMKO_GPU_LOCK_DIR (lock files shared by the containers of one host),
# SIMKO_RAY_NODE_IP (optional --node-ip-address), SIMKO_RAY_START_ARGS (extra options, appended).
#
# Why GPUs are claimed here: Docker's `count: N` device reservation always hands out GPUs 0..N-1,
# so every replica of `--scale rollout=N` would get GPU 0. Each container therefore sees all GPUs
# and takes free ones under a file lock held for its lifetime.
set -euo pipefail

role="${1:?usage: ray-node.sh head|worker [ray start options] [-- command]}"
shift
ray_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do ray_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
command=("$@")

claim_gpus() {
    local want="$1" dir="${SIMKO_GPU_LOCK_DIR:-/var/lock/simko-gpus}" total i fd claimed=()
    total="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)"
    [ "$total" -gt 0 ] || total="$(find /dev -maxdepth 1 -name 'nvidia[0-9]*' 2>/dev/null | wc -l)"
    if [ "$total" -lt "$want" ]; then
        echo "ray-node: $want GPU(s) wanted, $total visible" >&2
        exit 65
    fi
    mkdir -p "$dir"
    for ((i = 0; i < total && ${#claimed[@]} < want; i++)); do
        exec {fd}>"$dir/gpu$i.lock"
        if flock -n "$fd"; then claimed+=("$i"); else exec {fd}>&-; fi  # kept open: the lock lives with us
    done
    if [ "${#claimed[@]}" -lt "$want" ]; then
        echo "ray-node: only ${#claimed[@]} of $want GPU(s) free on this host (others are claimed)" >&2
        exit 65
    fi
    CUDA_VISIBLE_DEVICES="$(IFS=,; echo "${claimed[*]}")"
    export CUDA_VISIBLE_DEVICES CUDA_DEVICE_ORDER=PCI_BUS_ID  # indices as nvidia-smi numbers them
    echo "ray-node: claimed GPU(s) $CUDA_VISIBLE_DEVICES"
}

gpus="${SIMKO_GPUS:-0}"
[ "$gpus" -gt 0 ] && claim_gpus "$gpus"
common=(--num-gpus "$gpus" --disable-usage-stats)
[ -n "${SIMKO_RAY_NODE_IP:-}" ] && common+=(--node-ip-address "$SIMKO_RAY_NODE_IP")
# shellcheck disable=SC2206  # extra options are word-split on purpose
extra=(${SIMKO_RAY_START_ARGS:-})

case "$role" in
    worker)
        [ ${#command[@]} -eq 0 ] || { echo "ray-node: a worker runs no command" >&2; exit 64; }
        exec ray start --address "${SIMKO_RAY_HEAD:?SIMKO_RAY_HEAD=host:port of the Ray head}" \
            "${common[@]}" "${ray_args[@]}" "${extra[@]}" --block
        ;;
    head)
        [ ${#command[@]} -gt 0 ] || { echo "ray-node: head needs a command after --" >&2; exit 64; }
        # Both in the background: whichever exits first takes the other down, so the container
        # restarts as a whole instead of serving an API with no Ray behind it.
        ray start --head "${common[@]}" "${ray_args[@]}" "${extra[@]}" --block &
        ray_pid=$!
        "${command[@]}" &
        app_pid=$!
        trap 'kill -TERM "$app_pid" "$ray_pid" 2>/dev/null || true' TERM INT
        set +e
        wait -n "$ray_pid" "$app_pid"
        rc=$?
        kill -TERM "$app_pid" "$ray_pid" 2>/dev/null
        wait
        exit "$rc"
        ;;
    *)
        echo "ray-node: unknown role $role (head|worker)" >&2
        exit 64
        ;;
esac
