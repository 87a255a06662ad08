"""The Ray object-store weight transport: a named registry actor per job holding {version: ObjectRef}.

    learner rank 0:  RayWeights(job_id).publish(v, state_dict)   # ray.put(numpy) + register the ref
    rollout worker:  RayWeights(job_id).fetch(v)                   # ray.get: zero-copy numpy views

The registry holds references only, never tensors, so it stays tiny. An object made with `ray.put`
is owned by the process that put it: if the learner dies, its versions die with it (workers keep
their loaded weights and wait for the restarted learner to publish again).
"""
from __future__ import annotations

from collections.abc import Mapping

import ray
import torch

from services.wire.weights import StateDict, WeightVersionUnavailable, to_numpy_state_dict


class WeightRegistry:
    """Plain bookkeeping (testable without Ray): newest `keep_last` versions and their refs."""

    def __init__(self, keep_last: int = 2):
        if keep_last < 1:
            raise ValueError("keep_last must be >= 1")
        self.keep_last = keep_last
        self._refs: dict[int, list] = {}

    def publish(self, version: int, boxed_ref: list) -> int:
        """Register `boxed_ref` (a one-element list holding the ObjectRef, so Ray passes the
        reference through instead of resolving it) as `version`. Returns the latest version."""
        if self._refs and version <= max(self._refs):
            raise ValueError(f"version {version} is not newer than {max(self._refs)}")
        self._refs[version] = boxed_ref
        for old in sorted(self._refs)[:-self.keep_last]:
            del self._refs[old]
        return version

    def get(self, version: int) -> list | None:
        return self._refs.get(version)

    def latest_version(self) -> int:
        return max(self._refs, default=0)


WeightRegistryActor = ray.remote(num_cpus=0)(WeightRegistry)


def registry_name(job_id: str) -> str:
    return f"simko-weights-{job_id}"


def get_or_create_registry(job_id: str, *, keep_last: int = 2, namespace: str | None = None,
                           on_this_node: bool = False):
    """The job's named registry actor (created on first use; the same handle for every caller).
    Detached: it must outlive whichever process created it; the controller ends it (kill_registry).
    on_this_node=True (the controller, which creates it first) pins it to the caller's node: a
    zero-CPU actor may otherwise land on any node, e.g. a rollout container that a scale-down
    removes, taking the job's weights with it."""
    options = dict(name=registry_name(job_id), namespace=namespace, get_if_exists=True, lifetime="detached")
    if on_this_node:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                                        soft=False)
    return WeightRegistryActor.options(**options).remote(keep_last)


def kill_registry(job_id: str, *, namespace: str | None = None) -> None:
    try:
        ray.kill(ray.get_actor(registry_name(job_id), namespace=namespace))
    except ValueError:  # no such actor: already gone
        pass


class RayWeights:
    """WeightPublisher and WeightSource over the job's registry actor."""

    def __init__(self, job_id: str, *, timeout_s: float = 60.0):
        self.job_id = job_id
        self._registry = get_or_create_registry(job_id)
        self._timeout_s = timeout_s

    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> None:
        ref = ray.put(to_numpy_state_dict(state_dict))
        ray.get(self._registry.publish.remote(version, [ref]), timeout=self._timeout_s)

    def latest_version(self) -> int:
        return ray.get(self._registry.latest_version.remote(), timeout=self._timeout_s)

    def fetch(self, version: int) -> StateDict:
        boxed = ray.get(self._registry.get.remote(version), timeout=self._timeout_s)
        if boxed is None:
            raise WeightVersionUnavailable(version)
        return ray.get(boxed[0], timeout=self._timeout_s)


def connect_ray_weights(job_id: str, *, address: str = "auto") -> RayWeights:
    """For a plain-process rollout worker: join the Ray cluster at `address` and read the job's registry."""
    ray.init(address=address, ignore_reinit_error=True)
    return RayWeights(job_id)
