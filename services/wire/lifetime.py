"""Process lifetime: children that die with the process that started them, however it dies.

A SIGTERM handler can stop children on a clean exit, but a SIGKILLed (or OOM-killed) owner runs no
code at all: its children are re-parented to init and keep their memory (a vLLM engine: a GPU's
worth). The one mechanism that covers SIGKILL is the kernel's parent-death signal, prctl
PR_SET_PDEATHSIG: the child asks to be sent SIGKILL when its parent goes away. It is kept across
exec, so it is set in the child, either by the child itself (`die_with_parent`, first thing in a
Python entry point) or by a tiny exec wrapper (`python -m services.wire.lifetime PID -- argv...`)
for programs we do not write (redis-server).

Two subtleties, both handled here:
- Race: the parent may die between fork and prctl; the child then already has a new parent and
  would never get the signal. The child therefore compares getppid() with the pid its parent
  announced (SIMKO_PARENT_PID / the wrapper's PID argument) and exits at once on a mismatch.
- Threads: Linux sends the signal when the *thread* that forked the child exits, not the process.
  Every spawner in this system forks from a thread that lives as long as the owner (a main thread,
  the grader pool's dispatch threads, a Ray actor's executor thread); a short-lived spawning thread
  would kill its children early (a loud failure, never an orphan), so do not add one.

Libraries that start Python children themselves (vLLM's EngineCore and worker processes, through
multiprocessing fork or spawn) are covered by `children_die_with_me`: an at-fork hook for forked
children and, for spawned interpreters, a `sitecustomize` on PYTHONPATH (services/wire/_boot/)
that applies the same prctl when SIMKO_DIE_WITH_PARENT=1 is in the environment.

Linux only; elsewhere these are no-ops (returning False) and cleanup handlers are all there is.
Standard library only: this module is also the exec wrapper, started before anything is imported.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PARENT_ENV = "SIMKO_PARENT_PID"  # set by the spawner for one child; consumed (removed) by it
INHERITED_ENV = "SIMKO_DIE_WITH_PARENT"  # "1": every Python descendant applies the parent-death signal
_PR_SET_PDEATHSIG = 1
BOOT_DIR = Path(__file__).resolve().parent / "_boot"  # holds the sitecustomize for spawned interpreters

try:  # resolved once, at import: the at-fork hook must not load libraries in a freshly forked child
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def set_pdeathsig(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` to this process when its parent (thread) exits."""
    if _prctl is None:
        return False
    if _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    return True


def die_with_parent(expected_parent: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Set the parent-death signal, then close the fork/prctl race: if the parent is already gone
    (getppid() is not the parent that spawned us) exit now, as the signal would have made us."""
    if expected_parent is None:
        announced = os.environ.pop(PARENT_ENV, "")  # popped: grandchildren have another parent
        expected_parent = int(announced) if announced.isdigit() else None
    if not set_pdeathsig(sig):
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(128 + int(sig))
    return True


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a Python child that calls `die_with_parent()` at start-up."""
    return {**(os.environ if base is None else base), PARENT_ENV: str(os.getpid())}


def wrap_argv(argv: list[str]) -> list[str]:
    """argv of a program (any binary) that dies with this process: exec'd through this module."""
    return [sys.executable, "-S", str(Path(__file__).resolve()), str(os.getpid()), "--", *argv]


_hooked = False


def children_die_with_me() -> None:
    """Make every Python child this process starts from now on die with it (and theirs with them):
    forked children through an at-fork hook, spawned interpreters through the `sitecustomize` in
    BOOT_DIR, which this puts first on PYTHONPATH (so descendants inherit it) with
    SIMKO_DIE_WITH_PARENT=1. Idempotent. For libraries that spawn processes we cannot start
    ourselves (vLLM's EngineCore and its workers)."""
    global _hooked
    if _prctl is None or _hooked:
        return
    os.environ[INHERITED_ENV] = "1"
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(BOOT_DIR) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(BOOT_DIR), *paths])
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    _hooked = True


_forking_pid = 0


def _before_fork() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _after_fork_in_child() -> None:
    die_with_parent(_forking_pid)


REAP_ENV = "SIMKO_REAP_TOKEN"  # inherited by everything the owner starts, however deep
_reaper: subprocess.Popen | None = None


def start_reaper() -> None:
    """A watchdog for processes the parent-death signal cannot reach: ones a library starts
    through a fork it does not let us hook (Ray's node processes, and theirs: a raylet's
    DashboardAgent outlived a SIGKILLed driver). A small child (its own session, so signals sent
    to our group spare it) follows our process tree while we live and, once we are gone, however
    we went, SIGKILLs what was in it; this process's environment also gets a fresh token, which
    every later descendant inherits, for those that leave the tree early (daemons). Idempotent;
    Linux only (it reads /proc)."""
    global _reaper
    if _reaper is not None or not os.path.isdir("/proc"):
        return
    import secrets

    token = secrets.token_hex(16)
    os.environ[REAP_ENV] = token
    _reaper = subprocess.Popen([sys.executable, "-S", str(Path(__file__).resolve()), "--reap", str(os.getpid()), token],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, env={k: v for k, v in os.environ.items() if k != REAP_ENV})


def _reap(owner: int, token: str, poll_s: float = 0.25) -> None:
    """The reaper's loop. While `owner` lives, remember its descendants (pid and start time: a
    process that sets its title, as Ray's and redis's do, overwrites its environment block, so the
    token alone does not find it); once the owner is gone, SIGKILL them, whatever carries the
    token, and what those started meanwhile (a few rounds: one may fork while we look)."""
    known: dict[int, str] = {}
    while os.getppid() == owner:
        known.update(_descendants(owner, _process_table()))
        time.sleep(poll_s)
    marker = f"{REAP_ENV}={token}".encode()
    for _ in range(5):
        table = _process_table()
        victims = {pid for pid, start in known.items() if table.get(pid, (None, None))[1] == start}
        victims |= {pid for pid in table if _carries(pid, marker)}
        for pid in list(victims):
            victims |= set(_descendants(pid, table))
        victims.discard(os.getpid())
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass  # gone meanwhile
        if not victims:
            return
        time.sleep(poll_s)


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time in clock ticks) of every live process, from /proc/PID/stat."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
        if fields[0] not in ("Z", "X"):
            table[int(entry)] = (int(fields[1]), fields[19])
    return table


def _descendants(root: int, table: dict[int, tuple[int, str]]) -> dict[int, str]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found[pid] = table[pid][1]
            todo.extend(children.get(pid, []))
    return found


def _carries(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:
        return False


def _exec_wrapper(argv: list[str]) -> None:
    """`lifetime.py PARENT_PID -- program args...`: set the parent-death signal, then exec."""
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        sys.exit("usage: lifetime.py PARENT_PID -- PROGRAM [ARGS...]")
    die_with_parent(int(argv[0]))
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--reap"]:
        _reap(int(sys.argv[2]), sys.argv[3])
    else:
        _exec_wrapper(sys.argv[1:])
