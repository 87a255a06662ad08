"""The shared shape of a synthetic problem, and the expression-tree helper the step-by-step
solutions of several generators use."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str  # the gold answer handed to the verifier
    task: str  # the verifier task that grades it
    solution: str  # a worked response ending in the committed answer

    def as_row(self, index: int, prefix: str) -> dict:
        return {"id": f"{prefix}-{index}", "prompt": self.prompt, "answer": self.answer, "task": self.task}


def check_count(count: int, **positive: int) -> None:
    """Validate a generator's count and its integer knobs once, loudly."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def boxed(answer: str) -> str:
    return f"\\boxed{{{answer}}}"
