"""The bounded in-process entry point's engine: one shared grader pool per process, started lazily.

`verifier.verify()` sends the tasks that can run unboundedly (math: sympy) here. The pool is the
HTTP service's own (verifier.pool): long-lived grader processes, a hard per-item deadline, a
memory cap; a hostile item costs at most the deadline and gets a "timeout" verdict. It starts on the
first such call (about 2-3 s while the grader process imports sympy), is shared by all threads,
re-created in a forked child (a pool's pipes belong to the process that made it), and closed at
exit. Its size and limits come from the same SIMKO_VERIFIER_* settings as the service
(SIMKO_VERIFIER_INPROCESS_WORKERS, default 1: one item at a time, like a plain function call).
"""
from __future__ import annotations

import atexit
import os
import threading

from services.wire.verdicts import DEFAULT_EXTRACTION, Extraction, Verdict
from verifier.pool import GraderPool, Item

_lock = threading.Lock()
_pool: GraderPool | None = None
_owner_pid: int | None = None


def _settings() -> tuple[int, float, int]:
    from verifier.settings import VerifierSettings

    settings = VerifierSettings()
    workers = int(os.environ.get("SIMKO_VERIFIER_INPROCESS_WORKERS", "1"))
    return max(1, workers), settings.deadline_s, settings.memory_mb


def default_pool() -> GraderPool:
    """The process's shared pool, started on first use."""
    global _pool, _owner_pid
    with _lock:
        if _pool is None or _owner_pid != os.getpid():
            workers, deadline_s, memory_mb = _settings()
            _pool = GraderPool(workers, deadline_s=deadline_s, memory_mb=memory_mb).start()
            _owner_pid = os.getpid()
        return _pool


def close() -> None:
    """Stop the shared pool (also registered at exit); the next bounded call starts a new one."""
    global _pool, _owner_pid
    with _lock:
        if _pool is not None and _owner_pid == os.getpid():
            _pool.close()
        _pool, _owner_pid = None, None


atexit.register(close)


def grade_bounded(task: str, response: str, gold: str, *, question: str | None = None,
                  extraction: Extraction = DEFAULT_EXTRACTION) -> Verdict:
    return default_pool().grade(Item(task, response, gold, question, extraction))
