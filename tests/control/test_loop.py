"""services.control.loop.train, the one training loop, with a real in-process learner (DeepSpeed on
the tiny model) over real Redis streams.

The rollout side here is a scripted stand-in: a thread that consumes the real prompt stream and
publishes ScoredGroups of random tokens with alternating rewards (the real vLLM worker is tested in
tests/rollout and end to end in tests/integration); what this file checks is the loop's own
contract: order (publish before ACK), cadences (checkpoint, eval), cancel, resume, the metrics rows.
"""
from __future__ import annotations

import json
import random
import threading
import uuid
from pathlib import Path

import pytest

from learner.engine import LearnerEngine
from learner.learner import Learner
from services.control.feeder import PromptFeeder, PromptSupply
from services.control.jobs import JobState
from services.control.jobspec import JobSpec
from learner.errors import LearnerLost
from services.control.loop import NoControl, Training, train
from services.control.metrics_log import MetricsLog
from services.data import Example
from services.wire.messages import PromptGroup, Sample, ScoredGroup
from services.wire.streams import (PROMPTS_GROUP, ROLLOUTS_GROUP, QueueConfig, RedisStream, prompts_stream,
                                   rollouts_stream)
from services.wire.weights import InProcessWeights
from tests.learner.learner_support import make_job

pytestmark = pytest.mark.slow
EXAMPLES = [Example(id=str(i), prompt=f"{i} + {i} =", answer=str(2 * i), task="math") for i in range(6)]


class ScriptedRollout:
    """Consumes the prompt stream like a rollout worker and publishes scored groups of random tokens."""

    def __init__(self, redis_url: str, job_id: str, vocab: int = 512):
        queue = QueueConfig(url=redis_url)
        self.prompts = RedisStream(queue, prompts_stream(job_id), group=PROMPTS_GROUP, consumer="scripted",
                                   message_type=PromptGroup)
        self.rollouts = RedisStream(queue, rollouts_stream(job_id))
        self.vocab, self.rng = vocab, random.Random(0)
        self.workers: list = []
        self.resized: list[int] = []
        self.evaluated: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            for msg_id, group in self.prompts.consume(8, block_ms=100):
                samples = []
                for i in range(group.n):
                    ids = [self.rng.randrange(8, self.vocab) for _ in range(self.rng.randint(3, 10))]
                    samples.append(Sample(token_ids=ids, logprobs=[0.0] * len(ids), top_ids=[], top_logprobs=[],
                                          text="", finish_reason="stop", reward=float(i % 2), correct=bool(i % 2)))
                prompt_ids = [self.rng.randrange(8, self.vocab) for _ in range(5)]
                self.rollouts.publish(ScoredGroup(job_id=group.job_id, group_id=group.group_id,
                                                  prompt_token_ids=prompt_ids, task=group.task, gold=group.gold,
                                                  samples=samples, policy_version=group.min_version,
                                                  worker_id="scripted", epoch=group.epoch, index=group.index))
                self.prompts.ack([msg_id])

    # the loop's RolloutSide
    def resize(self, replicas: int) -> None:
        self.resized.append(replicas)
        self.workers = [f"w{i}" for i in range(replicas)]
        if replicas and not self._thread.is_alive():
            self._thread.start()

    def metrics(self) -> dict[str, float]:
        return {"rollout/workers": float(len(self.workers))}

    def evaluate(self, prompts, golds, tasks, n):
        self.evaluated.append(len(prompts))
        return [(i % (n + 1), 4.0) for i in range(len(prompts))]  # c correct of n, 4 tokens on average

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


class CancelAfter(NoControl):
    def __init__(self, steps: int):
        self.steps, self.seen = steps, 0

    def report_step(self, step: int) -> None:
        self.seen = step

    def cancel_requested(self) -> bool:
        return self.seen >= self.steps


