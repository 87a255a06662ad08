"""Bad input to the losses: a ValueError naming the problem; masked rows never produce NaN."""
import math

import pytest
import torch

from learner.losses import compute_policy_loss, loss_names


def good_args(B=2, T=3, V=5):
    return dict(logits=torch.randn(B, T, V, requires_grad=True), tokens=torch.randint(0, V, (B, T)),
                old_logprobs=torch.full((B, T), -1.5), advantages=torch.tensor([1.0, -1.0][:B]),
                mask=torch.ones(B, T, dtype=torch.bool))


@pytest.mark.parametrize("change,match", [
    (dict(logits=torch.randn(2, 3)), "logits"),
    (dict(logits=torch.randint(0, 3, (2, 3, 5))), "logits"),
    (dict(tokens=torch.zeros(2, 4, dtype=torch.long)), "tokens"),
    (dict(tokens=torch.zeros(2, 3)), "tokens"),
    (dict(old_logprobs=torch.zeros(2, 3, dtype=torch.long)), "old_logprobs"),
    (dict(old_logprobs=torch.zeros(3, 3)), "old_logprobs"),
    (dict(advantages=torch.zeros(3)), "advantages"),
    (dict(mask=torch.ones(2, 2, dtype=torch.bool)), "mask"),
    (dict(mask=torch.full((2, 3), 2.0)), "mask"),
    (dict(tokens=torch.full((2, 3), 7)), "tokens"),
    (dict(advantages=[1.0, 2.0]), "advantages"),
])
def test_shape_and_dtype_errors(change, match):
    with pytest.raises(ValueError, match=match):
        compute_policy_loss("simko", **{**good_args(), **change})


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_logits_rejected(value):
    args = good_args()
    logits = args["logits"].detach().clone()
    logits[1, 2, 3] = value
    with pytest.raises(ValueError, match="logits contain NaN/inf"):
        compute_policy_loss("grpo", **{**args, "logits": logits.requires_grad_()})


def test_non_finite_old_logprobs_and_advantages_rejected():
    args = good_args()
    with pytest.raises(ValueError, match="old_logprobs"):
        compute_policy_loss("grpo", **{**args, "old_logprobs": torch.full((2, 3), float("nan"))})
    with pytest.raises(ValueError, match="advantages"):
        compute_policy_loss("grpo", **{**args, "advantages": torch.tensor([float("inf"), 0.0])})


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError) as err:
        compute_policy_loss("ppo2", **good_args())
    assert "simko" in str(err.value) and "grpo" in str(err.value)


def test_unknown_hparam_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        compute_policy_loss("simko", **good_args(), alfa=0.1)
    assert "alfa" in str(err.value) and "alpha" in str(err.value)
    with pytest.raises(ValueError, match="alpha"):
        compute_policy_loss("grpo", **good_args(), alpha=0.1)  # alpha is SimKO's, not GRPO's


@pytest.mark.parametrize("hp,field", [
    (dict(alpha=1.5), "alpha"), (dict(alpha=-0.1), "alpha"), (dict(top_k=0), "top_k"), (dict(top_k=2.0), "top_k"),
    (dict(top_k=6), "top_k"), (dict(tau_quantile=1.2), "tau_quantile"), (dict(tau_quantile=-0.1), "tau_quantile"),
    (dict(lambda_top1=0.9), "lambda_top1"), (dict(tau_scope="global"), "tau_scope"), (dict(clip_low=1.0), "clip_low"),
    (dict(clip_high=-0.1), "clip_high"), (dict(dual_clip=0.5), "dual_clip"), (dict(aggregation="sum"), "aggregation"),
    (dict(chunk_size=0), "chunk_size"), (dict(tau_value=-1.0), "tau_value"), (dict(tau_value=math.inf), "tau_value"),
])
def test_out_of_range_hparams_name_the_field(hp, field):
    with pytest.raises(ValueError, match=field):
        compute_policy_loss("simko", **good_args(), **hp)


@pytest.mark.parametrize("name", loss_names())
@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_fully_masked_batch_gives_zero_loss_and_zero_grad(name, aggregation):
    args = good_args()
    args["mask"] = torch.zeros(2, 3, dtype=torch.bool)
    args["tokens"] = torch.full((2, 3), -100)  # padding ids are ignored
    args["old_logprobs"] = torch.full((2, 3), float("nan"))  # garbage at padding must not leak
    loss, stats = compute_policy_loss(name, aggregation=aggregation, **args)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(args["logits"].grad) == 0
    assert all(torch.isfinite(v).all() for v in stats.values())


@pytest.mark.parametrize("name", loss_names())
def test_fully_masked_row_contributes_nothing(name):
    args = good_args()
    args["mask"] = torch.tensor([[1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    args["old_logprobs"] = torch.tensor([[-1.5] * 3, [math.inf] * 3])
    loss, _ = compute_policy_loss(name, **args)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.count_nonzero(args["logits"].grad[1]) == 0
