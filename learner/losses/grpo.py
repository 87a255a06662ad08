"""GRPO / PPO clipped surrogate (DAPO clip-higher via clip_high, optional dual-clip)."""
from __future__ import annotations

import torch

from learner.losses.core import LossInputs, TokenLoss, clipped_surrogate
from learner.hparams import CommonHparams


def grpo_loss(inputs: LossInputs, hp: CommonHparams) -> TokenLoss:
    """L = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high)),  r = exp(logp - old_logp)."""
    ratio = torch.exp(inputs.logp - inputs.old_logp)
    per_token, clipped = clipped_surrogate(ratio, inputs.advantages, hp)
    return TokenLoss(per_token=per_token, loss_mask=inputs.mask, clipped=clipped & inputs.mask,
                     stats={"_ratio": ratio})
