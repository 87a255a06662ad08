"""The job controller: one per job, the Ray driver that runs a training job end to end.

    start the rollout pool and the learner  (Ray actors; the weight registry is the job's)
    for each step:
        honour cancel / resize requests
        keep (max_staleness + 1) batches of prompts in flight   (min_version = learner version)
        learner.train_step(): pull a batch of scored groups -> update -> publish weights -> ACK
        log metrics (metrics.jsonl + the job store); checkpoint on cadence
    checkpoint, export the final model in Hugging Face format, stop everything

`python -m services.controller --job-id ID --redis-url URL` runs a job the API stored;
`run_job(spec, ...)` is what `simko train` calls in-process.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ray

from learner.actor import LearnerGroup
from learner.checkpoint import latest_checkpoint
from learner.config import LearnerConfig
from rollout.config import RolloutConfig
from rollout.weight_registry import kill_registry
from services.data import load_dataset
from services.feeder import PromptFeeder
from services.jobs import JobState, JobStore
from services.jobspec import JobSpec
from services.local_stack import LocalStack, ensure_ray_auth_token
from services.models import resolve_model_path
from services.queues import (PROMPTS_GROUP, ROLLOUTS_GROUP, QueueConfig, QueueUnavailable, RedisStream,
                             prompts_stream, rollouts_stream)
from services.rollout_pool import RolloutPool

log = logging.getLogger("simko.controller")


@dataclass
class JobContext:
    job_id: str
    spec: JobSpec
    run_dir: Path
    redis_url: str
    verifier_url: str
    store: JobStore | None = None  # job state for the API; None for a bare `simko train`
    on_step: Callable[[dict], None] | None = None  # progress display


def rollout_config(ctx: JobContext) -> RolloutConfig:
    r = ctx.spec.rollout
    return RolloutConfig(
        job_id=ctx.job_id, model=ctx.spec.model.path, redis_url=ctx.redis_url, verifier_url=ctx.verifier_url,
        n=r.n, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_tokens, stop=tuple(r.stop),
        top_logprobs=r.top_logprobs, chat_template=r.chat_template, max_model_len=r.max_model_len, dtype=r.dtype,
        tensor_parallel_size=r.tensor_parallel_size, gpu_memory_utilization=r.gpu_memory_utilization,
        kv_cache_bytes=r.kv_cache_bytes, seed=ctx.spec.trainer.seed, batch_groups=r.batch_groups,
        max_staleness=ctx.spec.trainer.max_staleness, verifier_timeout_s=ctx.spec.verifier.timeout_s,
        verifier_deadline_s=ctx.spec.verifier.deadline_s)


def learner_config(ctx: JobContext) -> dict:
    s, a = ctx.spec, ctx.spec.algorithm
    section = s.learner.model_dump(exclude={"world_size", "num_cpus", "num_gpus", "resources"})
    return dict(section, model_path=s.model.path, loss=a.loss, loss_hparams=a.loss_hparams,
                advantage=a.advantage, advantage_hparams=a.advantage_hparams,
                dynamic_sampling=a.dynamic_sampling, temperature=s.rollout.temperature, seed=s.trainer.seed,
                dist_backend="nccl" if s.learner.num_gpus > 0 else "gloo",
                checkpoint_dir=str(ctx.run_dir / "checkpoints"))


class MetricsLog:
    """metrics.jsonl in the run directory, mirrored to the job store for the API."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self.path = ctx.run_dir / "metrics.jsonl"

    def write(self, metrics: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self.ctx.store is not None:
            self.ctx.store.append_metrics(self.ctx.job_id, metrics)
        if self.ctx.on_step is not None:
            self.ctx.on_step(metrics)


class PromptSupply:
    """Keeps (max_staleness + 1) batches of prompts in flight on the prompt stream, and re-feeds
    in-flight groups that vanished (a Redis restart without persistence): their ids are stable and
    the learner de-duplicates, so re-feeding can never train a group twice."""

    def __init__(self, feeder: PromptFeeder, prompts: RedisStream, rollouts: RedisStream, spec: JobSpec):
        self.feeder, self.prompts, self.rollouts = feeder, prompts, rollouts
        self.window = (spec.trainer.max_staleness + 1) * spec.learner.batch_prompts
        self.refed = 0

    def top_up(self, trained: int, version: int) -> None:
        wanted = trained + self.window - self.feeder.fed
        if wanted > 0:
            self.prompts.publish_many(self.feeder.next_groups(wanted, min_version=version))
            self.feeder.advance(wanted)

    def recover_lost(self, trained: int) -> None:
        idle = self.prompts.backlog(PROMPTS_GROUP) == 0 and self.rollouts.backlog(ROLLOUTS_GROUP) == 0
        if idle and self.feeder.fed > trained:
            log.warning("%d in-flight prompt groups vanished from Redis; re-feeding them", self.feeder.fed - trained)
            self.refed += self.feeder.fed - trained
            self.feeder.fed = trained

    def metrics(self) -> dict:
        return {"queue/prompts_backlog": self.prompts.backlog(PROMPTS_GROUP),
                "queue/rollouts_backlog": self.rollouts.backlog(ROLLOUTS_GROUP),
                "queue/groups_refed": self.refed, "trainer/epoch": self.feeder.epoch}


def train(ctx: JobContext) -> JobState:
    spec = ctx.spec
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    (ctx.run_dir / "jobspec.json").write_text(spec.model_dump_json(indent=2))
    examples = load_dataset(spec.data.train, format=spec.data.format, default_task=spec.data.default_task)
    queue = QueueConfig(url=ctx.redis_url)
    prompts = RedisStream(queue, prompts_stream(ctx.job_id))
    rollouts = RedisStream(queue, rollouts_stream(ctx.job_id))
    metrics_log = MetricsLog(ctx)

    learner = LearnerGroup.create(LearnerConfig(**learner_config(ctx)), world_size=spec.learner.world_size,
                                  job_id=ctx.job_id, num_cpus=spec.learner.num_cpus,
                                  num_gpus=spec.learner.num_gpus, resources=spec.learner.resources)
    checkpoints = ctx.run_dir / "checkpoints"
    if latest_checkpoint(checkpoints):
        restored = learner.call("load_checkpoint", str(checkpoints))
        log.info("resumed from checkpoint at step %d", restored["step"])
    state = learner.call("open_stream", ctx.redis_url, ctx.job_id)
    feeder = PromptFeeder(job_id=ctx.job_id, examples=examples, template=spec.data.prompt_template,
                          n=spec.rollout.n, seed=spec.trainer.seed, shuffle=spec.data.shuffle,
                          fed=_trained(state))
    supply = PromptSupply(feeder, prompts, rollouts, spec)
    pool = RolloutPool(rollout_config(ctx), num_cpus=spec.rollout.num_cpus, num_gpus=spec.rollout.num_gpus,
                       resources=spec.rollout.resources)
    outcome = JobState.SUCCEEDED
    try:
        pool.resize(spec.rollout.workers)
        while state["step"] < spec.trainer.steps:
            if ctx.store is not None and ctx.store.cancel_requested(ctx.job_id):
                outcome = JobState.CANCELLED
                break
            desired = ctx.store.desired_workers(ctx.job_id) if ctx.store is not None else None
            if desired is not None and desired != len(pool.workers):
                pool.resize(desired)

            started = time.perf_counter()
            supply.top_up(_trained(state), version=state["weight_version"])
            metrics = wait_for_update(ctx, learner, pool, on_idle=lambda: supply.recover_lost(_trained(state)))
            if metrics is None:
                outcome = JobState.CANCELLED
                break
            state = learner.call("state")

            metrics.update(pool.metrics())
            metrics.update(supply.metrics())
            metrics.update({"trainer/step": state["step"], "perf/step_s": time.perf_counter() - started,
                            "time": time.time()})
            metrics_log.write(metrics)
            if ctx.store is not None:
                ctx.store.update(ctx.job_id, step=state["step"])
            if spec.trainer.save_every and state["step"] % spec.trainer.save_every == 0:
                learner.call("save_checkpoint")
        if outcome is JobState.SUCCEEDED:
            learner.call("save_checkpoint")
            if spec.trainer.export_final:
                learner.call("export", str(ctx.run_dir / "final"))
    finally:
        pool.stop_all()
        learner.kill()
        kill_registry(ctx.job_id)
        prompts.close()
        rollouts.close()
    return outcome


def _trained(state: dict) -> int:
    """Groups the learner has consumed (its data cursor)."""
    return state["cursor"].get("groups_consumed", 0)


def wait_for_update(ctx: JobContext, learner: LearnerGroup, pool: RolloutPool, *, on_idle: Callable[[], None],
                    poll_s: float = 20.0):
    """learner.train_step() in slices of `poll_s`, so that while the learner waits for scored groups
    a dead rollout worker is replaced, lost prompts are re-fed and a cancel is seen. A Redis outage
    is waited out (the queue clients reconnect). None if cancelled; raises past the deadline."""
    deadline = time.monotonic() + ctx.spec.trainer.rollout_timeout_s
    while True:
        try:
            metrics = learner.call("train_step", idle_timeout_s=poll_s)
            if metrics is not None:
                return metrics
            if ctx.store is not None and ctx.store.cancel_requested(ctx.job_id):
                return None
            pool.metrics()  # health check: replaces dead workers (their prompts are reclaimed)
            on_idle()
        except QueueUnavailable as exc:
            log.warning("Redis unavailable (%s); waiting for it", exc)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no scored groups for {ctx.spec.trainer.rollout_timeout_s:.0f}s "
                               f"(rollout workers: {len(pool.workers)}); see {ctx.run_dir / 'logs'}")


