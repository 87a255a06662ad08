"""LearnerEngine on the tiny model, single process, ZeRO 0 (real DeepSpeed on CPU)."""
from __future__ import annotations

import math

import pytest
import torch

import learner.engine as engine_module
from learner.batching import mini_batches, prepare_batch
from learner.engine import LearnerEngine
from learner.losses.simko import forking_threshold
from learner.token_stats import compute_token_stats
from tests.learner.learner_support import make_groups, weights

pytestmark = pytest.mark.slow


def test_every_trainable_parameter_changes_after_one_update(learner_config):
    engine = LearnerEngine(learner_config())
    before = weights(engine)
    metrics = engine.update(make_groups(4))
    after = weights(engine)
    trainable = [n for n, p in engine.ds.module.named_parameters() if p.requires_grad]
    assert trainable and set(trainable) <= set(after)
    unchanged = [n for n in trainable if torch.equal(before[n], after[n])]
    assert not unchanged, f"parameters not updated: {unchanged}"
    assert metrics["learner/optimizer_steps"] == 2 and metrics["learner/weight_version"] == 1
    for key in ("loss/policy", "loss/clip_frac", "loss/grad_norm", "dist/lambda_1", "dist/lambda_3",
                "dist/entropy_mean", "simko/pos_gate_frac", "simko/neg_top1_gate_frac", "perf/tokens_per_s"):
        assert math.isfinite(metrics[key]), key
    assert sum(metrics["dist/entropy_hist"]) > 0


def test_simko_and_grpo_gradients_differ_only_on_gated_tokens(learner_config):
    """Per-token gradients of the loss w.r.t. the logits, through the engine's own forward path."""
    hparams = dict(alpha=0.2, lambda_top1=1.5, top_k=3, tau_quantile=0.6)
    engine = LearnerEngine(learner_config(loss="simko", loss_hparams=hparams, micro_batch_tokens=10_000))
    batch = prepare_batch(make_groups(2, n=4, response_len=(8, 16)), engine.job, vocab_size=engine.vocab_size)
    [mb] = engine.plan(mini_batches(batch, 2)[0])
    mb = engine.with_old_logprobs(mb)
    logits = engine.logits(mb)
    simko, _ = engine.policy_loss(logits, mb)
    grpo, _ = engine.policy_loss(logits, mb, loss="grpo")
    g_simko, = torch.autograd.grad(simko, logits, retain_graph=True)
    g_grpo, = torch.autograd.grad(grpo, logits)

    # The gates, recomputed from the detached logits as docs/architecture.md defines them.
    stats = compute_token_stats(logits.detach(), mb.tokens, top_k=3)
    forking = (stats.entropy > forking_threshold(stats.entropy, mb.mask, 0.6, "sequence")) & mb.mask
    adv = mb.advantages[:, None].expand(mb.mask.shape)
    touched = forking & ((adv > 0) | ((adv < 0) & stats.is_top1))
    untouched = mb.mask & ~touched
    assert touched.sum() > 0 and untouched.sum() > 0
    diff = (g_simko - g_grpo).abs().amax(dim=-1)  # [b,T]: largest per-token logit-gradient change
    scale = g_grpo.abs().amax()
    assert diff[untouched].max() <= 1e-6 * scale
    assert diff[~mb.mask].max() == 0
    assert (diff[touched] > 1e-4 * scale).all()


def test_bad_input_is_skipped_and_counted_never_a_crash(learner_config):
    engine = LearnerEngine(learner_config(max_seq_len=20, dynamic_sampling=True))
    start = weights(engine)
    empty = engine.update([])
    assert empty["learner/optimizer_steps"] == 0 and engine.state.weight_version == 0
    equal = engine.update(make_groups(2, rewards=[[1.0] * 4, [0.0] * 4], prefix="eq"))
    assert equal["batch/groups_equal_reward"] == 2 and equal["learner/optimizer_steps"] == 0
    assert all(torch.equal(start[k], v) for k, v in weights(engine).items())

    overlong = make_groups(2, prompt_len=(6, 6), response_len=(30, 30), prefix="long")
    metrics = engine.update(overlong)
    assert metrics["batch/samples_truncated"] == 8 and metrics["learner/optimizer_steps"] == 1
    # A redelivered group whose update was applied is ignored.
    again = engine.update(overlong)
    assert again["batch/groups_duplicate"] == 2 and again["learner/optimizer_steps"] == 0
    assert engine.state.counters["batch/groups_equal_reward"] == 2


