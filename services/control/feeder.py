"""The prompt producer: turns the dataset into PromptGroups on the job's prompt stream (PromptFeeder),
and keeps the right number of them in flight (PromptSupply).

The order is a deterministic function of (seed, epoch), and a group's id of (epoch, example), so
a resumed job re-feeds exactly the groups that were not trained yet, and a re-fed group that was
trained after all is recognised by the learner (it de-duplicates by group id).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from services.data import Example, epoch_order, render_prompt
from services.wire.messages import PromptGroup
from services.wire.streams import PROMPTS_GROUP, ROLLOUTS_GROUP, RedisStream

log = logging.getLogger(__name__)


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


class PromptSupply:
    """Keeps (max_staleness + 1) batches of prompts in flight on the prompt stream, and re-feeds
    in-flight groups that vanished (a Redis restart without persistence): their ids are stable and
    the learner de-duplicates, so re-feeding can never train a group twice."""

    def __init__(self, feeder: PromptFeeder, prompts: RedisStream, rollouts: RedisStream, *, batch_prompts: int,
                 max_staleness: int):
        self.feeder, self.prompts, self.rollouts = feeder, prompts, rollouts
        self.window = (max_staleness + 1) * batch_prompts
        self.refed = 0

    def top_up(self, trained: int, version: int) -> None:
        wanted = trained + self.window - self.feeder.fed
        if wanted > 0:
            self.prompts.publish_many(self.feeder.next_groups(wanted, min_version=version))
            self.feeder.advance(wanted)

    def recover_lost(self, trained: int) -> None:
        idle = self.prompts.backlog(PROMPTS_GROUP) == 0 and self.rollouts.backlog(ROLLOUTS_GROUP) == 0
        if idle and self.feeder.fed > trained:
            log.warning("%d in-flight prompt groups vanished from Redis; re-feeding them", self.feeder.fed - trained)
            self.refed += self.feeder.fed - trained
            self.feeder.fed = trained

    def metrics(self) -> dict:
        return {"queue/prompts_backlog": self.prompts.backlog(PROMPTS_GROUP),
                "queue/rollouts_backlog": self.rollouts.backlog(ROLLOUTS_GROUP),
                "queue/groups_refed": self.refed, "trainer/epoch": self.feeder.epoch}
