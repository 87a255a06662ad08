"""A labelled set of (response, gold, expected) math cases, and accuracy of a grader on it.

It mixes ordinary equivalent / non-equivalent forms (where math-verify is already right) with the
known misses and false positives from math-verify's public issue list, so the comparison shows both
that we fixed those and that we did not break the rest. Test data, kept out of the product package; used by tests/verifier and bench/verifier_service.py.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from math_verify import parse, verify

from verifier.tasks import verify as our_verify


@dataclass(frozen=True)
class Case:
    response: str
    gold: str
    expected: bool
    tag: str


def _b(ans: str) -> str:
    return f"Let me work it out step by step. So the final answer is $\\boxed{{{ans}}}$."


_ROWS: list[tuple[str, str, bool, str]] = [
    # --- ordinary forms (math-verify alone handles these) ---
    (_b("\\frac{1}{2}"), "0.5", True, "fraction/decimal"),
    (_b("0.5"), "\\frac{1}{2}", True, "fraction/decimal"),
    (_b("\\dfrac{3}{4}"), "\\frac34", True, "fraction"),
    (_b("2\\sqrt{2}"), "\\sqrt{8}", True, "symbolic"),
    (_b("\\frac{\\sqrt{3}}{2}"), "\\frac{1}{2}\\sqrt{3}", True, "symbolic"),
    (_b("x^2+2x+1"), "(x+1)^2", True, "symbolic"),
    (_b("\\{1,2,3\\}"), "\\{3,2,1\\}", True, "set"),
    (_b("2, 3"), "3, 2", True, "multiple answers"),
    (_b("[1,2)"), "[1,2)", True, "interval"),
    (_b("(1,2]"), "[1,2)", False, "interval"),
    (_b("(-\\infty, 3]"), "(-\\infty,3]", True, "interval"),
    (_b("\\begin{pmatrix}1\\\\2\\end{pmatrix}"), "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True, "matrix"),
    (_b("\\begin{pmatrix}1\\\\3\\end{pmatrix}"), "\\begin{pmatrix}1\\\\2\\end{pmatrix}", False, "matrix"),
    (_b("50\\%"), "50", True, "percent"),
    (_b("30^\\circ"), "30", True, "degrees"),
    (_b("5\\text{ cm}"), "5", True, "units"),
    (_b("x=2"), "2", True, "equation"),
    (_b("3"), "2", False, "wrong number"),
    (_b("\\frac{1}{3}"), "\\frac{1}{4}", False, "wrong fraction"),
    (_b("\\sqrt{2}"), "\\sqrt{3}", False, "wrong symbolic"),
    (_b("-5"), "5", False, "sign"),
    (_b("\\pi"), "3.14159", False, "float precision"),
    (_b("\\frac{1}{3}"), "0.333333", True, "float precision"),
    ("Natalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.\n#### 72", "72", True, "gsm8k"),
    ("She has 1,000 dollars left.\n#### 1,000", "1000", True, "gsm8k thousands"),
    ("The answer is $\\frac{7}{2}$.", "3.5", True, "answer is"),
    ("Answer: 12", "12", True, "answer line"),
    ("We get \\boxed{4} at first, but correcting the error gives \\boxed{5}.", "5", True, "last boxed"),
    ("I computed \\boxed{5} earlier... final: \\boxed{4}", "5", False, "last boxed"),
    (_b("2x+1"), "2x-1", False, "symbolic sign"),
    (_b("\\text{(B)}"), "B", True, "choice"),
    # --- known misses: scientific notation ---
    (_b("6.7e-5"), "6.7\\times10^{-5}", True, "scientific notation"),
    (_b("1.2E3"), "1200", True, "scientific notation"),
    (_b("3e8"), "300000000", True, "scientific notation"),
    (_b("6.7e-5"), "6.7\\times10^{-4}", False, "scientific notation"),
    # --- known misses: unicode math ---
    (_b("x²+1"), "x^2+1", True, "unicode"),
    (_b("√2"), "\\sqrt{2}", True, "unicode"),
    (_b("½"), "\\frac12", True, "unicode"),
    (_b("2½"), "\\frac52", True, "unicode"),
    (_b("１２"), "12", True, "unicode full-width"),
    (_b("3π"), "3\\pi", True, "unicode"),
    (_b("x³"), "x^2", False, "unicode"),
    (_b("√3"), "\\sqrt{2}", False, "unicode"),
    (_b("−4"), "-4", True, "unicode minus"),
    (_b("45°"), "45", True, "unicode degree"),
    # --- known misses: number words ---
    ("The answer is five.", "5", True, "number words"),
    ("The answer is twenty-one.", "21", True, "number words"),
    ("The answer is one hundred and five.", "105", True, "number words"),
    ("The answer is two thirds.", "\\frac{2}{3}", True, "number words"),
    ("The answer is six.", "5", False, "number words"),
    # --- known misses: choices, empty set, repeating decimals, frac over one ---
    (_b("\\textbf{(C)}"), "C", True, "textbf choice"),
    (_b("\\textbf{(C) } 12"), "C", True, "textbf choice"),
    (_b("\\textbf{(D)}"), "C", False, "textbf choice"),
    (_b("\\varnothing"), "\\emptyset", True, "empty set"),
    (_b("\\emptyset"), "\\varnothing", True, "empty set"),
    (_b("\\varnothing"), "\\{1\\}", False, "empty set"),
    (_b("0.\\overline{3}"), "\\frac{1}{3}", True, "repeating decimal"),
    (_b("0.1\\overline{6}"), "\\frac{1}{6}", True, "repeating decimal"),
    (_b("1.\\overline{142857}"), "\\frac{8}{7}", True, "repeating decimal"),
    (_b("0.\\overline{3}"), "\\frac{1}{4}", False, "repeating decimal"),
    (_b("\\frac{x}{1}"), "x", True, "frac over one"),
    (_b("\\frac{2y}{1}"), "2y", True, "frac over one"),
    # --- text answers ---
    (_b("\\text{Monday}"), "Monday", True, "text"),
    (_b("\\text{east}"), "\\text{East}", True, "text"),
    (_b("\\text{Tuesday}"), "Monday", False, "text"),
    ("The answer is 18 dollars.", "18", True, "units words"),
    # --- known false positives ---
    (_b("\\frac{1}{2004!}"), "\\frac{1}{2006!}", False, "false positive"),
    (_b("1-\\frac{1}{e}"), "1+\\frac{1}{e}", False, "false positive"),
    (_b("1e-7"), "2\\times10^{-7}", False, "false positive"),
    (_b("0.0000001"), "0.0000002", False, "false positive"),
    (_b("\\frac{1}{10^{9}}"), "\\frac{1}{10^{10}}", False, "false positive"),
    (_b("\\frac{1}{2^{100}}"), "\\frac{1}{2^{100}}", True, "tiny exact"),
    # --- multiple answers ---
    (_b("3 \\text{ and } 2"), "2, 3", True, "multiple answers"),
    (_b("x=2 \\text{ or } x=3"), "2, 3", True, "multiple answers"),
    (_b("2, 4"), "2, 3", False, "multiple answers"),
    # --- no answer ---
    ("I am not sure how to solve this problem, it is hard.", "5", False, "no answer"),
]

CASES: list[Case] = [Case(*row) for row in _ROWS]


def mathverify_alone(response: str, gold: str) -> bool:
    """math-verify used as its README shows (gold wrapped in $...$), no pre/post-processing."""
    gold_text = gold if "$" in gold or "\\boxed" in gold else f"${gold}$"
    return bool(verify(parse(gold_text, parsing_timeout=None), parse(response, parsing_timeout=None),
                       timeout_seconds=None))


def ours(response: str, gold: str) -> bool:
    return our_verify("math", response, gold).correct


def accuracy(grade: Callable[[str, str], bool], cases: list[Case] = CASES) -> tuple[float, list[Case]]:
    """Fraction of cases graded as labelled, and the cases graded wrongly."""
    wrong = [c for c in cases if grade(c.response, c.gold) != c.expected]
    return 1 - len(wrong) / len(cases), wrong
