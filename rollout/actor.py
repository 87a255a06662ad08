"""Thin Ray actor adapter over RolloutWorker: more replicas = more throughput, no learner change.

    workers = [spawn_rollout_worker(config, i, num_cpus=1, num_gpus=1)[1] for i in range(4)]
    ray.get([w.start.remote() for w in workers])
    ...
    ray.get([w.stop.remote() for w in workers])

Resources come from the caller (config), not from a hard-coded decorator. The controller's
services.rollout_pool.RolloutPool spawns, replaces and resizes workers through the same function.
"""
from __future__ import annotations

import dataclasses
import threading

import ray

from rollout.config import RolloutConfig
from rollout.weight_registry import RayWeightSource, get_or_create_registry
from rollout.worker import RolloutWorker


class RolloutWorkerActor:
    """Runs the worker loop in a background thread so `metrics` and `stop` stay callable."""

    def __init__(self, config: RolloutConfig, use_registry: bool = True):
        source = RayWeightSource(get_or_create_registry(config.job_id)) if use_registry else None
        self.worker = RolloutWorker(config, weight_source=source)
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

    def metrics(self) -> dict[str, float]:
        self._raise_if_failed()
        return self.worker.metrics.snapshot() | {"rollout/policy_version": self.worker.engine.version}

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._raise_if_failed()
        return self.worker.metrics.snapshot()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"rollout worker {self.worker.worker_id} died") from self._error


def spawn_rollout_worker(config: RolloutConfig, index: int, *, num_cpus: float = 1, num_gpus: float = 0,
                         resources: dict[str, float] | None = None, use_registry: bool = True) -> tuple[str, object]:
    """Worker `index` of the job, a consumer of the job's prompt stream: (name, actor handle). The
    actor name doubles as the stream consumer name, so a replaced worker is recognisable in Redis."""
    name = f"simko-rollout-{config.job_id}-{index}"
    actor = ray.remote(RolloutWorkerActor).options(
        name=name, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources or None,
    ).remote(dataclasses.replace(config, worker_id=name), use_registry)
    return name, actor
