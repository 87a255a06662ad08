"""Typed producer/consumer over Redis Streams: the only module that imports redis.

Streams per job: `simko:{job}:prompts` (PromptGroup, read by the rollout workers' consumer group)
and `simko:{job}:rollouts` (ScoredGroup, read by the learner's group). Delivery is at-least-once:
a consumer ACKs only after it has handed the result on; a dead consumer's pending messages are
taken over with XAUTOCLAIM (`reclaim_stale`); downstream de-duplicates by `group_id`.

Messages that cannot be decoded (or are of the wrong type) are copied to `{stream}:dead` with the
error and ACKed, so one bad producer cannot wedge every consumer. The same happens to a message
delivered more than `max_deliveries` times (a "poison" prompt that crashes every worker in turn).

Stream length is capped with MAXLEN ~ (approximate, O(1) trimming). Trimming drops the oldest
entries whether or not they were consumed, so producers must apply back-pressure (`backlog`)
well below `maxlen`.
"""
from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import redis

from services.wire.messages import CodecError, PromptGroup, ScoredGroup, decode, encode

log = logging.getLogger(__name__)

Message = PromptGroup | ScoredGroup
T = TypeVar("T")

PAYLOAD_FIELD = b"m"
PROMPTS_GROUP = "rollout"  # consumer group of the rollout workers on the prompts stream
ROLLOUTS_GROUP = "learner"  # consumer group of the learner on the rollouts stream


def prompts_stream(job_id: str) -> str:
    return f"simko:{job_id}:prompts"


def rollouts_stream(job_id: str) -> str:
    return f"simko:{job_id}:rollouts"


class QueueUnavailable(ConnectionError):
    """Redis could not be reached within the reconnect deadline."""


@dataclass(frozen=True)
class QueueConfig:
    url: str = "redis://127.0.0.1:6379/0"
    maxlen: int = 100_000  # approximate cap on entries per stream (memory bound, not back-pressure)
    reconnect_deadline_s: float = 30.0
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0
    socket_timeout_s: float = 10.0  # also bounds a blocking read: block_ms is clamped below it
    max_deliveries: int = 5  # a message reclaimed more often than this goes to the dead-letter stream

    def __post_init__(self) -> None:
        if self.maxlen < 1 or self.max_deliveries < 1 or self.socket_timeout_s <= 1.0:
            raise ValueError("maxlen and max_deliveries must be >= 1, socket_timeout_s > 1")


def call_with_reconnect(config: QueueConfig, fn: Callable[[], T]) -> T:
    """Run `fn`, retrying connection errors with jittered exponential backoff until the deadline.

    Only transport errors are retried. A retried XADD may duplicate a message and a retried
    XREADGROUP may leave one pending unseen; both are covered by at-least-once + dedup + reclaim.
    """
    deadline = time.monotonic() + config.reconnect_deadline_s
    delay = config.backoff_initial_s
    while True:
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if time.monotonic() + delay > deadline:
                raise QueueUnavailable(f"redis at {config.url} unavailable: {exc}") from exc
            log.warning("redis connection error (%s); retrying in %.2fs", exc, delay)
            time.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, config.backoff_max_s)


