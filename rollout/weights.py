"""Where rollout workers get newer policy weights from.

`WeightSource` is the one interface the worker sees. Implementations:
- `InProcessWeightSource`: a dict in this process (tests, single-process runs).
- `DirectoryWeightSource`: versioned safetensors exports on a shared filesystem (plain-process mode
  without Ray: the learner writes `v{version:08d}/model.safetensors`, atomically via rename).
- `rollout.weight_registry.RayWeightSource`: the Ray object store (the default in a cluster).
A GPU NCCL broadcast would be one more implementation of the same two methods.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

StateDict = Mapping[str, "np.ndarray | torch.Tensor"]


class WeightVersionUnavailable(KeyError):
    """The requested version is not (or no longer) held by the source."""


@runtime_checkable
class WeightSource(Protocol):
    def latest_version(self) -> int:
        """The newest published version; 0 when nothing was published (the initial weights)."""

    def fetch(self, version: int) -> StateDict:
        """Full state dict (checkpoint names) of `version`; WeightVersionUnavailable if gone."""


def to_numpy_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """CPU numpy copies (zero-copy in the Ray object store). numpy has no bfloat16: such tensors
    travel as float32 and the engine casts them back to its dtype."""
    out: dict[str, np.ndarray] = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        out[name] = t.numpy()
    return out


class InProcessWeightSource:
    """Versions published by code in this process. Keeps the newest `keep_last` versions."""

    def __init__(self, keep_last: int = 2):
        self._keep_last = keep_last
        self._versions: dict[int, StateDict] = {}
        self._lock = threading.Lock()

    def publish(self, version: int, state_dict: StateDict) -> None:
        with self._lock:
            if self._versions and version <= max(self._versions):
                raise ValueError(f"version {version} is not newer than {max(self._versions)}")
            self._versions[version] = state_dict
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


class DirectoryWeightSource:
    """`root/v00000003/model.safetensors` etc. A version directory counts once it holds a
    `model.safetensors` (writers create it under a temporary name and rename it)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def version_dir(root: str | Path, version: int) -> Path:
        return Path(root) / f"v{version:08d}"

    def latest_version(self) -> int:
        versions = [int(p.parent.name[1:]) for p in self.root.glob("v*/model.safetensors")
                    if p.parent.name[1:].isdigit()]
        return max(versions, default=0)

    def fetch(self, version: int) -> StateDict:
        from safetensors.torch import load_file

        path = self.version_dir(self.root, version) / "model.safetensors"
        if not path.is_file():
            raise WeightVersionUnavailable(version)
        return load_file(str(path))

    @classmethod
    def publish(cls, root: str | Path, version: int, state_dict: Mapping[str, torch.Tensor]) -> Path:
        from safetensors.torch import save_file

        target = cls.version_dir(root, version)
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / "model.safetensors.tmp"
        save_file({n: t.detach().cpu().contiguous() for n, t in state_dict.items()}, str(tmp))
        tmp.rename(target / "model.safetensors")  # atomic: readers never see a partial file
        return target
