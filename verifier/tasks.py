"""Task registry: task name -> pure grader `(response, gold, ctx) -> Verdict`, and the two entry points.

    verify(task, response, gold, *, question, extraction)   bounded: what callers use
        math (sympy can run for minutes on a hostile answer, in C code no signal interrupts) is
        graded in a grader process with a hard deadline (verifier.inprocess); every other task is
        a linear-time parser with length caps and runs right here.
    grade(task, response, gold, *, question, extraction)    unbounded, in this process: what the
        grader processes themselves run (and tests of a single grader)

Names: `math`; `logic` (generic final-answer match, kind inferred from the gold); `logic:<bbh subset>`
for the 27 BIG-Bench Hard subsets; `logic:synlogic/<task>` for SynLogic's tasks; `logic:<generator>`
for this project's synthetic tasks. A generator registers its checker with
`register_task("logic:<name>", grader)`, or, when its answers are of a standard kind,
`register_task("logic:<name>", final_answer_grader("number"))`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from services.wire.verdicts import DEFAULT_EXTRACTION, EXTRACTIONS, Extraction, Verdict
from verifier.context import Context
from verifier.graders import expression, logic, synlogic
from verifier.graders.math import grade_math

Grader = Callable[[str, str, Context], Verdict]

# Responses longer than this keep their tail, where the final answer is.
DEFAULT_MAX_RESPONSE_CHARS = 32_000
MAX_EXTRACTED_CHARS = 500
MAX_QUESTION_CHARS = 20_000

_REGISTRY: dict[str, Grader] = {}
# Tasks whose grader may run unboundedly (sympy) and that every grader process knows (registered at
# import): verify() sends these to a grader process.
_ISOLATED: set[str] = set()


def register_task(name: str, grader: Grader, *, replace: bool = False, isolate: bool = False) -> None:
    """Register `grader(response, gold, ctx)` under `name`. `isolate=True` (only for graders built
    into this package) makes verify() run it in a grader process with a deadline."""
    if name in _REGISTRY and not replace:
        raise ValueError(f"task {name!r} is already registered")
    if not (name == "math" or name == "logic" or name.startswith("logic:")):
        raise ValueError(f"task names are 'math', 'logic' or 'logic:<name>', got {name!r}")
    _REGISTRY[name] = grader
    if isolate:
        _ISOLATED.add(name)
    else:
        _ISOLATED.discard(name)  # a replaced grader lives in this process only


def known_tasks() -> list[str]:
    return sorted(_REGISTRY)


def get_grader(task: str) -> Grader | None:
    return _REGISTRY.get(task)


def is_isolated(task: str) -> bool:
    return task in _ISOLATED


def _invalid(task: str, response, gold, question, extraction) -> Verdict | None:
    if task not in _REGISTRY:
        return Verdict.failed("error", None, f"unknown task {task!r}; valid tasks: {', '.join(known_tasks())}")
    if not isinstance(response, str) or not isinstance(gold, str):
        return Verdict.failed("error", None, "response and gold must be strings")
    if question is not None and not isinstance(question, str):
        return Verdict.failed("error", None, "question must be a string")
    if extraction not in EXTRACTIONS:
        return Verdict.failed("error", None, f"unknown extraction policy {extraction!r}; valid: {', '.join(EXTRACTIONS)}")
    return None


def grade(task: str, response: str, gold: str, *, question: str | None = None,
          extraction: Extraction = DEFAULT_EXTRACTION,
          max_response_chars: int = DEFAULT_MAX_RESPONSE_CHARS) -> Verdict:
    """Grade one response in this process, with no deadline (see the module docstring)."""
    bad = _invalid(task, response, gold, question, extraction)
    if bad is not None:
        return bad
    if len(response) > max_response_chars:
        response = response[-max_response_chars:]
    ctx = Context(question[-MAX_QUESTION_CHARS:] if question else None, extraction)
    verdict = _REGISTRY[task](response, gold, ctx)
    if verdict.extracted is not None and len(verdict.extracted) > MAX_EXTRACTED_CHARS:
        # Keep verdicts (and HTTP replies) small even when a hostile answer is huge.
        verdict = replace(verdict, extracted=verdict.extracted[:MAX_EXTRACTED_CHARS] + "...")
    return verdict


def verify(task: str, response: str, gold: str, *, question: str | None = None,
           extraction: Extraction = DEFAULT_EXTRACTION,
           max_response_chars: int = DEFAULT_MAX_RESPONSE_CHARS) -> Verdict:
    """Grade one response; never hangs: isolated tasks get the grader-process deadline (timeout)."""
    bad = _invalid(task, response, gold, question, extraction)
    if bad is not None:
        return bad
    if task not in _ISOLATED:
        return grade(task, response, gold, question=question, extraction=extraction,
                     max_response_chars=max_response_chars)
    from verifier.inprocess import grade_bounded  # the pool (and its processes) only when needed

    return grade_bounded(task, response[-max_response_chars:], gold, question=question, extraction=extraction)


register_task("math", grade_math, isolate=True)
register_task("logic", logic.grade_generic)
for _subset, _kind in logic.BBH_KINDS.items():
    register_task(f"logic:{_subset}", logic.final_answer_grader(_kind))
for _name, _grader in expression.GRADERS.items():
    register_task(f"logic:{_name}", _grader)
for _name, _grader in synlogic.GRADERS.items():
    register_task(f"logic:synlogic/{_name}", _grader)


def _register_synthetic() -> None:
    # Imported here, after the registry exists: the synthetic suite imports verifier.graders.logic only.
    from verifier.synthetic.suite import CHECKERS

    for name, grader in CHECKERS.items():
        register_task(name, grader)


_register_synthetic()
