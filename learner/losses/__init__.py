"""Policy losses for RLVR: SimKO and the baselines it is compared with.

Public entry point (a stable contract, docs/architecture.md):
    loss, stats = compute_policy_loss(name, logits=..., tokens=..., old_logprobs=..., advantages=...,
                                      mask=..., **hparams)
logits [B,T,V] (temperature applied, requires grad) with logits[:, t] predicting tokens[:, t];
tokens / old_logprobs / mask [B,T]; advantages [B,T] or [B]. `stats` holds detached tensors only.
"""
from __future__ import annotations

import torch

from learner.losses import covariance, entropy, grpo, simko
from learner.losses.core import LossInputs, TokenLoss, aggregate, diagnostics, surrogate_stats
from learner.hparams import (ClipCovHparams, CommonHparams, EntropyAdvHparams, ForkingTokensHparams,
                                    KlCovHparams, SimkoHparams)
from learner.losses.registry import get_loss, loss_names, make_hparams, register_loss
from learner.token_stats import HiddenStates, token_stats_of

# GRPO and SimKO are -A x (a clipped ratio of the row's own tokens); SimKO's tau is per response
# or fixed for the whole batch beforehand (batch_hparams). The covariance losses select tokens by
# statistics over the micro-batch, the entropy losses add terms that do not vanish with A.
register_loss("grpo", CommonHparams, zero_advantage_inert=True)(grpo.grpo_loss)
register_loss("simko", SimkoHparams, zero_advantage_inert=True)(simko.simko_loss)
register_loss("clip_cov", ClipCovHparams)(covariance.clip_cov_loss)
register_loss("kl_cov", KlCovHparams)(covariance.kl_cov_loss)
register_loss("entropy_adv", EntropyAdvHparams)(entropy.entropy_adv_loss)
register_loss("forking_tokens", ForkingTokensHparams)(entropy.forking_tokens_loss)

__all__ = ["compute_policy_loss", "loss_names", "register_loss", "make_hparams", "zero_advantage_inert", "LossInputs",
           "TokenLoss"]


def _validate_shapes(logits, tokens, old_logprobs, advantages, mask) -> None:
    for name, value in (("tokens", tokens), ("old_logprobs", old_logprobs), ("advantages", advantages),
                        ("mask", mask)):
        if name == "old_logprobs" and value is None:
            continue  # policy_loss: on-policy, the current log-probs
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if isinstance(logits, HiddenStates):
        weight_shape = logits.weight_shape
        if logits.hidden.dim() != 3 or not logits.hidden.is_floating_point() or len(weight_shape) != 2 \
                or weight_shape[1] != logits.hidden.shape[-1]:
            raise ValueError(f"hidden states must be floating [B,T,H] with a [V,H] lm_head weight, got "
                             f"{tuple(logits.hidden.shape)} and {weight_shape}")
    elif not isinstance(logits, torch.Tensor) or logits.dim() != 3 or not logits.is_floating_point():
        raise ValueError(f"logits must be a floating [B,T,V] tensor, got "
                         f"{getattr(logits, 'dtype', type(logits).__name__)} {tuple(getattr(logits, 'shape', ()))}")
    shape = logits.shape[:2]
    if tokens.shape != shape or tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise ValueError(f"tokens must be an integer [B,T]={tuple(shape)} tensor, got {tokens.dtype} {tuple(tokens.shape)}")
    if old_logprobs is not None and (old_logprobs.shape != shape or not old_logprobs.is_floating_point()):
        raise ValueError(f"old_logprobs must be a floating [B,T]={tuple(shape)} tensor, got "
                         f"{old_logprobs.dtype} {tuple(old_logprobs.shape)}")
    if advantages.shape not in (shape, shape[:1]) or not advantages.is_floating_point():
        raise ValueError(f"advantages must be a floating [B,T] or [B] tensor for B,T={tuple(shape)}, got "
                         f"{advantages.dtype} {tuple(advantages.shape)}")
    if mask.shape != shape:
        raise ValueError(f"mask must be [B,T]={tuple(shape)}, got {tuple(mask.shape)}")


