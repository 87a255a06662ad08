"""The chaos bench's parts that are not the schedule: its own redis-server, finding the job's
processes, injecting one fault, and the accounting from the streams and the final checkpoint.

Not a script of its own (`--help` only says so): bench/chaos.py drives it.

Accounting (why it reads what it reads): the system exposes no per-step list of group ids, so
  issued      = the group ids of every PromptGroup entry on simko:{job}:prompts (XRANGE; the
                bench's redis is persistent and the stream far below its MAXLEN, so nothing is trimmed)
  trained     = the applied-group window saved in the final checkpoint's learner state (the
                lineage that produced RUN/final: steps redone after a learner restart replace the
                abandoned ones; the window holds 200k ids, far more than a bench run issues)
  applied twice = the checkpoint's data cursor (groups_consumed: one per group of every applied
                batch) minus the distinct ids trained, plus the engine's own batch/groups_duplicate
  dead-lettered = ids decoded from the payloads on {stream}:dead, with the error recorded there
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.control.local_stack import free_port, http_ok, redis_ping  # noqa: E402
from services.wire.lifetime import wrap_argv  # noqa: E402
from tests.reliability.process_table import Found, tagged  # noqa: E402

# What each fault kind kills, by command line (Ray names an actor's process ray::<Class>[.method]).
ROLLOUT_ACTOR = "ray::RolloutWorkerActor"
LEARNER_ACTOR = "ray::LearnerActor"
GRADER = "verifier.worker"
VERIFIER = "verifier.service"


class BenchRedis:
    """The bench's redis-server with persistence on (as docker-compose.yml runs it), so a restart
    on the same port and --dir keeps the streams and their pending lists."""

    def __init__(self, workdir: Path, env: dict[str, str], log_path: Path):
        self.workdir, self.env, self.log_path = workdir, env, log_path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.workdir)]
        with open(self.log_path, "ab") as log:
            # exec'd through the lifetime wrapper: it dies with the bench, however the bench ends
            self.proc = subprocess.Popen(wrap_argv(argv), stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not redis_ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (log: {self.log_path})")
            time.sleep(0.05)

    def kill(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)


def job_processes(tag: str, prefix: str = "", contains: str = "") -> list[Found]:
    return [f for f in tagged(tag) if f.cmdline.startswith(prefix) and contains in f.cmdline]


def verifier_port(found: Found) -> int:
    args = found.cmdline.split()
    return int(args[args.index("--port") + 1])


def kill(found: Found, sig: int = signal.SIGKILL) -> None:
    signal_pid(found.pid, sig)


def alive(found: Found) -> bool:
    try:
        proc = psutil.Process(found.pid)
        return proc.create_time() == found.started and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(ready, deadline: float, poll_s: float = 0.2) -> float | None:
    """Seconds until ready() held, or None at the deadline (time.monotonic())."""
    started = time.monotonic()
    while time.monotonic() < deadline:
        if ready():
            return time.monotonic() - started
        time.sleep(poll_s)
    return None


def verifier_back(port: int) -> bool:
    return http_ok(port)


# ---------------------------------------------------------------------------------- accounting
def read_stream(client, stream: str) -> list[tuple[bytes, dict]]:
    entries, start = [], "-"
    while batch := client.xrange(stream, min=start, max="+", count=1000):
        entries += batch
        start = "(" + batch[-1][0].decode()  # exclusive: after the last one read
    return entries


def stream_ids(client, stream: str) -> Counter:
    """group id -> entries carrying it (re-feeds and redeliveries make several)."""
    from services.wire.messages import CodecError, decode
    counts: Counter = Counter()
    for _, fields in read_stream(client, stream):
        try:
            counts[decode(fields[b"m"]).group_id] += 1
        except (CodecError, KeyError):
            counts["<undecodable>"] += 1
    return counts


def dead_letters(client, stream: str) -> dict[str, str]:
    """group id -> the reason recorded when it was moved to {stream}:dead."""
    from services.wire.messages import CodecError, decode
    out = {}
    for raw_id, fields in read_stream(client, f"{stream}:dead"):
        reason = fields.get(b"error", b"").decode(errors="replace")
        try:
            out[decode(fields[b"m"]).group_id] = reason
        except (CodecError, KeyError):
            out[f"<undecodable {raw_id.decode()}>"] = reason
    return out


def pending_count(client, stream: str, group: str) -> int | None:
    import redis
    try:
        return int(client.xpending(stream, group)["pending"])
    except redis.ResponseError:  # no such stream or group
        return None


def final_learner_state(run_dir: Path) -> dict:
    """The learner state DeepSpeed saved as client_state in the newest checkpoint (rank 0's file)."""
    import torch
    root = run_dir / "checkpoints"
    tag = (root / "latest").read_text().strip()
    saved = torch.load(root / tag / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)
    return saved["learner"]


def data_order(run_dir: Path, job_id: str, count: int) -> list[str]:
    """The first `count` group ids in the feeder's order: what a job that trained `count` groups
    trained, in data order (the feeder's order is a function of the seed and epoch)."""
    from services.control.feeder import PromptFeeder
    from services.control.jobspec import JobSpec
    from services.data import read_dataset
    spec = JobSpec.model_validate_json((run_dir / "jobspec.json").read_text())
    d = spec.data
    examples = read_dataset(d.train, format=d.format, default_task=d.default_task, task_map=d.task_map,
                            on_bad_rows=d.on_bad_rows).examples
    feeder = PromptFeeder(job_id=job_id, examples=examples, template=d.prompt_template, n=spec.rollout.n,
                          seed=spec.trainer.seed, shuffle=d.shuffle)
    return [g.group_id for g in feeder.next_groups(count, min_version=0)]


def account(redis_url: str, run_dir: Path) -> dict:
    import redis
    client = redis.Redis.from_url(redis_url)
    try:
        jobs = sorted(k.decode().split(":")[1] for k in client.scan_iter(match="simko:*:prompts"))
        if len(jobs) != 1:
            raise RuntimeError(f"expected one job's streams on the bench's redis, found {jobs}")
        job_id = jobs[0]
        prompts, rollouts = f"simko:{job_id}:prompts", f"simko:{job_id}:rollouts"
        issued_counts, scored_counts = stream_ids(client, prompts), stream_ids(client, rollouts)
        dead = {**dead_letters(client, rollouts), **dead_letters(client, prompts)}
        pending = {s: pending_count(client, s, g) for s, g in ((prompts, "rollout"), (rollouts, "learner"))}
    finally:
        client.close()
    state = final_learner_state(run_dir)
    trained = set(state["applied_group_ids"])
    consumed = int(state["cursor"].get("groups_consumed", 0))
    in_order = data_order(run_dir, job_id, consumed)
    issued = set(issued_counts)
    beyond = issued - set(in_order)  # issued for steps the job never had to take (none on-policy)
    return {
        "job_id": job_id,
        "groups_issued": len(issued),
        "prompt_publications": sum(issued_counts.values()),  # > issued: re-fed after a restart / loss
        "scored_publications": sum(scored_counts.values()),  # > trained: redeliveries, duplicates
        "groups_trained": len(trained),
        "groups_dead_lettered": len(set(dead) - trained),
        "groups_dead_lettered_and_trained": len(set(dead) & trained),
        "dead_letter_reasons": dict(Counter(dead.values())),
        "groups_in_flight_at_end": len(beyond - trained - set(dead)),
        "groups_lost": len(issued - trained - set(dead) - beyond),
        "lost_ids": sorted(issued - trained - set(dead) - beyond)[:20],
        "groups_applied_twice": consumed - len(trained) + int(state["counters"].get("batch/groups_duplicate", 0)),
        "groups_trained_not_issued": len(trained - issued),
        "trained_in_data_order": trained == set(in_order),
        "pending_at_end": pending,
        "final_step": int(state["step"]),
        "final_weight_version": int(state["weight_version"]),
    }


def check_steps(rows: list[dict], steps: int) -> dict:
    """Steps contiguous within each learner lifetime; a restart resumes right after a checkpointed
    step (redoing the steps after it); versions grow within a lifetime and jump past every version
    seen before at a restart (the restored weights are republished under a newer number)."""
    seq = [int(r.get("trainer/step", 0)) for r in rows]
    restarts = [int(r.get("trainer/learner_restarts", 0)) for r in rows]
    versions = [int(r.get("learner/weight_version", 0)) for r in rows]
    contiguous, increasing = True, True
    for i in range(1, len(rows)):
        if restarts[i] == restarts[i - 1]:
            contiguous &= seq[i] == seq[i - 1] + 1
            increasing &= versions[i] >= versions[i - 1]
        else:  # a learner restart between these rows
            contiguous &= 1 <= seq[i] <= seq[i - 1] + 1
            increasing &= versions[i] > max(versions[:i])
    return {"steps": seq[-1] if seq else 0, "steps_expected": steps, "step_rows": len(rows),
            "steps_redone": len(rows) - len(set(seq)), "steps_contiguous": contiguous and set(seq) == set(range(1, steps + 1))
            and (seq[-1] if seq else 0) == steps, "weight_versions_increasing": increasing,
            "learner_restarts": restarts[-1] if restarts else 0,
            "rollout_workers_replaced": rows[-1].get("rollout/workers_replaced", 0) if rows else 0,
            "staleness_max": max((r.get("rollout/staleness_max", 0) for r in rows), default=0)}


def export_generates(final_dir: Path) -> bool:
    """The exported model loads in vLLM (the rollout engine) and generates."""
    from rollout.config import RolloutSection
    from rollout.engine import Engine
    section = RolloutSection(max_tokens=8, max_model_len=256, kv_cache_bytes=1 << 28)
    engine = Engine(str(final_dir), section, seed=0)
    results = engine.generate(["Q: 2+3\nA:"], [2], sampling=section)
    return len(results) == 1 and len(results[0].samples) == 2


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description="support module of bench/chaos.py (run that)")
    parser.add_argument("--check-export", default=None, help="exit 0 if this model dir generates in vLLM")
    ns = parser.parse_args()
    if ns.check_export:
        sys.exit(0 if export_generates(Path(ns.check_export)) else 1)
