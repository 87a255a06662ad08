"""One learner rank as the training loop sees it: the steps of an update as methods.

    pull_batch()   rank 0 reads complete, fresh scored groups from the rollout stream; every rank
                   receives the same batch (redeliveries of applied groups are ACKed and dropped)
    update()       the engine's update on that batch (advantages -> old log-probs -> loss -> steps)
    publish()      the new weights (version v+1) to the rollout side
    ack()          ACK the batch's messages: only now, so a crash before this redelivers them
    save_checkpoint() / export()

services.control.loop drives these in order; learner.actor wraps a Learner per rank for Ray. Every
method runs collectives, so all ranks call each one together. Delivery is at-least-once: group ids
already applied live in the engine state (and its checkpoints), which is what makes redelivery safe.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from learner.batching import has_signal
from learner.checkpoint import export_hf, latest_checkpoint, load_checkpoint, save_checkpoint
from learner.distributed import broadcast_object
from learner.engine import LearnerEngine
from services.wire.messages import ScoredGroup
from services.wire.weights import WeightPublisher

log = logging.getLogger(__name__)


class GroupSource(Protocol):
    """The consumer side of the rollout stream (services.wire.streams.RedisStream satisfies it)."""

    def consume(self, count: int, block_ms: int = 0) -> list[tuple[str, object]]: ...

    def ack(self, ids: Sequence[str]) -> int: ...

    def reclaim_stale(self, min_idle_ms: int, count: int = 100) -> list[tuple[str, object]]: ...


@dataclass
class Batch:
    message_ids: list[str] = field(default_factory=list)  # to ACK once applied (duplicates included)
    groups: list[ScoredGroup] = field(default_factory=list)  # fresh groups, one per group id
    counted: int = 0  # groups that count towards batch_prompts (DAPO dynamic sampling skips the others)


class Learner:
    def __init__(self, engine: LearnerEngine, source: GroupSource | None = None,
                 publisher: WeightPublisher | None = None) -> None:
        if engine.rank == 0 and source is None:
            raise ValueError("rank 0 needs a GroupSource")
        self.engine = engine
        self.cfg = engine.cfg
        self.source = source  # rank 0 only
        self.publisher = publisher  # rank 0 only
        self._batch: Batch | None = None  # pulled, not yet ACKed
        self._collecting = Batch()  # rank 0: the batch being collected across pull_batch calls

    # ------------------------------------------------------------------ start-up
    def resume(self) -> bool:
        """Load the newest checkpoint of the job's checkpoint directory, if there is one."""
        directory = self.engine.job.checkpoint_dir
        if not directory or not latest_checkpoint(directory):
            return False
        restored = load_checkpoint(self.engine, directory)
        log.info("resumed from checkpoint at step %d", restored.step)
        return True

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
        self.publish()

    # ------------------------------------------------------------------ one update
    def pull_batch(self, idle_timeout_s: float | None = None,
                   should_stop: Callable[[], bool] = lambda: False) -> int | None:
        """Collect the next batch: batch_prompts fresh groups (with dynamic sampling, groups with a
        learning signal; the equal-reward ones ride along to be counted and ACKed). Returns its group
        count once complete; None when the stream stayed idle for idle_timeout_s first (what was
        collected so far is kept for the next call, never trained as a partial batch). Raises
        ConnectionError on every rank when rank 0 could not reach the stream (the ranks stay in step)."""
        batch, failure = broadcast_object(self._collect_or_failure(idle_timeout_s, should_stop)
                                          if self.engine.rank == 0 else None)
        if failure is not None:
            raise failure if self.engine.rank == 0 else ConnectionError(f"rank 0 could not read the stream: {failure}")
        self._batch = batch
        return None if batch is None else len(batch.groups)

    def update(self) -> dict:
        """Train on the pulled batch; returns the step's metrics (learner/, loss/, dist/, batch/ ...)."""
        batch = self._pending()
        trained_with = self.engine.state.weight_version
        metrics = self.engine.update(batch.groups)
        self.engine.state.cursor = _cursor(self.engine.state.cursor, batch.groups)
        metrics.update(rollout_stats(batch.groups, trained_with))
        return metrics

    def publish(self) -> float:
        """Gather and publish the current weights under the engine's version; returns seconds (rank
        0's view). Every rank must call it: under ZeRO-3 the full weights are gathered collectively."""
        started = time.perf_counter()
        state_dict = self.engine.full_state_dict()
        if self.engine.rank == 0 and self.publisher is not None:
            self.publisher.publish(self.engine.state.weight_version, state_dict)
        return time.perf_counter() - started

    def consumed(self) -> int:
        """Groups taken off the rollout stream so far: trained ones plus the batch being collected
        (rank 0's view). The prompt supply refills from this while dynamic sampling filters."""
        return self.engine.state.cursor.get("groups_consumed", 0) + len(self._collecting.groups)

    def ack(self) -> None:
        """ACK the applied batch's messages (rank 0) and forget the batch."""
        batch = self._pending()
        if self.engine.rank == 0:
            self.source.ack(batch.message_ids)
        self._batch = None

    # ------------------------------------------------------------------ persistence
    def save_checkpoint(self) -> str:
        return str(save_checkpoint(self.engine))

    def export(self, out_dir: str) -> str | None:
        path = export_hf(self.engine, out_dir)
        return str(path) if path else None

    def state(self) -> dict:
        """The learner state for a driver, without the (large) window of applied group ids."""
        state = self.engine.state.to_dict()
        state["applied_group_count"] = len(state.pop("applied_group_ids"))
        return state

    # ------------------------------------------------------------------ internals
    def _pending(self) -> Batch:
        if self._batch is None:
            raise RuntimeError("no pulled batch: call pull_batch() first")
        return self._batch

    def _collect_or_failure(self, idle_timeout_s: float | None, should_stop: Callable[[], bool]):
        """(batch or None, None), or (None, the error) when the queue stayed unreachable."""
        try:
            return self._collect(idle_timeout_s, should_stop), None
        except ConnectionError as exc:  # the stream's QueueUnavailable after its reconnect deadline
            return None, exc

    def _collect(self, idle_timeout_s: float | None, should_stop: Callable[[], bool]) -> Batch | None:
        want = self.cfg.batch_prompts
        batch = self._collecting
        seen = {g.group_id for g in batch.groups}
        idle_since = time.monotonic()
        while batch.counted < want:
            if should_stop():
                return None
            need = want - batch.counted
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
                    batch.message_ids.append(message_id)  # a duplicate within this batch: ACKed with it
                else:
                    seen.add(message.group_id)
                    batch.message_ids.append(message_id)
                    batch.groups.append(message)
                    batch.counted += has_signal(message, self.engine.job)
            if entries:
                idle_since = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                return None  # keep collecting on the next call
        self._collecting = Batch()
        return batch


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
