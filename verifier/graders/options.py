"""What a BBH-style question tells the grader: its lettered options, its word list, its Dyck input.

    "...Options:\\n(A) Amy finished last\\n(B) Eli finished last"  -> options {A: ..., B: ...}
    "Sort the following words alphabetically: List: oven costume"   -> words {oven, costume}
    "Complete the rest of the sequence ... Input: [ { ["            -> dyck input "[{["

The question is optional on the wire; without it these are empty and graders fall back to letters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from verifier.normalize import plain_text

_OPTION_RE = re.compile(r"^\s*\(([A-Z])\)\s*(.+?)\s*$", re.MULTILINE)
_LIST_RE = re.compile(r"\bList:\s*(.+)", re.IGNORECASE)
_DYCK_INPUT_RE = re.compile(r"\bInput:\s*([()\[\]{}<>\s]+)")
_BRACKETS = set("()[]{}<>")
MAX_QUESTION_CHARS = 20_000


@dataclass(frozen=True)
class Question:
    options: dict[str, str] = field(default_factory=dict)  # letter -> option text, plain_text-normalised
    words: frozenset[str] = frozenset()
    dyck_input: str = ""

    def option_for(self, span: str) -> str | None:
        """The letter of the one option whose text the span states ("Eli finished last" -> B)."""
        if not self.options:
            return None
        text = f" {plain_text(span)} "
        hits = {letter: opt for letter, opt in self.options.items() if opt and f" {opt} " in text}
        # "the yellow ball" also contains "yellow": keep only the longest texts that matched.
        hits = {k: v for k, v in hits.items() if not any(v != w and v in w for w in hits.values())}
        return next(iter(hits)) if len(hits) == 1 else None


@lru_cache(maxsize=256)  # the n samples of one prompt share their question
def read_question(question: str | None) -> Question:
    if not question:
        return Question()
    question = question[-MAX_QUESTION_CHARS:]
    options = {m.group(1): plain_text(m.group(2)) for m in _OPTION_RE.finditer(question)}
    words = _LIST_RE.search(question)
    dyck = _DYCK_INPUT_RE.search(question)
    return Question(
        options=options,
        words=frozenset(plain_text(words.group(1)).split()) if words else frozenset(),
        dyck_input="".join(ch for ch in dyck.group(1) if ch in _BRACKETS) if dyck else "",
    )
