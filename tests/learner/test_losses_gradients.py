"""Gradients of the SimKO loss with respect to the logits, against the formulas in docs/architecture.md ("The method")."""
import pytest
import torch

from learner.losses import compute_policy_loss
from learner.losses.reference import dense_simko_loss
from tests.learner.loss_cases import forking_sequence, on_policy_old_logprobs

FORKING = 4  # index of the high-entropy token in forking_sequence()
N_TOKENS = 5


def grad_of(name, logits, tokens, old, adv, **hp):
    logits = logits.clone().requires_grad_()
    loss, _ = compute_policy_loss(name, logits=logits, tokens=tokens, old_logprobs=old, advantages=adv,
                                  mask=torch.ones_like(tokens, dtype=torch.bool), **hp)
    (grad,) = torch.autograd.grad(loss, logits)
    return grad[0]


def one_hot(index, vocab=4):
    return torch.nn.functional.one_hot(torch.tensor(index), vocab).float()


def test_positive_forking_token_gets_topk_label_smoothed_gradient():
    logits, tokens = forking_sequence()
    old = on_policy_old_logprobs(logits, tokens) - 0.05  # r = e^0.05, inside the clip range
    alpha, k, adv = 0.3, 3, 1.0
    grad = grad_of("simko", logits, tokens, old, torch.tensor([adv]), alpha=alpha, top_k=k)
    grpo = grad_of("grpo", logits, tokens, old, torch.tensor([adv]))

    probs = torch.softmax(logits[0, FORKING], -1)
    ratio = torch.exp(torch.tensor(0.05))
    candidates = logits[0, FORKING].topk(k).indices.tolist()  # [0, 1, 2]
    smoothed = (1 - alpha) * (one_hot(tokens[0, FORKING].item()) - probs) + (alpha / k) * sum(
        one_hot(c) - probs for c in candidates)
    expected = -(adv / N_TOKENS) * ratio * smoothed
    torch.testing.assert_close(grad[FORKING], expected, atol=1e-6, rtol=1e-5)
    # every low-entropy token: exactly GRPO's gradient
    torch.testing.assert_close(grad[:FORKING], grpo[:FORKING], atol=0, rtol=0)
    assert not torch.allclose(grad[FORKING], grpo[FORKING])


def test_negative_top1_forking_token_gradient_is_lambda_times_grpo():
    logits, tokens = forking_sequence(sampled_is_top1=True)
    old = on_policy_old_logprobs(logits, tokens) + 0.05  # r = e^-0.05, inside the clip range
    grad = grad_of("simko", logits, tokens, old, torch.tensor([-1.0]), lambda_top1=1.1)
    grpo = grad_of("grpo", logits, tokens, old, torch.tensor([-1.0]))
    torch.testing.assert_close(grad[FORKING], 1.1 * grpo[FORKING], atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(grad[:FORKING], grpo[:FORKING], atol=0, rtol=0)


def test_negative_forking_token_that_is_not_top1_is_grpo():
    logits, tokens = forking_sequence(sampled_is_top1=False)
    old = on_policy_old_logprobs(logits, tokens)
    grad = grad_of("simko", logits, tokens, old, torch.tensor([-1.0]), lambda_top1=1.5, alpha=0.5)
    grpo = grad_of("grpo", logits, tokens, old, torch.tensor([-1.0]))
    torch.testing.assert_close(grad, grpo, atol=0, rtol=0)


def test_clipped_positive_forking_token_has_zero_gradient_as_in_grpo():
    logits, tokens = forking_sequence()
    old = on_policy_old_logprobs(logits, tokens) - 1.0  # r = e > 1.2: clipped, for SimKO as for GRPO
    grad = grad_of("simko", logits, tokens, old, torch.tensor([1.0]), alpha=0.3)
    assert torch.count_nonzero(grad) == 0


def random_batch(seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(3, 12, 16, generator=g)).to(dtype)
    tokens = torch.randint(0, 16, (3, 12), generator=g)
    old = on_policy_old_logprobs(logits, tokens).to(dtype) + 0.1 * torch.randn(3, 12, generator=g).to(dtype)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 8:] = False
    adv = torch.tensor([1.5, -0.7, -1.2], dtype=dtype)
    return logits, tokens, old, adv, mask


