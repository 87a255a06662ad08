"""Exact arithmetic on small LaTeX answers, without sympy: the cheap path of the math grader.

Most answers are numbers: `42`, `-\\frac{3}{2}`, `0.75`, `2^{10}`, `\\sqrt{16}`. Evaluating them with
Fractions takes microseconds, never hangs, and is exact, where sympy takes milliseconds (and a deeply
nested but trivially small answer such as 300 nested parentheses or 100 nested fractions takes
seconds or times out). The grammar is deliberately narrow; anything outside it raises NotExact and
the caller falls back to the symbolic path.

    tokens  <- numbers, + - * / ^ ( ) { }, \\frac \\dfrac \\tfrac, \\sqrt, \\cdot \\times \\div, \\left \\right
    infix   <- \\frac{A}{B} becomes ((A)/(B)); \\sqrt{A} a prefix function; implicit products inserted
    value   <- shunting-yard with explicit stacks (no recursion, so nesting depth costs nothing)

Values are Fractions; a decimal literal marks the result inexact (compare it with a tolerance, not ==).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

MAX_TOKENS = 6_000
MAX_BITS = 20_000  # |numerator| and denominator of every intermediate value (about 6,000 digits)
MAX_EXPONENT = 4_096

_TOKEN_RE = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|(\\[A-Za-z]+)|(\S))")
_COMMANDS = {"\\cdot": "*", "\\times": "*", "\\div": "/"}
_FRACS = {"\\frac", "\\dfrac", "\\tfrac"}
_IGNORED = {"\\left", "\\right", "\\displaystyle", "\\!", "\\,"}


class NotExact(ValueError):
    """The answer is outside the exact grammar (symbols, functions, sets, ...)."""


@dataclass(frozen=True)
class Exact:
    value: Fraction
    inexact: bool  # a decimal literal took part: compare with a tolerance


def _lex(text: str) -> list[str]:
    out: list[str] = []
    for number, command, other in _TOKEN_RE.findall(text):
        if number:
            out.append(number)
        elif command:
            if command in _IGNORED:
                continue
            out.append(_COMMANDS.get(command, command))
        elif other in "+-*/^(){}":
            out.append(other)
        else:
            raise NotExact(f"unsupported character {other!r}")
        if len(out) > MAX_TOKENS:
            raise NotExact("too many tokens")
    return out


def _infix(tokens: list[str]) -> list[str]:
    """LaTeX structure -> plain infix tokens: fractions become divisions, braces become parens."""
    out: list[str] = []
    groups: list[str] = []  # what each open brace closes: "num", "den", "sqrt" or "plain"
    expect: str | None = None  # "num" after \frac, "den" after its numerator, "sqrt" after \sqrt
    for tok in tokens:
        if expect is not None and tok != "{":
            if expect == "num" and re.fullmatch(r"\d{2}", tok):
                out += [tok[0], "/", tok[1], ")"]  # \frac12 is TeX for 1/2
                expect = None
                continue
            raise NotExact(f"{expect} argument must be braced")
        if tok in _FRACS:
            if out and out[-1][0].isdigit():
                raise NotExact("number before a fraction: a mixed number or a product?")
            out.append("(")
            expect = "num"
        elif tok == "\\sqrt":
            out.append("sqrt")
            expect = "sqrt"
        elif tok == "{":
            groups.append(expect or "plain")
            out.append("(")
            expect = None
        elif tok == "}":
            if not groups:
                raise NotExact("unbalanced braces")
            kind = groups.pop()
            out.append(")")
            if kind == "num":
                out.append("/")
                expect = "den"
            elif kind == "den":
                out.append(")")
        elif tok.startswith("\\"):
            raise NotExact(f"unsupported command {tok}")
        else:
            out.append(tok)
    if groups or expect is not None:
        raise NotExact("unbalanced braces")
    return out


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "^": 4}


def _check(v: Fraction) -> Fraction:
    if v.numerator.bit_length() > MAX_BITS or v.denominator.bit_length() > MAX_BITS:
        raise NotExact("number too large for the exact path")
    return v


def _sqrt(v: Fraction) -> Fraction:
    if v < 0:
        raise NotExact("square root of a negative number")
    n, d = math.isqrt(v.numerator), math.isqrt(v.denominator)
    if n * n != v.numerator or d * d != v.denominator:
        raise NotExact("irrational square root")
    return Fraction(n, d)


def _apply(op: str, values: list[Fraction]) -> None:
    if op == "neg":
        values.append(-values.pop())
        return
    if op == "sqrt":
        values.append(_sqrt(values.pop()))
        return
    if len(values) < 2:
        raise NotExact("operator without operands")
    b, a = values.pop(), values.pop()
    if op == "+":
        values.append(_check(a + b))
    elif op == "-":
        values.append(_check(a - b))
    elif op == "*":
        values.append(_check(a * b))
    elif op == "/":
        if b == 0:
            raise NotExact("division by zero")
        values.append(_check(a / b))
    else:  # "^": only integer exponents keep the result rational
        if b.denominator != 1 or abs(b) > MAX_EXPONENT or (a == 0 and b < 0):
            raise NotExact("non-integer or huge exponent")
        bits = max(a.numerator.bit_length(), a.denominator.bit_length())
        if bits * abs(int(b)) > MAX_BITS:
            raise NotExact("power too large for the exact path")
        values.append(a ** int(b))


def _evaluate(tokens: list[str]) -> Fraction:
    values: list[Fraction] = []
    ops: list[str] = []
    prev = None  # "value" after a number or ")", else an operator / "(" / start
    for tok in tokens:
        if tok == "(" or tok == "sqrt" or tok[0].isdigit() or tok[0] == ".":
            if prev == "value":  # implicit product: 2(3), (1)(2), 2\sqrt{4}
                while ops and ops[-1] not in ("(",) and _PREC.get(ops[-1], 5) >= _PREC["*"]:
                    _apply(ops.pop(), values)
                ops.append("*")
            if tok == "(":
                ops.append("(")
                prev = None
            elif tok == "sqrt":
                ops.append("sqrt")
                prev = None
            else:
                values.append(Fraction(tok))
                prev = "value"
        elif tok == ")":
            while ops and ops[-1] != "(":
                _apply(ops.pop(), values)
            if not ops:
                raise NotExact("unbalanced parentheses")
            ops.pop()
            if ops and ops[-1] == "sqrt":
                _apply(ops.pop(), values)
            prev = "value"
        else:  # a binary operator, or unary minus / plus
            if prev != "value":
                if tok == "-":
                    ops.append("neg")
                    continue
                if tok == "+":
                    continue
                raise NotExact(f"operator {tok!r} without a left operand")
            right_assoc = tok == "^"
            while ops and ops[-1] not in ("(", "sqrt") and (
                    _PREC[ops[-1]] > _PREC[tok] or (_PREC[ops[-1]] == _PREC[tok] and not right_assoc)):
                _apply(ops.pop(), values)
            ops.append(tok)
            prev = None
    if prev != "value":
        raise NotExact("expression ends with an operator")
    while ops:
        op = ops.pop()
        if op in ("(", "sqrt"):
            raise NotExact("unbalanced parentheses")
        _apply(op, values)
    if len(values) != 1:
        raise NotExact("not a single expression")
    return values[0]


def evaluate(text: str) -> Exact:
    """Exact value of a small arithmetic LaTeX answer; raises NotExact outside the grammar."""
    if not text or len(text) > 4 * MAX_TOKENS:
        raise NotExact("empty or too long")
    tokens = _lex(re.sub(r"\\[!,;: ]", " ", text))
    inexact = any("." in t for t in tokens)
    for i, tok in enumerate(tokens):
        if tok == "^" and i + 1 < len(tokens) and tokens[i + 1] not in ("{", "(") and len(tokens[i + 1]) > 1:
            raise NotExact("ambiguous exponent")  # x^23 means x^2 * 3 in TeX
    return Exact(_evaluate(_infix(tokens)), inexact)


def try_evaluate(text: str) -> Exact | None:
    try:
        return evaluate(text)
    except (NotExact, ValueError, ZeroDivisionError, OverflowError):
        return None


def equal(a: Exact, b: Exact) -> bool:
    """Exact values compare exactly; a decimal literal on either side compares as math-verify does
    (equal after rounding to 6 decimals) and, as math-verify does not, also within a relative 1e-4,
    so 1e-7 and 2e-7 are not "equal" merely because both round to 0."""
    if not (a.inexact or b.inexact):
        return a.value == b.value
    if a.value == b.value:
        return True
    scale = max(abs(a.value), abs(b.value))
    return round(a.value, 6) == round(b.value, 6) and abs(a.value - b.value) / scale <= Fraction(1, 10_000)
