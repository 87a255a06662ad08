"""The prompt producer: turns the dataset into PromptGroups on the job's prompt stream (PromptFeeder),
and keeps the right number of them in flight (PromptSupply).

The order is a deterministic function of (seed, epoch), and a group's id of (epoch, example), so
a resumed job re-feeds exactly the groups that were not trained yet, and a re-fed group that was
trained after all is recognised by the learner (it de-duplicates by group id).

`load_job_data` reads the `data` section's train (and eval) sets and records what was read and what
`data.on_bad_rows: skip` dropped in the run directory's data_report.json. A text example is
rendered here with `data.prompt_template`; a chat example travels as its messages, which the rollout
engine renders with the model's chat template.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from services.data import Example, epoch_order, read_dataset, render_prompt
from services.data.config import DataSection
from services.wire.messages import PromptGroup
from services.wire.streams import PROMPTS_GROUP, ROLLOUTS_GROUP, RedisStream

log = logging.getLogger(__name__)

DATA_REPORT = "data_report.json"


def load_job_data(data: DataSection, run_dir: Path, *, eval_problems: int | None
                  ) -> tuple[list[Example], list[Example] | None]:
    """The train examples, and the first `eval_problems` of data.eval (None: no evaluation set);
    writes run_dir/data_report.json (rows read, examples, tasks, dropped rows with reasons)."""
    options = dict(format=data.format, default_task=data.default_task, task_map=data.task_map,
                   on_bad_rows=data.on_bad_rows)
    train = read_dataset(data.train, **options)
    report = {"train": train.report.to_json()}
    held_out = None
    if eval_problems is not None and data.eval:
        evaluation = read_dataset(data.eval, **options)
        report["eval"] = evaluation.report.to_json()
        held_out = evaluation.examples[:eval_problems]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DATA_REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return train.examples, held_out


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
            chat = example.messages is not None
            groups.append(PromptGroup(job_id=self.job_id, group_id=f"{self.job_id}-e{epoch}-i{index}",
                                      prompt=example.prompt if chat else render_prompt(self.template, example.prompt),
                                      gold=example.answer, task=example.task, n=self.n, epoch=epoch, index=index,
                                      min_version=min_version,
                                      messages=[dict(m) for m in example.messages] if chat else None))
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

    def recover_lost(self, trained: int, version: int) -> None:
        """Called after the learner waited a poll in vain. Every group in flight (fed, not yet
        consumed by a trained batch) is on one of the streams until the learner ACKs it: a prompt
        until its scored group is published (the worker ACKs after publishing), a scored group until
        its batch is trained (the learner's half-collected batch is pending there). Fewer entries
        than groups in flight means some vanished (a Redis restart without persistence): publish all
        of them again; those that survived come back as duplicates, which the learner ACKs without
        counting them twice. Dead-lettered entries count as accounted for: a poison prompt must stay
        dead, not come back with every idle poll. (Waiting for both streams to be empty instead
        missed the restart that left the learner holding one group: the job stalled until that
        group was dead-lettered, 5 reclaims x 60 s later.)"""
        in_flight = self.feeder.fed - trained
        on_streams = (self.prompts.backlog(PROMPTS_GROUP) + self.rollouts.backlog(ROLLOUTS_GROUP)
                      + self.prompts.dead_letters() + self.rollouts.dead_letters())
        if in_flight > on_streams:
            log.warning("%d in-flight prompt groups, %d on the streams: some vanished from Redis; re-feeding "
                        "the %d in flight", in_flight, on_streams, in_flight)
            self.refed += in_flight
            self.feeder.fed = trained
            self.top_up(trained, version)

    def metrics(self) -> dict:
        return {"queue/prompts_backlog": self.prompts.backlog(PROMPTS_GROUP),
                "queue/rollouts_backlog": self.rollouts.backlog(ROLLOUTS_GROUP),
                "queue/groups_refed": self.refed, "trainer/epoch": self.feeder.epoch}
