"""Supervised warm start of a small causal LM on (prompt, response) pairs (plain torch, CPU-sized).

The embedded default needs a policy whose pass@1 is low but non-zero, so RL has a signal; a few
hundred steps of SFT on worked solutions get a tiny random model there. Loss on response tokens only.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import torch


def supervised_warm_start(model_dir: str | Path, pairs: Sequence[tuple[str, str]], *, steps: int = 400,
                          batch_size: int = 32, lr: float = 3e-3, seed: int = 0, log_every: int = 100) -> list[float]:
    """Train the model in `model_dir` in place on `pairs`; returns the loss every `log_every` steps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    eos = tokenizer.eos_token or ""
    encoded = []
    for prompt, response in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(response + eos, add_special_tokens=False)["input_ids"]
        encoded.append((p, r))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / steps))
    model.train()
    losses = []
    for step in range(steps):
        batch = [encoded[rng.randrange(len(encoded))] for _ in range(batch_size)]
        width = max(len(p) + len(r) for p, r in batch)
        ids = torch.full((batch_size, width), pad)
        labels = torch.full((batch_size, width), -100)
        attention = torch.zeros((batch_size, width), dtype=torch.long)
        for row, (p, r) in enumerate(batch):
            seq = p + r
            ids[row, : len(seq)] = torch.tensor(seq)
            labels[row, len(p): len(seq)] = torch.tensor(r)
            attention[row, : len(seq)] = 1
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % log_every == 0:
            losses.append(float(loss.detach()))
    model.save_pretrained(model_dir, safe_serialization=True)
    return losses
