"""Hand-derived loss values on tiny tensors, for every registered loss."""
import math

import pytest
import torch

from learner.losses import compute_policy_loss, loss_names
from tests.learner.loss_cases import forking_sequence, on_policy_old_logprobs


def two_token_case(ratio, advantage):
    """V=2 uniform logits: logp = ln 0.5 exactly; old_logp chosen so r = ratio."""
    logits = torch.zeros(1, 1, 2, requires_grad=True)
    tokens = torch.tensor([[0]])
    old = torch.tensor([[math.log(0.5) - math.log(ratio)]])
    return dict(logits=logits, tokens=tokens, old_logprobs=old, advantages=torch.tensor([advantage]),
                mask=torch.ones(1, 1, dtype=torch.bool))


@pytest.mark.parametrize("ratio,adv,hp,expected,clipped", [
    (1.0, 1.0, {}, -1.0, 0.0),
    (1.1, 1.0, {}, -1.1, 0.0),
    (2.0, 1.0, {}, -1.2, 1.0),  # clipped at 1 + 0.2
    (2.0, 1.0, {"clip_high": 0.28}, -1.28, 1.0),  # DAPO clip-higher
    (0.5, -1.0, {}, 0.8, 1.0),  # A<0: max(0.5, 0.8) = 0.8 (clipped at 1 - 0.2)
    (2.0, -1.0, {}, 2.0, 0.0),  # A<0, r large: unclipped branch is larger
    (4.0, -1.0, {"dual_clip": 3.0}, 3.0, 1.0),  # dual-clip caps at -A c = 3
    (2.0, -1.0, {"dual_clip": 3.0}, 2.0, 0.0),
])
def test_grpo_clipped_surrogate(ratio, adv, hp, expected, clipped):
    loss, stats = compute_policy_loss("grpo", **two_token_case(ratio, adv), **hp)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["loss/clip_frac"].item() == clipped
    assert stats["loss/ratio_mean"].item() == pytest.approx(ratio, rel=1e-6)


def test_aggregations():
    # Two rows: row 0 has 1 valid token (loss -1*r with r=1 -> -1 * A=2 -> -2), row 1 has 3 tokens of A=1.
    logits = torch.zeros(2, 3, 2, requires_grad=True)
    tokens = torch.zeros(2, 3, dtype=torch.long)
    old = torch.full((2, 3), math.log(0.5))
    adv = torch.tensor([2.0, 1.0])
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    args = dict(logits=logits, tokens=tokens, old_logprobs=old, advantages=adv, mask=mask)
    token_mean, _ = compute_policy_loss("grpo", **args)
    seq_mean, _ = compute_policy_loss("grpo", aggregation="seq-mean-token-mean", **args)
    sum_norm, _ = compute_policy_loss("grpo", aggregation="seq-mean-token-sum-norm", **args)
    sum_norm_8, _ = compute_policy_loss("grpo", aggregation="seq-mean-token-sum-norm", norm_length=8, **args)
    assert token_mean.item() == pytest.approx((-2 - 3) / 4)
    assert seq_mean.item() == pytest.approx((-2 + -1) / 2)
    assert sum_norm.item() == pytest.approx((-2 - 3) / (2 * 3))
    assert sum_norm_8.item() == pytest.approx((-2 - 3) / (2 * 8))


def test_simko_negative_top1_forking_token_scaled_by_lambda():
    logits, tokens = forking_sequence(sampled_is_top1=True)
    old = on_policy_old_logprobs(logits, tokens)  # r = 1 everywhere
    loss, stats = compute_policy_loss("simko", logits=logits.requires_grad_(), tokens=tokens, old_logprobs=old,
                                      advantages=torch.tensor([-1.0]), mask=torch.ones(1, 5, dtype=torch.bool))
    # four ordinary tokens contribute -A r = 1, the forking top-1 token lambda * 1 = 1.1
    assert loss.item() == pytest.approx((4 * 1.0 + 1.1) / 5, rel=1e-6)
    assert stats["simko/forking_frac"].item() == pytest.approx(0.2)
    assert stats["simko/neg_top1_gate_frac"].item() == pytest.approx(0.2)
    assert stats["simko/pos_gate_frac"].item() == 0.0


