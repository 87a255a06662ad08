"""The Ray weight transports: a named registry actor per job holding {version: boxed value}.

    learner rank 0:  RayWeights(job_id).publish(v, state_dict)   # ray.put(numpy) + register the ref
    rollout worker:  RayWeights(job_id).fetch(v)                   # ray.get: zero-copy numpy views

    rollout.weight_sync = broadcast (weights_for picks the class):
    learner rank 0:  RayBroadcastWeights(job_id).publish(v, sd)   # pack + serve, register the offer
    rollout worker:  RayBroadcastWeights(job_id).offer(v)          # the metadata; tensors by broadcast

The registry holds references only, never tensors, so it stays tiny. An object made with `ray.put`
is owned by the process that put it: if the learner dies, its versions die with it (workers keep
their loaded weights and wait for the restarted learner to publish again).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import ray

from services.wire.weights import StateDict, WeightVersionUnavailable, to_numpy_state_dict

if TYPE_CHECKING:  # torch loads in the processes that move weights, not in the job's driver
    import torch

    from services.wire.weight_broadcast import BroadcastOffer, BroadcastServer

WEIGHT_SYNCS = ("object_store", "broadcast")  # the values of rollout.weight_sync


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


class RayBroadcastWeights:
    """WeightPublisher and BroadcastSource over the job's registry actor: the registry holds each
    version's offer (plain metadata, a few KB), the publisher's BroadcastServer the packed tensors."""

    def __init__(self, job_id: str, *, timeout_s: float = 60.0):
        self.job_id = job_id
        self._registry = get_or_create_registry(job_id)
        self._timeout_s = timeout_s
        self._server: BroadcastServer | None = None  # only a publishing process hosts one

    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> None:
        if self._server is None:  # reachable from the other nodes at this node's address
            from services.wire.weight_broadcast import BroadcastServer

            self._server = BroadcastServer(ray.util.get_node_ip_address())
        offer = self._server.publish(version, state_dict)
        ray.get(self._registry.publish.remote(version, [offer.to_dict()]), timeout=self._timeout_s)

    def latest_version(self) -> int:
        return ray.get(self._registry.latest_version.remote(), timeout=self._timeout_s)

    def offer(self, version: int) -> BroadcastOffer:
        boxed = ray.get(self._registry.get.remote(version), timeout=self._timeout_s)
        if boxed is None:
            raise WeightVersionUnavailable(version)
        from services.wire.weight_broadcast import BroadcastOffer

        return BroadcastOffer.from_dict(boxed[0])

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def weights_for(job_id: str, weight_sync: str = "object_store") -> RayWeights | RayBroadcastWeights:
    """The job's transport for rollout.weight_sync (the learner and every worker use the same one)."""
    if weight_sync not in WEIGHT_SYNCS:
        raise ValueError(f"weight_sync: must be one of {WEIGHT_SYNCS}, got {weight_sync!r}")
    return RayBroadcastWeights(job_id) if weight_sync == "broadcast" else RayWeights(job_id)


def connect_ray_weights(job_id: str, *, address: str = "auto", weight_sync: str = "object_store"
                        ) -> RayWeights | RayBroadcastWeights:
    """For a plain-process rollout worker: join the Ray cluster at `address` and read the job's registry."""
    ray.init(address=address, ignore_reinit_error=True)
    return weights_for(job_id, weight_sync)
