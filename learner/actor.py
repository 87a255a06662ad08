"""Thin Ray adapter over LearnerEngine + LearnerLoop (the only learner module that imports ray).

One actor per rank. For world size > 1, `LearnerGroup.create` starts N actors (possibly on
several nodes), asks rank 0 for an address on its node, and has every rank join the process
group there (`setup`); each sets the torch.distributed env vars before building its engine. Every
method that runs collectives (update, publish, checkpoint, export, run_loop, train_step) must be
called on all ranks together: `LearnerGroup.call` does that and returns rank 0's result.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import ray
import torch

from learner.checkpoint import export_hf, load_checkpoint, save_checkpoint
from learner.config import LearnerConfig
from learner.distributed import free_port
from learner.engine import LearnerEngine
from learner.loop import LearnerLoop
from learner.weights import publish_weights
from rollout.weight_registry import get_or_create_registry
from rollout.weight_registry import publish_weights as registry_publish
from services.messages import ScoredGroup


class RayRegistryPublisher:
    """WeightPublisher into the job's weight registry (the Ray object store; numpy, zero-copy reads)."""

    def __init__(self, registry) -> None:
        self.registry = registry

    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> None:
        registry_publish(self.registry, version, state_dict)

    def latest_version(self) -> int:
        return ray.get(self.registry.latest_version.remote())


class LearnerActor:
    """One learner rank. A lone rank builds its engine at once; ranks of a group wait for `setup`
    with the address rank 0 offers (`rendezvous_address`)."""

    def __init__(self, config: dict, *, rank: int = 0, world_size: int = 1, master_addr: str | None = None,
                 master_port: int | None = None, job_id: str | None = None) -> None:
        self.cfg = LearnerConfig(**config)
        self.rank, self.world_size, self.job_id = rank, world_size, job_id
        self.engine: LearnerEngine | None = None
        if world_size == 1 or master_port is not None:
            self.setup(master_addr or "127.0.0.1", master_port or free_port())

    def rendezvous_address(self) -> tuple[str, int]:
        """This actor's node IP and a port free on it: where rank 0 hosts the process group."""
        return ray.util.get_node_ip_address(), free_port()

    def setup(self, master_addr: str, master_port: int) -> None:
        """Join the process group and build the engine (collective: all ranks together)."""
        os.environ.update(RANK=str(self.rank), LOCAL_RANK="0", WORLD_SIZE=str(self.world_size),
                          MASTER_ADDR=master_addr, MASTER_PORT=str(master_port))
        self.engine = LearnerEngine(self.cfg)
        self.publisher = (RayRegistryPublisher(get_or_create_registry(self.job_id))
                          if self.job_id and self.rank == 0 else None)

    def update(self, groups: list[ScoredGroup]) -> dict:
        return self.engine.update(groups)

    def publish(self) -> int:
        publish_weights(self.engine, self.publisher)
        return self.engine.state.weight_version

    def save_checkpoint(self, directory: str | None = None) -> str:
        return str(save_checkpoint(self.engine, directory))

    def load_checkpoint(self, directory: str, tag: str | None = None) -> dict:
        return load_checkpoint(self.engine, directory, tag).to_dict()

    def export(self, out_dir: str) -> str | None:
        path = export_hf(self.engine, out_dir)
        return str(path) if path else None

    def state(self) -> dict:
        """The learner state for a driver, without the (large) window of applied group ids."""
        state = self.engine.state.to_dict()
        state["applied_group_count"] = len(state.pop("applied_group_ids"))
        return state

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        return self.engine.full_state_dict()

    def run_loop(self, queue_url: str, job_id: str, *, max_updates: int | None = None,
                 idle_timeout_s: float | None = None, metrics_path: str | None = None) -> int:
        """Consume the job's rollout stream (rank 0 reads; other ranks get the batches)."""
        source = self._source(queue_url, job_id)
        sink = _jsonl_sink(metrics_path) if metrics_path and self.engine.rank == 0 else None
        try:
            return LearnerLoop(self.engine, source, self.publisher, on_metrics=sink).run(
                max_updates=max_updates, idle_timeout_s=idle_timeout_s)
        finally:
            if source is not None:
                source.close()

    # Step-wise driving, for a controller that interleaves its own work between updates.
    def open_stream(self, queue_url: str, job_id: str) -> dict:
        """Attach to the job's rollout stream (and republish after a resume); returns the state."""
        self._loop = LearnerLoop(self.engine, self._source(queue_url, job_id), self.publisher)
        self._loop.start()
        return self.state()

    def train_step(self, idle_timeout_s: float | None = None) -> dict | None:
        """One update from the stream (see LearnerLoop.step); None if the stream stayed idle."""
        return self._loop.step(idle_timeout_s)

    def _source(self, queue_url: str, job_id: str):
        if self.engine.rank != 0:
            return None
        from services.queues import ROLLOUTS_GROUP, QueueConfig, RedisStream, rollouts_stream

        return RedisStream(QueueConfig(url=queue_url), rollouts_stream(job_id), group=ROLLOUTS_GROUP,
                           consumer=f"learner-{job_id}", message_type=ScoredGroup)


def _jsonl_sink(path: str):
    import json

    def write(metrics: dict) -> None:
        with open(path, "a") as f:
            f.write(json.dumps(metrics) + "\n")

    return write


def create_learner_actors(config: LearnerConfig, *, world_size: int = 1, job_id: str | None = None,
                          num_cpus: float = 1, num_gpus: float = 0,
                          resources: dict[str, float] | None = None) -> list:
    """N rank actors forming one process group (they may land on different nodes); resources per
    actor come from the caller's config. Returns once every rank has built its engine."""
    remote = ray.remote(LearnerActor).options(num_cpus=num_cpus, num_gpus=num_gpus, resources=resources or None)
    actors = [remote.remote(config.model_dump(), rank=rank, world_size=world_size, job_id=job_id)
              for rank in range(world_size)]
    if world_size > 1:
        master_addr, master_port = ray.get(actors[0].rendezvous_address.remote())
        call_all(actors, "setup", master_addr, master_port)
    else:
        ray.get(actors[0].state.remote())  # surfaces a failed engine build here
    return actors


def call_all(actors: list, method: str, *args, **kwargs) -> list:
    """Call a collective method on every rank actor; returns rank-ordered results."""
    return ray.get([getattr(a, method).remote(*args, **kwargs) for a in actors])


class LearnerGroup:
    """A job's learner ranks as one object for the controller: each call goes to every rank (the
    methods run collectives) and returns rank 0's result."""

    def __init__(self, actors: list):
        self.actors = actors

    @classmethod
    def create(cls, config: LearnerConfig, *, world_size: int, job_id: str, num_cpus: float, num_gpus: float,
               resources: dict[str, float] | None = None) -> "LearnerGroup":
        return cls(create_learner_actors(config, world_size=world_size, job_id=job_id, num_cpus=num_cpus,
                                         num_gpus=num_gpus, resources=resources))

    def call(self, method: str, *args, **kwargs):
        return call_all(self.actors, method, *args, **kwargs)[0]

    def kill(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
