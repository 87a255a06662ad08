"""Typed verdicts: the one result type every grader, the pool, the service and the client share."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "no_answer", "timeout", "error"]
STATUSES: tuple[str, ...] = ("ok", "no_answer", "timeout", "error")

# How a grader finds the final answer (docs/verifier.md): "lenient" (the default) never denies a
# correct final answer for lacking a marker; "strict" counts only explicit markers (\boxed{},
# "the answer is", GSM8K "####", "Answer:" lines), for runs that reward the format a prompt asks for.
Extraction = Literal["lenient", "strict"]
EXTRACTIONS: tuple[str, ...] = ("lenient", "strict")
DEFAULT_EXTRACTION: Extraction = "lenient"


@dataclass(frozen=True)
class Verdict:
    """Outcome of grading one response against one gold answer.

    `status` says whether grading happened at all: "ok" means the answer was extracted and judged
    (`correct` may still be False); every other status carries reward 0. `detail` is an optional
    human-readable reason (hedged answer, pre-filter rule, worker crash, valid task names, ...).
    """

    correct: bool
    reward: float
    status: Status
    extracted: str | None
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}; valid: {STATUSES}")
        if self.status != "ok" and (self.correct or self.reward != 0.0):
            raise ValueError(f"a {self.status!r} verdict must have correct=False and reward 0")

    @classmethod
    def graded(cls, correct: bool, extracted: str | None, detail: str | None = None) -> Verdict:
        return cls(bool(correct), 1.0 if correct else 0.0, "ok", extracted, detail)

    @classmethod
    def failed(cls, status: Status, extracted: str | None = None, detail: str | None = None) -> Verdict:
        return cls(False, 0.0, status, extracted, detail)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        # Ignore keys a newer server may add, so old clients keep working ("extend, don't break").
        return cls(
            correct=bool(data["correct"]),
            reward=float(data["reward"]),
            status=data["status"],
            extracted=data.get("extracted"),
            detail=data.get("detail"),
        )
