"""A dense, naive SimKO written the straightforward way (as the official code does): full
log_softmax, the top-K log-probs gathered from a K-times expanded tensor, torch.quantile per row.

Not for training: it is the independent reference the chunked implementation is tested against,
and the memory baseline in bench/loss.py. Token-mean aggregation, no dual-clip.
"""
from __future__ import annotations

import torch


def dense_simko_loss(logits, tokens, old_logprobs, advantages, mask, *, top_k=3, alpha=0.01, tau_quantile=0.8,
                     tau_scope="sequence", lambda_top1=1.1, clip_low=0.2, clip_high=0.2) -> torch.Tensor:
    batch, length, vocab = logits.shape
    mask = mask.bool()
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand(batch, length)
    logp_all = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).detach()
    logp = logp_all.gather(-1, tokens[..., None])[..., 0]
    topk_ids = logits.detach().topk(top_k, dim=-1).indices
    expanded = logp_all[:, :, None, :].expand(batch, length, top_k, vocab)  # the K-times copy
    topk_logp = expanded.gather(-1, topk_ids[..., None])[..., 0]

    if tau_scope == "sequence":
        tau = torch.stack([torch.quantile(entropy[b][mask[b]], tau_quantile) if mask[b].any()
                           else torch.tensor(float("inf"), dtype=entropy.dtype) for b in range(batch)])[:, None]
    else:
        tau = torch.quantile(entropy[mask], tau_quantile)
    forking = (entropy > tau) & mask
    positive = forking & (advantages > 0)
    negative_top1 = forking & (advantages < 0) & (topk_ids[..., 0] == tokens)

    ratio = torch.exp(logp - old_logprobs)
    rho = torch.exp(topk_logp - topk_logp.detach())
    smoothed = (1 - alpha) * ratio + (alpha / top_k) * (ratio.detach()[..., None] * rho).sum(-1)
    ratio = torch.where(positive, smoothed, ratio)
    adv = torch.where(negative_top1, advantages * lambda_top1, advantages)
    per_token = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip_low, 1 + clip_high))
    return torch.where(mask, per_token, torch.zeros_like(per_token)).sum() / mask.sum().clamp(min=1)
