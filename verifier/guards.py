"""Cheap, principled pre-filters for answers that would make sympy hang or explode.

These are an optimisation, not the guarantee: the worker pool's hard deadline is what bounds every
item. A rule here only fires where no realistic answer is affected, and an answer it rejects is still
accepted when it is literally identical to the gold answer.
"""
from __future__ import annotations

import math
import re

MAX_ANSWER_CHARS = 1_000  # the extracted answer, not the response; real answers are far shorter
MAX_NESTING = 16  # parse time grows exponentially with nesting: {} 15 deep takes > 4 s; real answers < 8
MAX_FACTORIAL = 5_000  # 1000000! takes seconds and megabytes to evaluate
MAX_EXPONENT_DIGITS = 5  # 2^{99999} is fine; 9^{9^{9}} or 10^{10^{10}} is not
MAX_POWER_DIGITS = 50_000  # 2^{99999} has 30103 digits; 99999^{99999} has 500k and takes seconds
MAX_POWERS = 12

# An exponent: ^{...} or ^ token or ** token.
_EXP_RE = re.compile(r"(?:\^|\*\*)\s*(\{)?")


def nesting_depth(s: str) -> int:
    depth = best = 0
    for ch in s:
        if ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}":
            depth = max(depth - 1, 0)
    return best


def _exponent_text(s: str, start: int, braced: bool) -> str:
    if not braced:
        m = re.match(r"\s*-?[\w.]+", s[start:])
        return m.group(0) if m else ""
    depth, i = 1, start
    while i < len(s) and depth:
        depth += {"{": 1, "}": -1}.get(s[i], 0)
        i += 1
    return s[start : i - 1]


def explosive_reason(answer: str) -> str | None:
    """Why grading `answer` symbolically is unsafe, or None when it is fine."""
    if len(answer) > MAX_ANSWER_CHARS:
        return f"answer longer than {MAX_ANSWER_CHARS} characters"
    if nesting_depth(answer) > MAX_NESTING:
        return f"brackets nested deeper than {MAX_NESTING}"
    reason = _factorial_reason(answer)
    if reason:
        return reason
    powers = list(_EXP_RE.finditer(answer))
    if len(powers) > MAX_POWERS:
        return f"more than {MAX_POWERS} exponents"
    for m in powers:
        exp = _exponent_text(answer, m.end(), braced=m.group(1) is not None)
        if "!" in exp:
            return "factorial in an exponent"
        for digits in re.findall(r"\d+", exp):
            if len(digits.lstrip("0")) > MAX_EXPONENT_DIGITS:
                return f"exponent {digits[:12]}... has more than {MAX_EXPONENT_DIGITS} digits"
        if re.search(r"\^|\*\*", exp) and tower_log10(exp) > MAX_EXPONENT_DIGITS:
            return "exponent tower"
        base = re.search(r"(\d+)\s*\}?\s*$", answer[: m.start()])
        if base and int(base.group(1)[-8:] or 1) > 1:
            digits = 10 ** min(tower_log10(exp), 300) * math.log10(int(base.group(1)[-8:]))
            if digits > MAX_POWER_DIGITS:
                return f"power with more than {MAX_POWER_DIGITS} digits"
    return None


def _factorial_reason(answer: str) -> str | None:
    """Factorials of literals above MAX_FACTORIAL, of powers, or of large bracketed numbers."""
    for m in re.finditer(r"!", answer):
        before = answer[: m.start()].rstrip()
        if before.endswith((")", "}", "]")):
            opener = {")": "(", "}": "{", "]": "["}[before[-1]]
            depth, i = 0, len(before) - 1
            while i >= 0:
                depth += {before[-1]: 1, opener: -1}.get(before[i], 0)
                if depth == 0:
                    break
                i -= 1
            operand = before[i + 1 : -1]
        else:
            tail = re.search(r"\d+$", before)
            operand = tail.group(0) if tail else ""
        if re.search(r"\^|\*\*|!", operand):
            return "factorial of a power or factorial"
        for digits in re.findall(r"\d+", operand):
            if len(digits) > 7 or int(digits) > MAX_FACTORIAL:
                return f"factorial of {digits[:12]} exceeds {MAX_FACTORIAL}"
    return None


def tower_log10(exp: str) -> float:
    """log10 of a numeric power tower such as '9^{9}' (inf when astronomically large).

    Non-numeric parts (x^{y^{2}}) count as 1: sympy keeps symbolic towers unevaluated, so only the
    numeric ones are dangerous.
    """
    parts = re.split(r"\^|\*\*", re.sub(r"[{}()\s]", "", exp))
    values = [int(p) if p.isdigit() else 1 for p in parts]
    # Evaluate right to left in log space: a^(v) has log10 = v * log10(a).
    log_v = math.log10(max(values[-1], 1))
    for base in reversed(values[:-1]):
        if log_v > 6:  # the exponent alone exceeds a million: the tower is astronomical
            return math.inf
        log_v = (10 ** log_v) * math.log10(max(base, 1))
    return log_v
