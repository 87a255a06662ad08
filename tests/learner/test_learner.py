"""The learner's steps over a real Redis stream: batches, ACK after apply, de-duplication, resume;
and the Ray rank actors (world size 2 over gloo) publishing into the real weight registry."""
from __future__ import annotations

import uuid

import pytest
import torch

from learner.checkpoint import save_checkpoint
from learner.engine import LearnerEngine
from learner.learner import Learner
from services.wire.messages import ScoredGroup
from services.wire.streams import ROLLOUTS_GROUP, QueueConfig, RedisStream, rollouts_stream
from services.wire.weights import InProcessWeights
from tests.learner.learner_support import make_groups

pytestmark = pytest.mark.slow


def streams(redis_url: str, job: str, consumer: str = "learner"):
    cfg = QueueConfig(url=redis_url)
    producer = RedisStream(cfg, rollouts_stream(job))
    consumer_stream = RedisStream(cfg, rollouts_stream(job), group=ROLLOUTS_GROUP, consumer=consumer,
                                  message_type=ScoredGroup)
    return producer, consumer_stream


def one_update(learner, idle_timeout_s: float = 1.0) -> dict | None:
    """The learner's part of one step of services.control.loop.train."""
    if learner.pull_batch(idle_timeout_s=idle_timeout_s) is None:
        return None
    metrics = learner.update()
    if metrics["learner/optimizer_steps"]:
        learner.publish()
    learner.ack()
    return metrics


def test_learner_trains_acks_after_apply_and_skips_redelivered_groups(learner_config, redis_url, tmp_path):
    job = uuid.uuid4().hex[:8]
    producer, source = streams(redis_url, job)
    groups = make_groups(8, seed=7)
    producer.publish_many(groups[:2] + [groups[1]] + groups[2:])  # group 1 delivered twice in a row
    engine = LearnerEngine(learner_config(checkpoint_dir=str(tmp_path / "ckpt")))
    published = InProcessWeights(keep_last=5)
    learner = Learner(engine, source, published)

    acked_during_update = []
    real_update = engine.update

    def update_then_look(batch):  # observe the stream while the update runs: nothing ACKed yet
        result = real_update(batch)
        acked_during_update.append(source.pending())
        return result

    engine.update = update_then_look
    metrics = [one_update(learner), one_update(learner)]
    assert one_update(learner) is None  # the stream is drained
    assert acked_during_update == [5, 4]  # batch 1 also holds the duplicate's message
    assert source.pending() == 0
    assert [m["batch/groups_in"] for m in metrics] == [4, 4]
    assert published.latest_version() == engine.state.weight_version == 2
    state = engine.full_state_dict()
    assert all(torch.equal(published.fetch(2)[k], v) for k, v in state.items())
    assert engine.state.cursor == {"groups_consumed": 8, "epoch": 0, "index": 7}

    # Redelivery of already-applied groups (e.g. reclaimed from a dead consumer): ACKed, not trained.
    producer.publish_many(groups[:2])
    assert one_update(learner, idle_timeout_s=0.5) is None and source.pending() == 0
    assert engine.state.step == 2


def test_resumed_learner_reclaims_unacked_groups_and_republishes(learner_config, redis_url, tmp_path):
    job = uuid.uuid4().hex[:8]
    producer, source = streams(redis_url, job)
    cfg = learner_config(checkpoint_dir=str(tmp_path), reclaim_idle_ms=1)
    groups = make_groups(8, seed=9)
    producer.publish_many(groups[:4])
    published = InProcessWeights(keep_last=5)
    first = LearnerEngine(cfg)
    one_update(Learner(first, source, published))
    save_checkpoint(first)
    # The learner then reads the next batch and "dies" before ACKing it, after publishing v2.
    producer.publish_many(groups[4:])
    assert len(source.consume(4)) == 4
    published.publish(2, first.full_state_dict())

    resumed = LearnerEngine(cfg)
    _, new_source = streams(redis_url, job, consumer="learner-restarted")
    learner = Learner(resumed, new_source, published)
    assert learner.resume() and resumed.state.step == 1
    learner.start()
    assert one_update(learner) is not None  # the 4 un-ACKed groups, reclaimed
    assert one_update(learner, idle_timeout_s=0.5) is None
    assert new_source.pending() == 0
    # v3 = the restored weights republished, v4 = after the update: workers never go backwards.
    assert published.latest_version() == resumed.state.weight_version == 4


def test_dynamic_sampling_fills_the_batch_with_groups_that_have_a_signal(learner_config, redis_url, tmp_path):
    """DAPO: equal-reward groups do not count towards batch_prompts; they ride along (consumed,
    counted, ACKed) while the learner waits for enough groups with a signal; an incomplete batch is
    never trained, whatever the idle timeout."""
    job = uuid.uuid4().hex[:8]
    producer, source = streams(redis_url, job)
    signal = make_groups(4, seed=31, prefix="sig")
    equal = make_groups(3, seed=32, prefix="eq", rewards=[[1.0] * 4, [0.0] * 4, [1.0] * 4])
    learner = Learner(LearnerEngine(learner_config(dynamic_sampling=True)), source, InProcessWeights(5))
    producer.publish_many([signal[0], equal[0], signal[1], equal[1], signal[2], equal[2]])
    assert learner.pull_batch(idle_timeout_s=0.5) is None  # 3 groups with a signal so far: keep collecting
    assert learner.consumed() == 6  # what the prompt supply refills from
    producer.publish(signal[3])
    assert learner.pull_batch(idle_timeout_s=0.5) == 7
    metrics = learner.update()
    learner.ack()
    assert metrics["batch/groups_equal_reward"] == 3 and metrics["batch/groups_trained"] == 4
    assert metrics["learner/optimizer_steps"] == 2 and source.pending() == 0
    assert learner.consumed() == 7 and learner.state()["cursor"]["groups_consumed"] == 7


def test_learner_group_world_size_two_trains_from_the_stream_and_publishes(ray_local, learner_config, redis_url):
    from learner.actor import LearnerGroup
    from services.wire.weight_registry import RayWeights, kill_registry

    job = uuid.uuid4().hex[:8]
    producer, _ = streams(redis_url, job)
    groups = make_groups(8, seed=11)
    producer.publish_many(groups)
    # lr 2e-4: Adam normalises each coordinate, so gradients that are near-cancellations (tiny and
    # dominated by summation-order rounding) move weights by up to ~lr; keep that well under 1e-5.
    cfg = learner_config(zero_stage=2, lr=2e-4, world_size=2, job_id=job)
    group = LearnerGroup.create(cfg, redis_url=redis_url)
    try:
        metrics = [one_update(group), one_update(group)]
        assert all("loss/policy" in m for m in metrics)
        assert group.state()["step"] == 2
        weights = group.full_state_dict()
        source = RayWeights(job)
        assert source.latest_version() == 2
        fetched = source.fetch(2)
        assert all(torch.equal(torch.from_numpy(fetched[k].copy()), v) for k, v in weights.items())
    finally:
        group.kill()
        kill_registry(job)

    # The same two batches through one in-process rank agree with the two Ray ranks.
    reference = LearnerEngine(learner_config(zero_stage=2, lr=2e-4))
    reference.update(groups[:4])
    reference.update(groups[4:])
    expected = reference.full_state_dict()
    assert max(float((expected[k] - weights[k]).abs().max()) for k in expected) < 1e-5
