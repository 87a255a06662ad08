"""Checkpoint / resume: the resumed learner takes a bit-identical next step and keeps its state."""
from __future__ import annotations

import pytest
import torch

from learner.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from learner.engine import LearnerEngine
from tests.learner.learner_support import make_groups

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("zero_stage", [0, 3])
def test_resume_gives_bit_identical_next_step(learner_config, tmp_path, zero_stage):
    cfg = learner_config(zero_stage=zero_stage, warmup_steps=5, weight_decay=0.01, checkpoint_dir=str(tmp_path))
    original = LearnerEngine(cfg)
    original.update(make_groups(4, seed=1))
    original.update(make_groups(4, seed=2))
    original.state.cursor["prompt_index"] = 8
    save_checkpoint(original)
    original.update(make_groups(4, seed=3))
    expected = original.full_state_dict()

    resumed = LearnerEngine(cfg)
    state = load_checkpoint(resumed, tmp_path)
    assert (state.step, state.weight_version, state.optimizer_steps) == (2, 2, 4)
    assert state.cursor == {"prompt_index": 8}
    assert len(state.applied_group_ids) == 8
    assert resumed.ds.get_lr() == pytest.approx([1e-3 * 5 / 5])  # the warm-up position survived
    # Already-applied groups stay applied across the restart.
    assert resumed.update(make_groups(4, seed=2))["batch/groups_duplicate"] == 4
    resumed.update(make_groups(4, seed=3))
    for name, value in resumed.full_state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_old_checkpoints_are_pruned(learner_config, tmp_path):
    engine = LearnerEngine(learner_config(checkpoint_dir=str(tmp_path), keep_checkpoints=2))
    for seed in range(3):
        engine.update(make_groups(4, seed=seed))
        save_checkpoint(engine)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["step_00000002", "step_00000003"]
    assert latest_checkpoint(tmp_path) == "step_00000003"
