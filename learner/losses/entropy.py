"""Entropy-aware baselines: entropy advantage shaping and forking-token (80/20) GRPO."""
from __future__ import annotations

import torch

from learner.losses.core import LossInputs, TokenLoss, clipped_surrogate
from learner.hparams import EntropyAdvHparams, ForkingTokensHparams
from learner.losses.simko import forking_threshold
from learner.masked import masked_mean


def entropy_adv_loss(inputs: LossInputs, hp: EntropyAdvHparams) -> TokenLoss:
    """Cheng et al. 2025: A_shaped = A + min(beta * sg(H), |A| / kappa); the clamp keeps the bonus
    from flipping the sign of the advantage."""
    bonus = torch.minimum(hp.entropy_beta * inputs.stats.entropy, inputs.advantages.abs() / hp.entropy_kappa)
    shaped = inputs.advantages + bonus
    ratio = torch.exp(inputs.logp - inputs.old_logp)
    per_token, clipped = clipped_surrogate(ratio, shaped, hp)
    return TokenLoss(per_token=per_token, loss_mask=inputs.mask, clipped=clipped & inputs.mask,
                     stats={"_ratio": ratio, "entropy_adv/bonus_mean": masked_mean(bonus, inputs.mask)})


def forking_tokens_loss(inputs: LossInputs, hp: ForkingTokensHparams) -> TokenLoss:
    """Wang et al. 2025: GRPO restricted to the top `top_entropy_frac` entropy tokens; the
    aggregation runs over those tokens only."""
    tau = forking_threshold(inputs.stats.entropy, inputs.mask, 1 - hp.top_entropy_frac, hp.entropy_scope)
    forking = (inputs.stats.entropy >= tau) & inputs.mask
    ratio = torch.exp(inputs.logp - inputs.old_logp)
    per_token, clipped = clipped_surrogate(ratio, inputs.advantages, hp)
    return TokenLoss(per_token=per_token, loss_mask=forking, clipped=clipped & forking,
                     stats={"_ratio": ratio, "forking/selected_frac": masked_mean(forking.float(), inputs.mask)})
