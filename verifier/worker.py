"""Grader worker process: `python -m verifier.worker --fd N [--memory-mb M] [--max-response-chars C]`.

Started by verifier.pool as a fresh interpreter (not multiprocessing spawn/fork): it does not
re-import the parent's __main__ and inherits no threads or event loop. It talks over an inherited
socket wrapped in a multiprocessing Connection: it sends ("ready", pid) once the graders are
imported, then for each (task, response, gold, question, extraction) it receives, one
(Verdict, keeps_running) pair. It runs verifier.tasks.grade (in-process, no deadline of its own):
the parent's deadline is the bound.
"""
from __future__ import annotations

import argparse
import os
import resource
from multiprocessing.connection import Connection

from services.wire.lifetime import die_with_parent

READY = "ready"


def serve(conn: Connection, max_response_chars: int, memory_mb: int = 0) -> None:
    from verifier.tasks import grade  # the heavy import (sympy, math-verify) happens once, here
    from services.wire.verdicts import Verdict

    grade("math", "\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}")  # warm lazy imports and caches
    conn.send((READY, os.getpid()))
    while True:
        try:
            task, response, gold, question, extraction = conn.recv()
        except EOFError:  # the parent closed the pipe: shut down
            return
        peak_before = _peak_rss_mb()
        try:
            verdict = grade(task, response, gold, question=question, extraction=extraction,
                            max_response_chars=max_response_chars)
        except MemoryError:
            # Near the cap the heap may be unusable: report, then exit so the parent replaces us.
            conn.send((Verdict.failed("error", None, "grader ran out of memory"), False))
            os._exit(3)
        except Exception as err:  # process boundary: a grader bug becomes an "error" verdict
            conn.send((Verdict.failed("error", None, f"grader raised {type(err).__name__}: {err}"[:500]), True))
            continue
        peak_mb = _peak_rss_mb()
        # ru_maxrss can start out as the launching parent's (vfork + exec keeps it): only a peak
        # that grew during this item counts.
        if memory_mb > 0 and peak_mb > memory_mb and peak_mb > peak_before:
            # A spike between the parent's memory samples: the verdict may rest on a swallowed
            # MemoryError, so report the cap instead, and exit to give the memory back.
            conn.send((Verdict.failed("error", None, f"grader exceeded the {memory_mb} MB memory cap"), False))
            os._exit(3)
        conn.send((verdict, True))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m verifier.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, default=0, help="resident memory cap; 0 = none")
    parser.add_argument("--max-response-chars", type=int, default=32_000)
    args = parser.parse_args(argv)
    die_with_parent()  # SIGKILLed with the pool's process, however that one ends (SIMKO_PARENT_PID)
    if args.memory_mb > 0:
        # The cap itself is enforced on resident memory (by the parent while it waits, and here after
        # each item). RLIMIT_AS is only a backstop against a single giant allocation, set well above
        # the cap: math-verify catches MemoryError internally and would turn it into "not equal".
        limit = (2 * args.memory_mb + 512) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    serve(Connection(args.fd), args.max_response_chars, args.memory_mb)


if __name__ == "__main__":
    main()
