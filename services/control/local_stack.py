"""The private infrastructure a local job needs: redis-server and the verifier service as child
processes on free loopback ports, started when no address is configured and stopped afterwards.

Used by `simko train` (and the tests): a job on one machine needs no manual set-up.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A child service failed to start; the message says which and where its log is."""


def ensure_ray_auth_token() -> None:
    """Ray 2.60 enables token auth. scripts/env.sh points RAY_AUTH_TOKEN_PATH into the project cache
    (so nothing lands in $HOME); on a fresh checkout no token is there yet, and ray.init refuses a
    path that names a missing file instead of creating it. Write a random one for local clusters."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not path or os.environ.get("RAY_AUTH_TOKEN") or (os.path.isfile(path) and os.path.getsize(path)):
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ChildService:
    name: str
    proc: subprocess.Popen
    log_path: Path | None
    url: str

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the child's process group, SIGKILL what is left after `grace_s`."""
        if self.proc.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


def _spawn(name: str, argv: list[str], log_dir: Path | None, env: dict | None = None) -> tuple[subprocess.Popen, Path | None]:
    log_path = None
    stdout = subprocess.DEVNULL
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        stdout = open(log_path, "ab")
    # A new session so stop() can signal the service and everything it forked (grader processes).
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True,
                            env=env)
    if stdout is not subprocess.DEVNULL:
        stdout.close()
    return proc, log_path


def _wait_until(name: str, proc: subprocess.Popen, log_path: Path | None, ready, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{name} exited with code {proc.returncode} during start-up (log: {log_path})")
        if ready():
            return
        time.sleep(0.1)
    raise StackError(f"{name} did not become ready within {timeout_s:.0f}s (log: {log_path})")


def redis_ping(port: int, host: str = "127.0.0.1") -> bool:
    """Raw RESP PING (no client library needed for a liveness probe)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def http_ok(port: int, path: str = "/health", host: str = "127.0.0.1") -> bool:
    """Minimal HTTP/1.0 GET liveness probe: True on a 200 status line."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            return s.recv(32).split(b" ", 2)[1:2] == [b"200"]
    except (OSError, IndexError):
        return False


def start_redis(workdir: Path, *, port: int | None = None, appendonly: bool = False,
                log_dir: Path | None = None, timeout_s: float = 15.0) -> ChildService:
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis-server is not installed (scripts/setup.sh installs it with apt)")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no",
            "--dir", str(workdir), "--appendonly", "yes" if appendonly else "no"]
    proc, log_path = _spawn("redis", argv, log_dir)
    service = ChildService("redis", proc, log_path, f"redis://127.0.0.1:{port}/0")
    try:
        _wait_until("redis-server", proc, log_path, lambda: redis_ping(port), timeout_s)
    except StackError:
        service.stop(grace_s=1)
        raise
    return service


def start_verifier(*, port: int | None = None, workers: int = 2, log_dir: Path | None = None,
                   timeout_s: float = 90.0, env: dict | None = None) -> ChildService:
    port = port or free_port()
    argv = [sys.executable, "-m", "verifier.service", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]
    proc, log_path = _spawn("verifier", argv, log_dir, env)
    service = ChildService("verifier", proc, log_path, f"http://127.0.0.1:{port}")
    try:
        _wait_until("verifier", proc, log_path, lambda: http_ok(port), timeout_s)
    except StackError:
        service.stop(grace_s=1)
        raise
    return service


class LocalStack(ExitStack):
    """Starts redis / the verifier when the job gives no address; stops them on exit (also on
    SIGTERM, which is turned into SystemExit so the `with` block unwinds)."""

    def __init__(self, run_dir: Path, *, redis_url: str | None, verifier_url: str | None, verifier_workers: int = 2):
        super().__init__()
        self.run_dir = run_dir
        self.redis_url = redis_url
        self.verifier_url = verifier_url
        self.verifier_workers = verifier_workers
        self.services: list[ChildService] = []

    def __enter__(self) -> "LocalStack":
        super().__enter__()
        if threading_is_main():
            previous = signal.signal(signal.SIGTERM, _raise_system_exit)
            self.callback(signal.signal, signal.SIGTERM, previous)
        logs = self.run_dir / "logs"
        if self.redis_url is None:
            self.redis_url = self._own(start_redis(self.run_dir / "redis", log_dir=logs)).url
        if self.verifier_url is None:
            self.verifier_url = self._own(start_verifier(workers=self.verifier_workers, log_dir=logs)).url
        return self

    def _own(self, service: ChildService) -> ChildService:
        self.services.append(service)
        self.callback(service.stop)
        return service


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_system_exit(signum, _frame):
    raise SystemExit(128 + signum)
