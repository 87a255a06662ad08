"""Token statistics from hidden states and the lm_head weight equal the logits path, values and
gradients (hidden states, weight, bias) in float64: tied embeddings, temperature, a ragged last
chunk, masked rows, and every registered loss through the loss library."""
import pytest
import torch

from learner.losses import loss_names, make_hparams, policy_loss
from learner.token_stats import HiddenStates, compute_token_stats, compute_token_stats_from_hidden

B, T, H, V = 3, 5, 8, 40


def case(seed: int = 0, bias: bool = False):
    torch.manual_seed(seed)
    hidden = torch.randn(B, T, H, dtype=torch.float64, requires_grad=True)
    weight = (0.7 * torch.randn(V, H, dtype=torch.float64)).requires_grad_()
    b = torch.randn(V, dtype=torch.float64, requires_grad=True) if bias else None
    tokens = torch.randint(0, V, (B, T))
    return hidden, weight, b, tokens


def objective(stats, w):
    return ((w[..., 0] * stats.logp).sum() + (w[..., 1:] * stats.topk_logp).sum()
            + (w[..., 0] * w[..., 1] * stats.entropy_live).sum())


@pytest.mark.parametrize("chunk_size", [1, 4, 6, 1024])  # 15 rows: 4 and 6 leave a ragged last chunk
@pytest.mark.parametrize("temperature,bias", [(1.0, False), (0.6, True)])
def test_values_and_gradients_equal_the_logits_path(chunk_size, temperature, bias):
    hidden, weight, b, tokens = case(bias=bias)
    w = torch.randn(B, T, 4, dtype=torch.float64)
    inputs = [hidden, weight] + ([b] if bias else [])
    logits = hidden @ weight.t() + (b if bias else 0)
    ref = compute_token_stats(logits / temperature, tokens, top_k=3, chunk_size=chunk_size)
    got = compute_token_stats_from_hidden(hidden, weight, tokens, bias=b, temperature=temperature, top_k=3,
                                          chunk_size=chunk_size)
    for name in ("logp", "entropy", "topk_logp"):
        torch.testing.assert_close(getattr(got, name), getattr(ref, name), atol=1e-12, rtol=1e-12)
    assert torch.equal(got.topk_ids, ref.topk_ids) and torch.equal(got.is_top1, ref.is_top1)
    want = torch.autograd.grad(objective(ref, w), inputs)
    have = torch.autograd.grad(objective(got, w), inputs)
    for g, r in zip(have, want):
        torch.testing.assert_close(g, r, atol=1e-12, rtol=1e-12)


def test_gradcheck():
    hidden, weight, b, tokens = case(seed=1, bias=True)
    w = torch.randn(B, T, 4, dtype=torch.float64)
    fn = lambda h, W, bb: objective(compute_token_stats_from_hidden(h, W, tokens, bias=bb, temperature=0.8,
                                                                    top_k=3, chunk_size=4), w)
    assert torch.autograd.gradcheck(fn, (hidden, weight, b))


def test_tied_embeddings_accumulate_both_gradients():
    """With tied embeddings the lm_head weight is the input embedding: its gradient is the sum of
    the embedding lookup's and the head's, through either path."""
    torch.manual_seed(2)
    embedding = torch.randn(V, H, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, V, (B, T))
    tokens = torch.randint(0, V, (B, T))
    w = torch.randn(B, T, 4, dtype=torch.float64)

    def run(use_hidden: bool):
        hidden = torch.tanh(embedding[ids] * 1.3)  # a stand-in for the transformer body
        if use_hidden:
            stats = compute_token_stats_from_hidden(hidden, embedding, tokens, top_k=3, chunk_size=4)
        else:
            stats = compute_token_stats(hidden @ embedding.t(), tokens, top_k=3, chunk_size=4)
        return torch.autograd.grad(objective(stats, w), embedding)[0]

    torch.testing.assert_close(run(True), run(False), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("name", loss_names())
def test_every_loss_is_the_same_from_hidden_states_with_masked_rows(name):
    hidden, weight, _, tokens = case(seed=3)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 3:] = False
    mask[2] = False  # a fully masked row
    old = torch.randn(B, T, dtype=torch.float64) * 0.1 - 2.0
    adv = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    hp = make_hparams(name, entropy_coeff=0.01)
    ref_loss, ref_stats = policy_loss(name, hp, logits=(hidden @ weight.t()) / 0.9, tokens=tokens, old_logprobs=old,
                                      advantages=adv, mask=mask)
    loss, stats = policy_loss(name, hp, logits=HiddenStates(hidden, weight, temperature=0.9), tokens=tokens,
                              old_logprobs=old, advantages=adv, mask=mask)
    torch.testing.assert_close(loss, ref_loss, atol=1e-12, rtol=1e-12)
    for key, value in ref_stats.items():
        torch.testing.assert_close(stats[key], value, atol=1e-10, rtol=1e-10, msg=key)
    want = torch.autograd.grad(ref_loss, (hidden, weight))
    have = torch.autograd.grad(loss, (hidden, weight))
    for g, r in zip(have, want):
        torch.testing.assert_close(g, r, atol=1e-12, rtol=1e-12)


def test_through_an_lm_head_module_and_bad_shapes_are_refused():
    hidden, _, _, tokens = case(seed=4)
    head = torch.nn.Linear(H, V, bias=False).double()
    got = HiddenStates.of(hidden, head, 1.0).stats(tokens, top_k=2, chunk_size=4)
    ref = compute_token_stats(head(hidden), tokens, top_k=2)
    torch.testing.assert_close(got.logp, ref.logp, atol=1e-12, rtol=1e-12)
    assert "forward" not in vars(head)  # the module is left as it was
    with pytest.raises(ValueError, match="weight must be"):
        compute_token_stats_from_hidden(hidden, torch.zeros(V, H + 1, dtype=torch.float64), tokens)
    with pytest.raises(ValueError, match="hidden states must be"):
        policy_loss("grpo", make_hparams("grpo"), logits=HiddenStates(hidden[0], head.weight), tokens=tokens,
                    old_logprobs=torch.zeros(B, T), advantages=torch.zeros(B), mask=torch.ones(B, T, dtype=torch.bool))
