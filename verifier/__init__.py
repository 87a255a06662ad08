"""Verifier: math and logic answer checking (pure graders), a worker pool with hard deadlines,
a FastAPI service and an async client. Imports nothing from services/, learner/ or rollout/."""
from verifier.tasks import known_tasks, register_task, verify
from verifier.types import Verdict

__all__ = ["Verdict", "known_tasks", "register_task", "verify"]
