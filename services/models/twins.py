"""Shape twins: randomly initialised Hugging Face models with a real model's architecture.

    twin_config(name, layers)   the published architecture (only the layer count reduced), as a
                                transformers config; pure, allocates no weights
    twin_tokenizer(name)        a byte-level BPE tokenizer built here, its vocabulary padded to the
                                model's embedding rows, the real special tokens at their real ids,
                                and a chat template of the model's shape
    build_twin(name, out, ...)  both, plus random weights (safetensors), into a model directory
                                that vLLM and transformers load (`simko make-model --like NAME`)

Why: the system must meet real vocabularies (151,936 / 152,064 / 128,256 embedding rows, tied or
not) and real head layouts before it meets real weights, and nothing may be downloaded. The
numbers below are the models' published config.json values (sources cited per entry); only
`num_hidden_layers` may be reduced. The tokenizer's merges are learned on a small local corpus, so
text tokenises into more pieces than with the real tokenizer; the ids of the special tokens, the
vocabulary size and the chat layout are the real ones.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

# The 22 special tokens of every Qwen2.5 tokenizer, from id 151643 on (Qwen2.5 added_tokens.json /
# tokenizer_config.json "added_tokens_decoder", e.g. huggingface.co/Qwen/Qwen2.5-0.5B).
QWEN25_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                   "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                   "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
                   "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                   "<|repo_name|>", "<|file_sep|>")
QWEN_FIRST_SPECIAL = 151643
# Llama 3's 256 special tokens from id 128000 on (meta-llama/Llama-3.2-3B-Instruct tokenizer_config.json):
# named ones at their ids, the rest <|reserved_special_token_N|>.
LLAMA3_NAMED = {128000: "<|begin_of_text|>", 128001: "<|end_of_text|>", 128004: "<|finetune_right_pad_id|>",
                128006: "<|start_header_id|>", 128007: "<|end_header_id|>", 128008: "<|eom_id|>",
                128009: "<|eot_id|>", 128010: "<|python_tag|>"}
LLAMA_FIRST_SPECIAL = 128000


def _chatml(default_system: str) -> str:
    """Qwen2.5's chat layout (its tokenizer_config.json template without the tool-calling branches):
    ChatML turns, a default system turn when the conversation has none."""
    return ("{% for message in messages %}"
            "{% if loop.first and message['role'] != 'system' %}"
            "{{ '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}{% endif %}"
            "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
            "{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


# Llama 3 instruct turns (the date preamble of the 3.2 template left out: it depends on the day).
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")


@dataclass(frozen=True)
class TwinSpec:
    """A published architecture: every number is the model's config.json value."""

    name: str
    source: str  # where the numbers come from
    model_type: str  # "qwen2" | "llama"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rope_theta: float
    max_position_embeddings: int
    rms_norm_eps: float
    tie_word_embeddings: bool
    published_params: float  # the model card's parameter count, for the shape check
    rope_scaling: dict | None = None
    max_window_layers: int | None = None  # qwen2 only (sliding windows are off in all of these)
    first_special: int = 0  # id of the first special token (the regular BPE vocabulary ends here)
    specials: tuple[str, ...] = ()  # special tokens from first_special on; the rest of the rows are padding
    bos: str | None = None
    eos: str = ""  # the tokenizer's eos token
    stop: tuple[str, ...] = ()  # generation_config eos_token_id (every token that ends a turn)
    pad: str | None = None
    chat_template: str = ""


def _llama3_specials() -> tuple[str, ...]:
    reserved = iter(range(10_000))
    return tuple(LLAMA3_NAMED.get(i) or f"<|reserved_special_token_{next(reserved)}|>"
                 for i in range(LLAMA_FIRST_SPECIAL, 128256))