class RedisStream:
    """One stream; producer operations always, consumer operations when `group` and `consumer` are set."""

    def __init__(self, config: QueueConfig, stream: str, *, group: str | None = None, consumer: str | None = None,
                 message_type: type | tuple[type, ...] = (PromptGroup, ScoredGroup)):
        if (group is None) != (consumer is None):
            raise ValueError("group and consumer go together")
        self.config = config
        self.stream = stream
        self.dead_stream = f"{stream}:dead"
        self.group = group
        self.consumer = consumer
        self.message_type = message_type
        self._client = redis.Redis.from_url(config.url, socket_timeout=config.socket_timeout_s,
                                            socket_connect_timeout=config.socket_timeout_s)
        if group is not None:
            self._call(self._ensure_group)

    # ------------------------------------------------------------------ transport
    def _call(self, fn: Callable[[], T]) -> T:
        return call_with_reconnect(self.config, fn)

    def _ensure_group(self) -> None:
        try:
            # id "0": a group created after producers started still sees every entry.
            self._client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _with_group(self, fn: Callable[[], T]) -> T:
        """A group lost with a non-persistent server restart is recreated once, then retried."""
        try:
            return self._call(fn)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("consumer group %s on %s vanished; recreating it", self.group, self.stream)
            self._call(self._ensure_group)
            return self._call(fn)

    # ------------------------------------------------------------------ producer
    def publish(self, message: Message) -> str:
        payload = encode(message)
        msg_id = self._call(lambda: self._client.xadd(
            self.stream, {PAYLOAD_FIELD: payload}, maxlen=self.config.maxlen, approximate=True))
        return msg_id.decode()

    def publish_many(self, messages: Iterable[Message]) -> list[str]:
        payloads = [encode(m) for m in messages]

        def send() -> list[bytes]:
            # MULTI/EXEC: a consumer blocked in XREADGROUP is served after the whole batch, not after
            # its first XADD (a plain pipeline woke the rollout worker to one group of a step's
            # eight, and the step ran two generate calls: issue 17).
            pipe = self._client.pipeline(transaction=True)
            for p in payloads:
                pipe.xadd(self.stream, {PAYLOAD_FIELD: p}, maxlen=self.config.maxlen, approximate=True)
            return pipe.execute()

        return [i.decode() for i in self._call(send)] if payloads else []

    def length(self) -> int:
        return int(self._call(lambda: self._client.xlen(self.stream)))

    def backlog(self, group: str) -> int:
        """Entries `group` has not ACKed yet (undelivered lag + pending); the whole stream if the
        group does not exist yet. This, not XLEN, is the back-pressure signal: ACKed entries stay
        in the stream until trimmed."""
        def info() -> int:
            try:
                groups = self._client.xinfo_groups(self.stream)
            except redis.ResponseError:  # no such stream yet
                return 0
            for g in groups:
                if g["name"].decode() == group:
                    lag = g.get("lag")
                    if lag is None:  # unknown after deletions/trimming: assume everything is unread
                        lag = self._client.xlen(self.stream)
                    return int(lag) + int(g["pending"])
            return int(self._client.xlen(self.stream))

        return self._call(info)

    # ------------------------------------------------------------------ consumer
    def consume(self, count: int, block_ms: int = 0) -> list[tuple[str, Message]]:
        """Up to `count` new messages for this consumer, blocking up to `block_ms` (0: don't block)."""
        self._require_group()
        block = min(block_ms, int(self.config.socket_timeout_s * 1000) - 1000) if block_ms > 0 else None
        reply = self._with_group(lambda: self._client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block))
        entries = reply[0][1] if reply else []
        return self._decode_entries(entries)

    def ack(self, ids: Sequence[str]) -> int:
        self._require_group()
        if not ids:
            return 0
        return int(self._with_group(lambda: self._client.xack(self.stream, self.group, *ids)))

    def reclaim_stale(self, min_idle_ms: int, count: int = 100) -> list[tuple[str, Message]]:
        """Take over messages pending (unACKed) for longer than `min_idle_ms` in any consumer of the
        group, e.g. a worker that died mid-batch. Messages delivered too often are dead-lettered."""
        self._require_group()
        claimed: list[tuple[bytes, dict]] = []
        start = "0-0"
        while len(claimed) < count:
            reply = self._with_group(lambda: self._client.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_time=min_idle_ms, start_id=start,
                count=count - len(claimed)))
            start, entries = reply[0], reply[1]
            claimed.extend(e for e in entries if e[1] is not None)
            if start in (b"0-0", "0-0"):
                break
        return self._decode_entries(self._drop_poison(claimed))

    def pending(self) -> int:
        """Messages delivered to the group and not yet ACKed (all consumers)."""
        self._require_group()
        summary = self._with_group(lambda: self._client.xpending(self.stream, self.group))
        return int(summary["pending"])

    def dead_letters(self) -> int:
        return int(self._call(lambda: self._client.xlen(self.dead_stream)))

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ internals
    def _require_group(self) -> None:
        if self.group is None:
            raise RuntimeError(f"stream {self.stream}: consumer operation on a producer-only RedisStream")

    def _decode_entries(self, entries: list[tuple[bytes, dict]]) -> list[tuple[str, Message]]:
        out: list[tuple[str, Message]] = []
        for raw_id, fields in entries:
            msg_id = raw_id.decode()
            payload = fields.get(PAYLOAD_FIELD, b"")
            try:
                message = decode(payload)
                if not isinstance(message, self.message_type):
                    raise CodecError(f"unexpected {type(message).__name__} on {self.stream}")
            except CodecError as exc:
                self._dead_letter(msg_id, payload, str(exc))
                continue
            out.append((msg_id, message))
        return out

    def _drop_poison(self, entries: list[tuple[bytes, dict]]) -> list[tuple[bytes, dict]]:
        if not entries:
            return entries

        def times_delivered() -> list[list[dict]]:
            pipe = self._client.pipeline(transaction=False)
            for raw_id, _ in entries:
                pipe.xpending_range(self.stream, self.group, min=raw_id, max=raw_id, count=1)
            return pipe.execute()

        deliveries = {i["message_id"]: int(i["times_delivered"]) for rows in self._call(times_delivered)
                      for i in rows}
        keep = []
        for raw_id, fields in entries:
            n = deliveries.get(raw_id, 1)
            if n > self.config.max_deliveries:
                self._dead_letter(raw_id.decode(), fields.get(PAYLOAD_FIELD, b""), f"delivered {n} times")
            else:
                keep.append((raw_id, fields))
        return keep

    def _dead_letter(self, msg_id: str, payload: bytes, error: str) -> None:
        log.error("stream %s: message %s moved to %s: %s", self.stream, msg_id, self.dead_stream, error)

        def move() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.xadd(self.dead_stream, {b"id": msg_id, b"error": error, PAYLOAD_FIELD: payload},
                      maxlen=self.config.maxlen, approximate=True)
            if self.group is not None:
                pipe.xack(self.stream, self.group, msg_id)
            pipe.execute()

        self._call(move)


