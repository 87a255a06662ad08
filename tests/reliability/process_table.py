"""What a process started, found by walking the whole process table.

Checking an owner's children is not enough: an orphan is re-parented to init (or a subreaper) and
vanishes from the owner's tree. So the test tags the owner's environment with a fresh
SIMKO_OWNER_TAG, which every descendant inherits (Popen, multiprocessing spawn, Ray workers
started for an actor with runtime_env env_vars, exec'd programs), and looks the tag up in every
process's /proc/PID/environ. A program that rewrites its process title (redis-server) clobbers its
environ block, so the owner's descendants seen before the kill are followed too, by pid and start
time (a recycled pid is not a survivor).
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass

import psutil

TAG_ENV = "SIMKO_OWNER_TAG"


def new_tag() -> str:
    return uuid.uuid4().hex


def tagged_env(tag: str, base: dict[str, str] | None = None) -> dict[str, str]:
    return {**(os.environ if base is None else base), TAG_ENV: tag}


@dataclass(frozen=True)
class Found:
    pid: int
    ppid: int
    name: str
    cmdline: str
    rss_mb: float
    started: float = 0.0  # psutil create_time: with the pid, the identity of the process

    def __str__(self) -> str:
        return f"pid {self.pid} (ppid {self.ppid}, {self.rss_mb:.0f} MB) {self.name}: {self.cmdline[:160]}"


def tagged(tag: str, under: str | os.PathLike | None = None) -> list[Found]:
    """Every live (non-zombie) process whose environment carries SIMKO_OWNER_TAG=tag, or, with
    `under`, whose working directory lies under that folder (redis-server runs in its --dir: the
    way to find it once its owner, and so the owner's tree, is gone)."""
    found = []
    folder = os.path.realpath(under) if under is not None else None
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(TAG_ENV) != tag and not (folder and _is_under(proc.cwd(), folder)):
                continue
            found.append(_found(proc))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


def _found(proc: psutil.Process) -> Found:
    return Found(proc.pid, proc.ppid(), proc.name() or "", " ".join(proc.cmdline()),
                 proc.memory_info().rss / 2**20, proc.create_time())


def owned(tag: str, owner_pid: int) -> list[Found]:
    """The tagged processes plus every current descendant of the owner (tagged or not)."""
    found = {f.pid: f for f in tagged(tag)}
    try:
        for proc in psutil.Process(owner_pid).children(recursive=True):
            try:
                if proc.pid not in found and proc.status() != psutil.STATUS_ZOMBIE:
                    found[proc.pid] = _found(proc)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
    except psutil.NoSuchProcess:
        pass
    return list(found.values())


def still_running(known: list[Found]) -> list[Found]:
    left = []
    for f in known:
        try:
            proc = psutil.Process(f.pid)
            if proc.create_time() == f.started and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return left


def survivors(tag: str, within_s: float, known: list[Found] = (), under: str | os.PathLike | None = None) -> list[Found]:
    """Poll until no tagged process (see `tagged`) and none of `known` is left, or `within_s` has
    passed; what is still there."""
    deadline = time.monotonic() + within_s
    while (left := _union(tagged(tag, under), still_running(list(known)))) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _union(a: list[Found], b: list[Found]) -> list[Found]:
    seen = {f.pid for f in a}
    return a + [f for f in b if f.pid not in seen]


def kill_tagged(tag: str, known: list[Found] = (), under: str | os.PathLike | None = None) -> list[Found]:
    """SIGKILL whatever still carries the tag, or is one of `known` (test teardown: never leave
    processes behind)."""
    left = _union(tagged(tag, under), still_running(list(known)))
    for found in left:
        try:
            os.kill(found.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def roots(found: list[Found]) -> list[Found]:
    """The tagged processes whose parent is not tagged: the owners."""
    pids = {f.pid for f in found}
    return [f for f in found if f.ppid not in pids]
