"""The rollout section's validation, the plain-process argument parsing, and metrics (no servers)."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from rollout.config import RolloutJob, RolloutSection
from rollout.engine import checkpoint_dtype, engine_dtype, engine_kwargs, sampling_kwargs
from rollout.metrics import RolloutMetrics
from rollout.serve import parse_args, weight_source_from_spec
from services.wire.messages import Sample, ScoredGroup
from services.wire.weights import DirectoryWeights


def test_section_validates_loudly() -> None:
    section = RolloutSection(stop="###")
    assert section.stop == ("###",)  # a bare string is one stop string, not three
    assert RolloutSection(stop=["a", "b"]).stop == ("a", "b")
    with pytest.raises(ValidationError, match="temprature"):
        RolloutSection(temprature=0.5)
    with pytest.raises(ValidationError, match="temperature"):
        RolloutSection(temperature=0.0)
    with pytest.raises(ValidationError, match="backpressure_bound"):
        RolloutSection(backpressure_bound=10**9)
    with pytest.raises(ValueError, match="job_id"):
        RolloutJob(job_id="", model_path="/m", redis_url="r", verifier_url="v", max_staleness=0, seed=0)
    sp = sampling_kwargs(section, 5)
    assert sp["n"] == 5 and sp["logprobs"] is None and sp["stop"] == ["###"]  # no log-probs unless asked for
    assert engine_kwargs("/m", section, seed=3)["model"] == "/m"


def test_auto_dtype_is_the_checkpoints_declared_dtype(tmp_path) -> None:
    # vLLM's own "auto" samples a float32 checkpoint in bfloat16; ours keeps what config.json declares.
    (tmp_path / "config.json").write_text('{"dtype": "float32"}')
    assert checkpoint_dtype(tmp_path) == "float32"
    (tmp_path / "config.json").write_text('{"torch_dtype": "bfloat16"}')  # transformers < 5 spelling
    assert checkpoint_dtype(tmp_path) == "bfloat16"
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    assert checkpoint_dtype(tmp_path) is None
    assert checkpoint_dtype(tmp_path / "missing") is None
    assert engine_dtype("auto", "float32") == "float32" and engine_dtype("auto", "bfloat16") == "bfloat16"
    assert engine_dtype("bfloat16", "float32") == "bfloat16"  # an explicit choice wins
    assert engine_dtype("auto", None) == "auto"  # nothing declared: vLLM decides
    assert engine_kwargs("/m", RolloutSection(), seed=0, declared_dtype="float32")["dtype"] == "float32"
    assert engine_kwargs("/m", RolloutSection(), seed=0)["dtype"] == "auto"


def test_parse_args_flags_override_file(tmp_path) -> None:
    f = tmp_path / "rollout.yaml"
    f.write_text("max_tokens: 32\nstop: ['</s>']\n")
    job, weights = parse_args(["--config", str(f), "--job", "j2", "--model", "/m", "--max-staleness", "2",
                               "--set", "dtype=bfloat16", "--weights", "dir:/tmp/w"])
    assert (job.job_id, job.model_path, job.rollout.max_tokens, job.max_staleness, job.rollout.dtype) == \
        ("j2", "/m", 32, 2, "bfloat16")
    assert job.rollout.stop == ("</s>",) and weights == "dir:/tmp/w"
    assert isinstance(weight_source_from_spec(weights, "j2"), DirectoryWeights)
    assert weight_source_from_spec(None, "j2") is None
    with pytest.raises(ValueError, match="unknown weight source"):
        weight_source_from_spec("s3://x", "j2")
    with pytest.raises(SystemExit):
        parse_args(["--job", "j", "--model", "/m", "--set", "no_such_field=1"])


def test_metrics_snapshot() -> None:
    def sample(n_tokens: int, finish: str, reward: float) -> Sample:
        return Sample(token_ids=[1] * n_tokens, logprobs=[-1.0] * n_tokens, top_ids=[[1]] * n_tokens,
                      top_logprobs=[[-1.0]] * n_tokens, text="", finish_reason=finish, reward=reward,
                      correct=reward > 0)

    m = RolloutMetrics(generate_s=2.0, busy_s=4.0, verify_s=0.3, verify_calls=3)
    m.record_group(ScoredGroup(job_id="j", group_id="g", prompt_token_ids=[1], task="math", gold="1",
                               samples=[sample(4, "stop", 1.0), sample(8, "length", 0.0)], policy_version=0,
                               worker_id="w"))
    snap = m.snapshot()
    assert snap["rollout/response_length_mean"] == 6 and snap["rollout/truncation_rate"] == 0.5
    assert snap["rollout/reward_mean"] == 0.5 and snap["perf/rollout_generate_tokens_per_s"] == 6
    assert snap["perf/rollout_e2e_tokens_per_s"] == 3 and snap["perf/verifier_latency_s"] == pytest.approx(0.1)
