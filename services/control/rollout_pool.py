"""The job's pool of rollout worker actors: resize, health, merged metrics (a thin Ray adapter)."""
from __future__ import annotations

import logging

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from rollout.actor import spawn_rollout_worker
from rollout.config import RolloutJob

log = logging.getLogger(__name__)


class RolloutPool:
    """Placement (num_cpus, num_gpus, custom resources) comes from the job's rollout section."""

    def __init__(self, job: RolloutJob):
        self.job = job
        self.workers: list[tuple[str, object]] = []  # (name, actor handle), oldest first
        self._next_index = 0
        self.replaced = 0
        self._unanswered: dict[str, object] = {}  # worker name -> its open metrics request
        self._overdue: set[str] = set()  # workers whose open request already timed out once

    def _spawn(self) -> tuple[str, object]:
        name, actor = spawn_rollout_worker(self.job, self._next_index)
        self._next_index += 1
        actor.start.remote()
        return name, actor

    def resize(self, replicas: int) -> None:
        """Grow by starting workers; shrink by stopping the newest ones gracefully (a stopping worker
        finishes and ACKs its batch; prompts it still held are reclaimed by the others)."""
        while len(self.workers) < replicas:
            self.workers.append(self._spawn())
        while len(self.workers) > replicas:
            name, actor = self.workers.pop()
            self._stop(name, actor)

    def _stop(self, name: str, actor, timeout_s: float = 120.0) -> None:
        self._unanswered.pop(name, None)
        self._overdue.discard(name)
        try:
            ray.get(actor.stop.remote(), timeout=timeout_s)
        except (RayActorError, GetTimeoutError, RuntimeError) as exc:
            log.warning("rollout worker %s did not stop cleanly: %s", name, exc)
        ray.kill(actor)

    def metrics(self, timeout_s: float = 30.0) -> dict[str, float]:
        """Mean of the workers' metrics; a dead worker is replaced (its prompts get reclaimed).
        The workers are asked together and waited for up to `timeout_s`; one that did not answer
        (stopped, or busy in a long call) is not waited for again while that request is open, so
        a hung worker costs one timeout, not one per step. It reports again once it answers."""
        asked = {}
        for name, actor in self.workers:
            if name not in self._unanswered:
                self._unanswered[name] = actor.metrics.remote()
            asked[name] = self._unanswered[name]
        fresh = [ref for name, ref in asked.items() if name not in self._overdue]
        if fresh:
            ray.wait(fresh, num_returns=len(fresh), timeout=timeout_s)
        merged: dict[str, list[float]] = {}
        for i, (name, actor) in enumerate(list(self.workers)):
            ready, _ = ray.wait([asked[name]], timeout=0)
            if not ready:
                self._overdue.add(name)
                continue
            del self._unanswered[name]
            self._overdue.discard(name)
            try:
                snapshot = ray.get(ready[0])
            except (RayActorError, RuntimeError) as exc:
                log.error("rollout worker %s died (%s); starting a replacement", name, exc)
                ray.kill(actor)
                self.workers[i] = self._spawn()
                self.replaced += 1
                continue
            for key, value in snapshot.items():
                merged.setdefault(key, []).append(float(value))
        out = {key: sum(values) / len(values) for key, values in merged.items()}
        out["rollout/workers"] = float(len(self.workers))
        out["rollout/workers_replaced"] = float(self.replaced)
        out["rollout/workers_unresponsive"] = float(len(self._overdue))
        return out

    def evaluate(self, prompts: list[str], golds: list[str], tasks: list[str], n: int,
                 timeout_s: float = 1800.0) -> list[tuple[int, float]]:
        """(correct samples, mean tokens) per prompt, sampled by the first worker with its current
        weights and graded by its verifier (see RolloutWorker.evaluate)."""
        if not self.workers:
            raise RuntimeError("no rollout worker to evaluate with")
        _, actor = self.workers[0]
        return ray.get(actor.evaluate.remote(prompts, golds, tasks, n), timeout=timeout_s)

    def stop_all(self) -> None:
        while self.workers:
            name, actor = self.workers.pop()
            self._stop(name, actor)