def init_ray(address: str | None, spec: JobSpec) -> None:
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return
    ensure_ray_auth_token()
    # A private local Ray; enough logical CPUs for every actor even on a 2-core machine (the tiny
    # CPU defaults oversubscribe on purpose: the actors mostly wait on each other).
    needed = spec.learner.world_size * spec.learner.num_cpus + spec.rollout.workers * spec.rollout.num_cpus + 1
    ray.init(address="local", num_cpus=max(int(needed + 0.999), os.cpu_count() or 1), include_dashboard=False,
             log_to_driver=False)


def run_job(spec: JobSpec, *, job_id: str, run_dir: Path, ray_address: str | None = None,
            store: JobStore | None = None, on_step: Callable[[dict], None] | None = None) -> JobState:
    """Start what the spec does not point at (redis, verifier, Ray), train, stop it all."""
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"path": resolve_model_path(spec.model.path)})})
    with LocalStack(run_dir, redis_url=spec.infra.redis_url, verifier_url=spec.verifier.url,
                    verifier_workers=spec.verifier.workers) as stack:
        init_ray(ray_address or spec.infra.ray_address, spec)
        try:
            ctx = JobContext(job_id=job_id, spec=spec, run_dir=run_dir, redis_url=stack.redis_url,
                             verifier_url=stack.verifier_url, store=store, on_step=on_step)
            return train(ctx)
        finally:
            ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Run a job stored by the API (its spec and run directory come from the job store)."""
    parser = argparse.ArgumentParser(prog="python -m services.controller")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--ray-address", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = JobStore(args.redis_url)
    record = store.get(args.job_id)
    spec = JobSpec.parse(record.spec)
    # Job streams live in the API's Redis unless the spec names another.
    if spec.infra.redis_url is None:
        spec = spec.model_copy(update={"infra": spec.infra.model_copy(update={"redis_url": args.redis_url})})
    store.update(args.job_id, state=JobState.RUNNING, controller_pid=os.getpid())
    try:
        outcome = run_job(spec, job_id=args.job_id, run_dir=Path(record.run_dir), ray_address=args.ray_address,
                          store=store)
    except BaseException as exc:
        store.update(args.job_id, state=JobState.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    store.update(args.job_id, state=outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
