"""Shared pieces of every policy loss: inputs, the clipped surrogate, aggregation, diagnostics."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from learner.hparams import CommonHparams
from learner.masked import masked_histogram, masked_mean, masked_quantile, response_mean
from learner.token_stats import TokenStats


@dataclass(frozen=True)
class LossInputs:
    """Validated, sanitised [B,T] tensors a loss works on. At masked positions old_logp equals
    logp (ratio 1) and the advantage is 0, so padding can never inject NaN or inf."""

    logp: torch.Tensor  # [B,T] float32 (float64 for float64 logits), differentiable
    old_logp: torch.Tensor  # [B,T] same dtype
    advantages: torch.Tensor  # [B,T] same dtype
    mask: torch.Tensor  # [B,T] bool
    stats: TokenStats
    vocab_size: int


@dataclass
class TokenLoss:
    """What a loss returns before aggregation."""

    per_token: torch.Tensor  # [B,T]
    loss_mask: torch.Tensor  # [B,T] bool: tokens that count in the aggregation
    clipped: torch.Tensor  # [B,T] bool: tokens whose ratio clipping removed the gradient
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor,
                      hp: CommonHparams) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO/GRPO: max(-A r, -A clip(r, 1-eps_low, 1+eps_high)), optionally dual-clipped for A < 0.
    Returns (per-token loss, clipped mask)."""
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - hp.clip_low, 1 + hp.clip_high)
    loss = torch.maximum(unclipped, clipped)
    is_clipped = clipped > unclipped
    if hp.dual_clip is not None:
        cap = -advantages * hp.dual_clip  # the largest loss a negative-advantage token may carry
        dual = (advantages < 0) & (loss > cap)
        loss = torch.where(dual, cap, loss)
        is_clipped = is_clipped | dual
    return loss, is_clipped


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, hp: CommonHparams) -> torch.Tensor:
    """Reduce [B,T] token losses to a scalar. A fully masked batch gives exactly 0 with zero gradient."""
    zeroed = torch.where(mask, per_token, torch.zeros((), dtype=per_token.dtype))
    if hp.aggregation == "token-mean":
        return zeroed.sum() / mask.sum().clamp(min=1)
    if hp.aggregation == "seq-mean-token-mean":
        counts = mask.sum(dim=-1)
        row_means = zeroed.sum(dim=-1) / counts.clamp(min=1)
        return row_means.sum() / (counts > 0).sum().clamp(min=1)
    # seq-mean-token-sum-norm (Dr.GRPO): a constant normaliser removes the length bias.
    norm_length = hp.norm_length or per_token.shape[-1]
    return zeroed.sum() / (per_token.shape[0] * norm_length)


def diagnostics(inputs: LossInputs, hp: CommonHparams) -> dict[str, torch.Tensor]:
    """Detached probability-concentration statistics (the paper's Lambda^(k), entropy).

    Lambda^(k) per the paper's eq. 2: the log-prob of the rank-k candidate averaged over the tokens
    of each response, then over responses (`dist/lambda_k`, `dist/lambda_sampled`; the learner
    weights micro-batches by `dist/responses`). The token-weighted means are kept as
    `dist/lambda_k_token`, `dist/lambda_sampled_token`."""
    mask, stats = inputs.mask, inputs.stats
    sampled = stats.logp.detach()
    out: dict[str, torch.Tensor] = {"dist/lambda_sampled": response_mean(sampled, mask),
                                    "dist/lambda_sampled_token": masked_mean(sampled, mask),
                                    "dist/responses": mask.any(dim=-1).sum().to(sampled.dtype)}
    for k in range(min(hp.diagnostic_top_k, stats.top_k)):
        candidate = stats.topk_logp[..., k].detach()
        out[f"dist/lambda_{k + 1}"] = response_mean(candidate, mask)
        out[f"dist/lambda_{k + 1}_token"] = masked_mean(candidate, mask)
    entropy = stats.entropy
    out["dist/entropy_mean"] = masked_mean(entropy, mask)
    for q in (0.5, 0.8, 0.95):
        value = masked_quantile(entropy, mask, q)
        out[f"dist/entropy_p{round(q * 100)}"] = torch.where(torch.isinf(value), torch.zeros_like(value), value)
    edges = torch.linspace(0.0, math.log(inputs.vocab_size), hp.entropy_bins + 1)
    out["dist/entropy_hist"] = masked_histogram(entropy, mask, edges)
    out["dist/entropy_hist_edges"] = edges
    out["dist/top1_frac"] = masked_mean(stats.is_top1.float(), mask)
    return out


def surrogate_stats(ratio: torch.Tensor, inputs: LossInputs, clipped: torch.Tensor) -> dict[str, torch.Tensor]:
    mask = inputs.mask
    log_ratio = (inputs.logp - inputs.old_logp).detach()
    return {
        "loss/clip_frac": masked_mean(clipped.float(), mask),
        "loss/ratio_mean": masked_mean(ratio.detach(), mask),
        # k3 estimator of KL(old || new): r - 1 - log r >= 0.
        "loss/approx_kl": masked_mean(torch.expm1(log_ratio) - log_ratio, mask),
        "loss/valid_tokens": mask.sum().float(),
    }