TWINS: dict[str, TwinSpec] = {
    # huggingface.co/Qwen/Qwen2.5-0.5B config.json: 24 layers, hidden 896, 14 heads / 2 KV heads
    # (head_dim 64), intermediate 4864, rope_theta 1e6, 32768 positions, rms 1e-6, tied; 0.49B params.
    "qwen2.5-0.5b": TwinSpec(
        name="qwen2.5-0.5b", source="huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json", model_type="qwen2",
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, head_dim=64, rope_theta=1_000_000.0, max_position_embeddings=32768,
        rms_norm_eps=1e-6, tie_word_embeddings=True, published_params=0.49e9, max_window_layers=24,
        first_special=QWEN_FIRST_SPECIAL, specials=QWEN25_SPECIALS, eos="<|endoftext|>",
        stop=("<|im_end|>", "<|endoftext|>"), pad="<|endoftext|>",
        chat_template=_chatml("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")),
    # huggingface.co/Qwen/Qwen2.5-1.5B config.json: 28 layers, hidden 1536, 12 heads / 2 KV heads
    # (head_dim 128), intermediate 8960, rope_theta 1e6, 131072 positions, rms 1e-6, tied; 1.54B params.
    "qwen2.5-1.5b": TwinSpec(
        name="qwen2.5-1.5b", source="huggingface.co/Qwen/Qwen2.5-1.5B/blob/main/config.json", model_type="qwen2",
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
        num_key_value_heads=2, head_dim=128, rope_theta=1_000_000.0, max_position_embeddings=131072,
        rms_norm_eps=1e-6, tie_word_embeddings=True, published_params=1.54e9, max_window_layers=28,
        first_special=QWEN_FIRST_SPECIAL, specials=QWEN25_SPECIALS, eos="<|endoftext|>",
        stop=("<|im_end|>", "<|endoftext|>"), pad="<|endoftext|>",
        chat_template=_chatml("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")),
    # huggingface.co/Qwen/Qwen2.5-Math-7B config.json: 28 layers, hidden 3584, 28 heads / 4 KV heads
    # (head_dim 128), intermediate 18944, rope_theta 10000, 4096 positions, rms 1e-6, untied,
    # vocab 152064; 7.62B params. The system turn is the model card's CoT instruction.
    "qwen2.5-math-7b": TwinSpec(
        name="qwen2.5-math-7b", source="huggingface.co/Qwen/Qwen2.5-Math-7B/blob/main/config.json",
        model_type="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, head_dim=128, rope_theta=10_000.0,
        max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=False, published_params=7.62e9,
        max_window_layers=28, first_special=QWEN_FIRST_SPECIAL, specials=QWEN25_SPECIALS, eos="<|endoftext|>",
        stop=("<|im_end|>", "<|endoftext|>"), pad="<|endoftext|>",
        chat_template=_chatml("Please reason step by step, and put your final answer within \\\\boxed{}.")),
    # huggingface.co/meta-llama/Llama-3.2-3B-Instruct config.json (the SimKO repository's Llama):
    # 28 layers, hidden 3072, 24 heads / 8 KV heads, head_dim 128, intermediate 8192, rope_theta
    # 5e5 with llama3 scaling (factor 32, 8192 original positions), 131072 positions, rms 1e-5,
    # tied, vocab 128256; 3.21B params.
    "llama3.2-3b": TwinSpec(
        name="llama3.2-3b", source="huggingface.co/meta-llama/Llama-3.2-3B-Instruct/blob/main/config.json",
        model_type="llama", vocab_size=128256, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
        num_attention_heads=24, num_key_value_heads=8, head_dim=128, rope_theta=500_000.0,
        max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True, published_params=3.21e9,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 8192},
        first_special=LLAMA_FIRST_SPECIAL, specials=_llama3_specials(), bos="<|begin_of_text|>", eos="<|eot_id|>",
        stop=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"), pad="<|finetune_right_pad_id|>",
        chat_template=LLAMA3_CHAT_TEMPLATE),
}
ALIASES = {"qwen/qwen2.5-0.5b": "qwen2.5-0.5b", "qwen/qwen2.5-1.5b": "qwen2.5-1.5b",
           "qwen/qwen2.5-math-7b": "qwen2.5-math-7b", "meta-llama/llama-3.2-3b": "llama3.2-3b",
           "meta-llama/llama-3.2-3b-instruct": "llama3.2-3b", "llama-3.2-3b": "llama3.2-3b"}


def twin_spec(name: str) -> TwinSpec:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in TWINS:
        raise ValueError(f"unknown model {name!r}; twins: {', '.join(sorted(TWINS))}")
    return TWINS[key]


