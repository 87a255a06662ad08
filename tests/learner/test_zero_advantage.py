"""Zero-advantage rows: the losses that claim `zero_advantage_inert` give them exactly zero gradient
and leave the other rows' gradients as they would be without them (up to the normaliser); the
batching packs them apart; the engine skips their backward and ends with the same weights."""
from __future__ import annotations

import math

import pytest
import torch

from learner.batching import mini_batches, plan_mini_batch, prepare_batch
from learner.engine import LearnerEngine
from learner.losses import make_hparams, policy_loss, zero_advantage_inert
from learner.losses.registry import get_loss, registered_losses
from tests.learner.learner_support import make_groups, make_job, max_diff, weights
from tests.learner.loss_cases import on_policy_old_logprobs

INERT = [name for name in registered_losses() if get_loss(name).zero_advantage_inert]
AGGREGATIONS = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


def test_the_claim_is_made_for_grpo_and_simko_and_not_for_batch_statistic_losses():
    assert {"grpo", "simko"} <= set(INERT)
    # clip_cov / kl_cov pick tokens by covariance over the micro-batch; entropy_adv adds an
    # entropy term to the advantage: a zero-advantage row changes their other rows' gradients.
    assert not {"clip_cov", "kl_cov", "entropy_adv"} & set(INERT)
    assert zero_advantage_inert("grpo", make_hparams("grpo"))
    assert not zero_advantage_inert("grpo", make_hparams("grpo", entropy_coeff=0.001))  # the bonus has no A


def grad_rows(name, hp, logits, tokens, old, adv, mask):
    x = logits.clone().requires_grad_(True)
    loss, _ = policy_loss(name, hp, logits=x, tokens=tokens, old_logprobs=old, advantages=adv, mask=mask)
    loss.backward()
    return float(loss.detach()), x.grad


def hparams_cases():
    for name in INERT:
        for aggregation in AGGREGATIONS:
            if name == "simko":
                # batch-scope tau is a batch statistic: the engine fixes it before any micro-batch
                yield name, make_hparams(name, aggregation=aggregation, alpha=0.3, tau_scope="sequence")
                yield name, make_hparams(name, aggregation=aggregation, alpha=0.3, tau_scope="batch", tau_value=0.5)
            else:
                yield name, make_hparams(name, aggregation=aggregation, clip_low=0.1, clip_high=0.3)


@pytest.mark.parametrize("name,hp", list(hparams_cases()))
def test_zero_advantage_rows_have_zero_gradient_and_do_not_touch_the_others(name, hp):
    g = torch.Generator().manual_seed(7)
    rows, length, vocab = 6, 10, 16
    logits = 2 * torch.randn(rows, length, vocab, generator=g, dtype=torch.float64)
    tokens = torch.randint(0, vocab, (rows, length), generator=g)
    old = on_policy_old_logprobs(logits, tokens).double() + 0.2 * torch.randn(rows, length, generator=g,
                                                                              dtype=torch.float64)
    mask = torch.ones(rows, length, dtype=torch.bool)
    mask[1, 6:] = False
    mask[4, 3:] = False
    adv = torch.tensor([1.3, 0.0, -0.8, 0.0, 0.0, 0.6], dtype=torch.float64)
    _, grad = grad_rows(name, hp, logits, tokens, old, adv, mask)
    zero, live = adv == 0, adv != 0
    assert torch.count_nonzero(grad[zero]) == 0
    assert torch.count_nonzero(grad[live]) > 0

    # Without the zero rows, the live rows' gradient is the same up to the normaliser's share.
    loss_alone, grad_alone = grad_rows(name, hp, logits[live], tokens[live], old[live], adv[live], mask[live])
    if hp.aggregation == "token-mean":
        share = float(mask[live].sum()) / float(mask.sum())
    else:
        share = float(live.sum()) / rows
    torch.testing.assert_close(grad[live], grad_alone * share, rtol=1e-10, atol=1e-12)

    # All advantages zero: no gradient at all, and the loss is exactly 0.
    loss_zero, grad_zero = grad_rows(name, hp, logits, tokens, old, torch.zeros_like(adv), mask)
    assert loss_zero == 0.0 and torch.count_nonzero(grad_zero) == 0


