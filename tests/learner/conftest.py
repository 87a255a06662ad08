"""Learner engine fixtures: a small, fast LearnerJob on the shared tiny model."""
from __future__ import annotations

import pytest

from tests.learner.learner_support import make_job


@pytest.fixture
def learner_config(tiny_model_dir):
    """Factory: a small, fast LearnerJob on the tiny model; flat keyword overrides (make_job)."""

    def build(**overrides):
        base = dict(model_path=str(tiny_model_dir), lr=1e-3, batch_prompts=4, mini_batch_prompts=2,
                    micro_batch_tokens=64, max_seq_len=64, grad_clip=1.0, seed=0)
        base.update(overrides)
        return make_job(**base)

    return build
