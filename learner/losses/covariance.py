"""Clip-Cov and KL-Cov (Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs").

Both act on the tokens with the largest centred covariance Cov_t = (logp_t - mean logp)(A_t - mean A),
the tokens that drive entropy collapse. These two need the number of valid tokens on the host
(the selected count is a fraction of it), so they sync once; the other losses never do.
"""
from __future__ import annotations

import torch

from learner.losses.core import LossInputs, TokenLoss, clipped_surrogate
from learner.hparams import ClipCovHparams, KlCovHparams
from learner.masked import masked_mean


def token_covariance(inputs: LossInputs) -> torch.Tensor:
    """[B,T] centred covariance of detached log-probs and advantages over valid tokens."""
    logp = inputs.logp.detach()
    centred_logp = logp - masked_mean(logp, inputs.mask)
    centred_adv = inputs.advantages - masked_mean(inputs.advantages, inputs.mask)
    return centred_logp * centred_adv


def _count_fraction(mask: torch.Tensor, fraction: float) -> int:
    return max(int(fraction * int(mask.sum())), 1)


def clip_cov_loss(inputs: LossInputs, hp: ClipCovHparams) -> TokenLoss:
    ratio = torch.exp(inputs.logp - inputs.old_logp)
    per_token, clipped = clipped_surrogate(ratio, inputs.advantages, hp)
    cov = token_covariance(inputs)
    # Candidates: valid, not already clipped by the ratio, covariance inside (lb, ub).
    candidates = inputs.mask & ~clipped & (cov > hp.clip_cov_lb) & (cov < hp.clip_cov_ub)
    generator = None if hp.seed is None else torch.Generator().manual_seed(hp.seed)
    scores = torch.rand(cov.shape, generator=generator).to(cov.device)
    scores = torch.where(candidates, scores, torch.full_like(scores, -1.0))
    budget = min(_count_fraction(inputs.mask, hp.clip_cov_ratio), int(candidates.sum()))
    detached = torch.zeros_like(inputs.mask)
    if budget > 0:
        chosen = scores.reshape(-1).topk(budget).indices
        detached.view(-1)[chosen] = True
    per_token = torch.where(detached, per_token.detach(), per_token)
    return TokenLoss(per_token=per_token, loss_mask=inputs.mask, clipped=clipped & inputs.mask,
                     stats={"_ratio": ratio, "cov/detached_frac": masked_mean(detached.float(), inputs.mask)})


def kl_cov_loss(inputs: LossInputs, hp: KlCovHparams) -> TokenLoss:
    log_ratio = inputs.logp - inputs.old_logp
    ratio = torch.exp(log_ratio)
    per_token = -inputs.advantages * ratio
    cov = token_covariance(inputs)
    cov = torch.where(inputs.mask, cov, torch.full_like(cov, float("-inf")))
    penalised = torch.zeros_like(inputs.mask)
    if hp.kl_cov_ratio > 0 and bool(inputs.mask.any()):
        chosen = cov.reshape(-1).topk(_count_fraction(inputs.mask, hp.kl_cov_ratio)).indices
        penalised.view(-1)[chosen] = True
    per_token = torch.where(penalised, per_token + hp.kl_coef * log_ratio.abs(), per_token)
    return TokenLoss(per_token=per_token, loss_mask=inputs.mask, clipped=torch.zeros_like(inputs.mask),
                     stats={"_ratio": ratio, "cov/penalised_frac": masked_mean(penalised.float(), inputs.mask)})
