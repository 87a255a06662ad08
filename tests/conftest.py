"""Shared fixtures: a real redis-server and a tiny local model, both built once per session.

Both are lazy: a test session that never asks for them starts nothing.
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.control import local_stack
from services.control.local_stack import ChildService


def start_redis(workdir: Path, port: int | None = None) -> ChildService:
    """A real, non-persistent redis-server (the one `simko train` starts), answering PING."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    return local_stack.start_redis(workdir, port=port)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private, non-persistent redis-server shared by the session (killed at teardown).
    Tests isolate themselves by using unique stream names."""
    service = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield service.url
    finally:
        service.proc.kill()
        service.proc.wait(timeout=10)


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator:
    """Start private redis-servers (e.g. to stop and restart one); all are killed at teardown."""
    services: list[ChildService] = []

    def start(port: int | None = None) -> tuple[int, subprocess.Popen]:
        port = port or local_stack.free_port()
        services.append(start_redis(tmp_path, port=port))
        return port, services[-1].proc

    yield start
    for service in services:
        service.proc.kill()
        service.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 model + tokenizer directory (services.models.tiny), built once."""
    from services.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", seed=0)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A private single-node Ray (not any running cluster), shut down at the end of the session.

    Ray 2.60 enables token auth: a random local token is written where scripts/env.sh points.
    """
    ray = pytest.importorskip("ray")
    local_stack.ensure_ray_auth_token()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield None
    finally:
        ray.shutdown()
