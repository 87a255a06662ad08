"""PromptSupply.recover_lost on a real redis-server: lost in-flight groups are re-fed, live ones are not."""
import uuid

import redis

from services.control.feeder import PromptFeeder, PromptSupply
from services.data import Example
from services.wire.messages import ScoredGroup
from services.wire.streams import (PROMPTS_GROUP, ROLLOUTS_GROUP, QueueConfig, RedisStream, prompts_stream,
                                   rollouts_stream)

EXAMPLES = [Example(id=str(i), prompt=f"{i} + {i} =", answer=str(2 * i), task="math") for i in range(20)]


def streams(redis_url: str, job_id: str):
    queue = QueueConfig(url=redis_url)
    supply = PromptSupply(PromptFeeder(job_id=job_id, examples=EXAMPLES, template="plain", n=2, seed=0),
                          RedisStream(queue, prompts_stream(job_id)), RedisStream(queue, rollouts_stream(job_id)),
                          batch_prompts=4, max_staleness=0)
    worker = RedisStream(queue, prompts_stream(job_id), group=PROMPTS_GROUP, consumer="w")
    learner = RedisStream(queue, rollouts_stream(job_id), group=ROLLOUTS_GROUP, consumer="learner",
                          message_type=ScoredGroup)
    return supply, worker, learner


def scored(group) -> ScoredGroup:
    return ScoredGroup(job_id=group.job_id, group_id=group.group_id, prompt_token_ids=[1], task=group.task,
                       gold=group.gold, samples=[], policy_version=0, worker_id="w", epoch=group.epoch,
                       index=group.index)


def test_nothing_is_re_fed_while_every_group_in_flight_is_on_a_stream(redis_url):
    supply, worker, learner = streams(redis_url, uuid.uuid4().hex[:8])
    supply.top_up(trained=0, version=0)
    taken = worker.consume(4)  # a worker generating all four: pending on the prompt stream
    learner_side = RedisStream(QueueConfig(url=redis_url), learner.stream)
    learner_side.publish(scored(taken[0][1]))  # one published, its prompt ACKed after publishing
    worker.ack([taken[0][0]])
    learner.consume(1)  # the learner holds it in its half-collected batch (pending)
    supply.recover_lost(trained=0, version=0)
    assert supply.refed == 0 and supply.feeder.fed == 4


def test_a_redis_restart_that_left_the_learner_one_group_re_feeds_the_lost_ones(redis_url):
    # The stall seen in tests/integration/test_redis_restart_mid_job: after the restart one group
    # reached the new server and sits pending in the learner's batch; the other prompts are gone.
    job_id = uuid.uuid4().hex[:8]
    supply, worker, _ = streams(redis_url, job_id)
    supply.top_up(trained=0, version=0)
    first = worker.consume(4)[0][1]
    client = redis.Redis.from_url(redis_url)
    client.delete(prompts_stream(job_id), rollouts_stream(job_id))  # what a non-persistent restart leaves
    RedisStream(QueueConfig(url=redis_url), rollouts_stream(job_id)).publish(scored(first))
    learner = RedisStream(QueueConfig(url=redis_url), rollouts_stream(job_id), group=ROLLOUTS_GROUP,
                          consumer="learner", message_type=ScoredGroup)  # the group recreated
    assert len(learner.consume(1)) == 1
    supply.recover_lost(trained=0, version=0)
    assert supply.refed == 4 and supply.feeder.fed == 4
    again = RedisStream(QueueConfig(url=redis_url), prompts_stream(job_id), group=PROMPTS_GROUP, consumer="w2")
    expected = PromptFeeder(job_id=job_id, examples=EXAMPLES, template="plain", n=2, seed=0).next_groups(4, 0)
    assert sorted(g.group_id for _, g in again.consume(10)) == sorted(g.group_id for g in expected)
