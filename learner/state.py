"""The learner's own state, saved next to the DeepSpeed checkpoint so a resumed job continues exactly.

`applied_group_ids` is what makes at-least-once delivery safe: a redelivered group whose update was
already applied (and maybe checkpointed) is acknowledged and skipped instead of trained twice. It
keeps the most recent ids only: a redelivery concerns groups that were in flight (a few batches),
so a window far larger than that bounds memory and checkpoint size on long jobs.
"""
from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


class RecentIds:
    """An insertion-ordered set that forgets its oldest members beyond `capacity`."""

    def __init__(self, ids=(), capacity: int = 200_000):
        self.capacity = capacity
        self._ids: dict[str, None] = {}
        self.update(ids)

    def update(self, ids) -> None:
        for group_id in ids:
            self._ids.pop(group_id, None)
            self._ids[group_id] = None
        excess = len(self._ids) - self.capacity
        if excess > 0:  # only then walk the oldest ids (a full copy per update would be O(capacity))
            for oldest in list(itertools.islice(self._ids, excess)):
                del self._ids[oldest]

    def __contains__(self, group_id: object) -> bool:
        return group_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self):
        return iter(self._ids)


@dataclass
class LearnerState:
    step: int = 0  # update() calls applied (batches consumed)
    weight_version: int = 0  # bumped whenever an update changed the weights
    optimizer_steps: int = 0  # optimizer steps applied (several per update with PPO mini-batches)
    applied_group_ids: RecentIds = field(default_factory=RecentIds)
    cursor: dict[str, Any] = field(default_factory=dict)  # the data loop's position (opaque here)
    counters: Counter = field(default_factory=Counter)  # cumulative batch/* and skip counters

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "weight_version": self.weight_version,
                "optimizer_steps": self.optimizer_steps,
                "applied_group_ids": list(self.applied_group_ids), "cursor": dict(self.cursor),
                "counters": dict(self.counters)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LearnerState":
        return cls(step=data["step"], weight_version=data["weight_version"],
                   optimizer_steps=data["optimizer_steps"],
                   applied_group_ids=RecentIds(data["applied_group_ids"]), cursor=dict(data["cursor"]),
                   counters=Counter(data["counters"]))


def capture_rng() -> dict[str, Any]:
    saved = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        saved["cuda"] = torch.cuda.get_rng_state_all()
    return saved


def restore_rng(saved: dict[str, Any]) -> None:
    random.setstate(saved["python"])
    np.random.set_state(saved["numpy"])
    torch.set_rng_state(saved["torch"])
    if "cuda" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda"])
