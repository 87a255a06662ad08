"""No orphans: a rollout worker actor's vLLM engine processes (multi-process mode: EngineCore and
its worker) die with the actor under SIGKILL as under SIGTERM; in-process mode has none to leave."""
from __future__ import annotations

import signal

import pytest

from tests.reliability.owners import describe, kill_and_collect, wait_for
from tests.reliability.process_table import TAG_ENV, kill_tagged, new_tag, roots, tagged

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster(ray_local):
    """The session's local Ray (tests/conftest.py): the actors get their settings per actor."""
    import ray

    yield ray


@pytest.mark.parametrize("multiprocessing,sig", [("1", signal.SIGKILL), ("1", signal.SIGTERM), ("0", signal.SIGKILL)],
                         ids=["multiprocess-SIGKILL", "multiprocess-SIGTERM", "in-process-SIGKILL"])
def test_rollout_actor_takes_its_engine_along(ray_cluster, tiny_model_dir, redis_url, multiprocessing, sig):
    from rollout.actor import RolloutWorkerActor
    from rollout.config import RolloutJob, RolloutSection

    ray = ray_cluster
    tag = new_tag()
    section = RolloutSection(dtype="float32", max_model_len=128, kv_cache_bytes=64 * 2**20, n=2, max_tokens=8)
    job = RolloutJob(job_id=f"orphans-{tag[:8]}", model_path=str(tiny_model_dir), redis_url=redis_url,
                     verifier_url="http://127.0.0.1:9", max_staleness=0, seed=0, rollout=section,
                     worker_id=f"orphans-{tag[:8]}")
    env = {TAG_ENV: tag, "VLLM_ENABLE_V1_MULTIPROCESSING": multiprocessing}
    actor = ray.remote(RolloutWorkerActor).options(num_cpus=0, runtime_env={"env_vars": env}).remote(job, False)
    try:
        ray.get(actor.metrics.remote(), timeout=600)  # the engine is up
        owner = roots(tagged(tag))
        assert len(owner) == 1, owner
        expected = 3 if multiprocessing == "1" else 1  # actor, EngineCore, its worker / the actor alone
        wait_for("the engine processes", lambda: len(tagged(tag)) >= expected, timeout_s=60)
        before, left = kill_and_collect(tag, owner[0].pid, sig, expect_at_least=expected)
    finally:
        kill_tagged(tag)
        ray.kill(actor)
    assert not left, describe(before, left)
