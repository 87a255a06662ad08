"""Learner engine fixtures: a small, fast LearnerConfig on the shared tiny model."""
from __future__ import annotations

import pytest

from learner.config import LearnerConfig


@pytest.fixture
def learner_config(tiny_model_dir):
    """Factory: a small, fast LearnerConfig on the tiny model; keyword overrides."""

    def build(**overrides) -> LearnerConfig:
        base = dict(model_path=str(tiny_model_dir), lr=1e-3, batch_prompts=4, mini_batch_prompts=2,
                    micro_batch_tokens=64, max_seq_len=64, grad_clip=1.0, seed=0)
        base.update(overrides)
        return LearnerConfig(**base)

    return build
