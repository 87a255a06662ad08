"""Batching: ScoredGroups -> filtered rows with advantages -> aligned, padded micro-batches."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from learner.batching import mini_batches, plan_mini_batch, prepare_batch
from tests.learner.learner_support import make_groups, make_job

VOCAB = 512


def config(**overrides):
    base = dict(model_path="unused", batch_prompts=4, mini_batch_prompts=2, micro_batch_tokens=64, max_seq_len=64)
    base.update(overrides)
    return make_job(**base)


def test_tokens_under_mask_are_exactly_the_responses_and_logits_start_before_them():
    groups = make_groups(2, n=3)
    batch = prepare_batch(groups, config(), vocab_size=VOCAB)
    rows = [r for rows in batch.rows for r in rows]
    plan = plan_mini_batch(rows, config(micro_batch_tokens=10_000).learner, rank=0, world_size=1, pad_id=1,
                           aggregation="token-mean")
    assert len(plan) == 1
    mb = plan[0]
    responses = sorted(tuple(s.token_ids) for g in groups for s in g.samples)
    got = sorted(tuple(mb.tokens[i][mb.mask[i]].tolist()) for i in range(mb.tokens.shape[0]))
    assert got == responses
    # logits_to_keep covers positions start..S-1; the last is dropped, leaving one per predicted token.
    assert mb.logits_to_keep - 1 == mb.tokens.shape[1]
    assert mb.start == min(len(g.prompt_token_ids) for g in groups) - 1


def test_advantages_are_group_normalised_per_sample():
    groups = make_groups(1, n=4, rewards=[[1.0, 0.0, 0.0, 0.0]])
    batch = prepare_batch(groups, config(), vocab_size=VOCAB)
    adv = [r.advantage for r in batch.rows[0]]
    std = torch.tensor([1.0, 0, 0, 0]).std().item()
    assert adv[0] == pytest.approx(0.75 / (std + 1e-6), rel=1e-6)
    assert adv[1] == pytest.approx(-0.25 / (std + 1e-6), rel=1e-6)


def test_bad_groups_are_skipped_and_counted():
    good = make_groups(2, prefix="ok")
    equal = make_groups(1, rewards=[[1.0] * 4], prefix="eq")
    nan = make_groups(1, rewards=[[math.nan, 0, 1, 0]], prefix="nan")
    empty = [dataclasses.replace(make_groups(1, prefix="empty")[0], samples=[])]
    out_of_vocab = make_groups(1, vocab=VOCAB + 100, prompt_len=(30, 30), seed=3, prefix="oov")
    failed = [dataclasses.replace(make_groups(1, prefix="failed")[0], error="prompt longer than the context")]
    batch = prepare_batch(good + equal + nan + empty + out_of_vocab + failed, config(dynamic_sampling=True),
                          vocab_size=VOCAB)
    c = batch.counts
    assert (c["groups_in"], c["groups_trained"], c["groups_equal_reward"], c["groups_bad"], c["groups_empty"],
            c["groups_error"]) == (7, 2, 1, 2, 1, 1)
    assert len(batch.seen_group_ids) == 7  # skipped groups are consumed too
    assert [g.group_id for g in batch.groups] == [g.group_id for g in good]


def test_zero_advantage_groups_stay_in_the_batch_as_the_official_code_does():
    groups = make_groups(2, rewards=[[1.0] * 4, [0.0] * 4])
    batch = prepare_batch(groups, config(advantage="psr", dynamic_sampling=False), vocab_size=VOCAB)
    # all-correct: +1 each under PSR; all-wrong: PSR gives 0, and the group still trains (its
    # tokens count in the token-mean denominators, its responses in Lambda^(k)).
    assert batch.counts["groups_trained"] == 2 and batch.counts["groups_zero_advantage"] == 1
    assert [r.advantage for r in batch.rows[0]] == [1.0] * 4 and [r.advantage for r in batch.rows[1]] == [0.0] * 4
    # GRPO: both groups have advantage 0 everywhere and both stay.
    grpo = prepare_batch(groups, config(), vocab_size=VOCAB)
    assert grpo.counts["groups_trained"] == 2 and grpo.counts["groups_zero_advantage"] == 2
    # Only DAPO's dynamic sampling drops them.
    dapo = prepare_batch(groups, config(dynamic_sampling=True), vocab_size=VOCAB)
    assert dapo.counts["groups_trained"] == 0 and dapo.counts["groups_equal_reward"] == 2


def test_overlong_sequences_truncated_or_dropped_and_counted():
    groups = make_groups(2, prompt_len=(10, 10), response_len=(30, 30))
    truncated = prepare_batch(groups, config(max_seq_len=20), vocab_size=VOCAB)
    assert truncated.counts["samples_truncated"] == 8
    assert all(r.length == 20 for rows in truncated.rows for r in rows)
    dropped = prepare_batch(groups, config(max_seq_len=20, overlong="drop"), vocab_size=VOCAB)
    assert dropped.counts["groups_overlong_dropped"] == 2 and not dropped.rows
    long_prompt = prepare_batch(groups, config(max_seq_len=8), vocab_size=VOCAB)
    assert long_prompt.counts["groups_overlong_dropped"] == 2


def test_empty_batch():
    batch = prepare_batch([], config(), vocab_size=VOCAB)
    assert batch.rows == [] and mini_batches(batch, 2) == []


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_micro_batches_respect_budget_cover_all_rows_and_align_across_ranks(world_size):
    cfg = config(micro_batch_tokens=40)
    batch = prepare_batch(make_groups(2, n=5, response_len=(2, 25)), cfg, vocab_size=VOCAB)
    rows = mini_batches(batch, 2)[0]
    plans = [plan_mini_batch(rows, cfg.learner, rank=k, world_size=world_size, pad_id=1, aggregation="token-mean")
             for k in range(world_size)]
    assert len({len(p) for p in plans}) == 1  # same micro-batch count on every rank
    real = [mb for p in plans for mb in p if mb.weight > 0]
    assert sum(mb.input_ids.shape[0] for mb in real) == len(rows)
    for mb in real:
        assert mb.input_ids.shape[0] == 1 or mb.input_ids.numel() <= 40
    # Token-mean weights: tokens share x world size, so the ranks' averaged gradient is the mean.
    total_tokens = sum(r.response_len for r in rows)
    for mb in real:
        assert mb.weight == pytest.approx(world_size * mb.num_tokens / total_tokens)
    assert sum(mb.weight for mb in real) == pytest.approx(world_size)


def test_config_validation_is_loud():
    with pytest.raises(ValueError, match="valid"):
        config(loss="nope")
    with pytest.raises(ValueError, match="alpha"):
        config(loss_hparams={"alpha": 2.0})
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        config(loss_hparams={"alphaa": 0.1})
    with pytest.raises(ValueError, match="must divide"):
        config(batch_prompts=3, mini_batch_prompts=2)
    with pytest.raises(ValueError, match="bf16"):
        config(precision="bf16", zero_stage=0)
    assert config(loss_hparams={"aggregation": "seq-mean-token-sum-norm"}).loss_hparams().norm_length == 64


def test_groups_the_estimator_rejects_are_skipped_and_counted():
    cfg = config(advantage="passk_training", advantage_hparams={"k": 2})
    small = make_groups(1, n=1, rewards=[[1.0]], prefix="small")  # pass@2 needs at least 2 samples
    big = make_groups(1, n=4, rewards=[[1.0, 0.0, 0.0, 0.0]], prefix="big")
    batch = prepare_batch(small + big, cfg, vocab_size=VOCAB)
    assert batch.counts["groups_bad"] == 1 and batch.counts["groups_trained"] == 1
