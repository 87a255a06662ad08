"""The `math` grader: extract the final answer, then decide equivalence, cheapest way first.

    answer  <- extract.extract_math_answer(response, policy)          (None: no_answer)
    gold    <- extract.strip_gold(gold)
    1. same text (modulo spacing), a choice letter, or the same words      -> decided
    2. both a number (exact Fractions: 42, -\\frac{3}{2}, 2^{10}, 300 nested parentheses; or as
       people write numbers: 1,000.99€, 2,74 $, 28 percent, \\text{5 apples})  -> decided, no sympy
    3. math-verify on normalised LaTeX (sets, intervals, matrices, expressions), behind the
       explosive-input pre-filter, with a numeric re-check of its "equal" (its fixed precision
       calls 1/2004! and 1/2006! equal)
    4. when math-verify says "not equal": the imaginary unit, relation-vs-set and numeric
       identity checks of graders/symbolic.py
"""
from __future__ import annotations

import re

import sympy
from math_verify import grader as _mv_grader
from math_verify import parser as _mv_parser
from math_verify import parse as mv_parse
from math_verify import verify as mv_verify
from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

from services.wire.verdicts import Verdict
from verifier import exact
from verifier.context import Context
from verifier.extract import extract_math_answer, strip_gold
from verifier.graders.symbolic import extra_equal, solved_form
from verifier.guards import explosive_reason
from verifier.normalize import choice_letter, clean_answer, normalize_math, plain_text, strip_choice_label
from verifier.numbers import Number, decorated_number, numbers_equal

# We pass timeout=None on purpose: math-verify's timeouts use signal.alarm, which fails off the
# main thread; our worker pool enforces the deadline instead. Silence its one-time warning about it.
_mv_grader.TIMEOUT_WARNING_SHOWN = True
_mv_parser.TIMEOUT_WARNING_SHOWN = True

_EXTRACTION = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
_CONJUNCTION_RE = re.compile(r"\s*(?:\\text\{\s*(?:and|or)\s*\}|\\(?:quad|qquad)|\b(?:and|or)\b)\s*")
_LATEX_CMD_RE = re.compile(r"\\[A-Za-z]+")
_ENV_RE = re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}")
_TEXT_BODY_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
# Relative tolerance when math-verify says "equal": exact numbers must agree to 1e-10, numbers
# involving a decimal to 1e-4 (a 6-significant-digit float answer passes, 0.0001 vs 0.0002 does not).
_EXACT_RTOL = 1e-10
_FLOAT_RTOL = 1e-4


def grade_math(response: str, gold: str, ctx: Context = Context()) -> Verdict:
    answer = extract_math_answer(response, ctx.extraction)
    if answer is None:
        return Verdict.failed("no_answer")
    return judge(answer, strip_gold(gold))


def judge(answer: str, gold: str) -> Verdict:
    """Verdict on an extracted answer against a stripped gold answer."""
    if _squash(answer) == _squash(gold):
        return Verdict.graded(True, answer)
    letter = choice_letter(gold)
    if letter is not None:
        said = choice_letter(answer)
        value = strip_choice_label(gold)
        if said is not None or value == gold:
            return Verdict.graded(said == letter, answer)
        # Gold "\textbf{(C)}\ 17" and the answer "17": the option's value is as good as its letter.
        return judge(answer, value)
    if _is_text(gold) and plain_text(answer) == plain_text(gold):
        return Verdict.graded(True, answer)
    pred, ref = clean_answer(strip_choice_label(answer)), clean_answer(gold)
    numeric = _numeric_verdict(pred, ref)
    if numeric is not None:
        return Verdict.graded(numeric, answer)
    pred_norm, gold_norm = _prepare(pred), _prepare(ref)
    if pred_norm == gold_norm:
        return Verdict.graded(True, answer)
    reason = explosive_reason(pred_norm)
    if reason is not None:
        # Same outcome the pool deadline would give, without burning a worker for 5 s.
        return Verdict.failed("timeout", answer, f"pre-filter: {reason}")
    return Verdict.graded(math_equal(pred_norm, gold_norm), answer)


def _number(s: str, *, decimal_comma: bool) -> Number | None:
    value = exact.try_evaluate(s)
    if value is None:
        s = normalize_math(s)  # 6.7e-5, unicode, number words
        value = exact.try_evaluate(s)
    if value is not None:
        return Number(value, False)
    return decorated_number(s, decimal_comma=decimal_comma)


def _numeric_verdict(pred: str, gold: str) -> bool | None:
    """Both sides one number: compare exactly (or as decimals). None when either is not a number."""
    gold_is_list = "," in gold and not _THOUSANDS_RE.fullmatch(gold.strip())
    # Gold answers follow their dataset's convention: a comma there separates answers ("-1,2").
    gold_value = _number(gold, decimal_comma=False)
    if gold_value is None:
        return None
    # "x = 5", "a + b = 13", "2^{10} = 1024" against a number: the value after the last "=".
    if "=" in pred and "," not in pred and not re.search(r"[<>]|\\[lg]eq?|\\neq", pred):
        pred = pred.rsplit("=", 1)[1]
    pred_value = _number(pred, decimal_comma=not gold_is_list)
    if pred_value is None:
        return None
    return numbers_equal(pred_value, gold_value, exact.equal)


def math_equal(pred: str, gold: str) -> bool:
    """Equivalence of two normalised answer strings (math-verify, its numeric re-check, and the
    checks math-verify does not make)."""
    gold_parsed = _parse(gold)
    pred_parsed = _parse(pred)
    if not gold_parsed or not pred_parsed:
        return False
    allow_relation = solved_form(pred_parsed[0])
    if mv_verify(gold_parsed, pred_parsed, timeout_seconds=None, allow_set_relation_comp=allow_relation):
        return not _numeric_false_positive(gold_parsed[0], pred_parsed[0])
    return extra_equal(gold_parsed[0], pred_parsed[0])


def _parse(answer: str) -> list:
    return mv_parse("\\boxed{" + answer + "}", extraction_config=_EXTRACTION, parsing_timeout=None)


def _prepare(answer: str) -> str:
    s = normalize_math(answer)
    # "2 and 3", "x=1 \text{ or } x=2": multiple answers become a comma list (a set for math-verify).
    return _CONJUNCTION_RE.sub(", ", s).strip(" ,")


def _squash(s: str) -> str:
    return re.sub(r"\s+|\\[,;!]|\\left|\\right|\\displaystyle", "", s).replace("\\dfrac", "\\frac")


def _is_text(s: str) -> bool:
    """A word answer ('Monday', '\\text{east}'), as opposed to a formula with a few latex commands
    (a matrix's "pmatrix" is not a word; signs and digits make it a formula)."""
    body = _ENV_RE.sub(" ", s)
    body = _TEXT_BODY_RE.sub(r" \1 ", body)
    body = _LATEX_CMD_RE.sub(" ", body)
    return re.search(r"[A-Za-z]{3,}", body) is not None and re.search(r"[\d+\-*/^=<>]", body) is None


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