@pytest.mark.parametrize("zero_stage", [0, 2])
def test_nan_loss_skips_the_step_and_leaves_no_trace(learner_config, monkeypatch, zero_stage):
    """A NaN loss cannot be provoked through the real loss on valid inputs, so this one test wraps
    policy_loss to return NaN for the second micro-batch of the first update."""
    cfg = learner_config(zero_stage=zero_stage, batch_prompts=2, mini_batch_prompts=2, micro_batch_tokens=48)
    real = engine_module.policy_loss
    calls = {"n": 0}

    def nan_on_second_call(name, hp, **kwargs):
        calls["n"] += 1
        loss, stats = real(name, hp, **kwargs)
        return (loss * math.nan if calls["n"] == 2 else loss), stats

    engine = LearnerEngine(cfg)
    start = weights(engine)
    monkeypatch.setattr(engine_module, "policy_loss", nan_on_second_call)
    metrics = engine.update(make_groups(2, seed=1))
    monkeypatch.setattr(engine_module, "policy_loss", real)
    assert calls["n"] >= 2, "the batch must span several micro-batches"
    assert metrics["learner/steps_skipped"] == 1 and metrics["learner/optimizer_steps"] == 0
    assert all(torch.equal(start[k], v) for k, v in weights(engine).items())
    assert engine.state.counters["learner/steps_skipped"] == 1

    # The next update equals that of a fresh engine: no gradient or optimizer state leaked.
    engine.update(make_groups(2, seed=2))
    fresh = LearnerEngine(cfg)
    fresh.update(make_groups(2, seed=2))
    for name, value in weights(fresh).items():
        assert torch.equal(weights(engine)[name], value), name


def test_bf16_zero2_update(learner_config):
    engine = LearnerEngine(learner_config(precision="bf16", zero_stage=2))
    before = weights(engine)
    metrics = engine.update(make_groups(4, seed=4))
    after = weights(engine)
    assert metrics["learner/optimizer_steps"] == 2 and math.isfinite(metrics["loss/grad_norm"])
    assert all(v.dtype == torch.bfloat16 for v in after.values())
    assert sum(not torch.equal(before[k], after[k]) for k in after) == len(after)


def test_batch_scope_tau_is_one_threshold_for_the_whole_batch(learner_config):
    """tau_scope="batch": the engine fixes tau to the entropy quantile over every response token of
    the batch, so packing the same batch into one or many micro-batches gives the same update."""
    hparams = dict(tau_scope="batch", tau_quantile=0.7, alpha=0.3, lambda_top1=1.5)
    groups = make_groups(4, n=4, response_len=(6, 20), seed=5)
    results = []
    for micro_batch_tokens in (10_000, 48):  # one micro-batch per mini-batch vs several
        engine = LearnerEngine(learner_config(loss="simko", loss_hparams=hparams, batch_prompts=4,
                                              mini_batch_prompts=4, micro_batch_tokens=micro_batch_tokens))
        batch = prepare_batch(groups, engine.job, vocab_size=engine.vocab_size)
        plans = [[engine.with_old_logprobs(mb) for mb in engine.plan(rows)] for rows in mini_batches(batch, 4)]
        if micro_batch_tokens == 48:
            assert len(plans[0]) > 1
        # The reference threshold: the quantile over all response tokens of the batch.
        entropy = torch.cat([mb.old_entropy[mb.mask] for plan in plans for mb in plan])
        tau = engine.batch_hparams(plans).tau_value
        assert tau == pytest.approx(float(torch.quantile(entropy.double(), 0.7)), rel=1e-5)
        metrics = engine.update(groups)
        assert metrics["simko/tau_mean"] == pytest.approx(tau, rel=1e-5)
        results.append((tau, weights(engine)))
    (tau_one, w_one), (tau_many, w_many) = results
    assert tau_one == pytest.approx(tau_many, rel=1e-6)
    # lr 1e-3 with Adam: summation-order rounding alone moves near-zero-gradient coordinates by
    # ~1e-5 (tau_scope="sequence" shows the same); a per-micro-batch tau moved weights by ~2e-3.
    assert max(float((w_one[k] - w_many[k]).abs().max()) for k in w_one) < 1e-4


