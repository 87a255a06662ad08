"""Weight transports: in-process, directory, and the Ray registry (real Ray object store)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from services.wire.weights import (DirectoryWeights, InProcessWeights, WeightPublisher, WeightSource,
                                   WeightVersionUnavailable, to_numpy_state_dict)


def state(v: float) -> dict[str, torch.Tensor]:
    return {"a.weight": torch.full((2, 3), v), "b.bias": torch.full((3,), v, dtype=torch.bfloat16)}


def test_numpy_state_dict_casts_bf16() -> None:
    sd = to_numpy_state_dict(state(1.5))
    assert sd["a.weight"].dtype == np.float32 and sd["b.bias"].dtype == np.float32
    assert float(sd["b.bias"][0]) == 1.5


def test_in_process_source_keeps_last_versions() -> None:
    src = InProcessWeights(keep_last=2)
    assert isinstance(src, WeightSource) and isinstance(src, WeightPublisher) and src.latest_version() == 0
    for v in (1, 2, 3):
        src.publish(v, state(v))
    assert src.latest_version() == 3
    assert float(src.fetch(2)["a.weight"][0, 0]) == 2
    with pytest.raises(WeightVersionUnavailable):
        src.fetch(1)
    with pytest.raises(ValueError, match="not newer"):
        src.publish(3, state(0))


def test_directory_source(tmp_path) -> None:
    src = DirectoryWeights(tmp_path)
    assert src.latest_version() == 0 and isinstance(src, WeightPublisher)
    DirectoryWeights(tmp_path).publish(4, state(4.0))  # e.g. the learner's side of a shared filesystem
    src.version_dir(9).mkdir()  # a half-written version does not count
    assert src.latest_version() == 4
    assert torch.equal(src.fetch(4)["a.weight"], state(4.0)["a.weight"])
    with pytest.raises(WeightVersionUnavailable):
        src.fetch(9)


@pytest.mark.slow
def test_ray_registry_roundtrip(ray_local) -> None:
    import ray

    from services.wire.weight_registry import RayWeights, kill_registry

    publisher = RayWeights("job-w")
    source = RayWeights("job-w")  # the same named registry actor
    assert source.latest_version() == 0
    for v in (1, 2, 3):
        publisher.publish(v, state(float(v)))
    assert source.latest_version() == 3
    got = source.fetch(3)
    assert isinstance(got["a.weight"], np.ndarray) and float(got["a.weight"][0, 0]) == 3.0
    with pytest.raises(WeightVersionUnavailable):
        source.fetch(1)
    with pytest.raises(ray.exceptions.RayTaskError, match="not newer"):
        publisher.publish(2, state(0.0))
    kill_registry("job-w")
