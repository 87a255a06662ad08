"""Verifier: math and logic answer checking (pure graders), a worker pool with hard deadlines and
a FastAPI service. Imports the wire (services.wire: Verdict) and itself only.

    verify(task, response, gold) -> Verdict     in-process grading (see verifier.tasks)
    python -m verifier.service                  the HTTP service (POST /v1/verify)
"""
from services.wire.verdicts import Verdict
from verifier.tasks import known_tasks, register_task, verify

__all__ = ["Verdict", "known_tasks", "register_task", "verify"]
