"""Helpers of bench/e2e_vs_trl.py: the TRL virtual environment, the TRL side's settings (derived
from our JobSpec), running one side as a timed subprocess, and summarising a side's step rows.
Nothing here runs on import."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRL_REQUIREMENTS = ["torch==2.13.0+cpu", "trl==1.16.*", "transformers>=5.16,<5.20",
                    # what `verifier.verify` imports (math through its bounded grader process)
                    "math-verify==0.9.0", "psutil", "pydantic>=2", "pydantic-settings"]


def log(msg: str) -> None:
    print(f"[e2e_vs_trl] {msg}", file=sys.stderr, flush=True)


def ensure_trl_venv(venv: Path) -> tuple[Path, dict]:
    """The venv's python and its versions; created on first use (torch's CPU wheel first, from
    /opt/wheels when it lies there, so pip never pulls a CUDA torch)."""
    python, marker = venv / "bin" / "python", venv / ".simko-bench-ready.json"
    if marker.exists():
        return python, json.loads(marker.read_text())
    log(f"creating {venv} (first use; about a minute)")
    subprocess.run(["python3.11", "-m", "venv", "--clear", str(venv)], check=True)
    wheels = sorted(Path("/opt/wheels").glob("torch-2.13.0+cpu-*.whl"))
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + [str(wheels[0]) if wheels else "torch==2.13.0+cpu"], check=True, stdout=sys.stderr)
    subprocess.run(pip + TRL_REQUIREMENTS, check=True, stdout=sys.stderr)
    probe = ("import json, torch, transformers, trl, accelerate, datasets; print(json.dumps({m.__name__: m.__version__ "
             "for m in (torch, transformers, trl, accelerate, datasets)}))")
    versions = json.loads(subprocess.run([str(python), "-c", probe], check=True, capture_output=True,
                                         text=True).stdout)
    marker.write_text(json.dumps(versions))
    return python, versions


def trl_settings(spec, out: Path, steps: int, threads: int) -> dict:
    """The TRL side's settings from our JobSpec, and the prompts file in our feeder's order (the
    same prompts, rendered with the same template, in the same order as our run sees them)."""
    from services.data import epoch_order, load_dataset, render_prompt
    from services.models import resolve_model_path

    examples = load_dataset(spec.data.train, format=spec.data.format, default_task=spec.data.default_task,
                            task_map=spec.data.task_map)
    batch = spec.learner.batch_prompts
    rows, epoch = [], 0
    while len(rows) < steps * batch:
        for i in epoch_order(len(examples), epoch, spec.trainer.seed, spec.data.shuffle):
            ex = examples[i]
            rows.append({"prompt": render_prompt(spec.data.prompt_template, ex.prompt), "gold": ex.answer,
                         "task": ex.task})
        epoch += 1
    out.mkdir(parents=True, exist_ok=True)
    prompts = out / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows[:steps * batch]))
    hp, lr = spec.algorithm.loss_hp, spec.learner
    return {"repo": str(REPO), "model": resolve_model_path(spec.model.path), "prompts_file": str(prompts),
            "steps": steps, "seed": spec.trainer.seed, "n": spec.rollout.n, "batch_prompts": batch,
            "max_tokens": spec.rollout.max_tokens, "temperature": spec.rollout.temperature,
            "top_p": spec.rollout.top_p, "lr": lr.lr, "weight_decay": lr.weight_decay, "betas": list(lr.betas),
            "adam_eps": lr.adam_eps, "grad_clip": lr.grad_clip, "ppo_epochs": lr.ppo_epochs,
            "clip_low": hp.clip_low, "clip_high": hp.clip_high, "extraction": spec.verifier.extraction,
            "torch_threads": threads}


def differences(spec) -> list[str]:
    """Settings the TRL side cannot (or does not) match."""
    a, learner = spec.algorithm, spec.learner
    out = []
    if a.loss != "grpo":
        out.append(f"policy loss: ours {a.loss!r} {a.loss_hparams} (configs/tiny.yaml), TRL GRPO's clipped surrogate "
                   "(the bench's default --loss grpo runs GRPO on both sides)")
    if a.advantage != "grpo":
        out.append(f"advantage: ours {a.advantage!r}, TRL group-normalised (GRPO)")
    out.append(f"advantage eps: ours (R-mean)/(std+{a.advantage_hp.eps}), TRL /(std+1e-4)")
    if getattr(a.loss_hp, "aggregation", "token-mean") != "token-mean":
        out.append(f"aggregation: ours {a.loss_hp.aggregation}, TRL loss_type=dapo (token mean over the batch)")
    if learner.mini_batch_prompts != learner.batch_prompts:
        out.append("ours takes batch_prompts/mini_batch_prompts optimizer steps per update, TRL one")
    if learner.warmup_steps:
        out.append("ours warms the lr up; TRL runs a constant lr")
    out += ["old log-probs: TRL with num_iterations=1 reuses the detached current log-probs (no extra forward); "
            "ours' pass, if the learner runs one, is perf/old_logprobs_s in the breakdown",
            "generation: ours vLLM-CPU, log-probs per token: "
            f"{'none' if spec.rollout.top_logprobs is None else f'sampled + {spec.rollout.top_logprobs} candidates'}; "
            "TRL transformers generate (fp32, none)",
            "sampling RNG differs (same prompts and order, different samples)",
            "max_staleness > 0 trains off-policy by up to that many versions; TRL is on-policy",
            "TRL tokenises prompts without special tokens, as our engine; no prompt truncation on either side "
            f"(ours max_model_len {spec.rollout.max_model_len})"]
    return out


MARKER = "SIMKO_BENCH_SIDE"  # set in a side's environment: its daemons are found even if re-parented


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # the process ended between listing and reading
        return b""


def side_pids(root: int, token: str) -> set[int]:
    """The root's descendants (by /proc/PID/stat's ppid) plus every process whose environment
    carries MARKER=token (a child that re-parented itself to init is still the side's)."""
    parents, tagged, tag = {}, set(), f"{MARKER}={token}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid, stat = int(entry.name), _read(f"/proc/{entry.name}/stat")
        if stat:
            parents[pid] = int(stat.rsplit(b")", 1)[1].split()[1])  # field 4; the name may hold spaces
        if tag in _read(f"/proc/{entry.name}/environ").split(b"\0"):
            tagged.add(pid)
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return {pid for pid in tree | tagged if pid in parents}


def memory_kib(pids: set[int]) -> tuple[int, int]:
    """(PSS, RSS) summed over pids in KiB, from /proc/PID/smaps_rollup (PSS splits shared pages
    among their users, so the sum over a process tree does not count a shared library twice)."""
    pss = rss = 0
    for pid in pids:
        for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
            if line.startswith(b"Pss:"):
                pss += int(line.split()[1])
            elif line.startswith(b"Rss:"):
                rss += int(line.split()[1])
    return pss, rss


def rss_kib(pids: set[int]) -> int:
    """RSS summed over pids in KiB, from /proc/PID/statm: a counter read, not a page-table walk."""
    pages = 0
    for pid in pids:
        fields = _read(f"/proc/{pid}/statm").split()
        pages += int(fields[1]) if len(fields) > 1 else 0
    return pages * (os.sysconf("SC_PAGE_SIZE") >> 10)


class PeakMemory(threading.Thread):
    """Samples a side's process tree every `interval` seconds until stop(); keeps the peaks.

    smaps_rollup walks every mapping's page tables: ~70 ms of kernel CPU per sample over our
    side's 15 processes on 2 cores, i.e. the benchmark took ~7% of a core from the side it
    measured (and far less from TRL's one process). So each sample reads the cheap RSS counters and
    reads PSS only when the tree's RSS is PSS_MARGIN over its value at the last PSS read (a new
    high by 1%: RSS creeps up by pages all run long, and "any new high" still walked every other
    second). The PSS peak is thus the PSS at the RSS highs, low by at most ~1% unless sharing
    changes without RSS growing. sampler_cpu_s is this thread's own CPU time, reported so
    the cost stays visible."""

    PSS_MARGIN = 1.01

    def __init__(self, root: int, token: str, interval: float = 1.0):
        super().__init__(daemon=True)
        self.root, self.token, self.interval = root, token, interval
        self.peak = {"pss_mib": 0.0, "rss_mib": 0.0, "processes": 0, "samples": 0, "pss_samples": 0,
                     "sampler_cpu_s": 0.0}
        self._done = threading.Event()
        self._rss_at_pss = 0.0  # the tree's RSS when PSS was last read

    def run(self) -> None:
        while True:
            started = time.thread_time()
            pids = side_pids(self.root, self.token)
            p = self.peak
            rss = rss_kib(pids) / 1024
            if rss >= self._rss_at_pss * self.PSS_MARGIN and pids:
                pss, _ = memory_kib(pids)
                p["pss_mib"], p["pss_samples"] = max(p["pss_mib"], pss / 1024), p["pss_samples"] + 1
                self._rss_at_pss = rss
            p["rss_mib"] = max(p["rss_mib"], rss)
            p["processes"], p["samples"] = max(p["processes"], len(pids)), p["samples"] + 1
            p["sampler_cpu_s"] += time.thread_time() - started
            if self._done.wait(self.interval):
                return

    def stop(self) -> dict:
        self._done.set()
        self.join()
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in self.peak.items()}