@pytest.mark.parametrize("tau_scope", ["sequence", "batch"])
@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_alpha_zero_lambda_one_is_exactly_grpo(tau_scope, aggregation):
    logits, tokens, old, adv, mask = random_batch(0)
    results = []
    for name, hp in (("simko", dict(alpha=0.0, lambda_top1=1.0, tau_scope=tau_scope)), ("grpo", {})):
        x = logits.clone().requires_grad_()
        loss, _ = compute_policy_loss(name, logits=x, tokens=tokens, old_logprobs=old, advantages=adv, mask=mask,
                                      aggregation=aggregation, **hp)
        (grad,) = torch.autograd.grad(loss, x)
        results.append((loss, grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("tau_scope", ["sequence", "batch"])
def test_simko_float64_gradcheck(tau_scope):
    """With alpha = 0 the SimKO gradient is the true derivative of its value (the lambda_top1 path
    included), so finite differences apply. With alpha > 0 the value is GRPO's by construction while
    the gradient is label-smoothed: see test_simko_matches_dense_reference."""
    logits, tokens, old, adv, mask = random_batch(1, torch.float64)

    def loss_fn(x):
        loss, _ = compute_policy_loss("simko", logits=x, tokens=tokens, old_logprobs=old, advantages=adv,
                                      mask=mask, alpha=0.0, lambda_top1=1.3, tau_scope=tau_scope, clip_high=10.0,
                                      clip_low=0.9)
        return loss

    assert torch.autograd.gradcheck(loss_fn, (logits.clone().requires_grad_(),))


@pytest.mark.parametrize("tau_scope", ["sequence", "batch"])
@pytest.mark.parametrize("chunk_size", [5, 1024])
def test_simko_matches_dense_reference(tau_scope, chunk_size):
    logits, tokens, old, adv, mask = random_batch(4, torch.float64)
    hp = dict(alpha=0.2, lambda_top1=1.3, tau_scope=tau_scope, top_k=3, tau_quantile=0.7)
    x = logits.clone().requires_grad_()
    loss, _ = compute_policy_loss("simko", logits=x, tokens=tokens, old_logprobs=old, advantages=adv, mask=mask,
                                  chunk_size=chunk_size, **hp)
    (grad,) = torch.autograd.grad(loss, x)
    y = logits.clone().requires_grad_()
    ref = dense_simko_loss(y, tokens, old, adv, mask, **hp)
    (ref_grad,) = torch.autograd.grad(ref, y)
    torch.testing.assert_close(loss, ref, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(grad, ref_grad, atol=1e-12, rtol=1e-10)
    assert not torch.allclose(grad, torch.autograd.grad(compute_policy_loss(
        "grpo", logits=(z := logits.clone().requires_grad_()), tokens=tokens, old_logprobs=old, advantages=adv,
        mask=mask)[0], z)[0])


def test_tau_scope_changes_which_tokens_are_forking():
    logits, tokens, old, adv, mask = random_batch(2)
    logits[0] *= 0.1  # sequence 0 is high-entropy everywhere: batch scope puts most forking tokens there
    fracs = {}
    for scope in ("sequence", "batch"):
        _, stats = compute_policy_loss("simko", logits=logits.clone().requires_grad_(), tokens=tokens,
                                       old_logprobs=old, advantages=adv, mask=mask, tau_scope=scope)
        fracs[scope] = stats["simko/pos_gate_frac"].item()  # sequence 0 is the only positive one
    assert fracs["batch"] > fracs["sequence"] > 0
