"""Typed messages that cross process boundaries (Redis Streams), and their one codec.

Everything that goes onto a stream is one of these dataclasses, encoded with `encode` and decoded
with `decode` (msgpack, with a type tag and a schema version so a mismatched producer fails loudly
instead of silently mis-parsing). Keep these plain data: no tensors, no methods with side effects.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import msgpack

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PromptGroup:
    """One prompt to be sampled `n` times (a GRPO group). `group_id` is unique per job and idempotent:
    a redelivered group carries the same id, so consumers can de-duplicate."""

    job_id: str
    group_id: str
    prompt: str  # the rendered prompt text (template applied); for a chat prompt, its last user turn
    gold: str  # the reference answer handed to the verifier
    task: str  # verifier task name: "math", "logic:<name>", ...
    n: int  # samples per prompt
    prompt_token_ids: list[int] | None = None  # optional pre-tokenised prompt
    epoch: int = 0
    index: int = 0  # position in the dataset, for the data cursor
    min_version: int = 0  # the oldest policy version allowed to sample this group (staleness bound)
    # A chat prompt's {role, content} turns: the rollout engine renders them with the model's chat
    # template (add_generation_prompt). None: sample `prompt` as text. Messages of producers that
    # predate this field decode to None.
    messages: list[dict[str, str]] | None = None


@dataclass(frozen=True)
class Sample:
    """One sampled response with what the learner and the diagnostics need."""

    token_ids: list[int]
    # The sampled tokens' log-probs under the sampling policy (temperature applied); empty unless
    # rollout.top_logprobs asked for them (the learner recomputes its own)
    logprobs: list[float]
    top_ids: list[list[int]]  # [len][k] ids of the top-k candidates at each position (rank order)
    top_logprobs: list[list[float]]  # [len][k] their log-probs
    text: str
    finish_reason: str  # "stop" | "length" | "abort"
    reward: float = 0.0
    correct: bool = False
    status: str = "ok"  # verifier status: ok | no_answer | timeout | error
    extracted: str | None = None


@dataclass(frozen=True)
class ScoredGroup:
    """A prompt group after generation and verification, tagged with the policy version that sampled it."""

    job_id: str
    group_id: str
    prompt_token_ids: list[int]
    task: str
    gold: str
    samples: list[Sample]
    policy_version: int
    worker_id: str
    epoch: int = 0
    index: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # generate_s, verify_s, ...
    # Set when the prompt could not be sampled at all ("empty_prompt", "prompt_too_long: ..."):
    # then `samples` is empty and the learner skips the group (it still advances the data cursor).
    error: str | None = None

    @property
    def rewards(self) -> list[float]:
        return [s.reward for s in self.samples]


_TYPES: dict[str, type] = {t.__name__: t for t in (PromptGroup, ScoredGroup)}


class CodecError(ValueError):
    """A message that is not a valid encoded PromptGroup / ScoredGroup of this schema version."""


def encode(message: PromptGroup | ScoredGroup) -> bytes:
    kind = type(message).__name__
    if kind not in _TYPES:
        raise CodecError(f"cannot encode {kind}; known: {sorted(_TYPES)}")
    return msgpack.packb({"v": SCHEMA_VERSION, "type": kind, "body": dataclasses.asdict(message)},
                         use_bin_type=True)


def decode(payload: bytes) -> PromptGroup | ScoredGroup:
    try:
        envelope = msgpack.unpackb(payload, raw=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
        raise CodecError(f"undecodable message: {exc}") from exc
    if not isinstance(envelope, dict) or envelope.get("v") != SCHEMA_VERSION:
        raise CodecError(f"wrong schema version: {envelope.get('v') if isinstance(envelope, dict) else None!r}"
                         f" (expected {SCHEMA_VERSION})")
    kind = envelope.get("type")
    if kind not in _TYPES:
        raise CodecError(f"unknown message type {kind!r}; known: {sorted(_TYPES)}")
    return _build(_TYPES[kind], envelope["body"])


def _build(cls: type, body: dict[str, Any]):
    try:
        if cls is ScoredGroup:
            body = {**body, "samples": [Sample(**s) for s in body["samples"]]}
        return cls(**body)
    except (TypeError, KeyError) as exc:
        raise CodecError(f"malformed {cls.__name__}: {exc}") from exc