def _prepare_inputs(logits, tokens, old_logprobs, advantages, mask, hp: CommonHparams) -> LossInputs:
    _validate_shapes(logits, tokens, old_logprobs, advantages, mask)
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must be boolean or contain only 0 and 1")
        mask = mask.bool()
    vocab = logits.shape[2]
    # Padding may carry any id (-100, pad id): ignore it. Valid ids must index the vocabulary.
    tokens = torch.where(mask, tokens.long(), torch.zeros((), dtype=torch.long))
    if bool(((tokens < 0) | (tokens >= vocab)).any()):
        raise ValueError(f"tokens at valid positions must be in [0, V={vocab})")
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand(mask.shape)
    stats = token_stats_of(logits, tokens, top_k=hp.candidates_needed(vocab), chunk_size=hp.chunk_size)
    if old_logprobs is None:  # on-policy, one step: the sampling policy is this forward's (ratio 1)
        old_logprobs = stats.logp.detach()
    # One host sync for the whole input check: a NaN/inf anywhere would silently poison the update.
    finite_inputs = (torch.isfinite(stats.entropy).all() & (torch.isfinite(stats.logp) | ~mask).all()
                     & (torch.isfinite(old_logprobs) | ~mask).all() & (torch.isfinite(advantages) | ~mask).all())
    if not bool(finite_inputs):
        raise ValueError(_describe_non_finite(stats, old_logprobs, advantages, mask))
    logp = stats.logp
    zero = torch.zeros((), dtype=logp.dtype)
    return LossInputs(
        logp=logp,
        old_logp=torch.where(mask, old_logprobs.to(logp.dtype), logp.detach()),
        advantages=torch.where(mask, advantages.to(logp.dtype), zero),
        mask=mask,
        stats=stats,
        vocab_size=vocab,
    )


def _describe_non_finite(stats, old_logprobs, advantages, mask) -> str:
    problems = []
    if not bool(torch.isfinite(stats.entropy).all() & (torch.isfinite(stats.logp) | ~mask).all()):
        problems.append("logits contain NaN/inf (or a sampled token has probability 0)")
    if not bool((torch.isfinite(old_logprobs) | ~mask).all()):
        problems.append("old_logprobs contain NaN/inf at valid positions")
    if not bool((torch.isfinite(advantages) | ~mask).all()):
        problems.append("advantages contain NaN/inf at valid positions")
    return "; ".join(problems)


def zero_advantage_inert(name: str, hp: CommonHparams) -> bool:
    """True when rows with advantage 0 contribute exactly zero gradient under this loss and these
    hyper-parameters (the entropy bonus does not vanish with the advantage)."""
    return get_loss(name).zero_advantage_inert and hp.entropy_coeff == 0


def compute_policy_loss(name: str, *, logits: torch.Tensor, tokens: torch.Tensor, old_logprobs: torch.Tensor,
                        advantages: torch.Tensor, mask: torch.Tensor, **hparams) -> tuple[torch.Tensor, dict]:
    """Scalar loss and detached diagnostics for the registered policy loss `name`."""
    return policy_loss(name, make_hparams(name, **hparams), logits=logits, tokens=tokens,
                       old_logprobs=old_logprobs, advantages=advantages, mask=mask)


def policy_loss(name: str, hp: CommonHparams, *, logits: torch.Tensor | HiddenStates, tokens: torch.Tensor,
                old_logprobs: torch.Tensor | None, advantages: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """compute_policy_loss with hyper-parameters validated once beforehand (the learner's path:
    AlgorithmSection builds `hp` when the JobSpec is parsed, not in every micro-batch). `logits`
    may be HiddenStates (learner.token_stats): the same loss, values and gradients, without ever
    building [B,T,V] logits. old_logprobs=None: the policy that sampled is the current one (the
    learner's single-step updates), so the ratio is exactly 1 and its gradient the policy gradient."""
    spec = get_loss(name)
    inputs = _prepare_inputs(logits, tokens, old_logprobs, advantages, mask, hp)
    token_loss = spec.fn(inputs, hp)
    loss = aggregate(token_loss.per_token, token_loss.loss_mask, hp)
    stats = diagnostics(inputs, hp)
    ratio = token_loss.stats.pop("_ratio")
    stats.update(surrogate_stats(ratio, inputs, token_loss.clipped))
    stats.update({key: value.detach() for key, value in token_loss.stats.items()})
    stats["loss/pg_loss"] = loss.detach()
    if hp.entropy_coeff > 0:  # verl: policy_loss = pg_loss - entropy_coeff * entropy (aggregated alike)
        bonus = aggregate(inputs.stats.entropy_live, inputs.mask, hp)
        loss = loss - hp.entropy_coeff * bonus
        stats["loss/entropy_bonus"] = bonus.detach()
    return loss, stats
