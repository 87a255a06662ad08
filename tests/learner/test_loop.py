"""The learner loop over a real Redis stream: batches, ACK after apply, de-duplication, resume;
and the Ray actors (world size 2 over gloo) publishing into the real weight registry."""
from __future__ import annotations

import json
import uuid

import pytest
import torch

from learner.checkpoint import load_checkpoint, save_checkpoint
from learner.engine import LearnerEngine
from learner.loop import LearnerLoop
from learner.weights import InProcessPublisher
from rollout.weights import InProcessWeightSource
from services.messages import ScoredGroup
from services.queues import ROLLOUTS_GROUP, QueueConfig, RedisStream, rollouts_stream
from tests.learner.learner_support import make_groups

pytestmark = pytest.mark.slow


def streams(redis_url: str, job: str, consumer: str = "learner"):
    cfg = QueueConfig(url=redis_url)
    producer = RedisStream(cfg, rollouts_stream(job))
    consumer_stream = RedisStream(cfg, rollouts_stream(job), group=ROLLOUTS_GROUP, consumer=consumer,
                                  message_type=ScoredGroup)
    return producer, consumer_stream


def test_loop_trains_acks_after_apply_and_skips_redelivered_groups(learner_config, redis_url, tmp_path):
    job = uuid.uuid4().hex[:8]
    producer, source = streams(redis_url, job)
    groups = make_groups(8, seed=7)
    producer.publish_many(groups[:2] + [groups[1]] + groups[2:])  # group 1 delivered twice in a row
    engine = LearnerEngine(learner_config(checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=2))
    published = InProcessWeightSource(keep_last=5)
    metrics: list[dict] = []
    loop = LearnerLoop(engine, source, InProcessPublisher(published), on_metrics=metrics.append)

    acked_during_update = []
    real_update = engine.update

    def update_then_look(batch):  # observe the stream while the update runs: nothing ACKed yet
        result = real_update(batch)
        acked_during_update.append(source.pending())
        return result

    engine.update = update_then_look
    assert loop.run(idle_timeout_s=1.0) == 2
    assert acked_during_update == [5, 4]  # batch 1 also holds the duplicate's message
    assert source.pending() == 0
    assert [m["batch/groups_in"] for m in metrics] == [4, 4]
    assert published.latest_version() == engine.state.weight_version == 2
    state = engine.full_state_dict()
    assert all(torch.equal(published.fetch(2)[k], v) for k, v in state.items())
    assert engine.state.cursor == {"groups_consumed": 8, "epoch": 0, "index": 7}
    assert (tmp_path / "ckpt" / "step_00000002").is_dir()

    # Redelivery of already-applied groups (e.g. reclaimed from a dead consumer): ACKed, not trained.
    producer.publish_many(groups[:2])
    assert loop.run(idle_timeout_s=0.5) == 0 and source.pending() == 0
    assert engine.state.step == 2


def test_resumed_learner_reclaims_unacked_groups_and_republishes(learner_config, redis_url, tmp_path):
    job = uuid.uuid4().hex[:8]
    producer, source = streams(redis_url, job)
    cfg = learner_config(checkpoint_dir=str(tmp_path), reclaim_idle_ms=1)
    groups = make_groups(8, seed=9)
    producer.publish_many(groups[:4])
    published = InProcessWeightSource(keep_last=5)
    first = LearnerEngine(cfg)
    LearnerLoop(first, source, InProcessPublisher(published)).run(max_updates=1)
    save_checkpoint(first)
    # The learner then reads the next batch and "dies" before ACKing it, after publishing v2.
    producer.publish_many(groups[4:])
    assert len(source.consume(4)) == 4
    published.publish(2, first.full_state_dict())

    resumed = LearnerEngine(cfg)
    load_checkpoint(resumed, tmp_path)
    _, new_source = streams(redis_url, job, consumer="learner-restarted")
    loop = LearnerLoop(resumed, new_source, InProcessPublisher(published))
    assert loop.run(idle_timeout_s=1.0) == 1  # the 4 un-ACKed groups, reclaimed
    assert new_source.pending() == 0
    # v3 = the restored weights republished, v4 = after the update: workers never go backwards.
    assert published.latest_version() == resumed.state.weight_version == 4


def test_ray_actors_world_size_two_train_from_the_stream_and_publish(ray_local, learner_config, redis_url,
                                                                    tmp_path):
    import ray

    from learner.actor import call_all, create_learner_actors
    from rollout.weight_registry import RayWeightSource, get_or_create_registry, kill_registry

    job = uuid.uuid4().hex[:8]
    producer, _ = streams(redis_url, job)
    groups = make_groups(8, seed=11)
    producer.publish_many(groups)
    # lr 2e-4: Adam normalises each coordinate, so gradients that are near-cancellations (tiny and
    # dominated by summation-order rounding) move weights by up to ~lr; keep that well under 1e-5.
    cfg = learner_config(zero_stage=2, lr=2e-4)
    actors = create_learner_actors(cfg, world_size=2, job_id=job)
    try:
        metrics_path = tmp_path / "metrics.jsonl"
        updates = call_all(actors, "run_loop", redis_url, job, max_updates=2, idle_timeout_s=2.0,
                           metrics_path=str(metrics_path))
        assert updates == [2, 2]
        assert len(metrics_path.read_text().splitlines()) == 2
        assert "loss/policy" in json.loads(metrics_path.read_text().splitlines()[0])
        weights = call_all(actors, "full_state_dict")[0]
        source = RayWeightSource(get_or_create_registry(job))
        assert source.latest_version() == 2
        fetched = source.fetch(2)
        assert all(torch.equal(torch.from_numpy(fetched[k].copy()), v) for k, v in weights.items())
    finally:
        for actor in actors:
            ray.kill(actor)
        kill_registry(job)

    # The same two batches through one in-process rank agree with the two Ray ranks.
    reference = LearnerEngine(cfg)
    reference.update(groups[:4])
    reference.update(groups[4:])
    expected = reference.full_state_dict()
    assert max(float((expected[k] - weights[k]).abs().max()) for k in expected) < 1e-5
