"""Where a step's time goes: per-step deltas of the rollout workers' cumulative timers, next to the
learner's own timings, and the start-up breakdown of the first step (pure functions).

The rollout side reports running totals (rollout.metrics: perf/rollout_*_s_total, a mean over the
workers); a step's share is the difference between two snapshots. With max_staleness > 0 or the
worker's pipeline the two sides overlap, so the parts of a step do not add up to perf/step_s: the
idle figures say how much of the step each side waited.
"""
from __future__ import annotations

import time

import psutil

# cumulative rollout timer -> the per-step metric it becomes
ROLLOUT_TIMERS = {
    "perf/rollout_generate_s_total": "perf/step_generate_s",
    "perf/rollout_verify_s_total": "perf/step_verify_s",
    "perf/rollout_weight_load_s_total": "perf/step_weight_load_s",
    "perf/rollout_busy_s_total": "perf/step_rollout_busy_s",
}


def step_breakdown(previous: dict[str, float], current: dict[str, float], step_s: float,
                   wait_for_batch_s: float) -> dict[str, float]:
    """The step's rollout time per part (deltas of the totals; a replaced worker's totals restart
    at 0, so a negative delta counts from 0), the rollout side's idle time (the step minus its busy
    time) and the learner's (waiting for the batch)."""
    out: dict[str, float] = {}
    for total, per_step in ROLLOUT_TIMERS.items():
        if total in current:
            delta = current[total] - previous.get(total, 0.0)
            out[per_step] = current[total] if delta < 0 else delta
    if "perf/step_rollout_busy_s" in out:
        out["perf/rollout_idle_s"] = max(0.0, step_s - out["perf/step_rollout_busy_s"])
    out["perf/learner_idle_s"] = wait_for_batch_s
    return out


def since_process_start() -> float:
    """Seconds since this process was started (the command's start, for `simko train`)."""
    return time.time() - psutil.Process().create_time()
