"""Rollout worker: prompt stream -> vLLM samples -> verifier rewards -> rollout stream.

One batch (`run_once`) reads top to bottom:
    pull newer weights -> back-pressure check -> take prompts (reclaimed first, then new)
    -> make sure the weights are fresh enough -> generate -> verify -> publish -> ACK.
A prompt is ACKed only after its scored group is published, so a worker killed anywhere in
between leaves its prompts pending; another worker takes them over (XAUTOCLAIM) and the learner
de-duplicates by group_id (delivery is at-least-once, never at-most-once).

Runs as a plain process (rollout.serve, used by `simko serve rollout`) or inside a Ray actor
(rollout.actor); the class itself knows nothing about Ray.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from rollout.config import RolloutJob
from rollout.engine import Engine, PromptResult, WeightUpdateError
from rollout.metrics import RolloutMetrics
from services.wire.messages import PromptGroup, Sample, ScoredGroup
from services.wire.streams import (PROMPTS_GROUP, ROLLOUTS_GROUP, GenerationMarks, QueueConfig, QueueUnavailable,
                                   RedisStream, prompts_stream, rollouts_stream)
from services.wire.verifier_client import VerifierClient, VerifierError
from services.wire.weight_broadcast import BroadcastError
from services.wire.weights import BroadcastSource, WeightSource, WeightVersionUnavailable

log = logging.getLogger(__name__)


class RolloutWorker:
    def __init__(self, job: RolloutJob, *, engine: Engine | None = None,
                 weight_source: WeightSource | BroadcastSource | None = None, verifier: VerifierClient | None = None):
        self.job = job
        self.config = job.rollout  # the rollout section: sampling, engine and flow-control settings
        self.worker_id = job.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.engine = engine or Engine(job.model_path, job.rollout, seed=job.seed)
        self.weights = weight_source
        # The verifier client is async (httpx); the worker owns one loop and drives it per batch.
        self._loop = asyncio.new_event_loop()
        self.verifier = verifier or VerifierClient.for_section(job.verifier_url, job.verifier)
        queue_config = QueueConfig(url=job.redis_url)
        self.prompts = RedisStream(queue_config, prompts_stream(job.job_id), group=PROMPTS_GROUP,
                                   consumer=self.worker_id, message_type=PromptGroup)
        self.rollouts = RedisStream(queue_config, rollouts_stream(job.job_id))
        self.metrics = RolloutMetrics()
        # Marks this worker as generating, so a learner sharing the machine keeps to its thread cap
        # only then (services.wire.streams.GenerationMarks, learner.threads).
        self.marks = GenerationMarks(job.redis_url, job.job_id)
        self._last_generate_s = 0.0
        self._last_generate_samples = 0
        # The vLLM engine is not thread-safe: the loop thread and evaluate() (an actor call) take turns.
        self._engine_lock = threading.RLock()
        self._refused_versions: set[int] = set()
        self.stop_event = threading.Event()
        # One background thread for verify/publish/ACK; it is the only user of self._loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout-finish")
        self._in_flight: Future | None = None
        self._in_flight_ids: set[str] = set()

    # ------------------------------------------------------------------ one batch
    def run_once(self, block_ms: int | None = None) -> int:
        """Take and generate at most one batch; return the number of scored groups published
        during this call. With `pipeline`, verify -> publish -> ACK of a batch runs in a background
        thread while the next batch generates (at most one batch in flight)."""
        published = self._collect(wait=False)
        self.sync_weights()
        if self.rollouts.backlog(ROLLOUTS_GROUP) >= self.config.backpressure_bound:
            self.metrics.backpressure_waits += 1
            published += self._collect(wait=True)  # finishing work already generated is fine
            self.stop_event.wait(min(self.config.block_ms, 1000) / 1000)
            return published
        in_flight = self._in_flight is not None
        # With a batch in flight, don't block on the stream: waiting for that batch is the useful work.
        batch = self._take_prompts(0 if in_flight else (self.config.block_ms if block_ms is None else block_ms))
        if not batch and not in_flight:
            return published
        t0 = time.perf_counter()
        try:
            staged = self._generate(batch) if batch else None
            published += self._collect(wait=True)
            if staged is not None:
                if self.config.pipeline:
                    self._in_flight = self._executor.submit(self._finish, *staged)
                    self._in_flight_ids = {msg_id for msg_id, _ in staged[0]}
                else:
                    published += self._finish(*staged)
        finally:
            self.metrics.busy_s += time.perf_counter() - t0
        return published

    def flush(self) -> int:
        """Wait for the batch in flight (if any); return the groups it published."""
        return self._collect(wait=True)

    def _collect(self, *, wait: bool) -> int:
        if self._in_flight is None or not (wait or self._in_flight.done()):
            return 0
        future, self._in_flight, self._in_flight_ids = self._in_flight, None, set()
        return future.result()  # re-raises what the background stage raised

    def _take_prompts(self, block_ms: int) -> list[tuple[str, PromptGroup]]:
        """Stale prompts of dead (or failed) consumers first, then new ones. XAUTOCLAIM also returns
        this worker's own un-ACKed prompts once idle long enough, so the batch in flight is skipped."""
        want = self.config.batch_groups
        batch = [(i, g) for i, g in self.prompts.reclaim_stale(self.config.reclaim_idle_ms, count=want)
                 if i not in self._in_flight_ids]
        if len(batch) < want:
            batch += self.prompts.consume(want - len(batch), block_ms=0 if batch else block_ms)
        return batch  # type: ignore[return-value]

    def _generate(self, batch: list[tuple[str, PromptGroup]]) -> tuple | None:
        """Fresh-enough weights, then sample. None (prompts left pending) if the weights are too old."""
        groups = [g for _, g in batch]
        required = max([g.min_version for g in groups] + [self._learner_version() - self.job.max_staleness])
        if not self.ensure_version(required):
            # Leave the prompts pending: a worker with fresh weights (or this one, later) reclaims them.
            log.warning("weights v%d < required v%d after %.0fs; leaving %d prompts pending",
                        self.engine.version, required, self.config.weight_wait_s, len(batch))
            return None
        version = self.engine.version
        counts = [g.n if g.n > 0 else self.config.n for g in groups]
        samples = sum(counts)
        t0 = time.perf_counter()
        with self._engine_lock, self.marks.generating(self.worker_id, self._expected_generate_s(samples)):
            results = self.engine.generate(
                # pre-tokenised ids, else chat messages (the engine applies the chat template), else text
                [g.prompt_token_ids or g.messages or g.prompt for g in groups], counts, sampling=self.config)
        generate_s = self._last_generate_s = time.perf_counter() - t0
        self._last_generate_samples = samples
        self.metrics.generate_s += generate_s
        return batch, results, version, generate_s

    def _expected_generate_s(self, samples: int) -> float:
        """A generous bound on a generate call of `samples` samples, for its generation mark: if
        this process dies inside generate, the mark lapses after it (a lapse only costs the learner
        its thread cap). A few times the last call's seconds per sample (measured, so any machine's
        speed); before any call, the weight wait."""
        if not self._last_generate_samples:
            return self.config.weight_wait_s
        return max(10.0, 4 * self._last_generate_s * max(1.0, samples / self._last_generate_samples))

    def _finish(self, batch: list[tuple[str, PromptGroup]], results: list[PromptResult], version: int,
                generate_s: float) -> int:
        """Verify -> publish -> ACK. Returns the number of groups published."""
        groups = [g for _, g in batch]
        t0 = time.perf_counter()
        try:
            scored_samples = self._verify(groups, results)
        except VerifierError as exc:
            # Unreachable after the client's own retries (VerifierUnavailable) or a refused request:
            # rewards are unknown, so nothing is published and nothing ACKed. The prompts are retried
            # after reclaim_idle_ms; one that keeps failing ends in the dead-letter stream.
            self.metrics.verifier_failures += 1
            log.error("verifier failed (%s), %d prompts left pending: %s", type(exc).__name__, len(batch), exc)
            return 0
        verify_s = time.perf_counter() - t0

        timings = {"generate_s": generate_s, "verify_s": verify_s, "batch_groups": float(len(groups))}
        out = [self._scored(g, r, samples, version, timings) for g, r, samples in zip(groups, results, scored_samples)]
        self.rollouts.publish_many(out)
        self.prompts.ack([msg_id for msg_id, _ in batch])  # only now: the groups are downstream
        for group in out:
            if group.error:
                self.metrics.prompt_errors += 1
            else:
                self.metrics.record_group(group)
        return len(out)

    def _verify(self, groups: Sequence[PromptGroup], results: Sequence[PromptResult]) -> list[list[Sample]]:
        # The prompt travels as the question (BBH option text -> letter, SynLogic puzzles); the job's
        # extraction policy decides which statements count as the final answer.
        items = [{"task": g.task, "response": s.text, "gold": g.gold, "question": g.prompt,
                  "extraction": self.job.verifier.extraction}
                 for g, r in zip(groups, results) for s in r.samples]
        verdicts = []
        if items:
            t0 = time.perf_counter()
            verdicts = self._loop.run_until_complete(self.verifier.verify(items))
            self.metrics.verify_s += time.perf_counter() - t0
            self.metrics.verify_calls += 1
            if len(verdicts) != len(items):
                raise RuntimeError(f"verifier returned {len(verdicts)} verdicts for {len(items)} items")
        it = iter(verdicts)
        out: list[list[Sample]] = []
        for r in results:
            row = []
            for s in r.samples:
                v = next(it)
                row.append(dataclasses.replace(s, reward=float(v.reward), correct=bool(v.correct),
                                               status=str(v.status), extracted=v.extracted))
            out.append(row)
        return out

    def _scored(self, g: PromptGroup, r: PromptResult, samples: list[Sample], version: int,
                timings: dict[str, float]) -> ScoredGroup:
        return ScoredGroup(job_id=g.job_id, group_id=g.group_id, prompt_token_ids=r.prompt_token_ids, task=g.task,
                           gold=g.gold, samples=samples, policy_version=version, worker_id=self.worker_id,
                           epoch=g.epoch, index=g.index, timings=dict(timings), error=r.error)

    # ------------------------------------------------------------------ weights
    def _learner_version(self) -> int:
        return self.weights.latest_version() if self.weights is not None else self.engine.version

    def sync_weights(self) -> None:
        """Load the newest published version if it is newer than ours."""
        if self.weights is None:
            return
        latest = self.weights.latest_version()
        if latest > self.engine.version and latest not in self._refused_versions:
            self._load(latest)

    def ensure_version(self, required: int) -> bool:
        """Pull weights until engine.version >= required; False if that does not happen in time."""
        deadline = time.monotonic() + self.config.weight_wait_s
        while self.engine.version < required:
            self.sync_weights()
            if self.engine.version >= required:
                break
            if time.monotonic() > deadline or self.stop_event.wait(0.2):
                return False
        return True

    def _load(self, version: int) -> None:
        try:
            if isinstance(self.weights, BroadcastSource):  # rollout.weight_sync = broadcast
                offer = self.weights.offer(version)
                with self._engine_lock:
                    seconds = self.engine.receive_weights(offer, timeout_s=self.config.weight_wait_s)
                version = self.engine.version  # the publisher serves its newest
            else:
                weights = self.weights.fetch(version)  # type: ignore[union-attr]
                with self._engine_lock:
                    seconds = self.engine.update_weights(weights, version)
        except WeightVersionUnavailable:
            log.info("weights v%d already dropped by the source; will take the next latest", version)
            return
        except WeightUpdateError as exc:
            # The engine refused before touching vLLM: keep serving the old weights, never retry this one.
            self._refused_versions.add(version)
            self.metrics.weight_refusals += 1
            log.error("refused weights v%d: %s", version, exc)
            return
        except BroadcastError as exc:
            # A failed round (publisher gone, a peer died, a new layout): retried at the next sync.
            # Torn weights are marked TORN_VERSION by the engine, so no batch samples with them.
            self.metrics.weight_failures += 1
            log.error("receiving weights v%d failed (engine at v%d): %s", version, self.engine.version, exc)
            return
        self.metrics.weight_updates += 1
        self.metrics.weight_update_s += seconds
        log.info("loaded weights v%d in %.3fs", version, seconds)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, prompts: Sequence[str], golds: Sequence[str], tasks: Sequence[str], n: int
                 ) -> list[tuple[int, float]]:
        """(correct samples, mean response tokens) per prompt: n samples each with the newest
        published weights and this job's sampling settings (no log-probs), graded by the
        verifier service. The training loop's pass@K evaluation (trainer.eval_every) uses it."""
        sampling = self.config.model_copy(update={"top_logprobs": None})
        with self._engine_lock:
            self.sync_weights()
            # Marked like a training generate: a learner mid-update (max_staleness > 0) caps its
            # threads while this engine holds a core.
            with self.marks.generating(self.worker_id, self._expected_generate_s(len(prompts) * n)):
                results = self.engine.generate(list(prompts), n, sampling=sampling, seed=self.job.seed)
        failed = [(i, r.error) for i, r in enumerate(results) if r.error]
        if failed:
            raise ValueError(f"the engine refused {len(failed)} evaluation prompts, e.g. #{failed[0][0]}: {failed[0][1]}")
        items = [{"task": task, "response": s.text, "gold": gold}
                 for r, gold, task in zip(results, golds, tasks) for s in r.samples]
        # Its own connection and event loop: self._loop belongs to the background finish thread.
        verdicts = iter(self.verifier.verify_sync(items))
        return [(sum(next(verdicts).correct for _ in r.samples), sum(len(s.token_ids) for s in r.samples) / n)
                for r in results]

    # ------------------------------------------------------------------ loop
    def run(self, stop_event: threading.Event | None = None, *, max_groups: int | None = None) -> int:
        """Serve until `stop_event` is set (or `max_groups` were published). Returns groups published."""
        if stop_event is not None:
            self.stop_event = stop_event
        done = 0
        last_report = time.monotonic()
        while not self.stop_event.is_set() and (max_groups is None or done < max_groups):
            try:
                done += self.run_once()
            except QueueUnavailable as exc:
                # Redis is down beyond the queue's own reconnect deadline: wait and keep the worker alive.
                log.error("%s; retrying in 5s", exc)
                self.stop_event.wait(5.0)
            if time.monotonic() - last_report >= self.config.metrics_interval_s:
                last_report = time.monotonic()
                log.info("metrics %s", json.dumps(self.metrics.snapshot()))
        return done + self.flush()

    def close(self) -> None:
        self.flush()
        self._executor.shutdown(wait=True)
        aclose = getattr(self.verifier, "aclose", None)
        if aclose is not None:
            self._loop.run_until_complete(aclose())
        self._loop.close()
        self.prompts.close()
        self.rollouts.close()
        self.marks.close()