class RedisKV:
    """Hashes, sets and lists for job state (services.control.jobs), with the streams' reconnect policy."""

    def __init__(self, config: QueueConfig):
        self.config = config
        self._client = redis.Redis.from_url(config.url, socket_timeout=config.socket_timeout_s,
                                            socket_connect_timeout=config.socket_timeout_s, decode_responses=True)

    def _call(self, fn: Callable[[], T]) -> T:
        return call_with_reconnect(self.config, fn)

    def ping(self) -> bool:
        return bool(self._call(self._client.ping))

    def hset(self, key: str, mapping: dict[str, str]) -> None:
        self._call(lambda: self._client.hset(key, mapping=mapping))

    def hget(self, key: str, field: str) -> str | None:
        return self._call(lambda: self._client.hget(key, field))

    def hgetall(self, key: str) -> dict[str, str]:
        return self._call(lambda: self._client.hgetall(key))

    def update_hash(self, key: str, change: Callable[[dict[str, str]], dict[str, str]]) -> dict[str, str]:
        """Read a hash, write `change(its fields)` back, atomically (WATCH/MULTI/EXEC, retried while
        another client wrote the key in between); returns what was written. `change` may raise."""
        def attempt(pipe) -> dict[str, str]:
            mapping = change(pipe.hgetall(key))
            pipe.multi()
            pipe.hset(key, mapping=mapping)
            return mapping

        return self._call(lambda: self._client.transaction(attempt, key, value_from_callable=True))

    def sadd(self, key: str, member: str) -> None:
        self._call(lambda: self._client.sadd(key, member))

    def smembers(self, key: str) -> set[str]:
        return self._call(lambda: self._client.smembers(key))

    def rpush(self, key: str, value: str) -> None:
        self._call(lambda: self._client.rpush(key, value))

    def lrange(self, key: str, start: int, end: int) -> list[str]:
        return self._call(lambda: self._client.lrange(key, start, end))

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------------- generation marks
# Which rollout workers are generating right now: one sorted set per job. A worker marks itself
# (member = worker id, score = a deadline) around each vLLM generate call; a learner sharing the
# machine asks whether any mark is live and uses all its cores only while none is
# (learner.threads). The deadline makes a worker that dies mid-generate stop counting.
# Best effort on purpose, a scheduling hint, never a correctness path: short socket timeouts and
# no reconnect loop (the streams' 30 s deadline would stall a training step); an unreachable Redis
# reads as "someone is generating", the safe side (the learner keeps its cap). Scores are wall
# clock: meaningful only where workers and learner share a machine, the only case that uses them.
MARKS_SOCKET_TIMEOUT_S = 0.5
# After a failed call, don't ask Redis again for this long: the learner checks at every layer, and
# a socket timeout per check would stall it for as long as Redis is down.
MARKS_RETRY_AFTER_S = 5.0


def generating_key(job_id: str) -> str:
    return f"simko:{job_id}:generating"


class GenerationMarks:
    def __init__(self, url: str, job_id: str) -> None:
        self.key = generating_key(job_id)
        self._client = redis.Redis.from_url(url, socket_timeout=MARKS_SOCKET_TIMEOUT_S,
                                            socket_connect_timeout=MARKS_SOCKET_TIMEOUT_S)
        self._warned = False
        self._down_until = 0.0

    @contextlib.contextmanager
    def generating(self, worker_id: str, expected_s: float) -> Iterator[None]:
        """Mark `worker_id` as generating for the block. `expected_s`: a generous bound on the
        call (the mark lapses after it even if the worker never clears it)."""
        self._try(lambda: self._client.zadd(self.key, {worker_id: time.time() + expected_s}))
        try:
            yield
        finally:
            self._try(lambda: self._client.zrem(self.key, worker_id))

    def any_generating(self) -> bool:
        """True while some worker's mark is live, or when Redis cannot say."""
        count = self._try(lambda: self._client.zcount(self.key, time.time(), "+inf"))
        return True if count is None else count > 0

    def close(self) -> None:
        self._client.close()

    def _try(self, fn):
        if time.monotonic() < self._down_until:
            return None
        try:
            return fn()
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + MARKS_RETRY_AFTER_S
            if not self._warned:  # once: a hint that is down should not flood the log
                log.warning("generation marks at %s unavailable (%s); treating rollout as busy", self.key, exc)
                self._warned = True
            return None
