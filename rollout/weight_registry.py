"""The weight registry: a named Ray actor holding {version: ObjectRef} of numpy state dicts.

The learner puts a numpy state dict into the object store (zero-copy for readers) and registers the
reference; rollout workers ask for the latest version and `ray.get` it. The registry holds only
references, never the tensors, so it stays tiny and fast.

Learner side:
    registry = get_or_create_registry(job_id)
    publish_weights(registry, version, model.state_dict())
Worker side:
    source = RayWeightSource(get_or_create_registry(job_id))

Note: an object created with `ray.put` is owned by the putting process; if the learner process
dies, its published versions die with it (workers keep their loaded weights and wait for the
restarted learner to publish again).
"""
from __future__ import annotations

from collections.abc import Mapping

import ray
import torch

from rollout.weights import StateDict, WeightVersionUnavailable, to_numpy_state_dict


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

    def latest(self) -> tuple[int, list | None]:
        """(latest version, boxed ref); (0, None) before the first publish."""
        if not self._refs:
            return 0, None
        version = max(self._refs)
        return version, self._refs[version]

    def get(self, version: int) -> list | None:
        return self._refs.get(version)

    def latest_version(self) -> int:
        return max(self._refs, default=0)


WeightRegistryActor = ray.remote(num_cpus=0)(WeightRegistry)


def registry_name(job_id: str) -> str:
    return f"simko-weights-{job_id}"


def get_or_create_registry(job_id: str, *, keep_last: int = 2, namespace: str | None = None):
    """The job's named registry actor (created on first use; the same handle for every caller)."""
    return WeightRegistryActor.options(name=registry_name(job_id), namespace=namespace, get_if_exists=True,
                                       lifetime="detached").remote(keep_last)


def publish_weights(registry, version: int, state_dict: Mapping[str, torch.Tensor]) -> int:
    """Put `state_dict` (as numpy) into the object store and register it as `version`."""
    ref = ray.put(to_numpy_state_dict(state_dict))
    return ray.get(registry.publish.remote(version, [ref]))


class RayWeightSource:
    """WeightSource over the registry actor."""

    def __init__(self, registry, *, timeout_s: float = 60.0):
        self._registry = registry
        self._timeout_s = timeout_s

    def latest_version(self) -> int:
        return ray.get(self._registry.latest_version.remote(), timeout=self._timeout_s)

    def fetch(self, version: int) -> StateDict:
        boxed = ray.get(self._registry.get.remote(version), timeout=self._timeout_s)
        if boxed is None:
            raise WeightVersionUnavailable(version)
        return ray.get(boxed[0], timeout=self._timeout_s)


def kill_registry(job_id: str, *, namespace: str | None = None) -> None:
    """The registry is detached (it must outlive whichever worker created it); the controller ends it."""
    try:
        ray.kill(ray.get_actor(registry_name(job_id), namespace=namespace))
    except ValueError:  # no such actor: already gone
        pass


def connect_weight_source(job_id: str, *, address: str = "auto") -> RayWeightSource:
    """For a plain-process worker: join the Ray cluster at `address` and read the job's registry."""
    ray.init(address=address, ignore_reinit_error=True)
    return RayWeightSource(get_or_create_registry(job_id))
