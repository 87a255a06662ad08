"""`logic:countdown` (and `logic:game_of_24`): check an arithmetic expression without eval().

Gold is JSON: {"numbers": [3, 7, 8, 2], "target": 24, "use_all": true}. The response's committed
answer (see logic.committed_answer) is parsed by a small recursive-descent parser over + - * / and
parentheses with exact Fractions. Correct iff the number literals are exactly the given multiset
(every number once when use_all, else each at most once) and the value equals the target.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

from services.wire.verdicts import Verdict
from verifier.context import Context
from verifier.extract import answer_region
from verifier.graders.logic import committed_answer

MAX_EXPRESSION_CHARS = 200
MAX_DEPTH = 20
_TOKEN_RE = re.compile(r"\s*(?:(\d+)|(\*\*|.))")
_OPERATOR_ALIASES = {"×": "*", "x": "*", "X": "*", "·": "*", "÷": "/", "−": "-", "–": "-", "[": "(", "]": ")"}
BASIC_OPERATORS = frozenset("+-*/")


class ExpressionError(ValueError):
    """The answer is not a well-formed countdown expression."""


def tokenize(expr: str, operators: frozenset[str] = BASIC_OPERATORS) -> list[str]:
    """Tokens of an arithmetic answer; an operator outside `operators` ("**", or "%" where the
    puzzle does not allow it) makes the answer invalid."""
    expr = re.sub(r"\\times|\\cdot", "*", expr).replace("\\div", "/")
    expr = re.sub(r"\\(?:left|right)", "", expr).replace("\\(", "").replace("\\)", "")
    tokens = []
    for number, other in _TOKEN_RE.findall(expr.strip()):
        if number:
            tokens.append(number)
        elif other.strip():
            tok = _OPERATOR_ALIASES.get(other, other)
            if tok not in operators and tok not in "()":
                raise ExpressionError(f"unexpected character {other!r}")
            tokens.append(tok)
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)* ; term := atom (('*'|'/'|'%') atom)* ; atom := INT | '(' expr ')'."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.numbers = tokens, 0, []

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ExpressionError("expression ends early")
        self.pos += 1
        return tok

    def expr(self, depth: int) -> Fraction:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            op, rhs = self.take(), self.term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self, depth: int) -> Fraction:
        value = self.atom(depth)
        while self.peek() in ("*", "/", "%"):
            op, rhs = self.take(), self.atom(depth)
            if op in "/%" and rhs == 0:
                raise ExpressionError("division by zero")
            value = value * rhs if op == "*" else value / rhs if op == "/" else value % rhs
        return value

    def atom(self, depth: int) -> Fraction:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"parentheses nested deeper than {MAX_DEPTH}")
        tok = self.take()
        if tok == "(":
            value = self.expr(depth + 1)
            if self.take() != ")":
                raise ExpressionError("unbalanced parentheses")
            return value
        if tok.isdigit():
            self.numbers.append(int(tok))
            return Fraction(int(tok))
        raise ExpressionError(f"unexpected {tok!r}")  # unary minus is not a countdown operation


def evaluate(expr: str, operators: frozenset[str] = BASIC_OPERATORS) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the number literals it uses, in order. Exact
    Fractions stand in for Python's float division: 4 / (1 - 5 / 6) is 24, as it is up to rounding."""
    if len(expr) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    parser = _Parser(tokenize(expr, operators))
    value = parser.expr(0)
    if parser.peek() is not None:
        raise ExpressionError(f"unexpected {parser.peek()!r}")
    return value, parser.numbers


def expression_part(span: str) -> str:
    span = span.strip().strip("$").strip()
    # "(8 - 2) * 4 = 24" or "24 = (8 - 2) * 4": keep the side that is not just the target.
    sides = [s.strip() for s in span.split("=") if s.strip()]
    if len(sides) > 1:
        sides = [s for s in sides if not re.fullmatch(r"-?\d+", s)] or sides
    return sides[0] if sides else span


def check_expression(span: str, numbers: Counter, target: Fraction, *, use_all: bool = True,
                     operators: frozenset[str] = BASIC_OPERATORS) -> Verdict:
    """Verdict on one committed expression: well formed, the right numbers, the target value."""
    try:
        value, used = evaluate(expression_part(span), operators)
    except ExpressionError as err:
        return Verdict.graded(False, span, f"invalid expression: {err}")
    used_count = Counter(used)
    if use_all and used_count != numbers:
        return Verdict.graded(False, span, f"uses {sorted(used)}, must use exactly {sorted(numbers.elements())}")
    if not use_all and used_count - numbers:
        return Verdict.graded(False, span, f"uses numbers not available: {sorted((used_count - numbers).elements())}")
    if value != target:
        return Verdict.graded(False, span, f"evaluates to {value}, target {target}")
    return Verdict.graded(True, span)


def grade_countdown(response: str, gold: str, ctx: Context = Context(), default_target: int | None = None) -> Verdict:
    try:
        spec = json.loads(gold)
        numbers = Counter(int(n) for n in spec["numbers"])
        target = Fraction(spec.get("target", default_target))
        use_all = bool(spec.get("use_all", True))
    except (ValueError, KeyError, TypeError) as err:
        return Verdict.failed("error", None, f"gold must be JSON {{'numbers': [...], 'target': N}}: {err}")
    span = committed_answer(answer_region(response))
    if span is None:
        return Verdict.failed("no_answer")
    return check_expression(span, numbers, target, use_all=use_all)


def game_of_24(response: str, gold: str, ctx: Context = Context()) -> Verdict:
    return grade_countdown(response, gold, ctx, default_target=24)


GRADERS: dict[str, Callable[..., Verdict]] = {
    "countdown": grade_countdown,
    "game_of_24": game_of_24,
}
