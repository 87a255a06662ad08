"""Numbers as people write them: thousands separators, decimal commas, currency, units, percent.

    decorated_number("1,000.99€")            -> 1000.99
    decorated_number("2,74 $")               -> 2.74     (a decimal comma: not a thousands group)
    decorated_number("\\text{5 apples}")      -> 5
    decorated_number("the price rose by 50%") -> 50, percent
    decorated_number("1,000.99m²")           -> 1000.99
    decorated_number("5x") / ("2 and 3")     -> None     (algebra or several numbers: not one number)

"1,5" is ambiguous: the decimal 1.5 or the list {1, 5}. The caller decides from the gold answer's
shape (`decimal_comma=False` when the gold is itself a list). A group of exactly three digits after
the comma ("10,455") is always read as thousands, as in GSM8K and MATH answers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from verifier.exact import Exact

_WRAPPER_RE = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|emph|operatorname)\s*\{([^{}]*)\}")
_LATEX_THOUSANDS_RE = re.compile(r"(\d)(?:,\\!|\{,\}|\\!,|\\,|\\;|\\ )(?=\d{3}(?!\d))")
_PERCENT_RE = re.compile(r"\\%|%|\bper\s*cent\b|\bpercent(?:age)?\b|\bpct\b", re.IGNORECASE)
_CURRENCY_RE = re.compile(r"\\\$|\$|€|£|¥|₹|\\euro\b|\\pounds\b|\bUSD\b|\bEUR\b", re.IGNORECASE)
_UNIT_POWER_RE = re.compile(r"([A-Za-z])\s*\^\s*\{?([23])\}?")
_DEGREE_RE = re.compile(r"\^\s*\{?\\circ\}?|°|\\circ\b|\\degree\b")
_NUMBER_RE = re.compile(r"-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")
_THOUSANDS_RE = re.compile(r"-?(?!0)\d{1,3}(?:,\d{3})+(?:\.\d+)?")  # "0,111" is a decimal comma
_SPACE_THOUSANDS_RE = re.compile(r"(?<![\d.,])(\d{1,3})((?: \d{3})+)(?![\d.,])")  # "1 000 000"
_DECIMAL_COMMA_RE = re.compile(r"-?\d+,\d+")
_TOKEN_RE = re.compile(r"-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)|[A-Za-z]+(?:\^\{?[23]\}?)?|[/.:~,;?]|\S")
# A single letter after a number is algebra (5x, 3 n) unless it is a unit symbol.
_UNIT_LETTERS = set("mgshlLKVWJN")
# Words that make a "number with a unit" an expression instead, or change what the number says
# ("less than 5" is not 5).
_MATH_WORDS = {"pi", "e", "i", "sqrt", "root", "times", "over", "plus", "minus", "squared", "cubed",
               "infinity", "inf", "frac", "mod", "log", "ln", "sin", "cos", "tan", "dozen", "dozens",
               "not", "no", "never", "less", "more", "fewer", "greater", "least", "most", "than", "except",
               "between", "under", "above", "below", "neither", "nor", "half", "double", "twice", "triple"}
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000, "trillion": 10**12}


@dataclass(frozen=True)
class Number:
    value: Exact
    percent: bool


def _unwrap(s: str) -> str:
    for _ in range(3):
        s2 = _WRAPPER_RE.sub(r" \1 ", s)
        if s2 == s:
            break
        s = s2
    return s


def number_value(token: str, *, decimal_comma: bool) -> Exact | None:
    """'10,455' -> 10455, '1,000.99' -> 1000.99, '2,74' -> 2.74 (if decimal_comma) else None."""
    if "," in token:
        if _THOUSANDS_RE.fullmatch(token):
            token = token.replace(",", "")
        elif decimal_comma and _DECIMAL_COMMA_RE.fullmatch(token):
            token = token.replace(",", ".")
        else:
            return None
    try:
        return Exact(Fraction(token), "." in token)
    except (ValueError, ZeroDivisionError):
        return None


def decorated_number(s: str, *, decimal_comma: bool = True) -> Number | None:
    """The one number in `s` when everything else is currency, units, percent or prose; else None."""
    if len(s) > 300 or "=" in s:
        return None
    s = _LATEX_THOUSANDS_RE.sub(r"\1,", _unwrap(s)).replace("−", "-")
    s = _UNIT_POWER_RE.sub(r"\1", s)  # cm^2, m^{3}: the unit's power is part of the unit
    s = s.replace("\\ ", " ").replace("~", " ").replace("\\,", " ").replace("\\!", "")
    s = _SPACE_THOUSANDS_RE.sub(lambda m: m.group(1) + m.group(2).replace(" ", ""), s)
    percent = _PERCENT_RE.search(s) is not None
    s = _PERCENT_RE.sub(" ", s)
    s = _DEGREE_RE.sub(" ", s)
    s = _CURRENCY_RE.sub(" ", s)
    s = s.strip().strip("{}").strip()
    if "\\" in s:  # any LaTeX command left: a formula, not a decorated number
        return None
    tokens = _TOKEN_RE.findall(s)
    numbers = [i for i, t in enumerate(tokens) if _NUMBER_RE.fullmatch(t)]
    if len(numbers) != 1:
        return None
    at = numbers[0]
    for i, tok in enumerate(tokens):
        if i == at:
            continue
        if tok[0].isalpha():
            word = re.sub(r"\^.*", "", tok)
            if word.lower() in _MATH_WORDS:
                return None
            if len(word) == 1 and word not in _UNIT_LETTERS:
                return None
        elif tok not in "/.:,;?":
            return None  # brackets, operators, ^, !: an expression
    value = number_value(tokens[at].rstrip(","), decimal_comma=decimal_comma)
    if value is None:
        return None
    scale = _SCALES.get(tokens[at + 1].lower()) if at + 1 < len(tokens) else None
    if scale:  # "1.5 million"
        value = Exact(value.value * scale, value.inexact)
    return Number(value, percent)


def numbers_equal(a: Number, b: Number, equal) -> bool:
    """Percent answers compare both as written and as a fraction of 100 (9% against 9 or 0.09)."""
    if equal(a.value, b.value):
        return True
    if a.percent != b.percent:
        pct, plain = (a, b) if a.percent else (b, a)
        scaled = Exact(pct.value.value / 100, pct.value.inexact)
        return equal(scaled, plain.value)
    return False
