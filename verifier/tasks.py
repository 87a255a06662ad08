"""Task registry: task name -> pure grader `(response, gold) -> Verdict`, and the `verify` entry point.

Names: `math`; `logic` (generic final-answer match, kind inferred from the gold); `logic:<bbh subset>`
for the 27 BIG-Bench Hard subsets; `logic:<generator>` for this project's synthetic tasks. A generator
registers its checker with `register_task("logic:<name>", grader)`, or, when its answers are of a
standard kind, `register_task("logic:<name>", final_answer_grader("number"))`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from verifier.graders import expression, logic
from verifier.graders.math import grade_math
from services.wire.verdicts import Verdict

Grader = Callable[[str, str], Verdict]

# Responses longer than this keep their tail, where the final answer is.
DEFAULT_MAX_RESPONSE_CHARS = 32_000
MAX_EXTRACTED_CHARS = 500

_REGISTRY: dict[str, Grader] = {}


def register_task(name: str, grader: Grader, *, replace: bool = False) -> None:
    if name in _REGISTRY and not replace:
        raise ValueError(f"task {name!r} is already registered")
    if not (name == "math" or name == "logic" or name.startswith("logic:")):
        raise ValueError(f"task names are 'math', 'logic' or 'logic:<name>', got {name!r}")
    _REGISTRY[name] = grader


def known_tasks() -> list[str]:
    return sorted(_REGISTRY)


def get_grader(task: str) -> Grader | None:
    return _REGISTRY.get(task)


def verify(task: str, response: str, gold: str, *, max_response_chars: int = DEFAULT_MAX_RESPONSE_CHARS) -> Verdict:
    """Grade one response in-process (no pool, no deadline: callers that need one use the pool)."""
    grader = _REGISTRY.get(task)
    if grader is None:
        return Verdict.failed("error", None, f"unknown task {task!r}; valid tasks: {', '.join(known_tasks())}")
    if not isinstance(response, str) or not isinstance(gold, str):
        return Verdict.failed("error", None, "response and gold must be strings")
    if len(response) > max_response_chars:
        response = response[-max_response_chars:]
    verdict = grader(response, gold)
    if verdict.extracted is not None and len(verdict.extracted) > MAX_EXTRACTED_CHARS:
        # Keep verdicts (and HTTP replies) small even when a hostile answer is huge.
        verdict = replace(verdict, extracted=verdict.extracted[:MAX_EXTRACTED_CHARS] + "...")
    return verdict


register_task("math", grade_math)
register_task("logic", logic.grade_generic)
for _subset, _kind in logic.BBH_KINDS.items():
    register_task(f"logic:{_subset}", logic.final_answer_grader(_kind))
for _name, _grader in expression.GRADERS.items():
    register_task(f"logic:{_name}", _grader)


def _register_synthetic() -> None:
    # Imported here, after the registry exists: the synthetic suite imports verifier.graders.logic only.
    from verifier.synthetic.suite import CHECKERS

    for name, grader in CHECKERS.items():
        register_task(name, grader)


_register_synthetic()
