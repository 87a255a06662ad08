"""Shared fixtures: a real redis-server and a tiny local model, both built once per session.

Both are lazy: a test session that never asks for them starts nothing.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_redis(port: int, proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"redis-server on port {port} did not answer PING within {timeout_s}s")


def start_redis(port: int, workdir: Path) -> subprocess.Popen:
    """A real, non-persistent redis-server on `port`, answering PING when this returns."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_redis(port, proc)
    except (RuntimeError, TimeoutError):
        proc.kill()
        raise
    return proc


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private, non-persistent redis-server shared by the session (killed at teardown).
    Tests isolate themselves by using unique stream names."""
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator:
    """Start private redis-servers (e.g. to stop and restart one); all are killed at teardown."""
    procs: list[subprocess.Popen] = []

    def start(port: int | None = None) -> tuple[int, subprocess.Popen]:
        port = port or free_port()
        procs.append(start_redis(port, tmp_path))
        return port, procs[-1]

    yield start
    for p in procs:
        p.kill()
        p.wait(timeout=10)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 model + tokenizer directory (services.tiny_model), built once."""
    from services.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", seed=0)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A private single-node Ray (not any running cluster), shut down at the end of the session.

    Ray 2.60 enables token auth: a random local token is written where scripts/env.sh points.
    """
    ray = pytest.importorskip("ray")
    from services.local_stack import ensure_ray_auth_token

    ensure_ray_auth_token()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield None
    finally:
        ray.shutdown()