def test_simko_fixed_tau_value_replaces_the_quantile():
    """tau_value (what the engine sets for tau_scope="batch"): above every entropy nothing is
    gated (GRPO's value, 1.0); below every entropy each top-1 token of the wrong answer is."""
    logits, tokens = forking_sequence(sampled_is_top1=True)
    old = on_policy_old_logprobs(logits, tokens)
    args = dict(logits=logits, tokens=tokens, old_logprobs=old, advantages=torch.tensor([-1.0]),
                mask=torch.ones(1, 5, dtype=torch.bool))
    high, stats_high = compute_policy_loss("simko", **args, tau_value=100.0)
    assert high.item() == pytest.approx(1.0, rel=1e-6) and stats_high["simko/forking_frac"].item() == 0.0
    low, stats_low = compute_policy_loss("simko", **args, tau_value=0.0)
    assert stats_low["simko/tau_mean"].item() == 0.0 and stats_low["simko/neg_top1_gate_frac"].item() > 0.2
    assert low.item() == pytest.approx(1.0 + 0.1 * stats_low["simko/neg_top1_gate_frac"].item(), rel=1e-6)


def test_simko_negative_non_top1_forking_token_is_grpo():
    logits, tokens = forking_sequence(sampled_is_top1=False)
    old = on_policy_old_logprobs(logits, tokens)
    loss, stats = compute_policy_loss("simko", logits=logits.requires_grad_(), tokens=tokens, old_logprobs=old,
                                      advantages=torch.tensor([-1.0]), mask=torch.ones(1, 5, dtype=torch.bool))
    assert loss.item() == pytest.approx(1.0, rel=1e-6)
    assert stats["simko/neg_top1_gate_frac"].item() == 0.0


def test_simko_positive_value_equals_grpo_value():
    logits, tokens = forking_sequence()
    old = on_policy_old_logprobs(logits, tokens) - 0.05  # r = e^0.05 everywhere
    args = dict(tokens=tokens, old_logprobs=old, advantages=torch.tensor([1.0]), mask=torch.ones(1, 5, dtype=torch.bool))
    simko, stats = compute_policy_loss("simko", logits=logits.clone().requires_grad_(), **args)
    grpo, _ = compute_policy_loss("grpo", logits=logits.clone().requires_grad_(), **args)
    assert simko.item() == pytest.approx(-math.exp(0.05), rel=1e-6)
    assert simko.item() == pytest.approx(grpo.item(), rel=1e-6)
    assert stats["simko/pos_gate_frac"].item() == pytest.approx(0.2)


def test_diagnostics_lambda_and_entropy_by_hand():
    # V=2, logits [ln3, 0] -> p = (0.75, 0.25); sampled token 1.
    logits = torch.tensor([[[math.log(3.0), 0.0]]], requires_grad=True)
    _, stats = compute_policy_loss("grpo", logits=logits, tokens=torch.tensor([[1]]),
                                   old_logprobs=torch.tensor([[math.log(0.25)]]), advantages=torch.tensor([1.0]),
                                   mask=torch.ones(1, 1, dtype=torch.bool), diagnostic_top_k=2, entropy_bins=4)
    assert stats["dist/lambda_1"].item() == pytest.approx(math.log(0.75), rel=1e-6)
    assert stats["dist/lambda_2"].item() == pytest.approx(math.log(0.25), rel=1e-6)
    assert stats["dist/lambda_sampled"].item() == pytest.approx(math.log(0.25), rel=1e-6)
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert stats["dist/entropy_mean"].item() == pytest.approx(entropy, rel=1e-6)
    assert stats["dist/top1_frac"].item() == 0.0
    hist = stats["dist/entropy_hist"]
    assert hist.tolist() == [0.0, 0.0, 0.0, 1.0]  # 0.562 of ln2=0.693 falls in the last quarter
    assert all(not v.requires_grad for v in stats.values())


