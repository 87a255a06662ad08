"""The private infrastructure a local job needs: redis-server and the verifier service as child
processes on free loopback ports, started when no address is configured and stopped afterwards.

Used by `simko train` (and the tests): a job on one machine needs no manual set-up.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from services.wire.lifetime import wrap_argv

log = logging.getLogger("simko.local_stack")

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
    ready: Callable[[], bool] | None = None  # its readiness probe, until wait_ready() has seen it pass
    ready_timeout_s: float = 0.0

    def wait_ready(self) -> "ChildService":
        """Block until the probe passes; StackError (the child stopped) if it exits or times out."""
        if self.ready is not None:
            try:
                _wait_until(self.name, self.proc, self.log_path, self.ready, self.ready_timeout_s)
            except StackError:
                self.stop(grace_s=1)
                raise
            self.ready = None
        return self

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
    # A new session so stop() can signal the service and everything it forked (grader processes);
    # exec'd through services.wire.lifetime so it is SIGKILLed if we die without running stop()
    # (SIGKILL, OOM): the parent-death signal, set from this (the owner's main) thread.
    proc = subprocess.Popen(wrap_argv(argv), stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True,
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
                log_dir: Path | None = None, timeout_s: float = 15.0, wait: bool = True) -> ChildService:
    """A private redis-server; wait=False returns once it is spawned (call wait_ready() later)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis-server is not installed (scripts/setup.sh installs it with apt)")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no",
            "--dir", str(workdir), "--appendonly", "yes" if appendonly else "no"]
    proc, log_path = _spawn("redis", argv, log_dir)
    service = ChildService("redis-server", proc, log_path, f"redis://127.0.0.1:{port}/0",
                           ready=lambda: redis_ping(port), ready_timeout_s=timeout_s)
    return service.wait_ready() if wait else service


def start_verifier(*, port: int | None = None, workers: int = 2, log_dir: Path | None = None,
                   timeout_s: float = 90.0, env: dict | None = None, wait: bool = True) -> ChildService:
    """The verifier service; wait=False returns once it is spawned (call wait_ready() later)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "verifier.service", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]
    proc, log_path = _spawn("verifier", argv, log_dir, env)
    service = ChildService("verifier", proc, log_path, f"http://127.0.0.1:{port}",
                           ready=lambda: http_ok(port), ready_timeout_s=timeout_s)
    return service.wait_ready() if wait else service


class LocalStack(ExitStack):
    """Starts redis / the verifier when the job gives no address; stops them on exit (also on
    SIGTERM, which is turned into SystemExit so the `with` block unwinds, and SIGINT, which is
    KeyboardInterrupt). Should the owner die without unwinding (SIGKILL), the children's
    parent-death signal ends them (services/wire/lifetime.py).

    defer_ready: entering only spawns the services (both at once); wait_ready() then waits for
    them, so the caller can start something else meanwhile (run_job: Ray)."""

    def __init__(self, run_dir: Path, *, redis_url: str | None, verifier_url: str | None, verifier_workers: int = 2,
                 watch_s: float = 1.0, defer_ready: bool = False):
        super().__init__()
        self.run_dir = run_dir
        self.redis_url = redis_url
        self.verifier_url = verifier_url
        self.verifier_workers = verifier_workers
        self.services: dict[str, ChildService] = {}
        self.restarts: dict[str, int] = {}
        self._starters: dict[str, Callable[[], ChildService]] = {}
        self._watch_s = watch_s
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._defer_ready = defer_ready

    def __enter__(self) -> "LocalStack":
        super().__enter__()
        if threading_is_main():
            previous = signal.signal(signal.SIGTERM, _raise_system_exit)
            self.callback(signal.signal, signal.SIGTERM, previous)
        self.callback(self._stop_all)
        logs = self.run_dir / "logs"
        if self.redis_url is None:  # each on a port of its own, kept for its restarts
            self.redis_url = self._own("redis", lambda port=free_port(), wait=True: start_redis(
                self.run_dir / "redis", port=port, log_dir=logs, wait=wait)).url
        if self.verifier_url is None:
            self.verifier_url = self._own("verifier", lambda port=free_port(), wait=True: start_verifier(
                port=port, workers=self.verifier_workers, log_dir=logs, wait=wait)).url
        if not self._defer_ready:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Every service answers; then the watcher starts (a service that dies during start-up is
        a StackError, not something to restart)."""
        for service in self.services.values():
            service.wait_ready()
        if self.services and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="local-stack-watch", daemon=True)
            self._watcher.start()

    def _own(self, name: str, start: Callable[..., ChildService]) -> ChildService:
        self._starters[name] = start
        self.services[name] = start(wait=False)  # spawned now, waited for in wait_ready
        return self.services[name]

    def _watch(self) -> None:
        """Restart a service that died (killed, OOM) on its port, so the job's clients reconnect:
        the verifier comes back as it was; a private redis-server comes back empty (no persistence)
        and the prompt supply re-publishes what was lost (PromptSupply.recover_lost). The restarted
        child's parent-death signal is tied to this thread, which lives until the stack stops."""
        while not self._stopping.wait(self._watch_s):
            for name, service in list(self.services.items()):
                if service.proc.poll() is None or self._stopping.is_set():
                    continue
                log.warning("%s exited with code %s; restarting it (log: %s)", name, service.proc.returncode,
                            service.log_path)
                try:
                    self.services[name] = self._starters[name]()
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                except StackError as exc:  # e.g. the port was taken meanwhile: try again next round
                    log.error("could not restart %s: %s", name, exc)

    def _stop_all(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
        for service in reversed(list(self.services.values())):
            service.stop()


def threading_is_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_system_exit(signum, _frame):
    raise SystemExit(128 + signum)