def test_zero_advantage_groups_train_and_count_in_the_token_mean(learner_config):
    """Paper semantics (the official code): groups whose rewards are all equal stay in the batch
    with advantage 0; the update takes batch_prompts / mini_batch_prompts optimizer steps, and the
    token-mean normaliser includes their tokens."""
    signal = make_groups(4, seed=21, prefix="sig")
    equal = make_groups(4, seed=22, prefix="eq", rewards=[[1.0] * 4, [0.0] * 4] * 2)
    mixed = [g for pair in zip(signal, equal) for g in pair]
    engine = LearnerEngine(learner_config(batch_prompts=8, mini_batch_prompts=2, micro_batch_tokens=10_000))
    metrics = engine.update(mixed)
    assert metrics["learner/optimizer_steps"] == 4  # 8 / 2, not 2 as when equal groups were dropped
    assert metrics["batch/groups_trained"] == 8 and metrics["batch/groups_zero_advantage"] == 4

    # One mini-batch each, from the same initial weights (ratio 1 at the first step): the loss of
    # signal + equal groups is the signal groups' loss rescaled by their share of the tokens.
    one = dict(batch_prompts=8, mini_batch_prompts=8, micro_batch_tokens=10_000)
    with_equal = LearnerEngine(learner_config(**one)).update(mixed)["loss/policy"]
    alone = LearnerEngine(learner_config(**{**one, "batch_prompts": 4, "mini_batch_prompts": 4})).update(signal)
    tokens = {name: sum(len(s.token_ids) for g in groups for s in g.samples)
              for name, groups in (("signal", signal), ("all", mixed))}
    assert with_equal == pytest.approx(alone["loss/policy"] * tokens["signal"] / tokens["all"], rel=1e-5)


def test_single_step_updates_take_old_logprobs_from_the_training_forward(learner_config):
    """One mini-batch, one PPO epoch: the weights cannot change before the only optimizer step, so
    the separate no-grad pass for old log-probs is skipped (as TRL with num_iterations=1); the
    update is the same as with it."""
    groups = make_groups(4, seed=41)
    cfg = learner_config(batch_prompts=4, mini_batch_prompts=4, micro_batch_tokens=48)
    fast = LearnerEngine(cfg)
    assert fast.on_policy_single_step([[object()]])
    with_pass = LearnerEngine(cfg)
    with_pass.on_policy_single_step = lambda plans: False  # force the old-log-prob pass for comparison
    a, b = fast.update(groups), with_pass.update(groups)
    assert a["loss/ratio_mean"] == 1.0 and abs(b["loss/ratio_mean"] - 1.0) < 1e-5
    assert a["loss/policy"] == pytest.approx(b["loss/policy"], rel=1e-5, abs=1e-7)
    wa, wb = weights(fast), weights(with_pass)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-6
    # several mini-batches (or epochs): the pass is needed again
    assert not LearnerEngine(learner_config(batch_prompts=4, mini_batch_prompts=2)).on_policy_single_step([[], []])


def test_a_model_that_fails_the_packing_check_trains_on_padded_rows(learner_config, monkeypatch):
    """The model check's outcome is forced (every attention implementation transformers ships on
    CPU keeps packed sequences apart); the engine must then neither pack nor fail."""
    monkeypatch.setattr(engine_module, "honours_packing", lambda *args, **kwargs: False)
    engine = LearnerEngine(learner_config(micro_batch_tokens=256))
    assert not engine.pack
    batch = prepare_batch(make_groups(4), engine.job, vocab_size=engine.vocab_size)
    assert all(mb.packed is None for rows in mini_batches(batch, 2) for mb in engine.plan(rows))
    metrics = engine.update(make_groups(4))
    assert metrics["learner/optimizer_steps"] == 2 and metrics["perf/pad_frac"] > 0


def test_packing_cuts_the_padding_the_model_runs_on(learner_config):
    packed = LearnerEngine(learner_config(micro_batch_tokens=1024)).update(make_groups(4, response_len=(2, 30)))
    padded = LearnerEngine(learner_config(micro_batch_tokens=1024, pack_sequences=False)).update(
        make_groups(4, response_len=(2, 30)))
    assert packed["perf/pad_frac"] < padded["perf/pad_frac"]
    assert packed["loss/policy"] == pytest.approx(padded["loss/policy"], rel=1e-4, abs=1e-6)
