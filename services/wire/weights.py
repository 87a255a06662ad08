"""Weight transport between the learner and the rollout engines, both sides in one place.

    learner rank 0 --publish(version, state_dict)--> transport --fetch(version)--> rollout worker
                                                     latest_version() on both sides

`WeightPublisher` is what the learner needs, `WeightSource` what a rollout worker needs; every
transport implements both, so a test (or a single process) can hand the same object to each side:
- `InProcessWeights`: versions held in this process (tests, single-process runs).
- `DirectoryWeights`: versioned safetensors on a shared filesystem, `root/v00000003/model.safetensors`,
  written atomically (rename), which is also what vLLM's `reload_weights(weights_path=...)` reads.
- `services.wire.weight_registry.RayWeights`: the Ray object store (the default in a cluster).
- By broadcast (`rollout.weight_sync: broadcast`): `services.wire.weight_broadcast.BroadcastWeights`
  (in-process) and `services.wire.weight_registry.RayBroadcastWeights` publish like the others but
  are a `BroadcastSource`: a worker gets an offer (metadata) and receives the tensors straight into
  its engine, never as a whole state dict.
Versions only grow; a transport keeps the newest few and raises WeightVersionUnavailable for others.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # imported where tensors are converted: the job's driver only holds handles
    import torch

StateDict = Mapping[str, "np.ndarray | torch.Tensor"]


class WeightVersionUnavailable(KeyError):
    """The requested version is not (or no longer) held by the transport."""


@runtime_checkable
class WeightPublisher(Protocol):
    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Make `state_dict` (checkpoint names, full tensors) available as `version`."""

    def latest_version(self) -> int:
        """The newest version published so far (0 before the first)."""


@runtime_checkable
class WeightSource(Protocol):
    def latest_version(self) -> int:
        """The newest published version; 0 when nothing was published (the initial weights)."""

    def fetch(self, version: int) -> StateDict:
        """Full state dict (checkpoint names) of `version`; WeightVersionUnavailable if gone."""


@runtime_checkable
class BroadcastSource(Protocol):
    """A source whose tensors arrive by broadcast (services.wire.weight_broadcast), not by fetch."""

    def latest_version(self) -> int:
        """The newest published version; 0 when nothing was published (the initial weights)."""

    def offer(self, version: int):
        """The BroadcastOffer serving `version` or newer; WeightVersionUnavailable if none does."""


def to_numpy_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """CPU numpy copies (zero-copy reads from the Ray object store). numpy has no bfloat16: such
    tensors travel as float32 and the engine casts them back to its dtype."""
    import torch

    out: dict[str, np.ndarray] = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        out[name] = t.numpy()
    return out


class InProcessWeights:
    """Versions published by code in this process. Keeps the newest `keep_last` versions."""

    def __init__(self, keep_last: int = 2):
        self._keep_last = keep_last
        self._versions: dict[int, StateDict] = {}
        self._lock = threading.Lock()

    def publish(self, version: int, state_dict: StateDict) -> None:
        with self._lock:
            if self._versions and version <= max(self._versions):
                raise ValueError(f"version {version} is not newer than {max(self._versions)}")
            self._versions[version] = dict(state_dict)
            for old in sorted(self._versions)[:-self._keep_last]:
                del self._versions[old]

    def latest_version(self) -> int:
        with self._lock:
            return max(self._versions, default=0)

    def fetch(self, version: int) -> StateDict:
        with self._lock:
            if version not in self._versions:
                raise WeightVersionUnavailable(version)
            return self._versions[version]


class DirectoryWeights:
    """`root/v00000003/model.safetensors` etc. A version directory counts once it holds a
    `model.safetensors` (the writer creates it under a temporary name and renames it)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def version_dir(self, version: int) -> Path:
        return self.root / f"v{version:08d}"

    def latest_version(self) -> int:
        versions = [int(p.parent.name[1:]) for p in self.root.glob("v*/model.safetensors")
                    if p.parent.name[1:].isdigit()]
        return max(versions, default=0)

    def fetch(self, version: int) -> StateDict:
        from safetensors.torch import load_file

        path = self.version_dir(version) / "model.safetensors"
        if not path.is_file():
            raise WeightVersionUnavailable(version)
        return load_file(str(path))

    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        target = self.version_dir(version)
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / "model.safetensors.tmp"
        save_file({n: t.detach().cpu().contiguous() for n, t in state_dict.items()}, str(tmp))
        tmp.rename(target / "model.safetensors")  # atomic: readers never see a partial file
