"""Publishing the learner's full weights to the rollout engines, behind one interface.

`publish_weights(engine, publisher)` gathers the full state dict (collectively under ZeRO-3; every
rank must call it) and rank 0 hands it to a `WeightPublisher` under the engine's weight version.
Implementations:
- `InProcessPublisher` / `DirectoryPublisher`: adapters over rollout.weights sources (tests, runs
  without Ray, a shared filesystem).
- `learner.actor.RayRegistryPublisher`: the Ray object store via the job's weight registry (default
  in a cluster; lives in the actor module because only actor modules import ray).
- `NcclBroadcastPublisher`: the GPU fast path. NOT IMPLEMENTED: a documented stub that raises.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from learner.engine import LearnerEngine
from rollout.weights import DirectoryWeightSource, InProcessWeightSource


@runtime_checkable
class WeightPublisher(Protocol):
    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Make `state_dict` (checkpoint names, full tensors) available as `version`."""

    def latest_version(self) -> int:
        """The newest version published so far (0 before the first)."""


def publish_weights(engine: LearnerEngine, publisher: WeightPublisher | None, version: int | None = None) -> float:
    """Gather and publish the current weights; returns the seconds it took (rank 0's view).

    The version is the engine's weight version unless given. Versions only grow: after a resume from
    an older checkpoint the rollout side may already hold newer (now abandoned) versions, so callers
    pass max(engine version, publisher.latest_version()) + 1 there (see LearnerLoop.start).
    """
    started = time.perf_counter()
    state_dict = engine.full_state_dict()  # collective under ZeRO-3
    if engine.rank == 0 and publisher is not None:
        publisher.publish(engine.state.weight_version if version is None else version, state_dict)
    return time.perf_counter() - started


class InProcessPublisher:
    def __init__(self, source: InProcessWeightSource) -> None:
        self.source = source

    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.source.publish(version, dict(state_dict))

    def latest_version(self) -> int:
        return self.source.latest_version()


class DirectoryPublisher:
    """`root/v{version:08d}/model.safetensors` (what vLLM's reload_weights(weights_path=...) reads)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> None:
        DirectoryWeightSource.publish(self.root, version, state_dict)

    def latest_version(self) -> int:
        return DirectoryWeightSource(self.root).latest_version()


class NcclBroadcastPublisher:
    """GPU fast path: broadcast each tensor from learner rank 0 to the rollout engines over an NCCL
    group that includes them (as OpenRLHF / verl do). Not implemented: this project's machines have
    no GPU to develop or test it on, so it refuses loudly instead of pretending."""

    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError(
            "NcclBroadcastPublisher is a stub: NCCL weight broadcast to vLLM engines is not implemented "
            "(no GPU to test it). Use the Ray object store publisher (learner.actor.RayRegistryPublisher) "
            "or DirectoryPublisher.")

    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> None:  # pragma: no cover
        raise NotImplementedError

    def latest_version(self) -> int:  # pragma: no cover
        raise NotImplementedError
