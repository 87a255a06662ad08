"""services.wire.streams against a real redis-server."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis

from services.wire.messages import PromptGroup, Sample, ScoredGroup
from services.wire.streams import (PROMPTS_GROUP, QueueConfig, QueueUnavailable, RedisStream, prompts_stream,
                             rollouts_stream)

pytestmark = pytest.mark.slow  # every test talks to a real redis-server


def prompt(i: int) -> PromptGroup:
    return PromptGroup(job_id="j", group_id=f"g{i}", prompt=f"{i} + 1 =", gold=str(i + 1), task="math", n=2,
                       index=i)


def scored(i: int) -> ScoredGroup:
    s = Sample(token_ids=[1, 2], logprobs=[-0.1, -0.2], top_ids=[[1], [2]], top_logprobs=[[-0.1], [-0.2]],
               text="x", finish_reason="stop", reward=1.0, correct=True)
    return ScoredGroup(job_id="j", group_id=f"g{i}", prompt_token_ids=[5], task="math", gold="1", samples=[s],
                       policy_version=3, worker_id="w")


@pytest.fixture
def stream_name() -> str:
    return prompts_stream(f"test-{uuid.uuid4().hex[:8]}")


def test_stream_names() -> None:
    assert prompts_stream("abc") == "simko:abc:prompts"
    assert rollouts_stream("abc") == "simko:abc:rollouts"


def test_publish_consume_ack_roundtrip(redis_url: str, stream_name: str) -> None:
    cfg = QueueConfig(url=redis_url)
    producer = RedisStream(cfg, stream_name)
    consumer = RedisStream(cfg, stream_name, group=PROMPTS_GROUP, consumer="c1")
    ids = producer.publish_many([prompt(i) for i in range(3)]) + [producer.publish(prompt(3))]
    assert len(ids) == 4 and producer.length() == 4
    assert producer.backlog(PROMPTS_GROUP) == 4

    got = consumer.consume(count=10, block_ms=100)
    assert [m for _, m in got] == [prompt(i) for i in range(4)]
    assert [i for i, _ in got] == ids
    assert consumer.pending() == 4 and consumer.backlog(PROMPTS_GROUP) == 4
    assert consumer.ack([i for i, _ in got[:3]]) == 3
    assert consumer.pending() == 1 and consumer.backlog(PROMPTS_GROUP) == 1
    assert consumer.consume(count=10, block_ms=50) == []  # nothing new: blocked then empty


def test_blocking_consume_wakes_on_publish(redis_url: str, stream_name: str) -> None:
    cfg = QueueConfig(url=redis_url)
    consumer = RedisStream(cfg, stream_name, group=PROMPTS_GROUP, consumer="c1")
    threading.Timer(0.2, lambda: RedisStream(cfg, stream_name).publish(prompt(0))).start()
    t0 = time.monotonic()
    got = consumer.consume(count=1, block_ms=5000)
    assert [m for _, m in got] == [prompt(0)] and time.monotonic() - t0 < 4


def test_a_blocked_consumer_gets_a_published_batch_whole(redis_url: str, stream_name: str) -> None:
    # A rollout worker blocks on the prompts stream while the feeder publishes a step's groups: it
    # must wake to all of them, not to the first XADD of the batch (a split batch made every step
    # run two generate calls, issue 17).
    cfg = QueueConfig(url=redis_url)
    consumer = RedisStream(cfg, stream_name, group=PROMPTS_GROUP, consumer="c1")
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(consumer.consume(count=8, block_ms=5000)))
    reader.start()
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 5
    while not any(c.get("cmd") == "xreadgroup" for c in client.client_list()) and time.monotonic() < deadline:
        time.sleep(0.01)  # until the consumer is blocked in XREADGROUP
    RedisStream(cfg, stream_name).publish_many([prompt(i) for i in range(8)])
    reader.join(10)
    assert [m for _, m in got] == [prompt(i) for i in range(8)]


def test_maxlen_bounds_the_stream(redis_url: str, stream_name: str) -> None:
    producer = RedisStream(QueueConfig(url=redis_url, maxlen=100), stream_name)
    producer.publish_many([prompt(i) for i in range(1000)])
    assert 100 <= producer.length() < 300  # MAXLEN ~ trims whole macro nodes


def test_undecodable_and_wrong_type_messages_are_dead_lettered(redis_url: str, stream_name: str) -> None:
    cfg = QueueConfig(url=redis_url)
    raw = redis.Redis.from_url(redis_url)
    raw.xadd(stream_name, {b"m": b"\xc1 not msgpack"})
    raw.xadd(stream_name, {b"other": b"no payload field"})
    RedisStream(cfg, stream_name).publish(scored(0))  # a ScoredGroup on a prompt stream
    RedisStream(cfg, stream_name).publish(prompt(7))
    consumer = RedisStream(cfg, stream_name, group=PROMPTS_GROUP, consumer="c1", message_type=PromptGroup)
    got = consumer.consume(count=10)
    assert [m for _, m in got] == [prompt(7)]
    assert consumer.dead_letters() == 3
    assert consumer.pending() == 1  # the bad ones were ACKed, only the good one is pending
    dead = raw.xrange(f"{stream_name}:dead")
    assert b"undecodable" in dead[0][1][b"error"] and b"unexpected ScoredGroup" in dead[2][1][b"error"]


CONSUME_AND_HANG = """
import sys, time
from services.wire.streams import QueueConfig, RedisStream
s = RedisStream(QueueConfig(url=sys.argv[1]), sys.argv[2], group="rollout", consumer="doomed")
got = s.consume(count=3, block_ms=2000)
print(",".join(i for i, _ in got), flush=True)
time.sleep(600)
"""


def test_dead_consumer_messages_are_reclaimed(redis_url: str, stream_name: str) -> None:
    cfg = QueueConfig(url=redis_url)
    RedisStream(cfg, stream_name).publish_many([prompt(i) for i in range(5)])
    proc = subprocess.Popen([sys.executable, "-c", CONSUME_AND_HANG, redis_url, stream_name],
                            stdout=subprocess.PIPE, text=True)
    try:
        taken = proc.stdout.readline().strip().split(",")
    finally:
        proc.kill()  # SIGKILL: no chance to ACK
        proc.wait()
    assert len(taken) == 3

    survivor = RedisStream(cfg, stream_name, group=PROMPTS_GROUP, consumer="survivor")
    fresh = survivor.consume(count=10)
    assert [m.group_id for _, m in fresh] == ["g3", "g4"]
    survivor.ack([i for i, _ in fresh])  # else XAUTOCLAIM would (rightly) return these idle ones too
    assert survivor.reclaim_stale(min_idle_ms=60_000) == []  # not idle long enough yet
    time.sleep(0.3)
    reclaimed = survivor.reclaim_stale(min_idle_ms=200)
    assert [i for i, _ in reclaimed] == taken
    assert [m.group_id for _, m in reclaimed] == ["g0", "g1", "g2"]
    survivor.ack([i for i, _ in reclaimed])
    assert survivor.pending() == 0


def test_poison_message_is_dead_lettered_after_max_deliveries(redis_url: str, stream_name: str) -> None:
    cfg = QueueConfig(url=redis_url, max_deliveries=2)
    RedisStream(cfg, stream_name).publish(prompt(0))
    a = RedisStream(cfg, stream_name, group=PROMPTS_GROUP, consumer="a")
    assert len(a.consume(count=1)) == 1  # delivery 1
    assert len(a.reclaim_stale(min_idle_ms=0)) == 1  # delivery 2
    assert a.reclaim_stale(min_idle_ms=0) == []  # delivery 3 > max: dead-lettered, ACKed
    assert a.pending() == 0 and a.dead_letters() == 1


def test_reconnects_after_server_restart_and_recreates_group(redis_factory, stream_name: str) -> None:
    port, server = redis_factory()
    cfg = QueueConfig(url=f"redis://127.0.0.1:{port}/0", reconnect_deadline_s=15.0, backoff_max_s=0.2)
    consumer = RedisStream(cfg, stream_name, group=PROMPTS_GROUP, consumer="c1")
    producer = RedisStream(cfg, stream_name)
    server.kill()
    server.wait()
    # Restart the (non-persistent) server while the producer is backing off: the publish succeeds.
    # From a thread that lives to the end of the test: the server gets the parent-death signal
    # of the thread that started it (services/wire/lifetime.py), so a Timer's would die at once.
    done = threading.Event()

    def restart() -> None:
        time.sleep(0.5)
        redis_factory(port)
        done.wait()

    threading.Thread(target=restart, daemon=True).start()
    try:
        producer.publish(prompt(1))
        # The group vanished with the data; the consumer recreates it (reading from id 0) and proceeds.
        assert [m for _, m in consumer.consume(count=5, block_ms=100)] == [prompt(1)]
    finally:
        done.set()


def test_unreachable_redis_raises_after_deadline() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    producer = RedisStream(QueueConfig(url=f"redis://127.0.0.1:{port}/0", reconnect_deadline_s=0.5), "simko:x:prompts")
    t0 = time.monotonic()
    with pytest.raises(QueueUnavailable):
        producer.publish(prompt(0))
    assert time.monotonic() - t0 < 5


def test_generation_marks_live_only_inside_the_block_and_before_their_deadline(redis_url):
    from services.wire.streams import GenerationMarks

    job = f"marks-{uuid.uuid4().hex[:8]}"
    a, b, learner = GenerationMarks(redis_url, job), GenerationMarks(redis_url, job), GenerationMarks(redis_url, job)
    assert not learner.any_generating()
    with a.generating("w0", expected_s=600):
        assert learner.any_generating()
        with b.generating("w1", expected_s=600):
            pass
        assert learner.any_generating()  # w1 done, w0 still generating
    assert not learner.any_generating()
    with pytest.raises(RuntimeError):  # a generate that raises still clears its mark
        with a.generating("w0", expected_s=600):
            raise RuntimeError("engine died")
    assert not learner.any_generating()
    with a.generating("w0", expected_s=0.2):
        time.sleep(0.3)  # past its deadline: as if the worker had died holding it
        assert not learner.any_generating()


def test_generation_marks_without_redis_read_busy_and_never_raise():
    from services.control.local_stack import free_port
    from services.wire.streams import GenerationMarks

    marks = GenerationMarks(f"redis://127.0.0.1:{free_port()}/0", "nobody")
    started = time.monotonic()
    with marks.generating("w0", expected_s=600):  # the worker generates anyway
        pass
    assert marks.any_generating()  # the safe side: the learner keeps its cap
    assert time.monotonic() - started < 5  # no reconnect loop
    started = time.monotonic()
    for _ in range(100):  # a learner asks at every layer: Redis down must not cost a timeout each
        assert marks.any_generating()
    assert time.monotonic() - started < 0.5
