"""The `math` grader: extract the final answer, normalise it, decide equivalence with math-verify.

math-verify is the engine (symbolic/numeric equivalence, sets, intervals, matrices, percentages,
units). Around it: our own extraction (extract.py), rewrites for inputs it misreads (normalize.py),
a pre-filter for explosive inputs (guards.py), and a numeric re-check that rejects its known false
positives (1/2004! == 1/2006!, 1e-7 == 2e-7: both vanish at its fixed precision).
"""
from __future__ import annotations

import re

import sympy
from math_verify import grader as _mv_grader
from math_verify import parser as _mv_parser
from math_verify import parse as mv_parse
from math_verify import verify as mv_verify
from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

from verifier.extract import extract_math_answer, strip_gold
from verifier.guards import explosive_reason
from verifier.normalize import choice_letter, normalize_math, plain_text
from services.wire.verdicts import Verdict

# We pass timeout=None on purpose: math-verify's timeouts use signal.alarm, which fails off the
# main thread; our worker pool enforces the deadline instead. Silence its one-time warning about it.
_mv_grader.TIMEOUT_WARNING_SHOWN = True
_mv_parser.TIMEOUT_WARNING_SHOWN = True

_EXTRACTION = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
_CONJUNCTION_RE = re.compile(r"\s*(?:\\text\{\s*(?:and|or)\s*\}|\\(?:quad|qquad)|\b(?:and|or)\b)\s*")
_LATEX_CMD_RE = re.compile(r"\\[A-Za-z]+")
_TEXT_BODY_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
# Relative tolerance when math-verify says "equal": exact numbers must agree to 1e-10, numbers
# involving a decimal to 1e-4 (a 6-significant-digit float answer passes, 0.0001 vs 0.0002 does not).
_EXACT_RTOL = 1e-10
_FLOAT_RTOL = 1e-4


def grade_math(response: str, gold: str) -> Verdict:
    answer = extract_math_answer(response)
    if answer is None:
        return Verdict.failed("no_answer")
    gold_answer = strip_gold(gold)
    if _squash(answer) == _squash(gold_answer):
        return Verdict.graded(True, answer)
    letter = choice_letter(gold_answer)
    if letter is not None:
        return Verdict.graded(choice_letter(answer) == letter, answer)
    if _is_text(gold_answer) and plain_text(answer) == plain_text(gold_answer):
        return Verdict.graded(True, answer)
    pred_norm, gold_norm = _prepare(answer), _prepare(gold_answer)
    if pred_norm == gold_norm:
        return Verdict.graded(True, answer)
    reason = explosive_reason(pred_norm)
    if reason is not None:
        # Same outcome the pool deadline would give, without burning a worker for 5 s.
        return Verdict.failed("timeout", answer, f"pre-filter: {reason}")
    return Verdict.graded(math_equal(pred_norm, gold_norm), answer)


def math_equal(pred: str, gold: str) -> bool:
    """Equivalence of two normalised answer strings (math-verify plus the numeric re-check)."""
    gold_parsed = _parse(gold)
    pred_parsed = _parse(pred)
    if not gold_parsed or not pred_parsed:
        return False
    if not mv_verify(gold_parsed, pred_parsed, timeout_seconds=None):
        return False
    return not _numeric_false_positive(gold_parsed[0], pred_parsed[0])


def _parse(answer: str) -> list:
    return mv_parse("\\boxed{" + answer + "}", extraction_config=_EXTRACTION, parsing_timeout=None)


def _prepare(answer: str) -> str:
    s = normalize_math(answer)
    # "2 and 3", "x=1 \text{ or } x=2": multiple answers become a comma list (a set for math-verify).
    return _CONJUNCTION_RE.sub(", ", s).strip(" ,")


def _squash(s: str) -> str:
    return re.sub(r"\s+|\\[,;!]|\\left|\\right|\\displaystyle", "", s).replace("\\dfrac", "\\frac")


def _is_text(s: str) -> bool:
    """A word answer ('Monday', '\\text{east}'), as opposed to a formula with a few latex commands."""
    body = _TEXT_BODY_RE.sub(r" \1 ", s)
    body = _LATEX_CMD_RE.sub(" ", body)
    return re.search(r"[A-Za-z]{3,}", body) is not None


def _numeric_false_positive(gold, pred) -> bool:
    """True when two closed-form numbers math-verify called equal differ by a relative margin."""
    if not (isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr)):
        return False
    if gold.free_symbols or pred.free_symbols:
        return False
    # Percentages (x * UnevaluatedExpr(1/100)) compare by design against the bare number (9% == 9).
    if gold.has(sympy.UnevaluatedExpr) or pred.has(sympy.UnevaluatedExpr):
        return False
    try:
        g, p = sympy.N(gold, 30), sympy.N(pred, 30)
        if not (g.is_number and p.is_number):
            return False
        scale = max(abs(g), abs(p))
        if scale == 0:
            return False
        rtol = _FLOAT_RTOL if (gold.has(sympy.Float) or pred.has(sympy.Float)) else _EXACT_RTOL
        return bool(abs(g - p) / scale > rtol)
    except (ArithmeticError, TypeError, ValueError, AttributeError, RecursionError):
        # Could not evaluate to a number (e.g. a symbolic limit): keep math-verify's verdict.
        return False
