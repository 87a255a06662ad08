"""Helpers shared by the rollout tests: a real verifier service subprocess."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.control.local_stack import free_port, start_verifier

REPO = Path(__file__).resolve().parents[2]
__all__ = ["REPO", "free_port", "verifier_service"]


@contextmanager
def verifier_service(timeout_s: float = 60.0) -> Iterator[str]:
    """`python -m verifier.service` (one grader) on a free port; yields its base URL once healthy."""
    service = start_verifier(workers=1, timeout_s=timeout_s)
    try:
        yield service.url
    finally:
        service.stop()
