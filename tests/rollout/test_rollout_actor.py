"""The worker as a Ray actor, taking weights from the Ray weight registry (real Ray, vLLM, Redis, verifier)."""
from __future__ import annotations

import time
import uuid

import pytest

from rollout.config import RolloutJob, RolloutSection
from rollout.engine import load_checkpoint
from services.wire.messages import PromptGroup, ScoredGroup
from services.wire.streams import ROLLOUTS_GROUP, QueueConfig, RedisStream, prompts_stream, rollouts_stream
from tests.rollout.rollout_support import verifier_service

pytestmark = pytest.mark.slow


def test_actor_worker_uses_registry_weights(ray_local, tiny_model_dir, redis_url) -> None:
    import ray

    from rollout.actor import spawn_rollout_worker
    from services.wire.weight_registry import RayWeights, kill_registry

    job = f"a{uuid.uuid4().hex[:8]}"
    with verifier_service() as verifier_url:
        RayWeights(job).publish(1, load_checkpoint(tiny_model_dir))  # the learner's first version
        section = RolloutSection(n=2, max_tokens=8, batch_groups=4, block_ms=100, dtype="float32", max_model_len=128,
                                 kv_cache_bytes=64 * 2**20, num_cpus=1)
        cfg = RolloutJob(job_id=job, model_path=str(tiny_model_dir), redis_url=redis_url, verifier_url=verifier_url,
                         max_staleness=0, seed=0, rollout=section)
        _, actor = spawn_rollout_worker(cfg, 0)
        RedisStream(QueueConfig(url=redis_url), prompts_stream(job)).publish_many(
            [PromptGroup(job_id=job, group_id=f"g{i}", prompt=f"{i} + 1 =", gold=str(i + 1), task="math", n=2)
             for i in range(3)])
        ray.get(actor.start.remote(), timeout=180)
        reader = RedisStream(QueueConfig(url=redis_url), rollouts_stream(job), group=ROLLOUTS_GROUP,
                             consumer="learner", message_type=ScoredGroup)
        got: list[ScoredGroup] = []
        deadline = time.monotonic() + 120
        while len(got) < 3:
            assert time.monotonic() < deadline
            batch = reader.consume(count=10, block_ms=500)
            reader.ack([i for i, _ in batch])
            got += [m for _, m in batch]
        metrics = ray.get(actor.stop.remote(), timeout=60)
        assert sorted(g.group_id for g in got) == ["g0", "g1", "g2"]
        assert {g.policy_version for g in got} == {1}
        assert metrics["rollout/groups"] == 3 and metrics["rollout/weight_updates"] == 1
        ray.kill(actor)
        kill_registry(job)
