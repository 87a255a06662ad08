"""Chunked token statistics against a dense reference (values and gradients)."""
import pytest
import torch

from learner.token_stats import compute_token_stats, token_logprobs


def dense_reference(logits, tokens, top_k):
    logp_all = torch.log_softmax(logits.double(), dim=-1)
    probs = logp_all.exp()
    topk_ids = logits.detach().topk(top_k, dim=-1).indices
    return {
        "logp": logp_all.gather(-1, tokens[..., None])[..., 0],
        "entropy": -(probs * logp_all).sum(-1),
        "topk_ids": topk_ids,
        "topk_logp": logp_all.gather(-1, topk_ids),
        "is_top1": topk_ids[..., 0] == tokens,
    }


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 15, 1024])  # 3x5 = 15 rows: 4 and 7 leave a ragged last chunk
def test_chunked_stats_equal_dense_reference(chunk_size):
    torch.manual_seed(0)
    logits = (3 * torch.randn(3, 5, 50)).requires_grad_()
    tokens = torch.randint(0, 50, (3, 5))
    weights = torch.randn(3, 5, 4, dtype=torch.float64)

    stats = compute_token_stats(logits, tokens, top_k=3, chunk_size=chunk_size)
    ref = dense_reference(logits, tokens, 3)
    torch.testing.assert_close(stats.logp.double(), ref["logp"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stats.entropy.double(), ref["entropy"], atol=1e-5, rtol=1e-5)
    assert torch.equal(stats.topk_ids, ref["topk_ids"])
    torch.testing.assert_close(stats.topk_logp.double(), ref["topk_logp"], atol=1e-5, rtol=1e-5)
    assert torch.equal(stats.is_top1, ref["is_top1"])
    assert not stats.entropy.requires_grad

    objective = lambda logp, topk: (weights[..., 0] * logp).sum() + (weights[..., 1:] * topk).sum()
    (grad,) = torch.autograd.grad(objective(stats.logp.double(), stats.topk_logp.double()), logits)
    (ref_grad,) = torch.autograd.grad(objective(ref["logp"], ref["topk_logp"]), logits)
    torch.testing.assert_close(grad.double(), ref_grad.double(), atol=1e-5, rtol=1e-5)


def test_gradcheck_float64():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(0, 6, (2, 3))

    def f(x):
        s = compute_token_stats(x, tokens, top_k=2, chunk_size=4)
        return s.logp, s.topk_logp

    assert torch.autograd.gradcheck(f, (logits,))


def test_bf16_logits_reduce_in_float32():
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 32).bfloat16().requires_grad_()
    tokens = torch.randint(0, 32, (2, 4))
    stats = compute_token_stats(logits, tokens, top_k=3, chunk_size=3)
    assert stats.logp.dtype == torch.float32
    ref = dense_reference(logits.float(), tokens, 3)
    torch.testing.assert_close(stats.logp.double(), ref["logp"], atol=1e-5, rtol=1e-5)
    stats.logp.sum().backward()
    assert logits.grad.dtype == torch.bfloat16


def test_masked_vocabulary_minus_inf_gives_finite_entropy():
    logits = torch.tensor([[[0.0, 0.0, float("-inf"), float("-inf")]]])
    stats = compute_token_stats(logits, torch.tensor([[1]]), top_k=2)
    assert torch.isclose(stats.entropy, torch.tensor([[torch.log(torch.tensor(2.0))]])).all()
    assert torch.isclose(stats.logp, torch.log(torch.tensor([[0.5]]))).all()


def test_token_logprobs_matches_logsoftmax():
    logits = torch.randn(2, 3, 9)
    tokens = torch.randint(0, 9, (2, 3))
    expected = torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]
    torch.testing.assert_close(token_logprobs(logits, tokens, chunk_size=2), expected)


@pytest.mark.parametrize("bad", [dict(top_k=0), dict(top_k=10), dict(chunk_size=0)])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        compute_token_stats(torch.randn(1, 2, 9), torch.zeros(1, 2, dtype=torch.long), **bad)
