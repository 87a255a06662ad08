"""ScoredGroups -> filtered rows with advantages -> per-rank micro-batches of padded tensors.

Two steps, both pure and deterministic (every rank runs them on the same full batch and takes its
own share, so no collective is needed to agree on the plan):
  prepare_batch:   drop bad groups (counted), handle overlong sequences, compute advantages per group
                   (zero-advantage groups stay; only DAPO dynamic sampling drops equal-reward groups).
  plan_mini_batch: split a mini-batch's rows across ranks, pack each rank's rows into micro-batches
                   under a token budget, and pad every rank to the same micro-batch count (ZeRO-2/3
                   run collectives inside backward, so ranks must run the same number of them).
Alignment: row = prompt + response; logits at position p predict token p+1. A micro-batch only asks
the model for the logits from the first response-predicting position on (`logits_to_keep`).
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field, replace

import torch

from learner.advantages import advantages_with, dynamic_sampling_keep, overlong_penalty
from learner.config import LearnerJob, LearnerSection
from learner.packing import PackedRows, pack_rows
from services.wire.messages import ScoredGroup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    """One sampled response, ready for the model."""

    input_ids: tuple[int, ...]  # prompt + (possibly truncated) response
    prompt_len: int
    advantage: float
    group: int  # index into PreparedBatch.groups

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def response_len(self) -> int:
        return len(self.input_ids) - self.prompt_len


@dataclass
class PreparedBatch:
    groups: list[ScoredGroup]  # groups that train, in input order
    rows: list[list[Row]]  # rows[g] = the samples of groups[g]
    seen_group_ids: list[str]  # every input group id, trained or skipped (for de-duplication)
    counts: Counter = field(default_factory=Counter)  # batch/... counters, see prepare_batch
    rewards: list[float] = field(default_factory=list)  # rewards of every well-formed group's samples


@dataclass(frozen=True)
class MicroBatch:
    input_ids: torch.Tensor  # [b,S] long, right-padded
    attention_mask: torch.Tensor  # [b,S] long
    start: int  # logits of positions start..S-2 are used (they predict tokens start+1..S-1)
    tokens: torch.Tensor  # [b,S-1-start] long: the predicted tokens
    mask: torch.Tensor  # [b,S-1-start] bool: True on response tokens
    advantages: torch.Tensor  # [b] float32
    weight: float  # this micro-batch's share of the mini-batch loss (0 for padding micro-batches)
    # Every row has advantage 0 (or the micro-batch is padding): under a zero-advantage-inert loss
    # its gradient is exactly zero, so the engine may skip its backward.
    inert: bool = False
    old_logprobs: torch.Tensor | None = None  # [b,S-1-start], filled by the engine before training
    old_entropy: torch.Tensor | None = None  # [b,S-1-start], the same pass's token entropies
    # The rows end to end in fewer model rows (learner/packing.py), when the engine packs and
    # packing saves a row; the forward runs on these and gathers back to the [b,S] layout.
    packed: PackedRows | None = None

    @property
    def logits_to_keep(self) -> int:
        return self.input_ids.shape[1] - self.start

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())


def prepare_batch(groups: list[ScoredGroup], job: LearnerJob, *, vocab_size: int) -> PreparedBatch:
    """Filter and score a batch. Counters (all under `batch/`):
    groups_in, groups_empty, groups_error (rollout-side failure), groups_bad (malformed: NaN reward,
    empty prompt, ids out of vocabulary), groups_overlong_dropped, samples_truncated,
    groups_equal_reward (dropped by dynamic sampling), groups_zero_advantage (trained, advantage 0),
    groups_trained, samples_trained."""
    counts: Counter = Counter(groups_in=len(groups))
    out = PreparedBatch(groups=[], rows=[], seen_group_ids=[g.group_id for g in groups], counts=counts)
    candidates: list[tuple[ScoredGroup, list[tuple[tuple[int, ...], int]]]] = []
    for group in groups:
        if not group.samples:
            counts["groups_empty"] += 1
            continue
        if group.error:  # the rollout side failed this prompt (e.g. longer than the context)
            counts["groups_error"] += 1
            continue
        if not _well_formed(group, vocab_size):
            counts["groups_bad"] += 1
            continue
        sequences = _fit_length(group, job.learner, counts)
        if sequences is None:
            counts["groups_overlong_dropped"] += 1
            continue
        candidates.append((group, sequences))
        out.rewards.extend(group.rewards)
    for group, sequences, advantages in _with_advantages(candidates, job, counts):
        index = len(out.groups)
        out.groups.append(group)
        out.rows.append([Row(ids, group_prompt_len, float(a), index)
                         for (ids, group_prompt_len), a in zip(sequences, advantages)])
    counts["groups_trained"] = len(out.groups)
    counts["samples_trained"] = sum(len(r) for r in out.rows)
    return out


def _well_formed(group: ScoredGroup, vocab_size: int) -> bool:
    if not group.prompt_token_ids:  # the first response token needs a preceding position
        return False
    if not all(math.isfinite(r) for r in group.rewards):
        return False
    ids = list(group.prompt_token_ids) + [t for s in group.samples for t in s.token_ids]
    return all(0 <= t < vocab_size for t in ids)


def _fit_length(group: ScoredGroup, cfg: LearnerSection, counts: Counter):
    """[(input_ids, prompt_len)] per sample, or None when the group must be dropped."""
    prompt = tuple(group.prompt_token_ids)
    if len(prompt) >= cfg.max_seq_len:
        return None  # no room for a single response token
    room = cfg.max_seq_len - len(prompt)
    overlong = sum(len(s.token_ids) > room for s in group.samples)
    if overlong and cfg.overlong == "drop":
        return None  # dropping single samples would bias the group's advantage baseline
    counts["samples_truncated"] += overlong
    return [(prompt + tuple(s.token_ids[:room]), len(prompt)) for s in group.samples]


def shaped_rewards(groups: list[ScoredGroup], job: LearnerJob) -> torch.Tensor:
    """Rewards [G, n] of equally sized groups, with DAPO's soft overlong punishment added when
    algorithm.overlong_buffer_tokens > 0 (ramping to -overlong_penalty_factor at rollout.max_tokens)."""
    rewards = torch.tensor([g.rewards for g in groups], dtype=torch.float64)
    algorithm = job.algorithm
    if algorithm.overlong_buffer_tokens > 0:
        lengths = torch.tensor([[len(s.token_ids) for s in g.samples] for g in groups])
        buffer = min(algorithm.overlong_buffer_tokens, job.max_response_tokens)
        penalty = overlong_penalty(lengths, max_length=job.max_response_tokens, cache_length=buffer)
        rewards = rewards + algorithm.overlong_penalty_factor * penalty.to(torch.float64)
    return rewards


def has_signal(group: ScoredGroup, job: LearnerJob) -> bool:
    """Whether DAPO's dynamic sampling keeps the group: its (raw, unshaped) rewards are not all
    equal, i.e. its accuracy is neither 0 nor 1, as DAPO filters. Always True when it is off.
    The learner counts only such groups towards a full batch (learner.learner.Learner.pull_batch)."""
    if not job.algorithm.dynamic_sampling or not group.samples:
        return True
    return bool(dynamic_sampling_keep(torch.tensor([group.rewards], dtype=torch.float64))[0])


def _with_advantages(candidates, job: LearnerJob, counts: Counter):
    """Yield (group, sequences, advantages) for the groups that train, in input order.
    Estimators take [G, n]; groups are stacked by size n so mixed group sizes still work."""
    algorithm = job.algorithm
    by_size: dict[int, list[int]] = {}
    for i, (group, _) in enumerate(candidates):
        by_size.setdefault(len(group.samples), []).append(i)
    advantages: dict[int, torch.Tensor] = {}
    for indices in by_size.values():
        groups = [candidates[i][0] for i in indices]
        rewards = shaped_rewards(groups, job)
        keep = torch.tensor([has_signal(g, job) for g in groups], dtype=torch.bool)
        try:
            values = advantages_with(algorithm.advantage, algorithm.advantage_hp, rewards)
        except ValueError as exc:  # the estimator rejects this group size (e.g. pass@k with n < k)
            log.warning("skipping %d groups of size %d: %s", len(indices), rewards.shape[1], exc)
            counts["groups_bad"] += len(indices)
            continue
        for row, i in enumerate(indices):
            if not keep[row]:
                counts["groups_equal_reward"] += 1  # DAPO dynamic sampling: dropped (the learner refills)
                continue
            if not bool((values[row] != 0).any()):
                # Kept, as the official code does: advantage 0 everywhere, but its tokens count in
                # the token-mean denominators and its responses in the Lambda^(k) diagnostics.
                counts["groups_zero_advantage"] += 1
            advantages[i] = values[row]
    for i, (group, sequences) in enumerate(candidates):
        if i in advantages:
            yield group, sequences, advantages[i].tolist()


def mini_batches(batch: PreparedBatch, mini_batch_prompts: int) -> list[list[Row]]:
    """Consecutive chunks of mini_batch_prompts trained groups, flattened to rows."""
    chunks = [batch.rows[i:i + mini_batch_prompts] for i in range(0, len(batch.rows), mini_batch_prompts)]
    return [[row for group_rows in chunk for row in group_rows] for chunk in chunks]


def plan_mini_batch(rows: list[Row], cfg: LearnerSection, *, rank: int, world_size: int,
                    pad_id: int, aggregation: str, separate_zero_advantage: bool = False,
                    pack: bool = False) -> list[MicroBatch]:
    """This rank's micro-batches for one mini-batch (every rank gets the same count).
    separate_zero_advantage: pack the zero-advantage rows into micro-batches of their own, after
    the others (same rows, same weights: only which rows share a micro-batch changes), so those
    micro-batches are `inert` and their backward can be skipped. pack: give each micro-batch its
    packed form (MicroBatch.packed); the padded tensors stay, for everything after the forward."""
    shards = _split_across_ranks(rows, world_size)
    if separate_zero_advantage:
        packed = [_pack([r for r in shard if r.advantage != 0], cfg.micro_batch_tokens)
                  + _pack([r for r in shard if r.advantage == 0], cfg.micro_batch_tokens) for shard in shards]
    else:
        packed = [_pack(shard, cfg.micro_batch_tokens) for shard in shards]
    steps = max(len(p) for p in packed)
    total = _normaliser(rows, aggregation)
    mine = packed[rank]
    out = [collate(chunk, pad_id, weight=world_size * _normaliser(chunk, aggregation) / total, pack=pack)
           for chunk in mine]
    # Padding micro-batches: a real row with weight 0, so forward/backward (and the ZeRO collectives
    # inside them) run on every rank while contributing exactly zero gradient.
    filler = min(rows, key=lambda r: r.length)
    out += [replace(collate([filler], pad_id, weight=0.0), inert=True) for _ in range(steps - len(mine))]
    return out


def _normaliser(rows: list[Row], aggregation: str) -> float:
    """How the loss library normalises: token-mean divides by response tokens, the seq-mean
    variants by rows. A micro-batch's weight is its share of the mini-batch normaliser; DeepSpeed
    averages gradients over ranks, hence the world_size factor in plan_mini_batch."""
    if aggregation == "token-mean":
        return float(max(sum(r.response_len for r in rows), 1))
    if aggregation == "seq-mean-token-mean":
        return float(max(sum(r.response_len > 0 for r in rows), 1))
    return float(max(len(rows), 1))


def _split_across_ranks(rows: list[Row], world_size: int) -> list[list[Row]]:
    """Longest-first greedy: each row goes to the rank with the fewest tokens so far (ties: lowest rank)."""
    shards: list[list[Row]] = [[] for _ in range(world_size)]
    load = [0] * world_size
    for row in sorted(rows, key=lambda r: -r.length):
        target = min(range(world_size), key=lambda k: (load[k], k))
        shards[target].append(row)
        load[target] += row.length
    return shards


def _pack(rows: list[Row], budget: int) -> list[list[Row]]:
    """Rows sorted longest first, filled while rows x longest <= budget (a row over budget goes alone)."""
    chunks: list[list[Row]] = []
    for row in sorted(rows, key=lambda r: -r.length):
        if chunks and (len(chunks[-1]) + 1) * chunks[-1][0].length <= budget:
            chunks[-1].append(row)
        else:
            chunks.append([row])
    return chunks


def collate(rows: list[Row], pad_id: int, *, weight: float, pack: bool = False) -> MicroBatch:
    width = max(r.length for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    response = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        input_ids[i, :row.length] = torch.tensor(row.input_ids, dtype=torch.long)
        attention[i, :row.length] = 1
        response[i, row.prompt_len:row.length] = True
    start = min(r.prompt_len for r in rows) - 1  # >= 0: prompts are non-empty
    return MicroBatch(
        input_ids=input_ids,
        attention_mask=attention,
        start=start,
        tokens=input_ids[:, start + 1:],
        mask=response[:, start + 1:],
        advantages=torch.tensor([r.advantage for r in rows], dtype=torch.float32),
        weight=weight,
        inert=all(r.advantage == 0 for r in rows),
        packed=pack_rows(input_ids, [r.length for r in rows], pad_id) if pack else None,
    )
