"""How much probability mass a model's forking tokens carry (checked before a model is relied on).

    sample responses at temperature 1 (transformers, no top-k / top-p warping)
    teacher-forced forward over prompt + response -> per response token: entropy, top-3 probabilities
    summary: entropy mean / quantiles; mass on ranks 2-3 over all tokens and at the forking tokens
             (entropy above the response's 80th percentile, SimKO's gate with tau_scope="sequence");
             Lambda^(1..3) per the paper's eq. 2 (mean log-prob of the rank-k candidate per response, then over responses)

SimKO moves probability among the top-K candidates at forking tokens; a model whose rank-2/3
candidates carry ~no mass there gives it nothing to move, whatever the RL budget.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

FORK_QUANTILE = 0.8  # SimKO's tau_quantile


def profile_from_logits(logits: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """logits [B, T, V] (temperature applied) at the response positions, mask [B, T] -> the summary."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)  # [B, T]
    top = logp.topk(3, dim=-1).values  # [B, T, 3]
    mask = mask.bool()
    valid = mask.any(-1)
    ent = entropy[mask]
    rank23 = top[..., 1:].exp().sum(-1)  # [B, T]
    # forking tokens: entropy above the q-quantile of their own response
    fork = torch.zeros_like(mask)
    for i in torch.nonzero(valid).flatten().tolist():
        tau = torch.quantile(entropy[i][mask[i]], FORK_QUANTILE)
        fork[i] = mask[i] & (entropy[i] > tau)
    lengths = mask.sum(-1).clamp(min=1)
    lam = [((top[..., k] * mask).sum(-1) / lengths)[valid].mean().item() for k in range(3)]
    quantile = lambda q: torch.quantile(ent, q).item()
    return {"tokens": int(mask.sum()), "responses": int(valid.sum()),
            "entropy_mean": ent.mean().item(), "entropy_p50": quantile(0.5), "entropy_p80": quantile(0.8),
            "entropy_p95": quantile(0.95), "rank2_3_mass_mean": rank23[mask].mean().item(),
            "rank2_3_mass_forking": rank23[fork].mean().item() if fork.any() else 0.0,
            "entropy_forking": entropy[fork].mean().item() if fork.any() else 0.0,
            "lambda_1": lam[0], "lambda_2": lam[1], "lambda_3": lam[2]}


def sample_profile(model_dir: str | Path, prompts: Sequence[str], *, n: int = 4, max_new_tokens: int = 48,
                   seed: int = 0, batch: int = 32) -> dict[str, float]:
    """Sample n responses per prompt at temperature 1 and profile them (CPU, transformers)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"  # generation continues every row from its last prompt token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    logits_rows, mask_rows = [], []
    with torch.no_grad():
        for start in range(0, len(prompts), batch):
            part = [p for p in prompts[start:start + batch] for _ in range(n)]
            enc = tokenizer(part, add_special_tokens=False, return_tensors="pt", padding=True)
            width = enc["input_ids"].shape[1]
            out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=pad_id)
            response = out[:, width:]
            # response tokens up to and including the first EOS
            ended_before = (response == eos).int().cumsum(-1) - (response == eos).int()
            mask = ended_before == 0
            attention = torch.cat([enc["attention_mask"], mask.long()], dim=1)
            logits = model(input_ids=out, attention_mask=attention).logits[:, width - 1:-1]  # t predicts t+1
            logits_rows.append(logits)
            mask_rows.append(mask)
    longest = max(x.shape[1] for x in logits_rows)
    logits = torch.cat([torch.nn.functional.pad(x, (0, 0, 0, longest - x.shape[1])) for x in logits_rows])
    mask = torch.cat([torch.nn.functional.pad(m, (0, longest - m.shape[1]), value=False) for m in mask_rows])
    return profile_from_logits(logits, mask)
