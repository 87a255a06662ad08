"""Advantage estimators: hand-derived values."""
import math
from math import comb

import pytest
import torch

from learner.advantages import (advantage_names, compute_advantages, dynamic_sampling_keep,
                                overlong_penalty)

REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])


def test_grpo_normalises_by_unbiased_group_std():
    adv = compute_advantages("grpo", REWARDS)
    std0 = math.sqrt(4 * 0.25 / 3)  # rewards 1,0,0,1: mean .5, unbiased var = 1/3
    a = 0.5 / (std0 + 1e-6)
    assert adv[0].tolist() == pytest.approx([a, -a, -a, a])
    assert adv[1].tolist() == [0.0] * 4  # all equal: zero advantage
    std2 = math.sqrt((3 * 0.25 ** 2 + 0.75 ** 2) / 3)
    assert adv[2, 3].item() == pytest.approx(0.75 / (std2 + 1e-6), rel=1e-6)


def test_dr_grpo_is_mean_centred_only():
    adv = compute_advantages("dr_grpo", REWARDS)
    assert adv[0].tolist() == [0.5, -0.5, -0.5, 0.5]
    assert adv[2].tolist() == [-0.25, -0.25, -0.25, 0.75]


def test_psr_nsr_w_reinforce():
    assert compute_advantages("psr", REWARDS)[0].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert compute_advantages("nsr", REWARDS)[0].tolist() == [0.0, -1.0, -1.0, 0.0]
    assert compute_advantages("w_reinforce", REWARDS)[0].tolist() == pytest.approx([0.1, -1.0, -1.0, 0.1])
    assert compute_advantages("w_reinforce", REWARDS, positive_weight=0.5)[2].tolist() == [-1.0, -1.0, -1.0, 0.5]


def test_passk_training_matches_chen_et_al_formulas():
    k, n = 2, 4
    adv = compute_advantages("passk_training", REWARDS, k=k)
    # group 0: N_neg = 2 -> R = 1 - C(2,2)/C(4,2) = 5/6; sigma = sqrt(5/36)
    r = 1 - comb(2, k) / comb(n, k)
    sigma = math.sqrt(r * (1 - r))
    a_pos = (1 - r) / sigma
    a_neg = (1 - r - comb(1, k - 1) / comb(n - 1, k - 1)) / sigma
    assert adv[0].tolist() == pytest.approx([a_pos, a_neg, a_neg, a_pos], rel=1e-6)
    assert adv[1].tolist() == [0.0] * 4  # all correct: R = 1, sigma = 0
    # group 2: N_neg = 3 -> R = 1 - 3/6 = 0.5, sigma 0.5; A_pos = 1; A_neg = (0.5 - C(2,1)/C(3,1)) / 0.5 = -1/3
    assert adv[2].tolist() == pytest.approx([-1 / 3, -1 / 3, -1 / 3, 1.0], rel=1e-6)


def test_passk_with_k1_is_grpo_with_biased_std():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0]])
    passk = compute_advantages("passk_training", rewards, k=1)
    centred = rewards - rewards.mean()
    biased = centred / rewards.std(unbiased=False)
    torch.testing.assert_close(passk, biased, atol=1e-6, rtol=1e-6)


def test_dynamic_sampling_and_overlong():
    assert dynamic_sampling_keep(REWARDS).tolist() == [True, False, True]
    pen = overlong_penalty(torch.tensor([10, 80, 90, 100, 120]), max_length=100, cache_length=20)
    assert pen.tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0])


def test_single_sample_groups_get_zero_grpo_advantage():
    assert compute_advantages("grpo", torch.tensor([[1.0], [0.0]])).tolist() == [[0.0], [0.0]]


@pytest.mark.parametrize("call,match", [
    (lambda: compute_advantages("ppo", REWARDS), "grpo"),
    (lambda: compute_advantages("grpo", REWARDS, k=2), "k"),
    (lambda: compute_advantages("grpo", torch.tensor([1.0, 0.0])), "rewards"),
    (lambda: compute_advantages("grpo", torch.tensor([[float("nan"), 0.0]])), "NaN"),
    (lambda: compute_advantages("passk_training", REWARDS, k=5), "k=5"),
    (lambda: compute_advantages("passk_training", REWARDS, k=0), "k"),
    (lambda: compute_advantages("w_reinforce", REWARDS, positive_weight=-1), "positive_weight"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_registry_lists_all_estimators():
    assert set(advantage_names()) == {"grpo", "dr_grpo", "psr", "nsr", "w_reinforce", "passk_training"}
