"""The prompt producer: turns the dataset into PromptGroups on the job's prompt stream.

The order is a deterministic function of (seed, epoch), and a group's id of (epoch, example), so
a resumed job re-feeds exactly the groups that were not trained yet, and a re-fed group that was
trained after all is recognised by the learner (it de-duplicates by group id).
"""
from __future__ import annotations

from dataclasses import dataclass

from services.data import Example, epoch_order, render_prompt
from services.messages import PromptGroup


@dataclass
class PromptFeeder:
    job_id: str
    examples: list[Example]
    template: str
    n: int  # samples per prompt
    seed: int
    shuffle: bool = True
    fed: int = 0  # groups published so far (the cursor)

    def __post_init__(self) -> None:
        if not self.examples:
            raise ValueError("the dataset is empty")
        self._order_epoch = -1
        self._order: list[int] = []

    def next_groups(self, count: int, min_version: int) -> list[PromptGroup]:
        """The next `count` groups in data order (the caller publishes them, then `advance`s)."""
        groups = []
        for g in range(self.fed, self.fed + count):
            epoch, position = divmod(g, len(self.examples))
            index = self._order_for(epoch)[position]
            example = self.examples[index]
            groups.append(PromptGroup(job_id=self.job_id, group_id=f"{self.job_id}-e{epoch}-i{index}",
                                      prompt=render_prompt(self.template, example.prompt), gold=example.answer,
                                      task=example.task, n=self.n, epoch=epoch, index=index,
                                      min_version=min_version))
        return groups

    def advance(self, count: int) -> None:
        self.fed += count

    @property
    def epoch(self) -> int:
        return self.fed // len(self.examples)

    def _order_for(self, epoch: int) -> list[int]:
        if epoch != self._order_epoch:
            self._order = epoch_order(len(self.examples), epoch, self.seed, self.shuffle)
            self._order_epoch = epoch
        return self._order
