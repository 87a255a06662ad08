"""Helpers for the learner engine tests: synthetic scored groups on the tiny model's vocabulary,
LearnerJobs from flat keyword overrides, and comparing trained weights."""
from __future__ import annotations

import random

from learner.config import AlgorithmSection, LearnerJob, LearnerSection
from services.wire.messages import Sample, ScoredGroup


def make_groups(count: int, *, n: int = 4, vocab: int = 512, prompt_len: tuple[int, int] = (4, 10),
                response_len: tuple[int, int] = (3, 12), seed: int = 0, prefix: str = "g",
                rewards: list[list[float]] | None = None) -> list[ScoredGroup]:
    """`count` groups of `n` random responses; rewards alternate 0/1 so every group has signal
    (unless given). Ids avoid the special tokens at the bottom of the vocabulary."""
    rng = random.Random(seed)
    groups = []
    for g in range(count):
        prompt = [rng.randrange(8, vocab) for _ in range(rng.randint(*prompt_len))]
        group_rewards = rewards[g] if rewards is not None else [float((i + g) % 2) for i in range(n)]
        samples = []
        for i in range(n):
            ids = [rng.randrange(8, vocab) for _ in range(rng.randint(*response_len))]
            samples.append(Sample(token_ids=ids, logprobs=[0.0] * len(ids), top_ids=[], top_logprobs=[],
                                  text="", finish_reason="stop", reward=group_rewards[i],
                                  correct=group_rewards[i] > 0.5))
        groups.append(ScoredGroup(job_id="test", group_id=f"{prefix}{seed}-{g}", prompt_token_ids=prompt,
                                  task="math", gold="0", samples=samples, policy_version=0, worker_id="w0",
                                  index=g))
    return groups


def make_job(**overrides) -> LearnerJob:
    """A LearnerJob from flat keyword overrides: learner-section fields go to `learner`,
    algorithm-section fields to `algorithm`, the rest (model_path, temperature, seed, ...) to the job."""
    learner_fields, algorithm_fields = set(LearnerSection.model_fields), set(AlgorithmSection.model_fields)
    learner = {k: overrides.pop(k) for k in list(overrides) if k in learner_fields}
    algorithm = {k: overrides.pop(k) for k in list(overrides) if k in algorithm_fields}
    job = dict(model_path="unused", temperature=1.0, max_response_tokens=256, seed=0)
    job.update(overrides)
    return LearnerJob(learner=LearnerSection(**learner), algorithm=AlgorithmSection(**algorithm), **job)


def weights(engine) -> dict:
    """The engine's full weights (CPU tensors; every rank must call it under ZeRO-3)."""
    return engine.full_state_dict()


def max_diff(a: dict, b: dict) -> float:
    """Largest absolute element difference between two state dicts with the same keys."""
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