def test_lambda_is_a_per_response_mean_then_a_mean_over_responses():
    """The paper's eq. 2: Lambda^(k) averages within each response first (1/L inside the
    expectation). Row 0: one token with p_top1 = 0.75; row 1: three tokens with p_top1 = 0.5. The
    per-response mean is (ln .75 + ln .5) / 2; the token-weighted one (ln .75 + 3 ln .5) / 4."""
    logits = torch.zeros(2, 3, 2)
    logits[0, 0, 0] = math.log(3.0)
    logits.requires_grad_(True)
    mask = torch.tensor([[True, False, False], [True, True, True]])
    _, stats = compute_policy_loss("grpo", logits=logits, tokens=torch.zeros(2, 3, dtype=torch.long),
                                   old_logprobs=torch.zeros(2, 3), advantages=torch.tensor([1.0, -1.0]), mask=mask)
    assert stats["dist/lambda_1"].item() == pytest.approx((math.log(0.75) + math.log(0.5)) / 2, rel=1e-6)
    assert stats["dist/lambda_1_token"].item() == pytest.approx((math.log(0.75) + 3 * math.log(0.5)) / 4, rel=1e-6)
    assert stats["dist/lambda_sampled"].item() == pytest.approx((math.log(0.75) + math.log(0.5)) / 2, rel=1e-6)
    assert stats["dist/responses"].item() == 2


def test_entropy_bonus_subtracts_coeff_times_the_token_mean_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(0, 5, (2, 4))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    case = dict(tokens=tokens, old_logprobs=torch.zeros(2, 4, dtype=torch.float64),
                advantages=torch.tensor([1.0, -0.5], dtype=torch.float64), mask=mask)
    plain, _ = compute_policy_loss("grpo", logits=logits, **case)
    with_bonus, stats = compute_policy_loss("grpo", logits=logits, entropy_coeff=0.01, **case)
    probs = torch.softmax(logits, dim=-1)
    entropy = -(probs * torch.log_softmax(logits, dim=-1)).sum(-1)
    reference = plain - 0.01 * entropy[mask].mean()
    assert with_bonus.item() == pytest.approx(reference.item(), rel=1e-12)
    assert stats["loss/entropy_bonus"].item() == pytest.approx(entropy[mask].mean().item(), rel=1e-12)
    (grad,) = torch.autograd.grad(with_bonus, logits)
    (want,) = torch.autograd.grad(reference, logits)
    assert torch.allclose(grad, want, atol=1e-12)  # the entropy bonus has its true gradient
    with pytest.raises(ValueError, match="entropy_coeff"):
        compute_policy_loss("grpo", logits=logits, entropy_coeff=-1.0, **case)


def test_entropy_adv_shapes_advantage_by_hand():
    # uniform V=2: H = ln2; A=1 -> bonus min(0.4 ln2, 1/2) = 0.2773; r = 1 -> loss = -(1 + bonus)
    loss, stats = compute_policy_loss("entropy_adv", logits=torch.zeros(1, 1, 2, requires_grad=True),
                                      tokens=torch.tensor([[0]]), old_logprobs=torch.tensor([[math.log(0.5)]]),
                                      advantages=torch.tensor([1.0]), mask=torch.ones(1, 1, dtype=torch.bool))
    assert loss.item() == pytest.approx(-(1 + 0.4 * math.log(2)), rel=1e-6)
    # A = -0.2: bonus capped at |A|/kappa = 0.1 so the sign never flips: loss = -(-0.2 + 0.1) = 0.1
    loss, _ = compute_policy_loss("entropy_adv", logits=torch.zeros(1, 1, 2, requires_grad=True),
                                  tokens=torch.tensor([[0]]), old_logprobs=torch.tensor([[math.log(0.5)]]),
                                  advantages=torch.tensor([-0.2]), mask=torch.ones(1, 1, dtype=torch.bool))
    assert loss.item() == pytest.approx(0.1, rel=1e-5)


