"""The learner loop: read scored groups from the rollout stream, update, publish, ACK, log, checkpoint.

    batch   = next complete batch of fresh groups   (rank 0 reads; other ranks receive a copy)
    metrics = engine.update(batch)                  (advantages -> old log-probs -> loss -> steps)
    publish the new weights (version v+1)
    ACK the batch's messages                        (only now: a crash before this redelivers them)
    log metrics; checkpoint every N updates

Delivery is at-least-once, so a group can arrive twice (reclaimed after a crash, or a retried XADD).
Group ids already applied live in the engine state (and its checkpoints): such redeliveries are
ACKed and dropped without training.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from learner.checkpoint import save_checkpoint
from learner.distributed import broadcast_object
from learner.engine import LearnerEngine
from learner.weights import WeightPublisher, publish_weights
from services.messages import ScoredGroup

log = logging.getLogger(__name__)


class GroupSource(Protocol):
    """The consumer side of the rollout stream (services.queues.RedisStream satisfies it)."""

    def consume(self, count: int, block_ms: int = 0) -> list[tuple[str, object]]: ...

    def ack(self, ids: Sequence[str]) -> int: ...

    def reclaim_stale(self, min_idle_ms: int, count: int = 100) -> list[tuple[str, object]]: ...


class LearnerLoop:
    def __init__(self, engine: LearnerEngine, source: GroupSource | None, publisher: WeightPublisher | None,
                 *, on_metrics: Callable[[dict], None] | None = None) -> None:
        if engine.rank == 0 and source is None:
            raise ValueError("rank 0 needs a GroupSource")
        self.engine = engine
        self.cfg = engine.cfg
        self.source = source  # rank 0 only
        self.publisher = publisher  # rank 0 only
        self.on_metrics = on_metrics or (lambda metrics: None)

    def run(self, *, max_updates: int | None = None, idle_timeout_s: float | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> int:
        """Train until max_updates, until the stream stays empty for idle_timeout_s, or should_stop().
        Returns the number of updates applied. Every rank calls this."""
        self.start()
        updates = 0
        while max_updates is None or updates < max_updates:
            if self.step(idle_timeout_s, should_stop) is None:
                break
            updates += 1
        return updates

    def step(self, idle_timeout_s: float | None = None,
             should_stop: Callable[[], bool] = lambda: False) -> dict | None:
        """One update: collect a batch -> update -> publish -> ACK -> log -> checkpoint on cadence.
        Returns its metrics, or None when there was nothing to train on. Every rank calls this."""
        batch, failure = broadcast_object(self._collect_or_failure(idle_timeout_s, should_stop)
                                          if self.engine.rank == 0 else None)
        if failure is not None:
            # Every rank leaves the step together, so the ranks stay in step for the next call.
            raise failure if self.engine.rank == 0 else ConnectionError(f"rank 0 could not read the stream: {failure}")
        if batch is None:
            return None
        message_ids, groups = batch
        trained_with = self.engine.state.weight_version
        metrics = self.engine.update(groups)
        if metrics["learner/optimizer_steps"]:
            metrics["perf/publish_s"] = publish_weights(self.engine, self.publisher)
        if self.engine.rank == 0:
            self.source.ack(message_ids)  # only after the update is applied and published
        self.engine.state.cursor = _cursor(self.engine.state.cursor, groups)
        metrics.update(rollout_stats(groups, trained_with))
        self.on_metrics(metrics)
        if self.cfg.checkpoint_every and self.engine.state.step % self.cfg.checkpoint_every == 0:
            save_checkpoint(self.engine)
        return metrics

    def start(self) -> None:
        """Publish the current weights if the rollout side may hold others (after a resume).

        Versions only grow. A learner resumed from an older checkpoint is behind versions it
        published before the crash; it republishes its restored weights under a newer number so
        workers move off the abandoned ones.
        """
        latest = self.publisher.latest_version() if self.publisher is not None and self.engine.rank == 0 else 0
        latest = broadcast_object(latest)
        state = self.engine.state
        if state.weight_version == 0 and latest == 0:
            return  # everyone starts from the model directory's weights
        if latest >= state.weight_version:
            state.weight_version = latest + 1
        publish_weights(self.engine, self.publisher)

    def _collect_or_failure(self, idle_timeout_s: float | None, should_stop: Callable[[], bool]):
        """(batch or None, None), or (None, the error) when the queue stayed unreachable."""
        try:
            return self._collect(idle_timeout_s, should_stop), None
        except ConnectionError as exc:  # the queue adapter's QueueUnavailable after its reconnect deadline
            return None, exc

    def _collect(self, idle_timeout_s: float | None, should_stop: Callable[[], bool]):
        """(message ids to ACK, fresh groups): batch_prompts groups, fewer if the stream went idle,
        None when stopping with nothing collected."""
        want = self.cfg.batch_prompts
        ids: list[str] = []
        groups: list[ScoredGroup] = []
        seen: set[str] = set()
        idle_since = time.monotonic()
        while len(groups) < want and not should_stop():
            need = want - len(groups)
            # Groups a dead learner left un-ACKed first, then new ones.
            entries = self.source.reclaim_stale(self.cfg.reclaim_idle_ms, need)
            if len(entries) < need:
                entries += self.source.consume(need - len(entries), block_ms=self.cfg.read_block_ms)
            for message_id, message in entries:
                if not isinstance(message, ScoredGroup):
                    log.warning("dropping %s: %s is not a ScoredGroup", message_id, type(message).__name__)
                    self.source.ack([message_id])
                elif message.group_id in self.engine.state.applied_group_ids:
                    self.source.ack([message_id])  # redelivered after its update was applied
                elif message.group_id in seen:
                    ids.append(message_id)  # a duplicate within this batch: ACKed with it
                else:
                    seen.add(message.group_id)
                    ids.append(message_id)
                    groups.append(message)
            if entries:
                idle_since = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                break
        if not groups and not ids:
            return None
        return ids, groups


def rollout_stats(groups: list[ScoredGroup], learner_version: int) -> dict:
    """What the batch says about the rollout side: staleness (learner version minus the version
    that sampled each group), accuracy (with 0/1 rewards the sampled responses' pass@1), length."""
    if not groups:
        return {}
    staleness = [learner_version - g.policy_version for g in groups]
    samples = [s for g in groups for s in g.samples]
    return {
        "rollout/staleness_mean": sum(staleness) / len(staleness),
        "rollout/staleness_max": max(staleness),
        "reward/accuracy": sum(s.correct for s in samples) / max(len(samples), 1),
        "reward/group_solved_frac": sum(any(s.correct for s in g.samples) for g in groups) / len(groups),
        "rollout/response_len_mean": sum(len(s.token_ids) for s in samples) / max(len(samples), 1),
    }


def _cursor(previous: dict, groups: list[ScoredGroup]) -> dict:
    """Where the data stream is (for the prompt producer after a resume): groups consumed and the
    furthest (epoch, index) trained."""
    cursor = dict(previous)
    cursor["groups_consumed"] = cursor.get("groups_consumed", 0) + len(groups)
    for g in groups:
        if (g.epoch, g.index) >= (cursor.get("epoch", -1), cursor.get("index", -1)):
            cursor["epoch"], cursor["index"] = g.epoch, g.index
    return cursor
