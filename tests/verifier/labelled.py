"""The labelled sets in tests/verifier/cases/: loading, families, and accuracy of a grader on them.

    tune.jsonl     the part the graders were tuned against
    heldout.jsonl  written first and set apart: measured once, never tuned against

Each line: task, response, gold, optional question and extraction, expected (bool, labelled by
reasoning about the answer, not by running a tool), tag, source, and math_verify: what
math-verify 0.9.0 alone says on a math case (null elsewhere), recorded by record_math_verify.py.
Families: math (task "math"), bbh (logic:<BBH subset>), synlogic (logic:synlogic/<task>).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CASES_DIR = Path(__file__).resolve().parent / "cases"


@dataclass(frozen=True)
class LabelledCase:
    task: str
    response: str
    gold: str
    expected: bool
    tag: str
    source: str
    math_verify: bool | None = None
    question: str | None = None
    extraction: str | None = None

    @property
    def family(self) -> str:
        if self.task == "math":
            return "math"
        if self.task.startswith("logic:synlogic/"):
            return "synlogic"
        return "bbh"


def load(name: str) -> list[LabelledCase]:
    path = CASES_DIR / f"{name}.jsonl"
    return [LabelledCase(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def ours(case: LabelledCase, verify: Callable | None = None) -> bool:
    """Our verdict through the exported, bounded entry point."""
    if verify is None:
        from verifier import verify
    kwargs = {"question": case.question}
    if case.extraction:
        kwargs["extraction"] = case.extraction
    return verify(case.task, case.response, case.gold, **kwargs).correct


def accuracy(cases: list[LabelledCase], judge: Callable[[LabelledCase], bool]) -> tuple[float, list[LabelledCase]]:
    wrong = [c for c in cases if judge(c) != c.expected]
    return (1 - len(wrong) / len(cases) if cases else 1.0), wrong


def by_family(cases: list[LabelledCase]) -> dict[str, list[LabelledCase]]:
    out: dict[str, list[LabelledCase]] = {}
    for c in cases:
        out.setdefault(c.family, []).append(c)
    return out


def report(name: str) -> dict:
    """Accuracy per family, ours and (math) math-verify alone, with the cases we get wrong."""
    cases = load(name)
    result = {}
    for family, group in sorted(by_family(cases).items()):
        acc, wrong = accuracy(group, ours)
        row = {"cases": len(group), "ours": round(acc, 4), "wrong": [(c.tag, c.response[-60:], c.gold[:40]) for c in wrong]}
        if family == "math":
            row["math_verify"] = round(accuracy(group, lambda c: bool(c.math_verify))[0], 4)
        result[family] = row
    return result


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:] or ["tune"]:
        print(name, json.dumps(report(name), indent=1, ensure_ascii=False))
