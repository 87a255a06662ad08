"""Advantage estimators for outcome rewards (registry) and DAPO's reward-side helpers.

All estimators map rewards [G, n] (G prompt groups x n samples) to per-sample advantages [G, n];
the learner broadcasts a sample's advantage over its response tokens.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from learner.hparams import (AdvantageHparams, PasskHparams, WReinforceHparams, advantage_names, declare_advantage,
                             make_advantage_hparams)


_ESTIMATORS: dict[str, Callable[[torch.Tensor, AdvantageHparams], torch.Tensor]] = {}


def register_advantage(name: str, hparams: type[AdvantageHparams] | None = None):
    """Decorator: `@register_advantage("name") def fn(rewards [G,n] float64, hp) -> [G,n]`. The name's
    hyper-parameters are declared in learner.hparams (or passed here, which declares them)."""
    if hparams is not None:
        declare_advantage(name, hparams)

    def wrap(fn):
        if name in _ESTIMATORS:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        if name not in advantage_names():
            raise ValueError(f"advantage estimator {name!r} has no declared hyper-parameters (learner.hparams)")
        _ESTIMATORS[name] = fn
        return fn

    return wrap


def compute_advantages(name: str, rewards: torch.Tensor, **hparams) -> torch.Tensor:
    """rewards [G, n] -> advantages [G, n] (float32) with the named estimator."""
    return advantages_with(name, make_advantage_hparams(name, **hparams), rewards)


def advantages_with(name: str, hp: AdvantageHparams, rewards: torch.Tensor) -> torch.Tensor:
    """As compute_advantages, with hyper-parameters validated once beforehand (the learner's path)."""
    if name not in _ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {name!r}; valid: {sorted(_ESTIMATORS)}")
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 2 or rewards.numel() == 0:
        raise ValueError(f"rewards must be a non-empty [G, n] tensor, got {getattr(rewards, 'shape', type(rewards))}")
    rewards = rewards.to(torch.float64)
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError("rewards contain NaN/inf")
    hp.check_group_size(rewards.shape[1])
    return _ESTIMATORS[name](rewards, hp).to(torch.float32)


def _group_std(rewards: torch.Tensor) -> torch.Tensor:
    # Unbiased (n - 1) std, as verl's GRPO; a single-sample group has no spread.
    if rewards.shape[1] < 2:
        return torch.zeros(rewards.shape[0], 1, dtype=rewards.dtype)
    return rewards.std(dim=1, keepdim=True)


@register_advantage("grpo")
def grpo_advantages(rewards: torch.Tensor, hp: AdvantageHparams) -> torch.Tensor:
    """(R - mean_g) / (std_g + eps)."""
    return (rewards - rewards.mean(dim=1, keepdim=True)) / (_group_std(rewards) + hp.eps)


@register_advantage("dr_grpo")
def dr_grpo_advantages(rewards: torch.Tensor, hp: AdvantageHparams) -> torch.Tensor:
    """Dr.GRPO (Liu et al. 2025): R - mean_g, no std normalisation (removes the difficulty bias)."""
    return rewards - rewards.mean(dim=1, keepdim=True)


@register_advantage("psr")
def psr_advantages(rewards: torch.Tensor, hp: AdvantageHparams) -> torch.Tensor:
    """Positive sample reinforcement (Zhu et al. 2025): +1 on correct samples, 0 otherwise."""
    return (rewards > hp.correct_threshold).to(rewards.dtype)


@register_advantage("nsr")
def nsr_advantages(rewards: torch.Tensor, hp: AdvantageHparams) -> torch.Tensor:
    """Negative sample reinforcement (Zhu et al. 2025): -1 on incorrect samples, 0 otherwise."""
    return -(rewards <= hp.correct_threshold).to(rewards.dtype)


@register_advantage("w_reinforce")
def w_reinforce_advantages(rewards: torch.Tensor, hp: WReinforceHparams) -> torch.Tensor:
    """Weighted REINFORCE (Zhu et al. 2025): lambda on correct samples, -1 on incorrect ones."""
    correct = rewards > hp.correct_threshold
    return torch.where(correct, torch.full_like(rewards, hp.positive_weight), torch.full_like(rewards, -1.0))


@register_advantage("passk_training")
def passk_training_advantages(rewards: torch.Tensor, hp: PasskHparams) -> torch.Tensor:
    """Analytical pass@k advantages (Chen et al. 2025, "Pass@k Training"), per group of N samples
    with N_neg incorrect:
        R = 1 - C(N_neg, k) / C(N, k)              (the group's pass@k reward)
        sigma = sqrt(R (1 - R))
        A_pos = (1 - R) / sigma
        A_neg = (1 - R - C(N_neg - 1, k - 1) / C(N - 1, k - 1)) / sigma
    Groups with sigma = 0 (all correct or no k-subset can succeed) get 0. k = 1 is GRPO with the
    biased std."""
    n = rewards.shape[1]
    correct = rewards > hp.correct_threshold
    n_neg = (~correct).sum(dim=1).tolist()
    out = torch.zeros_like(rewards)
    for g, neg in enumerate(n_neg):
        group_reward = 1 - math.comb(neg, hp.k) / math.comb(n, hp.k)
        sigma = math.sqrt(group_reward * (1 - group_reward))
        if sigma <= hp.eps:
            continue
        a_pos = (1 - group_reward) / sigma
        a_neg = (1 - group_reward - (math.comb(neg - 1, hp.k - 1) / math.comb(n - 1, hp.k - 1) if neg >= 1 else 0)) / sigma
        out[g] = torch.where(correct[g], torch.tensor(a_pos, dtype=rewards.dtype), torch.tensor(a_neg, dtype=rewards.dtype))
    return out


def dynamic_sampling_keep(rewards: torch.Tensor) -> torch.Tensor:
    """DAPO dynamic sampling: True for groups whose rewards are not all equal (zero advantage otherwise)."""
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [G, n], got {tuple(rewards.shape)}")
    return rewards.amax(dim=1) != rewards.amin(dim=1)


def overlong_penalty(lengths: torch.Tensor, *, max_length: int, cache_length: int) -> torch.Tensor:
    """DAPO soft overlong punishment added to the reward: 0 up to max_length - cache_length,
    then linearly down to -1 at max_length, and -1 beyond."""
    if not 0 < cache_length <= max_length:
        raise ValueError(f"need 0 < cache_length <= max_length, got {cache_length}, {max_length}")
    lengths = lengths.to(torch.float32)
    soft_start = max_length - cache_length
    ramp = (soft_start - lengths) / cache_length
    return torch.where(lengths <= soft_start, torch.zeros_like(lengths),
                       torch.where(lengths <= max_length, ramp, torch.full_like(lengths, -1.0)))
