"""SimKO: Simple Pass@K Optimization (arXiv 2510.14807).

At high-entropy ("forking") tokens, H > tau where tau is the q-quantile of the detached entropy:
  * correct responses (A > 0): top-K label smoothing of the ratio,
        ratio = (1 - alpha) r + (alpha / K) sum_k sg(r / rho_k) rho_k,
    whose value is r (so clipping is GRPO's) and whose gradient is
        r [ (1 - alpha) grad log pi(y) + (alpha / K) sum_k grad log pi(c_k) ],
    c_k the top-K candidates of the detached current logits;
  * incorrect responses (A < 0) whose sampled token is the top-1 candidate: A <- lambda_top1 * A
    before the clip.
Every other token is plain GRPO; alpha = 0 with lambda_top1 = 1 is exactly GRPO.
"""
from __future__ import annotations

import torch

from learner.losses.core import LossInputs, TokenLoss, clipped_surrogate
from learner.hparams import SimkoHparams
from learner.masked import masked_mean, masked_quantile


def forking_threshold(entropy: torch.Tensor, mask: torch.Tensor, quantile: float, scope: str) -> torch.Tensor:
    """tau broadcastable to [B,T]: per-sequence quantile [B,1] or one batch quantile []."""
    if scope == "sequence":
        return masked_quantile(entropy, mask, quantile, dim=-1)[:, None]
    return masked_quantile(entropy, mask, quantile)


def simko_loss(inputs: LossInputs, hp: SimkoHparams) -> TokenLoss:
    stats, mask, adv = inputs.stats, inputs.mask, inputs.advantages
    if hp.tau_value is not None:
        tau = torch.tensor(hp.tau_value, dtype=stats.entropy.dtype, device=stats.entropy.device)
    else:
        tau = forking_threshold(stats.entropy, mask, hp.tau_quantile, hp.tau_scope)
    forking = (stats.entropy > tau) & mask
    positive = forking & (adv > 0)
    negative_top1 = forking & (adv < 0) & stats.is_top1

    ratio = torch.exp(inputs.logp - inputs.old_logp)
    # rho_k = pi(c_k) / pi_old(c_k): pi_old(c_k) is a constant, so exp(lp_k - sg(lp_k)) has the same
    # gradient while its value is exactly 1 (no old candidate log-probs needed).
    candidate_logp = stats.topk_logp[..., : hp.top_k]
    candidate_rho = torch.exp(candidate_logp - candidate_logp.detach())  # [B,T,K], value 1
    smoothed = (1 - hp.alpha) * ratio + (hp.alpha / hp.top_k) * ratio.detach() * candidate_rho.sum(dim=-1)
    ratio_used = torch.where(positive, smoothed, ratio)
    adv_used = torch.where(negative_top1, adv * hp.lambda_top1, adv)

    per_token, clipped = clipped_surrogate(ratio_used, adv_used, hp)
    valid_rows = mask.any(dim=-1)
    tau_rows = tau.expand(mask.shape[0], 1)[:, 0] if tau.dim() else tau.expand(mask.shape[0])
    gate_stats = {
        "_ratio": ratio,
        "simko/forking_frac": masked_mean(forking.float(), mask),
        "simko/pos_gate_frac": masked_mean(positive.float(), mask),
        "simko/neg_top1_gate_frac": masked_mean(negative_top1.float(), mask),
        "simko/tau_mean": masked_mean(torch.where(valid_rows, tau_rows, torch.zeros_like(tau_rows)), valid_rows),
    }
    return TokenLoss(per_token=per_token, loss_mask=mask, clipped=clipped & mask, stats=gate_stats)