def test_separate_packing_keeps_rows_and_weights_and_marks_only_zero_rows_inert():
    signal = make_groups(3, seed=3, prefix="s")
    equal = make_groups(3, seed=4, prefix="e", rewards=[[1.0] * 4, [0.0] * 4, [1.0] * 4])
    job = make_job(model_path="unused", batch_prompts=6, mini_batch_prompts=6, micro_batch_tokens=64, max_seq_len=64)
    batch = prepare_batch([g for pair in zip(signal, equal) for g in pair], job, vocab_size=512)
    (rows,) = mini_batches(batch, 6)
    plain = plan_mini_batch(rows, job.learner, rank=0, world_size=1, pad_id=1, aggregation="token-mean")
    apart = plan_mini_batch(rows, job.learner, rank=0, world_size=1, pad_id=1, aggregation="token-mean",
                            separate_zero_advantage=True)

    def content(plan):
        return sorted((tuple(mb.tokens[i][mb.mask[i]].tolist()), float(mb.advantages[i]))
                      for mb in plan for i in range(mb.tokens.shape[0]))

    assert content(plain) == content(apart)
    assert sum(mb.weight for mb in apart) == pytest.approx(1.0) == sum(mb.weight for mb in plain)
    inert = [mb for mb in apart if mb.inert]
    assert inert and all(bool((mb.advantages == 0).all()) for mb in inert)
    assert all(bool((mb.advantages != 0).any()) for mb in apart if not mb.inert)
    assert sum(int((mb.advantages == 0).sum()) for mb in inert) == 12  # every zero row is in one
    # the signal micro-batches come first, so a step's backward has run before the skips start
    assert [mb.inert for mb in apart] == sorted(mb.inert for mb in apart)


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [0, 2])
@pytest.mark.parametrize("loss", ["grpo", "simko"])
def test_engine_skips_zero_advantage_backward_with_the_same_update(learner_config, zero_stage, loss):
    """Two updates (the second one's AdamW moments carry the first's) with half the groups all-equal:
    bit for bit the weights of an engine that packs the same way and runs every backward (a skipped
    gradient is exactly zero), and the metrics of one that packs as before the skip existed (only
    the float summation order differs; AdamW turns such noise on near-zero gradients into visible
    weight differences, hence metrics, not weights, there)."""
    hp = {"alpha": 0.3} if loss == "simko" else {}
    cfg = learner_config(zero_stage=zero_stage, loss=loss, loss_hparams=hp, batch_prompts=8, mini_batch_prompts=4,
                         micro_batch_tokens=96, lr=1e-2, weight_decay=0.01)
    batches = []
    for seed in (51, 52):
        signal = make_groups(4, seed=seed, prefix="s")
        equal = make_groups(4, seed=seed + 10, prefix="e", rewards=[[1.0] * 4, [0.0] * 4] * 2)
        batches.append([g for pair in zip(signal, equal) for g in pair])
    skipping, same_packing, old_packing = LearnerEngine(cfg), LearnerEngine(cfg), LearnerEngine(cfg)
    assert skipping.skip_inert_backward
    separate = skipping.plan
    same_packing.skip_inert_backward = old_packing.skip_inert_backward = False
    same_packing.plan = separate  # the skipping engine's plan, every backward run
    for groups in batches:
        a, b, c = skipping.update(groups), same_packing.update(groups), old_packing.update(groups)
        assert a["perf/backward_skipped"] > 0 and b["perf/backward_skipped"] == c["perf/backward_skipped"] == 0
        assert a["learner/optimizer_steps"] == b["learner/optimizer_steps"] == c["learner/optimizer_steps"] == 2
        for key in ("loss/policy", "loss/grad_norm", "dist/lambda_1", "dist/entropy_mean", "reward/mean"):
            assert a[key] == b[key], key
            assert a[key] == pytest.approx(c[key], rel=1e-5, abs=1e-7), key
    final = weights(skipping)
    assert all(torch.equal(final[k], v) for k, v in weights(same_packing).items())
    assert max_diff(final, weights(LearnerEngine(cfg))) > 1e-4  # the updates did move them


@pytest.mark.slow
def test_an_all_equal_batch_still_takes_its_optimizer_step(learner_config):
    """No micro-batch has signal: one backward still runs, so AdamW steps on zero gradients (its
    moments and weight decay move the weights) as without the skip."""
    cfg = learner_config(batch_prompts=4, mini_batch_prompts=4, micro_batch_tokens=48, lr=1e-2, weight_decay=0.1)
    skipping, full = LearnerEngine(cfg), LearnerEngine(cfg)
    full.skip_inert_backward = False
    full.plan = skipping.plan
    for engine in (skipping, full):
        engine.update(make_groups(4, seed=61))  # moments from a batch with signal
    equal = make_groups(4, seed=62, prefix="e", rewards=[[1.0] * 4, [0.0] * 4] * 2)
    a, b = skipping.update(equal), full.update(equal)
    assert a["learner/optimizer_steps"] == b["learner/optimizer_steps"] == 1
    assert a["perf/backward_skipped"] == a["perf/micro_batches"] - 1 > 0
    assert math.isfinite(a["loss/policy"]) and a["loss/policy"] == b["loss/policy"] == 0.0
    assert all(torch.equal(weights(skipping)[k], v) for k, v in weights(full).items())
