"""A pool of long-lived grader processes with a hard per-item deadline and a memory cap.

Why processes: sympy/latex parsing can loop or allocate without bound inside C code, where no
signal or thread can interrupt it (math-verify's signal.alarm timeouts also fail off the main
thread). Each worker grades one item at a time; the parent waits on the worker's pipe for at most
`deadline_s`, and on overrun SIGKILLs it and spawns a replacement. Only that item gets "timeout";
items on other workers are untouched. Workers are fresh interpreters (verifier/worker.py; forking a
process that runs an event loop and threads is unsafe, and multiprocessing 'spawn' re-imports the
caller's __main__) that pre-import the graders so per-item latency stays low.
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection

import psutil

from services.wire.lifetime import child_env
from services.wire.verdicts import DEFAULT_EXTRACTION, Extraction, Verdict
from verifier.worker import READY

log = logging.getLogger(__name__)

_MEMORY_CHECK_S = 0.1  # how often the parent samples a busy worker's resident memory


@dataclass(frozen=True)
class Item:
    task: str
    response: str
    gold: str
    question: str | None = None  # the prompt text, when the caller sends it
    extraction: Extraction = DEFAULT_EXTRACTION


class _Worker:
    """One grader process (`python -m verifier.worker`) and the parent's end of its socket."""

    def __init__(self, memory_mb: int, max_response_chars: int, start_timeout_s: float):
        self._memory_mb, self._max_chars = memory_mb, max_response_chars
        self._start_timeout_s = start_timeout_s
        self.process: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.ready = False
        self.items_done = 0

    def spawn(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        cmd = [sys.executable, "-m", "verifier.worker", "--fd", str(child_sock.fileno()),
               "--memory-mb", str(self._memory_mb), "--max-response-chars", str(self._max_chars)]
        # Single-threaded graders; a fixed hash seed makes sympy take the same simplification path
        # every time, so a given item always gets the same verdict (and the same timeout).
        # child_env: the worker sets the parent-death signal first thing (services/wire/lifetime.py),
        # so a SIGKILLed service takes its graders along, even one stuck in C code.
        env = child_env(dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0"))
        self.process = subprocess.Popen(cmd, pass_fds=(child_sock.fileno(),), env=env,
                                        stdin=subprocess.DEVNULL)
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.ready, self.items_done = False, 0

    def wait_ready(self) -> None:
        assert self.conn is not None and self.process is not None
        if self.ready:
            return
        if not self.conn.poll(self._start_timeout_s):
            self.kill()
            raise RuntimeError(f"grader worker did not start within {self._start_timeout_s} s")
        try:
            tag, _pid = self.conn.recv()
        except (EOFError, OSError):
            code = self.process.wait(timeout=5)
            self.kill()
            raise RuntimeError(f"grader worker died while starting (exit code {code})") from None
        if tag != READY:
            raise RuntimeError(f"grader worker sent {tag!r} instead of {READY!r}")
        self.ready = True

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()  # SIGKILL: a worker stuck in C code ignores anything gentler
            self.process.wait()
        if self.conn is not None:
            self.conn.close()
        self.process, self.conn, self.ready = None, None, False

    def rss_mb(self) -> float:
        try:
            return psutil.Process(self.pid).memory_info().rss / 2**20 if self.pid else 0.0
        except psutil.NoSuchProcess:  # it just exited; the pipe will report EOF
            return 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class GraderPool:
    """Grade items in worker processes; every item returns within `deadline_s` of dispatch.

    `grade` blocks (call it from threads); `grade_many` and `agrade_many` fan out over one thread per
    worker. Deadlines count from dispatch to a ready worker, so a queue of items never times out
    merely by waiting its turn.
    """

    def __init__(self, size: int = 2, *, deadline_s: float = 5.0, memory_mb: int = 2048,
                 max_response_chars: int = 32_000, recycle_after: int = 2_000,
                 start_timeout_s: float = 120.0):
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        if deadline_s <= 0:
            raise ValueError(f"deadline_s must be > 0, got {deadline_s}")
        self.size, self.deadline_s, self.recycle_after = size, deadline_s, recycle_after
        self.memory_mb = memory_mb
        self._workers = [_Worker(memory_mb, max_response_chars, start_timeout_s) for _ in range(size)]
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="grader-dispatch")
        # Every worker is started from this one thread, which lives until close(): the parent-death
        # signal fires when the *thread* that forked a worker exits, and `grade` may be called from
        # short-lived caller threads.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grader-spawn")
        self._lock = threading.Lock()
        self.restarts = 0
        self.timeouts = 0
        self.crashes = 0
        self._started = False
        self._closing = False  # close() has begun: nothing is (re)spawned or dispatched any more

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> GraderPool:
        """Spawn all workers (in parallel) and wait until each has imported the graders."""
        for w in self._workers:
            self._spawn(w)
        for w in self._workers:
            w.wait_ready()
            self._idle.put(w)
        self._started = True
        return self

    def close(self) -> None:
        # SIGKILL the graders first: a busy one would otherwise hold its dispatch thread (and so
        # shutdown()) until its deadline, and a stopping service must not wait that long.
        self._closing = True
        for w in self._workers:
            if w.alive():
                w.process.kill()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._spawner.shutdown(wait=True)
        for w in self._workers:
            w.kill()
        self._started = False

    def __enter__(self) -> GraderPool:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.pid is not None]

    def alive_workers(self) -> int:
        return sum(w.alive() for w in self._workers)

    # --- grading ----------------------------------------------------------------------------
    def grade(self, item: Item) -> Verdict:
        if not self._started:
            raise RuntimeError("GraderPool.start() was not called")
        worker = self._idle.get()
        try:
            return self._grade_on(worker, item)
        finally:
            self._idle.put(worker)

    def grade_many(self, items: Iterable[Item]) -> list[Verdict]:
        return list(self._executor.map(self.grade, items))

    async def agrade(self, item: Item) -> Verdict:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.grade, item)

    async def agrade_many(self, items: Iterable[Item]) -> list[Verdict]:
        return list(await asyncio.gather(*(self.agrade(it) for it in items)))

    def _wait(self, worker: _Worker) -> str:
        """Wait for the worker's answer: "answer", "timeout" or "memory".

        The memory cap is on resident memory: the parent samples it between short waits (and the
        worker checks its own peak after each item; RLIMIT_AS there is only a backstop).
        """
        assert worker.conn is not None
        deadline = time.monotonic() + self.deadline_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            if worker.conn.poll(min(remaining, _MEMORY_CHECK_S)):
                return "answer"
            if self.memory_mb > 0 and worker.rss_mb() > self.memory_mb:
                return "memory"

    def _spawn(self, worker: _Worker) -> None:
        if not self._closing:
            self._spawner.submit(worker.spawn).result()

    def _replace(self, worker: _Worker, why: str) -> None:
        worker.kill()
        self._spawn(worker)  # start now; readiness is awaited lazily at the next dispatch
        with self._lock:
            self.restarts += 1
        log.info("replaced grader worker (%s)", why)

    def _grade_on(self, worker: _Worker, item: Item, retry_dead: bool = True) -> Verdict:
        # A ready, idle worker never writes unprompted: a readable socket means EOF, i.e. it died
        # (possibly so recently that the process is not reaped yet).
        if self._closing:
            return Verdict.failed("error", None, "the grader pool is shutting down")
        if worker.process is None or not worker.alive() or (worker.ready and _readable(worker)):
            self._replace(worker, "found dead")
        elif worker.items_done >= self.recycle_after:
            self._replace(worker, "recycled")  # bounds growth of sympy/math-verify caches
        try:
            worker.wait_ready()
        except RuntimeError as err:
            self._spawn(worker)  # try again on the next item rather than losing a slot for good
            return Verdict.failed("error", None, str(err))
        assert worker.conn is not None
        try:
            worker.conn.send((item.task, item.response, item.gold, item.question, item.extraction))
        except (BrokenPipeError, ConnectionResetError, OSError):
            # The worker died before it got the item (killed between the liveness check and the
            # send): the item itself is innocent, so it gets one fresh worker.
            self._replace(worker, "dead at dispatch")
            if retry_dead:
                return self._grade_on(worker, item, retry_dead=False)
            return Verdict.failed("error", None, "grader worker died before grading")
        try:
            outcome = self._wait(worker)
            if outcome == "timeout":
                with self._lock:
                    self.timeouts += 1
                self._replace(worker, "deadline")
                return Verdict.failed("timeout", None, f"grading exceeded the {self.deadline_s:g} s deadline")
            if outcome == "memory":
                with self._lock:
                    self.crashes += 1
                self._replace(worker, "memory cap")
                return Verdict.failed("error", None, f"grader exceeded the {self.memory_mb} MB memory cap")
            verdict, keeps_running = worker.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            code = worker.exit_code()
            with self._lock:
                self.crashes += 1
            self._replace(worker, f"crashed, exit code {code}")
            return Verdict.failed("error", None, f"grader worker died while grading (exit code {code})")
        worker.items_done += 1
        if not keeps_running:  # e.g. it hit the memory cap and is exiting: replace it now
            self._replace(worker, "exiting after " + (verdict.detail or verdict.status))
        return verdict


def _readable(worker: _Worker) -> bool:
    try:
        return worker.conn is not None and worker.conn.poll(0)
    except (OSError, EOFError):
        return True


def grade_with_deadline(items: list[Item], **pool_kwargs) -> list[Verdict]:
    """Convenience for scripts: grade a list in a temporary pool."""
    with GraderPool(**pool_kwargs) as pool:
        return pool.grade_many(items)
