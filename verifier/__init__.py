"""Verifier: math and logic answer checking (pure graders), a worker pool with hard deadlines and
a FastAPI service. Imports the wire (services.wire: Verdict) and itself only.

    verify(task, response, gold, *, question=None, extraction="lenient") -> Verdict
        the bounded in-process entry point: never hangs (math runs in a grader process with the
        SIMKO_VERIFIER_DEADLINE_S deadline; logic tasks are linear-time parsers run in place)
    grade(...)                                   the same grading, unbounded, in this process
    python -m verifier.service                   the HTTP service (POST /v1/verify)

docs/verifier.md describes the tasks, the two extraction policies and which entry point is which.
"""
from services.wire.verdicts import Verdict
from verifier.tasks import grade, known_tasks, register_task, verify

__all__ = ["Verdict", "grade", "known_tasks", "register_task", "verify"]