def test_forking_tokens_averages_over_top_entropy_tokens_only():
    logits, tokens = forking_sequence()
    old = on_policy_old_logprobs(logits, tokens)
    adv = torch.tensor([[1.0, 1.0, 1.0, 1.0, 3.0]])  # only the forking token has A=3
    loss, stats = compute_policy_loss("forking_tokens", logits=logits.requires_grad_(), tokens=tokens,
                                      old_logprobs=old, advantages=adv, mask=torch.ones(1, 5, dtype=torch.bool))
    # top 20% of 5 tokens by entropy = the forking token alone: loss = -3
    assert loss.item() == pytest.approx(-3.0, rel=1e-6)
    assert stats["forking/selected_frac"].item() == pytest.approx(0.2)


def test_kl_cov_penalises_top_covariance_token_without_clipping():
    # V=2 rows with logits [0,0], [2,0], [4,0] -> logp = -0.693, -0.127, -0.018; A = [0, 0, 3].
    # Centred covariance (logp - mean)(A - mean): 0.414, -0.152, 0.522 -> token 2 is the top one.
    logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]]], requires_grad=True)
    tokens = torch.tensor([[0, 0, 0]])
    logp = torch.log_softmax(logits.detach(), -1)[0, :, 0]
    old = (logp - torch.tensor([0.0, 0.0, 0.3]))[None]  # token 2: r = e^0.3, beyond GRPO's clip
    loss, stats = compute_policy_loss("kl_cov", logits=logits, tokens=tokens, old_logprobs=old,
                                      advantages=torch.tensor([[0.0, 0.0, 3.0]]),
                                      mask=torch.ones(1, 3, dtype=torch.bool), kl_cov_ratio=0.34, kl_coef=1.0)
    # int(0.34 * 3) = 1 penalised token; no clipping: -A r + |log r| = -3 e^0.3 + 0.3 on token 2.
    assert loss.item() == pytest.approx((-3 * math.exp(0.3) + 0.3) / 3, rel=1e-6)
    assert stats["loss/clip_frac"].item() == 0.0
    assert stats["cov/penalised_frac"].item() == pytest.approx(1 / 3)


def test_clip_cov_detaches_selected_tokens_gradient():
    torch.manual_seed(0)
    logits = (2 * torch.randn(4, 16, 8)).requires_grad_()
    tokens = torch.randint(0, 8, (4, 16))
    old = on_policy_old_logprobs(logits, tokens)
    adv = torch.tensor([3.0, -3.0, 2.0, -2.0])
    args = dict(tokens=tokens, old_logprobs=old, advantages=adv, mask=torch.ones(4, 16, dtype=torch.bool))
    loss, stats = compute_policy_loss("clip_cov", logits=logits, clip_cov_ratio=0.1, clip_cov_lb=-100.0,
                                      clip_cov_ub=100.0, seed=0, **args)
    grpo, _ = compute_policy_loss("grpo", logits=logits, **args)
    assert loss.item() == pytest.approx(grpo.item(), rel=1e-6)  # detaching changes gradients, not the value
    assert stats["cov/detached_frac"].item() == pytest.approx(6 / 64)  # int(0.1 * 64) tokens
    (g_cov,) = torch.autograd.grad(loss, logits)
    (g_grpo,) = torch.autograd.grad(grpo, logits)
    zero_rows = (g_cov.abs().sum(-1) == 0) & (g_grpo.abs().sum(-1) > 0)
    assert int(zero_rows.sum()) == 6


@pytest.mark.parametrize("name", loss_names())
def test_every_loss_returns_finite_scalar_and_detached_stats(name):
    torch.manual_seed(3)
    logits = torch.randn(2, 6, 10, requires_grad=True)
    tokens = torch.randint(0, 10, (2, 6))
    old = on_policy_old_logprobs(logits, tokens) + 0.1 * torch.randn(2, 6)
    loss, stats = compute_policy_loss(name, logits=logits, tokens=tokens, old_logprobs=old,
                                      advantages=torch.tensor([1.0, -1.0]), mask=torch.ones(2, 6, dtype=torch.bool))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    for key in ("dist/lambda_1", "dist/lambda_2", "dist/lambda_3", "dist/lambda_sampled", "dist/entropy_mean",
                "dist/entropy_hist", "loss/clip_frac"):
        assert key in stats and not stats[key].requires_grad
