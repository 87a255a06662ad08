"""RolloutPool's health check against real Ray actors: a dead worker is replaced, a hung one costs
one timeout and is then not waited for again until it answers. The workers are small stand-in
actors with the rollout worker's actor interface (start / metrics / stop); the real vLLM worker
under the pool is tested end to end in tests/integration and bench/chaos.py."""
import os
import signal
import time

import pytest
import ray

from services.control.rollout_pool import RolloutPool


class StandInWorker:
    def __init__(self):
        self.calls = 0

    def start(self):
        return "ok"

    def pid(self):
        return os.getpid()

    def metrics(self):
        self.calls += 1
        return {"perf/rollout_busy_s_total": float(self.calls)}

    def stop(self):
        return {}


class StandInPool(RolloutPool):
    def _spawn(self):
        name = f"standin-{self._next_index}"
        self._next_index += 1
        return name, ray.remote(StandInWorker).options(num_cpus=0).remote()


def test_a_hung_worker_costs_one_timeout_and_a_dead_one_is_replaced(ray_local):
    pool = StandInPool(job=None)
    pool.resize(2)
    assert pool.metrics(timeout_s=30)["rollout/workers"] == 2.0
    hung_pid = ray.get(pool.workers[0][1].pid.remote())
    os.kill(hung_pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        first = pool.metrics(timeout_s=3)
        first_s = time.monotonic() - started
        started = time.monotonic()
        second = pool.metrics(timeout_s=3)
        second_s = time.monotonic() - started
        assert first_s >= 3 and first["rollout/workers_unresponsive"] == 1.0
        assert second_s < 3 and second["rollout/workers_unresponsive"] == 1.0  # not waited for again
        assert second["perf/rollout_busy_s_total"] >= 2  # the healthy worker still reports
    finally:
        os.kill(hung_pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while pool.metrics(timeout_s=3)["rollout/workers_unresponsive"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pool.metrics(timeout_s=3)["rollout/workers_unresponsive"] == 0.0  # answered after SIGCONT

    dead_pid = ray.get(pool.workers[1][1].pid.remote())
    os.kill(dead_pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pool.replaced == 0 and time.monotonic() < deadline:
        pool.metrics(timeout_s=3)
        time.sleep(0.2)
    assert pool.replaced == 1 and len(pool.workers) == 2
    pool.stop_all()
