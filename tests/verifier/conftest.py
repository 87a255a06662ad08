"""Fixtures: a real verifier service (uvicorn subprocess) on a free loopback port."""
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

DEADLINE_S = 2.0
MAX_ITEMS = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(port: int, **env_overrides: str) -> subprocess.Popen:
    env = dict(os.environ, SIMKO_VERIFIER_DEADLINE_S=str(DEADLINE_S), SIMKO_VERIFIER_MAX_ITEMS=str(MAX_ITEMS),
               SIMKO_VERIFIER_MAX_RESPONSE_CHARS="4000", SIMKO_VERIFIER_MAX_GOLD_CHARS="200", **env_overrides)
    return subprocess.Popen(
        [sys.executable, "-m", "verifier.service", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"verifier exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("verifier did not become healthy")


def stop_service(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def service_url():
    port = free_port()
    proc = start_service(port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url)
        yield url
    finally:
        stop_service(proc)
