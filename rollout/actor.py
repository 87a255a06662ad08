"""Thin Ray actor adapter over RolloutWorker: more replicas = more throughput, no learner change.

    name, worker = spawn_rollout_worker(job, index=0)      # placement from job.rollout
    worker.start.remote(); ...; ray.get(worker.stop.remote())

Resources come from the rollout section (num_cpus, num_gpus, resources), not a hard-coded
decorator. The controller's RolloutPool spawns, replaces and resizes workers through spawn_rollout_worker.
"""
from __future__ import annotations

import dataclasses
import threading

import ray

from rollout.config import RolloutJob
from services.wire.weight_registry import weights_for


class RolloutWorkerActor:
    """Runs the worker loop in a background thread so `metrics` and `stop` stay callable."""

    def __init__(self, job: RolloutJob, use_registry: bool = True):
        # Imported in the actor's process (torch, vLLM): the driver that spawns it starts without them.
        from rollout.worker import RolloutWorker

        source = weights_for(job.job_id, job.rollout.weight_sync) if use_registry else None
        self.worker = RolloutWorker(job, weight_source=source)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> str:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="rollout-worker", daemon=True)
            self._thread.start()
        return self.worker.worker_id

    def _run(self) -> None:
        try:
            self.worker.run(self._stop)
        except BaseException as exc:  # surfaced to the driver by `metrics`/`stop`, not swallowed
            self._error = exc
            raise

    def run_once(self) -> int:
        return self.worker.run_once()

    def evaluate(self, prompts: list[str], golds: list[str], tasks: list[str], n: int) -> list[tuple[int, float]]:
        return self.worker.evaluate(prompts, golds, tasks, n)

    def metrics(self) -> dict[str, float]:
        self._raise_if_failed()
        return self.worker.metrics.snapshot() | {"rollout/policy_version": self.worker.engine.version,
                                                 "startup/vllm_engine_s": self.worker.engine.startup_s}

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._raise_if_failed()
        return self.worker.metrics.snapshot()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"rollout worker {self.worker.worker_id} died") from self._error


def spawn_rollout_worker(job: RolloutJob, index: int, *, use_registry: bool = True) -> tuple[str, object]:
    """Worker `index` of the job, a consumer of the job's prompt stream: (name, actor handle). The
    actor name doubles as the stream consumer name, so a replaced worker is recognisable in Redis."""
    name = f"simko-rollout-{job.job_id}-{index}"
    section = job.rollout
    actor = ray.remote(RolloutWorkerActor).options(
        name=name, num_cpus=section.num_cpus, num_gpus=section.num_gpus, resources=section.resources or None,
    ).remote(dataclasses.replace(job, worker_id=name), use_registry)
    return name, actor
