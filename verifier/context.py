"""What a grader knows besides the response and the gold answer (both optional on the wire)."""
from __future__ import annotations

from dataclasses import dataclass

from services.wire.verdicts import DEFAULT_EXTRACTION, EXTRACTIONS, Extraction


@dataclass(frozen=True)
class Context:
    """`question`: the prompt text, when the caller sends it (BBH graders map an option's text back
    to its letter with it; SynLogic graders read the puzzle from it). `extraction`: the policy that
    decides which statements count as the final answer ("lenient" or "strict", docs/verifier.md)."""

    question: str | None = None
    extraction: Extraction = DEFAULT_EXTRACTION

    def __post_init__(self) -> None:
        if self.extraction not in EXTRACTIONS:
            raise ValueError(f"unknown extraction policy {self.extraction!r}; valid: {EXTRACTIONS}")
