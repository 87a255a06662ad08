"""Chaos run: the tiny job under a seeded schedule of real faults, with exact accounting by group id.

    flock /tmp/simko-heavy.lock .venv/bin/python bench/chaos.py [--steps 40] [--faults 10] [--seed 0]
        [--kinds rollout_kill,learner_kill,redis_restart,grader_kill,verifier_kill,rollout_stop]
        [--reclaim-idle-ms auto|MS] [--out DIR]

`simko train configs/tiny.yaml` runs as a subprocess with a tagged environment (every process it
starts carries the tag: tests/reliability/process_table.py), 2 rollout workers, a checkpoint every
step, and infra.redis_url pointing at a redis-server this bench owns (appendonly, like
docker-compose.yml) so it can restart it. Faults, one at a time, each once its step (read from
RUN/metrics.jsonl) is reached and the previous one has recovered:
    rollout_kill   SIGKILL a rollout worker actor (the pool replaces it; its prompts are reclaimed)
    learner_kill   SIGKILL the learner actor (the controller rebuilds it from the newest checkpoint)
    redis_restart  SIGTERM or SIGKILL the bench's redis-server, restart it on the same port and dir
    grader_kill    SIGKILL one grader process of the verifier's pool
    verifier_kill  SIGKILL the verifier service's process group (the job's LocalStack restarts it)
    rollout_stop   SIGSTOP a rollout worker past rollout.reclaim_idle_ms, then SIGCONT
(An API restart is another test's: tests/integration/test_api_restart.py.)

rollout.reclaim_idle_ms decides how soon a stopped or failed worker's prompts move on. `auto`
measures it: a fault-free calibration run of the same job (3 steps) gives the step time, and the
timeout is RECLAIM_STEPS of its slowest step (a worker's batch is at most one step's sampling, so a
live worker is not robbed). Only schedules with a kind that relies on reclaiming calibrate.
Every wait is derived from the run itself: a fault must recover within a full start-up of this
job (its time to the first row) plus RECOVERY_STEPS of its median step time plus two reclaim
timeouts. Prints one JSON object (see docs/reliability.md).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chaos_support import (GRADER, LEARNER_ACTOR, ROLLOUT_ACTOR, VERIFIER, BenchRedis, account,  # noqa: E402
                                 alive, check_steps, job_processes, kill, signal_pid, verifier_back,
                                 verifier_port)
from tests.reliability.process_table import kill_tagged, new_tag, survivors, tagged, tagged_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIMKO = str(Path(sys.executable).parent / "simko")
KINDS = ("rollout_kill", "learner_kill", "redis_restart", "grader_kill", "verifier_kill", "rollout_stop")
RECLAIM_KINDS = {"rollout_kill", "rollout_stop", "verifier_kill"}  # recovered by XAUTOCLAIM after the timeout
RECLAIM_STEPS = 3
RECOVERY_STEPS = 20
OUTER_TIMEOUT_S = 1800.0  # trainer.rollout_timeout_s's default: the job's own bound on a silent rollout side


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def read_rows(run: Path) -> list[dict]:
    path, rows = run / "metrics.jsonl", []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a row being written
                break
    return rows


def make_schedule(steps: int, faults: int, kinds: list[str], seed: int) -> list[tuple[int, str]]:
    """Faults at distinct steps in [2, steps - 2] (none before the first checkpoint, none after the
    last step), every kind at least once, the rest drawn; all from `seed`."""
    rng = random.Random(seed)
    slots = list(range(2, steps - 1))
    if faults > len(slots) or faults < len(kinds):
        raise SystemExit(f"{faults} faults of {len(kinds)} kinds do not fit {steps} steps")
    at = sorted(rng.sample(slots, faults))
    chosen = list(kinds) + [rng.choice(kinds) for _ in range(faults - len(kinds))]
    rng.shuffle(chosen)
    return list(zip(at, chosen))


def train_argv(run: Path, steps: int, sets: list[str]) -> list[str]:
    argv = [SIMKO, "train", "configs/tiny.yaml", "--out", str(run), "--set", f"trainer.steps={steps}"]
    for s in sets:
        argv += ["--set", s]
    return argv


def calibrate(out: Path, env: dict, workers: int) -> tuple[int, dict]:
    """A fault-free run of the same job (private stack): reclaim = RECLAIM_STEPS x its slowest step."""
    run = out / "calibrate"
    argv = train_argv(run, 3, [f"rollout.workers={workers}", "trainer.export_final=false"])
    with open(out / "calibrate.log", "wb") as f:
        rc = subprocess.run(argv, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                            timeout=OUTER_TIMEOUT_S).returncode
    rows = read_rows(run)
    if rc != 0 or not rows:
        raise SystemExit(f"calibration run failed (rc {rc}); see {out / 'calibrate.log'}")
    slowest = max(r["perf/step_s"] for r in (rows[1:] or rows))  # the first step includes warm-up
    return math.ceil(RECLAIM_STEPS * slowest * 1000), {"calibration_step_s": [round(r["perf/step_s"], 2) for r in rows]}


class Chaos:
    def __init__(self, args, out: Path, tag: str, redis: BenchRedis, reclaim_ms: int | None):
        self.args, self.out, self.tag, self.redis = args, out, tag, redis
        self.run = out / "run"
        self.reclaim_s = (reclaim_ms or 0) / 1000
        self.rng = random.Random(args.seed + 1)
        self.known: dict[int, object] = {}  # every tagged process seen (the orphan check's `known`)
        self.records: list[dict] = []
        self.first_row_s = 0.0
        self.t_signal = 0.0

    def remember(self) -> None:
        for f in tagged(self.tag):
            self.known.setdefault(f.pid, f)

    def pace_s(self) -> float:
        rows = read_rows(self.run)
        gaps = [b["time"] - a["time"] for a, b in zip(rows, rows[1:])]
        if not rows:  # no step yet: a start-up is the only duration this run has shown
            return self.first_row_s
        return statistics.median(gaps) if gaps else rows[-1]["perf/step_s"]

    def patience_s(self) -> float:
        return self.first_row_s + RECOVERY_STEPS * self.pace_s() + 2 * self.reclaim_s

    def inject(self, kind: str) -> tuple[dict, object]:
        """Do the fault; (what was done, a predicate: is the dead thing back?)."""
        if kind in ("rollout_kill", "rollout_stop", "learner_kill"):
            prefix = LEARNER_ACTOR if kind == "learner_kill" else ROLLOUT_ACTOR
            found = job_processes(self.tag, prefix=prefix)
            if not found:
                raise RuntimeError(f"no {prefix} process to {kind}")
            victim = self.rng.choice(found)
            before = {f.pid for f in found}
            self.t_signal = time.monotonic()
            if kind == "rollout_stop":
                kill(victim, signal.SIGSTOP)
                return {"pid": victim.pid}, lambda: True
            kill(victim)
            return {"pid": victim.pid}, lambda: any(f.pid not in before for f in job_processes(self.tag, prefix=prefix))
        if kind == "redis_restart":
            sig = self.rng.choice([signal.SIGTERM, signal.SIGKILL])
            self.t_signal = time.monotonic()
            self.redis.kill(sig)
            self.redis.start()
            return {"signal": sig.name}, lambda: True
        if kind == "grader_kill":
            found = job_processes(self.tag, contains=GRADER)
            if not found:
                raise RuntimeError("no grader process")
            victim = self.rng.choice(found)
            self.t_signal = time.monotonic()
            kill(victim)
            return {"pid": victim.pid}, lambda: len(job_processes(self.tag, contains=GRADER)) >= len(found)
        if kind == "verifier_kill":
            service = [f for f in job_processes(self.tag, contains=VERIFIER) if GRADER not in f.cmdline]
            leader = min(service, key=lambda f: f.pid)
            port = verifier_port(leader)
            self.t_signal = time.monotonic()
            os.killpg(leader.pid, signal.SIGKILL)
            return {"pid": leader.pid, "port": port}, lambda: not alive(leader) and verifier_back(port)
        raise ValueError(kind)

    def one_fault(self, step: int, kind: str, job: subprocess.Popen) -> dict:
        self.remember()
        deadline = time.monotonic() + self.patience_s()
        detail, back = self.inject(kind)
        t0 = self.t_signal  # recovery is timed from the signal, not from the process-table walk
        rows = read_rows(self.run)  # read after the fault landed: only later rows count as recovery
        rows_before = len(rows)
        log(f"step {step}: {kind} {detail}")
        # Finding the victim walks the process table: the job may be a step or two past `step` by then.
        record = {"step": step, "kind": kind, "after_step": rows[-1]["trainer/step"] if rows else 0, **detail}
        hold_until = t0 + self.reclaim_s if kind == "rollout_stop" else t0
        back_s = next_row_s = None
        while time.monotonic() < deadline and job.poll() is None:
            now = time.monotonic()
            rows = len(read_rows(self.run))
            if next_row_s is None and rows > rows_before:
                next_row_s = now - t0
            if back_s is None and back():
                back_s = now - t0
            if kind == "rollout_stop" and now >= hold_until and next_row_s is not None:
                signal_pid(detail["pid"], signal.SIGCONT)  # the others carried the job on
                record["stopped_s"] = round(now - t0, 2)
                break
            if next_row_s is not None and back_s is not None and kind != "rollout_stop":
                break
            time.sleep(0.2)
        else:
            if kind == "rollout_stop":
                signal_pid(detail["pid"], signal.SIGCONT)
        record.update(recovery_s=None if next_row_s is None else round(next_row_s, 2),
                      back_s=None if back_s is None else round(back_s, 2))
        record["stalled"] = next_row_s is None and job.poll() is None
        self.remember()
        return record


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "max": round(max(values), 2)} if values else {}


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--faults", type=int, default=10)
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--reclaim-idle-ms", default="auto", help="auto (measured) or milliseconds")
    p.add_argument("--out", default=None, help="bench folder (default runs/chaos-<time>)")
    args = p.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    if unknown := set(kinds) - set(KINDS):
        p.error(f"unknown kinds {sorted(unknown)}")
    schedule = make_schedule(args.steps, args.faults, kinds, args.seed)
    out = Path(args.out or REPO / "runs" / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=False)
    tag, started = new_tag(), time.monotonic()
    env = tagged_env(tag)
    report: dict = {"command": " ".join(["bench/chaos.py"] + (argv if argv is not None else sys.argv[1:])),
                    "machine": machine(), "schedule": schedule}

    reclaim_ms, extra = None, {}
    if args.reclaim_idle_ms != "auto":
        reclaim_ms = int(args.reclaim_idle_ms)
    elif RECLAIM_KINDS & set(kinds):
        reclaim_ms, extra = calibrate(out, env, args.workers)
    kills = sum(kind in ("rollout_kill", "learner_kill") for _, kind in schedule)
    max_restarts = kills + 2  # the budget is shared by learner restarts and replaced workers
    sets = [f"rollout.workers={args.workers}", "trainer.save_every=1", f"trainer.max_restarts={max_restarts}",
            f"trainer.seed={args.seed}"] + ([f"rollout.reclaim_idle_ms={reclaim_ms}"] if reclaim_ms else [])
    redis = BenchRedis(out / "run" / "redis", env, out / "redis.log")
    redis.start()
    sets.append(f"infra.redis_url={redis.url}")
    report["config"] = {"steps": args.steps, "workers": args.workers, "save_every": 1, "max_restarts": max_restarts,
                        "reclaim_idle_ms": reclaim_ms, "seed": args.seed, **extra}
    chaos = Chaos(args, out, tag, redis, reclaim_ms)
    job_log = open(out / "job.log", "wb")
    job = subprocess.Popen(train_argv(chaos.run, args.steps, sets), cwd=REPO, env=env, stdout=job_log,
                           stderr=subprocess.STDOUT)
    log(f"job pid {job.pid}, run {chaos.run}, schedule {schedule}, reclaim {reclaim_ms} ms")
    try:
        launch = time.monotonic()
        while not read_rows(chaos.run) and job.poll() is None and time.monotonic() - launch < OUTER_TIMEOUT_S:
            time.sleep(0.5)
        chaos.first_row_s = time.monotonic() - launch
        for step, kind in schedule:
            while job.poll() is None:
                rows = read_rows(chaos.run)
                if rows and rows[-1]["trainer/step"] >= step:
                    break
                time.sleep(0.3)
            if job.poll() is not None:
                break
            try:
                record = chaos.one_fault(step, kind, job)
            except (RuntimeError, ValueError, OSError) as exc:  # nothing to hit: reported, the run goes on
                record = {"step": step, "kind": kind, "error": f"{type(exc).__name__}: {exc}", "stalled": False,
                          "recovery_s": None, "back_s": None}
            chaos.records.append(record)
            if record["stalled"]:
                log(f"{kind} did not recover within {chaos.patience_s():.0f} s; no further faults")
                break
        try:
            job.wait(timeout=chaos.patience_s() + args.steps * chaos.pace_s() * 3)
        except subprocess.TimeoutExpired:
            report["job_timed_out"] = True
            job.kill()
            job.wait()
        chaos.remember()
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        job_log.close()
        report["job_exit_code"] = job.returncode
        rows = read_rows(chaos.run)
        try:
            report["accounting"] = account(redis.url, chaos.run)
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the JSON says what is missing
            report["accounting"] = {"error": f"{type(exc).__name__}: {exc}"}
        redis.stop()
        left = survivors(tag, 10.0, known=list(chaos.known.values()), under=chaos.run)
        kill_tagged(tag, known=list(chaos.known.values()), under=chaos.run)
    report["steps"] = check_steps(rows, args.steps) if rows else {}
    report["faults_injected"] = dict(Counter(r["kind"] for r in chaos.records if "error" not in r))
    report["recovery_s"] = {k: summary([r["recovery_s"] for r in chaos.records if r["kind"] == k and r["recovery_s"]
                                        is not None]) for k in report["faults_injected"]}
    report["back_s"] = {k: summary([r["back_s"] for r in chaos.records if r["kind"] == k and r["back_s"] is not None])
                        for k in report["faults_injected"]}
    report["faults"] = chaos.records
    report["orphans"] = [str(f) for f in left]
    with open(out / "export_check.log", "wb") as f:
        report["final_export_generates"] = subprocess.run(
            [sys.executable, str(REPO / "bench" / "chaos_support.py"), "--check-export", str(chaos.run / "final")],
            cwd=REPO, stdout=f, stderr=subprocess.STDOUT).returncode == 0
    acct, steps = report["accounting"], report["steps"]
    report["wall_s"] = round(time.monotonic() - started, 1)
    report["ok"] = bool(report["job_exit_code"] == 0 and acct.get("groups_lost") == 0
                        and acct.get("groups_applied_twice") == 0 and steps.get("steps_contiguous")
                        and steps.get("weight_versions_increasing") and report["final_export_generates"]
                        and not left and sum(report["faults_injected"].values()) == len(schedule)
                        and not any(r["stalled"] for r in chaos.records))
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
