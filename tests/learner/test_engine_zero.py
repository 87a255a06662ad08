"""ZeRO stages 0, 2, 3 train the same weights; world size 2 (ZeRO-2, torchrun + gloo) matches world size 1;
the hidden-state token statistics (the default) train as the logits path does."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from learner.batching import mini_batches, prepare_batch
from learner.config import LearnerJob
from learner.distributed import free_port
from learner.engine import LearnerEngine
from tests.learner.learner_support import make_groups, make_job, max_diff

pytestmark = pytest.mark.slow

UPDATES = 3  # x 2 optimizer steps each
ROOT = Path(__file__).resolve().parents[2]


def agreement_config(model_dir, zero_stage: int, token_stats: str = "hidden", pack: bool = True) -> LearnerJob:
    # A small token budget so each rank's share spans several micro-batches (and ranks get padding).
    # adam_eps 1e-6: AdamW's step g / (sqrt(v) + eps) turns the float noise of a different
    # reduction order (world size 2 vs 1) on gradients of |g| ~ eps into weight differences up to
    # lr / eps times that noise; at the default 1e-8 that reached 1.3e-5 on an AVX-512 Xeon
    # (max at mlp.up_proj), with a correct update. A wrong gradient scaling still moves weights
    # by ~lr per step, far above the bound.
    return make_job(model_path=str(model_dir), zero_stage=zero_stage, lr=1e-3, adam_eps=1e-6, batch_prompts=4,
                    mini_batch_prompts=2, micro_batch_tokens=48, max_seq_len=64, seed=0, token_stats=token_stats,
                    pack_sequences=pack)


def agreement_groups(update: int):
    return make_groups(4, n=4, seed=100 + update, response_len=(3, 20))


def train(model_dir, zero_stage: int, token_stats: str = "hidden", pack: bool = True) -> dict[str, torch.Tensor]:
    engine = LearnerEngine(agreement_config(model_dir, zero_stage, token_stats, pack))
    for update in range(UPDATES):
        engine.update(agreement_groups(update))
    return engine.full_state_dict()


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    return train(tiny_model_dir, 0)


def test_training_moved_the_weights(reference, tiny_model_dir):
    initial = LearnerEngine(agreement_config(tiny_model_dir, 0)).full_state_dict()
    assert max_diff(reference, initial) > 1e-3


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_zero_stages_agree(reference, tiny_model_dir, zero_stage):
    assert max_diff(train(tiny_model_dir, zero_stage), reference) < 1e-5


@pytest.mark.parametrize("zero_stage", [0, 3])
def test_hidden_state_token_stats_train_as_the_logits_path(reference, tiny_model_dir, zero_stage):
    """The learner's default path (statistics from hidden states and the lm_head, which under
    ZeRO-3 is gathered by its own module's hooks) trains the same weights as full logits."""
    assert max_diff(train(tiny_model_dir, zero_stage, "logits"), reference) < 1e-5


@pytest.mark.parametrize("zero_stage", [0, 3])
def test_packed_sequences_train_as_padded_rows(tiny_model_dir, zero_stage):
    """The default forward packs rows end to end (learner/packing.py); padded rows train the same
    weights. Micro-batches of many rows here, so that packing saves model rows (checked)."""
    def run(pack: bool):
        job = agreement_config(tiny_model_dir, zero_stage, pack=pack)
        engine = LearnerEngine(replace(job, learner=job.learner.model_copy(update={"micro_batch_tokens": 256})))
        assert engine.pack == pack
        plans = [engine.plan(rows) for rows in
                 mini_batches(prepare_batch(agreement_groups(0), engine.job, vocab_size=engine.vocab_size), 2)]
        packed = [mb.packed for plan in plans for mb in plan if mb.packed is not None]
        assert bool(packed) == pack and all(p.bins < p.index.shape[0] for p in packed)
        for update in range(UPDATES):
            engine.update(agreement_groups(update))
        return engine.full_state_dict()

    assert max_diff(run(False), run(True)) < 1e-5


def test_world_size_two_zero2_matches_world_size_one(reference, tiny_model_dir, tmp_path):
    out = tmp_path / "ws2.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(free_port()), "PYTHONPATH": str(ROOT)}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR"):  # this process's single-rank group
        env.pop(key, None)
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", env["MASTER_PORT"],
         str(ROOT / "tests/learner/engine_worker.py"), str(tiny_model_dir), "2", str(out)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = torch.load(out)
    assert result["world_size"] == 2
    assert max_diff(result["weights"], reference) < 1e-5