def twin_config(name: str, layers: int | None = None, *, dtype: str = "float32"):
    """The transformers config of the twin with `layers` decoder layers (default: the real count)."""
    spec = twin_spec(name)
    layers = spec.num_hidden_layers if layers is None else layers
    if not 1 <= layers <= spec.num_hidden_layers:
        raise ValueError(f"layers: {layers} is outside 1..{spec.num_hidden_layers} (the {spec.name} count)")
    ids = _special_ids(spec)
    # As published: Qwen's configs name <|endoftext|> both bos and eos (the chat turn ends with
    # <|im_end|>, in generation_config); Llama 3.2 Instruct's lists all three end-of-turn tokens.
    bos = ids[spec.bos] if spec.bos else ids[spec.eos]
    eos = ids[spec.eos] if spec.model_type == "qwen2" else [ids[t] for t in spec.stop]
    common = dict(vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
                  num_hidden_layers=layers, num_attention_heads=spec.num_attention_heads,
                  num_key_value_heads=spec.num_key_value_heads, head_dim=spec.head_dim,
                  max_position_embeddings=spec.max_position_embeddings, rms_norm_eps=spec.rms_norm_eps,
                  tie_word_embeddings=spec.tie_word_embeddings, initializer_range=0.02, hidden_act="silu",
                  rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta, **(spec.rope_scaling or {})},
                  bos_token_id=bos, eos_token_id=eos, pad_token_id=ids[spec.pad] if spec.pad else None, dtype=dtype)
    if spec.model_type == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**common, max_window_layers=spec.max_window_layers, use_sliding_window=False,
                           sliding_window=None, architectures=["Qwen2ForCausalLM"])
    from transformers import LlamaConfig

    return LlamaConfig(**common, attention_bias=False, mlp_bias=False, pretraining_tp=1,
                       architectures=["LlamaForCausalLM"])


def _special_ids(spec: TwinSpec) -> dict[str, int]:
    return {token: spec.first_special + i for i, token in enumerate(spec.specials)}


def parameter_count(config) -> int:
    """Parameters of a model built from `config`, counted on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())  # tied embeddings are one parameter, counted once


def twin_tokenizer(name: str, *, trained_vocab: int = 2048):
    """A PreTrainedTokenizerFast with exactly vocab_size ids: BPE merges learned on the local corpus
    (services.models.tiny), filler entries up to the first special id (reachable by decoding only,
    so a random model's samples always detokenise), the real special tokens at their real ids, and
    padding specials up to vocab_size - 1."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from services.models.tiny import _builtin_corpus

    spec = twin_spec(name)
    trainer = trainers.BpeTrainer(vocab_size=trained_vocab, special_tokens=[], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    learned = Tokenizer(models.BPE())
    learned.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    learned.train_from_iterator(_builtin_corpus(), trainer=trainer)
    vocab = dict(learned.get_vocab())
    merges = _merges_of(learned)
    for filler in _fillers(sorted(pre_tokenizers.ByteLevel.alphabet()), vocab):
        if len(vocab) >= spec.first_special:
            break
        vocab[filler] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    padding = [f"<|twin_pad_{i}|>" for i in range(spec.vocab_size - spec.first_special - len(spec.specials))]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (*spec.specials, *padding)])
    if tok.get_vocab_size(with_added_tokens=True) != spec.vocab_size:
        raise RuntimeError(f"tokenizer has {tok.get_vocab_size(with_added_tokens=True)} ids, "
                             f"want {spec.vocab_size}")
    if spec.bos:  # Llama prepends <|begin_of_text|> to plain encodes, as its real tokenizer does
        from tokenizers import processors

        tok.post_processor = processors.TemplateProcessing(single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B",
                                                           special_tokens=[(spec.bos, spec.first_special)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=spec.eos, pad_token=spec.pad, bos_token=spec.bos,
                                   model_max_length=spec.max_position_embeddings)
    fast.chat_template = spec.chat_template
    return fast


def _merges_of(tokenizer) -> list[tuple[str, str]]:
    import json

    merges = json.loads(tokenizer.to_str())["model"]["merges"]  # "a b" strings or [a, b] pairs by version
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]


def _fillers(alphabet: list[str], taken: dict[str, int]):
    """Distinct byte-level strings not in the vocabulary, shortest first (deterministic)."""
    for length in itertools.count(2):
        for chars in itertools.product(alphabet, repeat=length):
            token = "".join(chars)
            if token not in taken:
                yield token


def build_twin(name: str, out_dir: str | Path, *, layers: int = 2, seed: int = 0, dtype: str = "float32") -> dict:
    """Write the twin (config, random weights as safetensors, tokenizer, generation config) to
    `out_dir`; returns a summary (name, layers, params, vocab, hidden, tied, dtype, path)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    config = twin_config(name, layers, dtype=dtype)
    spec = twin_spec(name)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)
    if torch_dtype is None:
        raise ValueError(f"dtype: {dtype!r} is not float32, bfloat16 or float16")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = twin_tokenizer(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    ids = _special_ids(spec)
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, pad_token_id=config.pad_token_id,
                                               eos_token_id=[ids[t] for t in spec.stop])
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    return {"like": spec.name, "source": spec.source, "layers": layers, "params": params,
            "vocab_size": spec.vocab_size, "hidden_size": spec.hidden_size, "tied": spec.tie_word_embeddings,
            "dtype": dtype, "path": str(out)}


__all__ = ["TWINS", "TwinSpec", "build_twin", "parameter_count", "twin_config", "twin_spec", "twin_tokenizer"]