def run_side(cmd: list[str], log_file: Path, env: dict) -> tuple[float, float, dict]:
    """Run one side to completion (output to log_file); its wall-clock start and end (time.time())
    and the peak memory of its process tree."""
    log(f"running: {' '.join(cmd)}  (log: {log_file})")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    with log_file.open("w") as f:
        started = time.time()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**env, MARKER: token}, cwd=REPO)
        sampler = PeakMemory(proc.pid, token)
        sampler.start()
        rc = proc.wait()
        ended = time.time()
        peak = sampler.stop()
    if rc != 0:
        tail = log_file.read_text()[-3000:]
        raise SystemExit(f"side failed (exit {rc}): {' '.join(cmd)}\n{tail}")
    return started, ended, peak


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(rows: list[dict], started: float, ended: float, *, skip: int, last: int, reward_key: str,
              breakdown_keys=None) -> dict:
    """Wall times from the rows' wall-clock 'time' stamps: start-up included, to the first step, the
    steady median of the step intervals after step `skip` (steps skip..N), the reward of the last
    `last` steps, the median over the steady steps of every breakdown key, and the startup/* keys
    (logged once; their first value)."""
    if len(rows) <= max(skip, 1):
        raise SystemExit(f"{len(rows)} step rows: need more than --skip {skip} (and at least 2)")
    times = [r["time"] for r in rows]
    first = max(skip, 1)
    steady = [b - a for a, b in zip(times[first - 1:], times[first:])]  # rows[i] is step i+1
    median = statistics.median(steady)
    steady_rows = rows[first:]
    keys = sorted({k for r in steady_rows for k, v in r.items() if isinstance(v, (int, float)) and
                   not k.startswith("startup/") and (breakdown_keys(k) if breakdown_keys else False)})
    startup: dict[str, float] = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith("startup/") and isinstance(v, (int, float)):
                startup.setdefault(k, v)
    out = {"steps": len(rows), "wall_s": times[-1] - started, "process_s": ended - started,
           "first_step_s": times[0] - started, "steady_s_per_step": median, "steady_steps": len(steady),
           "steady_s_per_step_min_max": [min(steady), max(steady)], "steps_per_min": 60.0 / median,
           "reward_last": statistics.mean(r[reward_key] for r in rows[-last:]),
           "breakdown_median": {k: statistics.median(r[k] for r in steady_rows if k in r) for k in keys}}
    if startup:
        out["startup"] = startup
    return out


def our_breakdown_key(key: str) -> bool:
    """perf/ keys, timings in any namespace, response lengths and the staleness actually seen; not
    the rollout's running totals (*_total: their per-step differences are perf/step_*)."""
    return ((key.startswith("perf/") or key.endswith("_s") or key.startswith("rollout/staleness")
             or "response_len" in key) and not key.endswith("_total"))


def trl_breakdown_key(key: str) -> bool:
    return key.endswith("_s") or key.startswith("completions/mean_length") or key == "step_time"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown"


def env_without(*names: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env
