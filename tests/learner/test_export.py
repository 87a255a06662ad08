"""A trained, exported model loads in vLLM and gives the learner's log-probs (within 1e-4)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from learner.batching import Row, collate
from learner.checkpoint import export_hf
from learner.engine import LearnerEngine
from learner.token_stats import token_logprobs
from tests.learner.learner_support import make_groups

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("zero_stage", [3])
def test_export_loads_in_transformers_and_vllm_with_matching_logprobs(learner_config, tmp_path, zero_stage):
    engine = LearnerEngine(learner_config(zero_stage=zero_stage))
    engine.update(make_groups(4, seed=5))
    out = export_hf(engine, tmp_path / "export")
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()

    # transformers: identical weights.
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).state_dict()
    for name, value in engine.full_state_dict().items():
        assert torch.equal(reloaded[name], value), name

    prompts = [g.prompt_token_ids for g in make_groups(3, seed=6)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # vLLM builds its own (single-rank) process group
    proc = subprocess.run([sys.executable, str(ROOT / "tests/learner/vllm_logprobs.py"), str(out), json.dumps(prompts)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    samples = json.loads(line.removeprefix("RESULT "))

    # The learner's own forward path (the one that computes old log-probs) on the same tokens.
    rows = [Row(tuple(p) + tuple(s["token_ids"]), len(p), 0.0, 0) for p, s in zip(prompts, samples)]
    mb = collate(rows, engine.pad_id, weight=1.0)
    with torch.no_grad():
        learner_lp = token_logprobs(engine.logits(mb), mb.tokens)
    worst = 0.0
    for i, sample in enumerate(samples):
        mine = learner_lp[i][mb.mask[i]]
        theirs = torch.tensor(sample["logprobs"])
        assert mine.shape == theirs.shape
        worst = max(worst, float((mine - theirs).abs().max()))
    print(f"max |learner - vLLM| log-prob difference: {worst:.2e}")
    assert worst < 1e-4, worst


def test_tied_embeddings_publish_the_checkpoints_names(tmp_path, learner_config):
    """A tied lm_head is published once, under the name the checkpoint keeps (what the rollout
    engine validates an update against), and the HF export stays loadable."""
    from rollout.engine import checkpoint_spec
    from services.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "tied", seed=1, tie_embeddings=True)
    engine = LearnerEngine(learner_config(model_path=str(model_dir)))
    engine.update(make_groups(4, seed=3))
    published = engine.full_state_dict()
    spec = checkpoint_spec(model_dir)
    assert "lm_head.weight" not in published and set(published) == set(spec)
    assert all(tuple(published[k].shape) == spec[k].shape for k in spec)
    export_hf(engine, tmp_path / "export")
    assert set(checkpoint_spec(tmp_path / "export")) == set(spec)