def make_training(tmp_path: Path, redis_url: str, tiny_model_dir: Path, job_id: str, *, control=None,
                  published: InProcessWeights | None = None, **trainer):
    spec = JobSpec.parse({"model": {"path": str(tiny_model_dir)}, "data": {"train": "unused.jsonl", "eval": "e"},
                          "rollout": {"n": 4, "max_tokens": 16, "max_model_len": 64},
                          "learner": {"batch_prompts": 2, "mini_batch_prompts": 2, "micro_batch_tokens": 256,
                                      "max_seq_len": 64, "lr": 1e-3, "read_block_ms": 100},
                          "trainer": {"steps": 3, **trainer}})
    job = make_job(model_path=str(tiny_model_dir), batch_prompts=2, mini_batch_prompts=2, micro_batch_tokens=256,
                   max_seq_len=64, lr=1e-3, read_block_ms=100, checkpoint_dir=str(tmp_path / "checkpoints"))
    queue = QueueConfig(url=redis_url)
    source = RedisStream(queue, rollouts_stream(job_id), group=ROLLOUTS_GROUP, consumer="learner",
                         message_type=ScoredGroup)
    learner = Learner(LearnerEngine(job), source, published if published is not None else InProcessWeights(5))
    feeder = PromptFeeder(job_id=job_id, examples=EXAMPLES, template="plain", n=4, seed=0)
    supply = PromptSupply(feeder, RedisStream(queue, prompts_stream(job_id)), RedisStream(queue, rollouts_stream(job_id)),
                          batch_prompts=2, max_staleness=0)
    rollout = ScriptedRollout(redis_url, job_id)
    return Training(spec=spec, run_dir=tmp_path, learner=learner, rollout=rollout, supply=supply,
                    metrics=MetricsLog(tmp_path), control=control or NoControl(), eval_examples=EXAMPLES[:3],
                    poll_s=1.0), source


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_loop_trains_publishes_then_acks_checkpoints_evaluates_and_exports(tmp_path, redis_url, tiny_model_dir):
    job_id = uuid.uuid4().hex[:8]
    published = InProcessWeights(keep_last=5)
    t, source = make_training(tmp_path, redis_url, tiny_model_dir, job_id, published=published, save_every=2,
                              eval_every=2, eval_n=4)
    pending_at_publish = []
    real_publish = t.learner.publish

    def publish_and_look() -> float:  # the batch is still un-ACKed when its weights go out
        pending_at_publish.append(source.pending())
        return real_publish()

    t.learner.publish = publish_and_look
    try:
        assert train(t) is JobState.SUCCEEDED
    finally:
        t.rollout.stop()
    logged = rows(tmp_path)
    assert [r["trainer/step"] for r in logged] == [1, 2, 3]
    assert [r["learner/weight_version"] for r in logged] == [1, 2, 3]
    assert pending_at_publish == [2, 2, 2] and source.pending() == 0
    assert published.latest_version() == 3
    assert t.rollout.resized == [t.spec.rollout.workers]
    # eval every 2 steps on the 3 held-out problems: pass@1 of counts (0, 1, 2) of n=4 is 0.25
    assert "eval/pass@1" not in logged[0] and "eval/pass@1" not in logged[2]
    assert logged[1]["eval/pass@1"] == pytest.approx((0 + 1 / 4 + 2 / 4) / 3) and t.rollout.evaluated == [3]
    assert {"eval/pass@2", "eval/pass@4", "perf/publish_s", "perf/wait_for_batch_s", "loss/policy"} <= set(logged[1])
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert checkpoints == ["step_00000002", "step_00000003"]  # save_every=2, and the final one
    assert (tmp_path / "final" / "config.json").is_file()


def test_cancel_stops_at_a_step_boundary_and_a_rerun_resumes(tmp_path, redis_url, tiny_model_dir):
    job_id = uuid.uuid4().hex[:8]
    published = InProcessWeights(keep_last=5)  # the job's weight registry: it outlives one controller run
    t, _ = make_training(tmp_path, redis_url, tiny_model_dir, job_id, control=CancelAfter(1), save_every=1,
                         published=published)
    try:
        assert train(t) is JobState.CANCELLED
    finally:
        t.rollout.stop()
    assert [r["trainer/step"] for r in rows(tmp_path)] == [1]
    assert not (tmp_path / "final").exists()

    # The same job again: resumes from the step-1 checkpoint and finishes steps 2 and 3.
    again, _ = make_training(tmp_path, redis_url, tiny_model_dir, job_id, published=published)
    try:
        assert train(again) is JobState.SUCCEEDED
    finally:
        again.rollout.stop()
    logged = rows(tmp_path)
    assert [r["trainer/step"] for r in logged] == [1, 2, 3]
    assert [r["learner/weight_version"] for r in logged] == [1, 3, 4]  # v2 = the restored weights republished
    assert logged[-1]["batch/groups_in"] == 2


def dies_at(learner: Learner, step: int) -> Learner:
    """The learner's update raises LearnerLost at `step` (what LearnerGroup reports when a rank's
    process is gone; the real SIGKILL of a rank is tests/integration/test_train_job.py's)."""
    real_update = learner.update

    def update() -> dict:
        if learner.engine.state.step + 1 == step:
            raise LearnerLost("rank 0 died (injected)")
        return real_update()

    learner.update = update
    return learner


def test_a_lost_learner_restarts_from_its_checkpoint_within_the_budget(tmp_path, redis_url, tiny_model_dir):
    job_id = uuid.uuid4().hex[:8]
    t, _ = make_training(tmp_path, redis_url, tiny_model_dir, job_id, steps=4, save_every=1, max_restarts=1)
    dies_at(t.learner, 3)
    builds = []

    def new_learner() -> Learner:
        # the same checkpoint dir, streams and weight registry (the job's), a new learner
        fresh, _ = make_training(tmp_path, redis_url, tiny_model_dir, job_id, published=t.learner.publisher)
        builds.append(fresh.learner)
        return fresh.learner

    t.new_learner = new_learner
    try:
        assert train(t) is JobState.SUCCEEDED
    finally:
        t.rollout.stop()
    assert len(builds) == 1 and t.learner is builds[0]
    logged = rows(tmp_path)
    assert [r["trainer/step"] for r in logged] == [1, 2, 3, 4]  # step 3 redone after the checkpoint of 2
    assert [r["trainer/learner_restarts"] for r in logged] == [0, 0, 1, 1]
    assert logged[2]["learner/weight_version"] == logged[1]["learner/weight_version"] + 2  # republished, then v+1


def test_the_restart_budget_fails_the_job_instead_of_looping(tmp_path, redis_url, tiny_model_dir):
    job_id = uuid.uuid4().hex[:8]
    t, _ = make_training(tmp_path, redis_url, tiny_model_dir, job_id, steps=3, save_every=1, max_restarts=0)
    dies_at(t.learner, 2)
    t.new_learner = lambda: pytest.fail("no restart is left in a budget of 0")
    try:
        with pytest.raises(RuntimeError, match="trainer.max_restarts=0"):
            train(t)
    finally:
        t.rollout.stop()
