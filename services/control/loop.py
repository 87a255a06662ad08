"""The training loop: the one loop production runs and the tests drive, top to bottom.

    resume from the newest checkpoint (if any); republish the weights if the rollout side may hold others
    start the rollout workers
    until trainer.steps updates:
        honour cancel / resize requests
        keep (max_staleness + 1) batches of prompts in flight       (PromptSupply)
        pull a batch of scored groups                               (learner rank 0 reads; every rank gets it)
        update: advantages -> old log-probs -> loss -> optimizer steps (learner.engine)
        publish the new weights (version v+1) to the rollout side
        ACK the batch                                               (only now: a crash before redelivers it)
        log the step's metrics; evaluate pass@K every eval_every steps; checkpoint every save_every
    checkpoint, export the final model in Hugging Face format
    a learner rank dies anywhere in there: rebuild the group, resume from the newest checkpoint, go on
    (learner restarts + dead rollout workers replaced <= trainer.max_restarts, else the job fails)

The collaborators are plain objects with typed methods: a `learner` (learner.actor.LearnerGroup
for the Ray ranks, or a learner.learner.Learner in one process), a `rollout` pool
(services.control.rollout_pool.RolloutPool), the prompt supply, and the job's control channel.
services.control.controller builds them from the JobSpec and calls `train`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from learner.errors import LearnerLost

from services.control.breakdown import since_process_start, step_breakdown
from services.control.feeder import PromptSupply
from services.control.jobs import JobState
from services.control.jobspec import JobSpec
from services.control.metrics_log import MetricsLog
from services.data import Example, prompt_for
from services.evaluation.passk import pass_at_k_table
from services.wire.streams import QueueUnavailable

log = logging.getLogger("simko.loop")


class LearnerSide(Protocol):
    """learner.actor.LearnerGroup and learner.learner.Learner both satisfy this."""

    def resume(self) -> bool: ...
    def start(self) -> None: ...
    def pull_batch(self, idle_timeout_s: float | None = None) -> int | None: ...
    def consumed(self) -> int: ...
    def update(self) -> dict: ...
    def publish(self) -> float: ...
    def ack(self) -> None: ...
    def save_checkpoint(self) -> str: ...
    def export(self, out_dir: str) -> str | None: ...
    def state(self) -> dict: ...


class RolloutSide(Protocol):
    workers: list

    def resize(self, replicas: int) -> None: ...
    def metrics(self) -> dict[str, float]: ...
    def evaluate(self, prompts: list[str], golds: list[str], tasks: list[str], n: int) -> list[tuple[int, float]]: ...


class JobControl(Protocol):
    """Requests from outside the loop (the job store for API jobs; nothing for `simko train`)."""

    def cancel_requested(self) -> bool: ...
    def desired_workers(self) -> int | None: ...
    def report_step(self, step: int) -> None: ...


class NoControl:
    def cancel_requested(self) -> bool:
        return False

    def desired_workers(self) -> int | None:
        return None

    def report_step(self, step: int) -> None:
        pass


@dataclass
class Training:
    spec: JobSpec
    run_dir: Path
    learner: LearnerSide
    rollout: RolloutSide
    supply: PromptSupply
    metrics: MetricsLog
    control: JobControl
    eval_examples: list[Example] | None = None  # the first trainer.eval_problems of data.eval
    poll_s: float = 20.0  # how long one pull waits before the loop checks health / cancel
    startup: dict[str, float] = field(default_factory=dict)  # startup/* seconds so far (the controller's)
    # Builds a fresh learner group (the controller's: kill the old ranks, create new ones); None:
    # a lost learner fails the job.
    new_learner: Callable[[], LearnerSide] | None = None
    learner_restarts: int = 0
    rollout_replaced: float = 0.0  # the pool's count of replaced dead workers, as last seen
    # the rollout side's running totals at the previous step (kept across learner restarts, so the
    # first step after one is not charged with everything since the start)
    rollout_totals: dict[str, float] = field(default_factory=dict)


def train(t: Training) -> JobState:
    """Run the job's updates; returns SUCCEEDED or CANCELLED (raises on failure). A learner group
    that loses a rank is rebuilt from its newest checkpoint (t.new_learner), within the job's
    restart budget (trainer.max_restarts, shared with dead rollout workers' replacements)."""
    started = time.perf_counter()
    state = start_learner(t)
    t.startup["startup/resume_s"] = time.perf_counter() - started
    t.rollout.resize(t.spec.rollout.workers)
    while True:
        try:
            return run_steps(t, state)
        except LearnerLost as exc:
            state = restart_learner(t, exc)


def start_learner(t: Training) -> dict:
    """Resume from the newest checkpoint (if any), republish if needed; the data cursor follows."""
    t.learner.resume()
    t.learner.start()
    state = t.learner.state()
    t.supply.feeder.fed = trained_groups(state)  # re-feed what was not trained yet
    return state


def restart_learner(t: Training, exc: LearnerLost) -> dict:
    """The whole group again from its newest checkpoint: the updates since are redone from the
    re-fed prompts, the batch in flight stays un-ACKed in the stream and is redelivered (the
    restored applied-group window drops what the checkpoint already holds)."""
    if t.new_learner is None:
        raise exc
    t.learner_restarts += 1
    check_restart_budget(t, t.rollout_replaced)
    log.error("learner lost (%s); restart %d of at most %d from the newest checkpoint", exc,
              t.learner_restarts, t.spec.trainer.max_restarts)
    t.learner = t.new_learner()
    return start_learner(t)


def check_restart_budget(t: Training, rollout_replaced: float) -> None:
    """Raise once learner restarts plus rollout worker replacements exceed trainer.max_restarts."""
    t.rollout_replaced = rollout_replaced
    spent = t.learner_restarts + int(rollout_replaced)
    if spent > t.spec.trainer.max_restarts:
        raise RuntimeError(f"restart budget spent: {t.learner_restarts} learner restarts + {int(rollout_replaced)} "
                           f"rollout worker replacements > trainer.max_restarts={t.spec.trainer.max_restarts}")


def run_steps(t: Training, state: dict) -> JobState:
    spec, rollout = t.spec, t.rollout
    while state["step"] < spec.trainer.steps:
        if t.control.cancel_requested():
            return JobState.CANCELLED
        desired = t.control.desired_workers()
        if desired is not None and desired != len(rollout.workers):
            rollout.resize(desired)

        started = time.perf_counter()
        t.supply.top_up(trained_groups(state), version=state["weight_version"])
        if not wait_for_batch(t, trained=trained_groups(state), version=state["weight_version"]):
            return JobState.CANCELLED
        waited = time.perf_counter() - started
        metrics = t.learner.update()
        if metrics["learner/optimizer_steps"]:
            metrics["perf/publish_s"] = t.learner.publish()
        t.learner.ack()
        state = t.learner.state()

        current = rollout.metrics()
        check_restart_budget(t, current.get("rollout/workers_replaced", 0.0))
        metrics.update(current)
        metrics.update(t.supply.metrics())
        step_s = time.perf_counter() - started
        metrics.update({"trainer/step": state["step"], "perf/wait_for_batch_s": waited,
                        "perf/step_s": step_s, "time": time.time(), "trainer/learner_restarts": t.learner_restarts})
        metrics.update(step_breakdown(t.rollout_totals, current, step_s, waited))
        t.rollout_totals = current
        if t.startup:  # this process's start-up (the controller's parts, the loop's) with its first step
            metrics.update(t.startup)
            metrics["startup/first_step_s"] = since_process_start()
            t.startup = {}
        if spec.trainer.eval_every and state["step"] % spec.trainer.eval_every == 0 and t.eval_examples:
            metrics.update(evaluate(t, state["step"]))
        t.metrics.write(metrics)
        t.control.report_step(state["step"])
        if spec.trainer.save_every and state["step"] % spec.trainer.save_every == 0:
            t.learner.save_checkpoint()
    t.learner.save_checkpoint()
    if spec.trainer.export_final:
        t.learner.export(str(t.run_dir / "final"))
    return JobState.SUCCEEDED


def trained_groups(state: dict) -> int:
    """Groups the learner has consumed (its data cursor)."""
    return state["cursor"].get("groups_consumed", 0)


def wait_for_batch(t: Training, *, trained: int, version: int) -> bool:
    """learner.pull_batch() in slices of `poll_s`, so that while the learner waits for scored groups
    a dead rollout worker is replaced, lost prompts are re-fed and a cancel is seen. With DAPO's
    dynamic sampling the groups it filters out are replaced by new prompts (short slices: refilling
    is what the learner waits for). A Redis outage is waited out (the queue clients reconnect).
    False if cancelled; raises past the deadline."""
    deadline = time.monotonic() + t.spec.trainer.rollout_timeout_s
    refill = t.spec.algorithm.dynamic_sampling
    while True:
        try:
            if t.learner.pull_batch(idle_timeout_s=min(t.poll_s, 2.0) if refill else t.poll_s) is not None:
                return True
            if t.control.cancel_requested():
                return False
            # health check: replaces dead workers (their prompts are reclaimed), within the budget
            check_restart_budget(t, t.rollout.metrics().get("rollout/workers_replaced", 0.0))
            t.supply.recover_lost(trained, version)
            if refill:
                t.supply.top_up(t.learner.consumed(), version=version)
        except QueueUnavailable as exc:
            log.warning("Redis unavailable (%s); waiting for it", exc)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no scored groups for {t.spec.trainer.rollout_timeout_s:.0f}s "
                               f"(rollout workers: {len(t.rollout.workers)}); see {t.run_dir / 'logs'}")


def evaluate(t: Training, step: int) -> dict[str, float]:
    """pass@K on the held-out problems with the weights just published: n = trainer.eval_n samples
    per problem from a rollout worker, graded by the verifier. Returns `eval/` metrics."""
    examples, n = t.eval_examples, t.spec.trainer.eval_n
    started = time.perf_counter()
    # text prompts through data.prompt_template; chat prompts as messages (the model's chat template)
    prompts = [prompt_for(ex, t.spec.data.prompt_template) for ex in examples]
    counts = t.rollout.evaluate(prompts, [ex.answer for ex in examples], [ex.task for ex in examples], n)
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if k <= n]
    table = pass_at_k_table([(n, c) for c, _ in counts], ks)
    out = {f"eval/pass@{k}": value for k, value in table.items()}
    out.update({"eval/problems": float(len(examples)), "eval/n": float(n),
                "eval/response_len_mean": sum(tokens for _, tokens in counts) / len(counts),
                "perf/eval_s": time.perf_counter() - started})
    log.info("step %d: %s", step, ", ".join(f"pass@{k} {v:.3f}" for k, v in table.items()))
    return out

