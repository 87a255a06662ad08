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
