"""The job controller: one per job, the Ray driver that wires a job's components and runs its loop.

    start what the spec does not point at (redis-server, the verifier service, a local Ray)
    build each component from its own JobSpec sections:
        LearnerGroup   (learner.world_size Ray rank actors; LearnerJob)
        RolloutPool    (rollout worker actors; RolloutJob)
        PromptSupply   (the dataset as PromptGroups on the job's prompt stream)
    services.control.loop.train(...)      the training loop
    stop everything it started (workers, learner ranks, the weight registry, the local stack)

`python -m services.control.controller --job-id ID --redis-url URL` runs a job the API stored;
`run_job(spec, ...)` is what `simko train` and `simko demo` call in-process.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ray

from learner.actor import LearnerGroup
from learner.checkpoint import latest_checkpoint
from learner.config import LearnerJob
from rollout.config import RolloutJob
from services.control.feeder import PromptFeeder, PromptSupply, load_job_data
from services.control.jobs import TERMINAL, JobState, JobStore
from services.control.jobspec import JobSpec
from services.control.local_stack import LocalStack, ensure_ray_auth_token
from services.control.loop import NoControl, Training, train
from services.control.metrics_log import MetricsLog
from services.control.placement import learner_threads
from services.control.rollout_pool import RolloutPool
from services.models import resolve_model_path
from services.wire.lifetime import start_reaper
from services.wire.streams import QueueConfig, RedisStream, prompts_stream, rollouts_stream
from services.wire.weight_registry import get_or_create_registry, kill_registry

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
    startup: dict[str, float] = field(default_factory=dict)  # startup/* seconds, logged with step 1
    local_ray: bool = False  # the job's own Ray on this machine: every actor shares its cores


@contextmanager
def timed(into: dict[str, float], key: str):
    """Adds the block's wall time to into[key] (the start-up breakdown)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.perf_counter() - started


def learner_job(ctx: JobContext) -> LearnerJob:
    s = ctx.spec
    return LearnerJob(model_path=s.model.path, temperature=s.rollout.temperature,
                      max_response_tokens=s.rollout.max_tokens, seed=s.trainer.seed, learner=s.learner,
                      algorithm=s.algorithm, checkpoint_dir=str(ctx.run_dir / "checkpoints"), job_id=ctx.job_id,
                      weight_sync=s.rollout.weight_sync,
                      torch_threads=learner_threads(s, one_node_cores=(os.cpu_count() or 1) if ctx.local_ray else None))


def rollout_job(ctx: JobContext) -> RolloutJob:
    s = ctx.spec
    return RolloutJob(job_id=ctx.job_id, model_path=s.model.path, redis_url=ctx.redis_url,
                      verifier_url=ctx.verifier_url, max_staleness=s.trainer.max_staleness, seed=s.trainer.seed,
                      rollout=s.rollout, verifier=s.verifier)


class StoreControl:
    """The loop's control channel for a job the API stored: cancel flag, desired workers, progress."""

    def __init__(self, store: JobStore, job_id: str):
        self.store, self.job_id = store, job_id

    def cancel_requested(self) -> bool:
        return self.store.cancel_requested(self.job_id)

    def desired_workers(self) -> int | None:
        return self.store.desired_workers(self.job_id)

    def report_step(self, step: int) -> None:
        self.store.update(self.job_id, step=step)


def run_training(ctx: JobContext) -> JobState:
    spec = ctx.spec
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    (ctx.run_dir / "jobspec.json").write_text(spec.model_dump_json(indent=2))
    examples, eval_examples = load_job_data(spec.data, ctx.run_dir, eval_problems=spec.trainer.eval_problems
                                            if spec.trainer.eval_every else None)
    queue = QueueConfig(url=ctx.redis_url)
    prompts = RedisStream(queue, prompts_stream(ctx.job_id))
    rollouts = RedisStream(queue, rollouts_stream(ctx.job_id))
    feeder = PromptFeeder(job_id=ctx.job_id, examples=examples, template=spec.data.prompt_template,
                          n=spec.rollout.n, seed=spec.trainer.seed, shuffle=spec.data.shuffle)
    supply = PromptSupply(feeder, prompts, rollouts, batch_prompts=spec.learner.batch_prompts,
                          max_staleness=spec.trainer.max_staleness)
    mirror = (lambda m: ctx.store.append_metrics(ctx.job_id, m)) if ctx.store is not None else None
    get_or_create_registry(ctx.job_id, on_this_node=True)  # before any rank or worker asks for it
    pool = RolloutPool(rollout_job(ctx))
    if latest_checkpoint(ctx.run_dir / "checkpoints") is None:
        # Nothing to resume: the workers start from the model directory's weights, as the learner
        # does, so their vLLM engines (the slowest start-up) come up while the learner ranks build
        # theirs. On a resume they start after the learner has republished its restored weights.
        with timed(ctx.startup, "startup/rollout_spawn_s"):
            pool.resize(spec.rollout.workers)
    with timed(ctx.startup, "startup/learner_init_s"):
        learner = LearnerGroup.create(learner_job(ctx), redis_url=ctx.redis_url)

    def new_learner() -> LearnerGroup:  # after a rank died: the surviving ranks go too
        training.learner.kill()
        return LearnerGroup.create(learner_job(ctx), redis_url=ctx.redis_url)
    # metrics.jsonl + the trackers of trainer.loggers; closed (tracker runs finished) whatever happens.
    metrics = MetricsLog.for_job(ctx.run_dir, spec, job_id=ctx.job_id, mirror=mirror, on_step=ctx.on_step)
    training = Training(spec=spec, run_dir=ctx.run_dir, learner=learner, rollout=pool, supply=supply, metrics=metrics,
                        control=StoreControl(ctx.store, ctx.job_id) if ctx.store is not None else NoControl(),
                        eval_examples=eval_examples, startup=ctx.startup, new_learner=new_learner)
    succeeded = False
    try:
        outcome = train(training)
        succeeded = True
        return outcome
    finally:
        metrics.close(success=succeeded)
        pool.stop_all()
        training.learner.kill()
        kill_registry(ctx.job_id)
        prompts.close()
        rollouts.close()


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
    # Whatever this job starts dies with this process, also what the parent-death signal cannot
    # reach (a local Ray's node processes and theirs): services/wire/lifetime.py.
    start_reaper()
    startup: dict[str, float] = {}
    address = ray_address or spec.infra.ray_address  # none: a private local Ray on this machine
    stack = LocalStack(run_dir, redis_url=spec.infra.redis_url, verifier_url=spec.verifier.url,
                       verifier_workers=spec.verifier.workers, defer_ready=True)
    with stack:  # redis-server and the verifier come up while Ray starts
        with timed(startup, "startup/ray_init_s"):
            init_ray(address, spec)
        try:
            with timed(startup, "startup/local_stack_s"):  # what is left of their start-up after Ray's
                stack.wait_ready()
            ctx = JobContext(job_id=job_id, spec=spec, run_dir=run_dir, redis_url=stack.redis_url,
                             verifier_url=stack.verifier_url, store=store, on_step=on_step, startup=startup,
                             local_ray=not address)
            return run_training(ctx)
        finally:
            ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Run a job stored by the API (its spec and run directory come from the job store)."""
    parser = argparse.ArgumentParser(prog="python -m services.control.controller")
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
    # The API may have recorded a cancel while this process started: keep it (the loop sees the
    # cancel request and stops; a RUNNING here made a controller that then died count as FAILED).
    store.update(args.job_id, state=JobState.RUNNING, controller_pid=os.getpid(),
                 keep_state_if=frozenset({JobState.CANCELLING, *TERMINAL}))
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
