"""Thin Ray adapter: one actor per learner rank, and `LearnerGroup`, the ranks as one object.

`LearnerGroup.create` starts N rank actors (possibly on several nodes), asks rank 0 for an address
on its node and has every rank join the process group there; each rank sets the torch.distributed
env vars, then builds its engine (learner.engine) and its Learner (learner.learner). Every Learner
method runs collectives, so each LearnerGroup method calls it on all ranks together and returns
rank 0's result. The only learner module that imports ray.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import ray
from ray.exceptions import RayActorError

from learner.config import LearnerJob
from learner.errors import LearnerLost

if TYPE_CHECKING:
    import torch

    from learner.learner import Learner
from services.wire.messages import ScoredGroup
from services.wire.streams import ROLLOUTS_GROUP, GenerationMarks, QueueConfig, RedisStream, rollouts_stream
from services.wire.weight_registry import weights_for


class LearnerActor:
    """One learner rank. A lone rank builds at once; ranks of a group wait for `setup` with the
    address rank 0 offers (`rendezvous_address`)."""

    def __init__(self, job: LearnerJob, *, rank: int = 0, world_size: int = 1, redis_url: str | None = None) -> None:
        self.job, self.rank, self.world_size, self.redis_url = job, rank, world_size, redis_url
        self.learner: Learner | None = None
        if world_size == 1:
            from learner.distributed import free_port  # in the rank's process: torch, not the driver's

            self.setup("127.0.0.1", free_port())

    def rendezvous_address(self) -> tuple[str, int]:
        """This actor's node IP and a port free on it: where rank 0 hosts the process group."""
        from learner.distributed import free_port

        return ray.util.get_node_ip_address(), free_port()

    def setup(self, master_addr: str, master_port: int) -> None:
        """Join the process group and build the engine (collective: all ranks together)."""
        os.environ.update(RANK=str(self.rank), LOCAL_RANK="0", WORLD_SIZE=str(self.world_size),
                          MASTER_ADDR=master_addr, MASTER_PORT=str(master_port))
        # Imported here, in the rank's process: the driver, which only holds handles, then starts
        # without DeepSpeed's import (seconds of the job's start-up).
        from learner.engine import LearnerEngine
        from learner.learner import Learner

        busy = None
        if self.job.torch_threads and self.redis_url is not None and self.job.job_id is not None:
            # A thread cap means the learner shares the machine with the rollout (placement): lift it
            # while no worker generates (learner.threads).
            busy = GenerationMarks(self.redis_url, self.job.job_id).any_generating
        engine = LearnerEngine(self.job, rollout_busy=busy)
        source = publisher = None
        if engine.rank == 0 and self.job.job_id is not None:
            if self.redis_url is not None:
                source = RedisStream(QueueConfig(url=self.redis_url), rollouts_stream(self.job.job_id),
                                     group=ROLLOUTS_GROUP, consumer=f"learner-{self.job.job_id}",
                                     message_type=ScoredGroup)
            publisher = weights_for(self.job.job_id, self.job.weight_sync)
        self.learner = Learner(engine, source, publisher)

    # the Learner's steps, one remote method each (LearnerGroup calls them on every rank)
    def resume(self) -> bool:
        return self.learner.resume()

    def start(self) -> None:
        self.learner.start()

    def pull_batch(self, idle_timeout_s: float | None = None) -> int | None:
        return self.learner.pull_batch(idle_timeout_s)

    def consumed(self) -> int:
        return self.learner.consumed()

    def update(self) -> dict:
        return self.learner.update()

    def publish(self) -> float:
        return self.learner.publish()

    def ack(self) -> None:
        self.learner.ack()

    def save_checkpoint(self) -> str:
        return self.learner.save_checkpoint()

    def export(self, out_dir: str) -> str | None:
        return self.learner.export(out_dir)

    def state(self) -> dict:
        return self.learner.state()

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        return self.learner.engine.full_state_dict()


class LearnerGroup:
    """A job's learner ranks as one object for the training loop: each method runs on every rank
    (the Learner's methods are collectives) and returns rank 0's result."""

    def __init__(self, actors: list):
        self.actors = actors

    @classmethod
    def create(cls, job: LearnerJob, *, redis_url: str | None = None) -> "LearnerGroup":
        """learner.world_size rank actors forming one process group, placed by the learner section's
        Ray resources. Returns once every rank has built its engine."""
        section = job.learner
        remote = ray.remote(LearnerActor).options(num_cpus=section.num_cpus, num_gpus=section.num_gpus,
                                                  resources=section.resources or None)
        actors = [remote.remote(job, rank=rank, world_size=section.world_size, redis_url=redis_url)
                  for rank in range(section.world_size)]
        group = cls(actors)
        if section.world_size > 1:
            master_addr, master_port = ray.get(actors[0].rendezvous_address.remote())
            ray.get([a.setup.remote(master_addr, master_port) for a in actors])
        else:
            group.state()  # surfaces a failed engine build here
        return group

    def _all(self, refs: list):
        """Rank 0's result once every rank is done. A dead rank is reported as soon as its call
        fails: the others may be blocked in a collective with it and would only time out."""
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            self._get(ready[0])
        return self._get(refs[0])

    @staticmethod
    def _get(ref):
        try:
            return ray.get(ref)
        except RayActorError as exc:
            raise LearnerLost(f"a learner rank died: {exc}") from exc

    def resume(self) -> bool:
        return self._all([a.resume.remote() for a in self.actors])

    def start(self) -> None:
        self._all([a.start.remote() for a in self.actors])

    def pull_batch(self, idle_timeout_s: float | None = None) -> int | None:
        return self._all([a.pull_batch.remote(idle_timeout_s) for a in self.actors])

    def consumed(self) -> int:
        return self._get(self.actors[0].consumed.remote())  # rank 0 reads the stream

    def update(self) -> dict:
        return self._all([a.update.remote() for a in self.actors])

    def publish(self) -> float:
        return self._all([a.publish.remote() for a in self.actors])

    def ack(self) -> None:
        self._all([a.ack.remote() for a in self.actors])

    def save_checkpoint(self) -> str:
        return self._all([a.save_checkpoint.remote() for a in self.actors])

    def export(self, out_dir: str) -> str | None:
        return self._all([a.export.remote(out_dir) for a in self.actors])

    def state(self) -> dict:
        return self._all([a.state.remote() for a in self.actors])

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        return self._all([a.full_state_dict.remote() for a in self.actors])

    def kill(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
