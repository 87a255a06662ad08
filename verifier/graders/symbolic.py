"""sympy-side equivalences math-verify does not make (called only after math-verify said "no").

    imaginary unit   math-verify keeps `i` a plain symbol: i^4 != 1, sqrt(-1) != i. We read i as I.
    relation ~ set   `0 <= x <= 1` vs [0, 1], `|x| > 1` vs a union, `x < -1 or x > 1`, `x != 1`: both
                     sides become sets (sympy's as_set). Only a relation in solved form counts
                     (each side the variable, |variable| or a number): `x^2 < 4` restating the
                     question must not match (-2, 2) (math-verify's reason for refusing this).
    identity         sqrt(1/n) vs 1/sqrt(n): sympy will not simplify without assumptions; two
                     expressions that agree at several positive points are the same answer.
"""
from __future__ import annotations

import sympy
from sympy.core.relational import Relational

# Points with no special structure (no small integers, where different expressions often agree).
_POINTS = (sympy.Rational(37, 100), sympy.Rational(191, 100), sympy.Rational(271, 100), sympy.Rational(33, 10))
_RTOL = sympy.Float("1e-12", 30)
_ERRORS = (ArithmeticError, TypeError, ValueError, AttributeError, RecursionError, NotImplementedError)


def _free(obj) -> set:
    return set(getattr(obj, "free_symbols", ()) or ())


def _is_relation(obj) -> bool:
    return isinstance(obj, (Relational, sympy.And, sympy.Or))


def solved_form(obj) -> bool:
    """True for relations like `x >= 5`, `-2 < x < 2`, `|x| > 1` (and sets of them)."""
    if isinstance(obj, sympy.FiniteSet):
        return all(solved_form(e) for e in obj.args)
    if isinstance(obj, (sympy.And, sympy.Or)):
        return all(solved_form(a) for a in obj.args)
    if isinstance(obj, Relational):
        return all(side.is_Symbol or side.is_number or (isinstance(side, sympy.Abs) and side.args[0].is_Symbol)
                   for side in (obj.lhs, obj.rhs))
    return False


def _as_set(obj):
    """A set for a set, an interval-like relation in one variable, or a set/list of such relations."""
    if isinstance(obj, sympy.Eq) and isinstance(obj.rhs, sympy.Set) and obj.lhs.is_Symbol:  # x \in (-2, 2)
        return obj.rhs
    if isinstance(obj, sympy.FiniteSet) and obj.args and all(_is_relation(e) for e in obj.args):
        return sympy.Union(*(_as_set(e) for e in obj.args))  # "x < -1 or x > 1" arrives as {x < -1, x > 1}
    if _is_relation(obj) and len(obj.free_symbols) == 1:
        return obj.as_set()
    if isinstance(obj, sympy.Set) and not isinstance(obj, sympy.FiniteSet):
        return obj
    return None


def _numbers_close(a, b) -> bool:
    a, b = sympy.N(a, 30), sympy.N(b, 30)
    if not (a.is_number and b.is_number) or a.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return False
    scale = max(abs(a), abs(b), sympy.Integer(1))
    return bool(abs(a - b) <= _RTOL * scale)


def _identical(a, b) -> bool:
    if isinstance(a, sympy.MatrixBase) or isinstance(b, sympy.MatrixBase):
        return False
    if not (isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr)):
        return False
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        return _numbers_close(a, b)
    if len(symbols) > 4 or a.free_symbols != b.free_symbols:
        return False
    for shift in range(3):  # three points per variable, chosen so no two variables share a value
        point = {s: _POINTS[(k + shift) % len(_POINTS)] + k for k, s in enumerate(symbols)}
        if not _numbers_close(a.subs(point), b.subs(point)):
            return False
    return True


def extra_equal(gold, pred) -> bool:
    """Equivalences beyond math-verify's (see the module docstring); False when unsure."""
    try:
        units = {s: sympy.I for s in _free(gold) | _free(pred) if s.name == "i"}
        if units:
            gold, pred = gold.subs(units), pred.subs(units)
            if _identical(gold, pred):
                return True
        gold_set = _as_set(gold)
        if gold_set is not None and (solved_form(pred) or isinstance(pred, sympy.Set) or isinstance(pred, sympy.Eq)):
            pred_set = _as_set(pred)
            if pred_set is not None:
                return bool(gold_set == pred_set) or gold_set.symmetric_difference(pred_set) == sympy.S.EmptySet
        return _identical(gold, pred)
    except _ERRORS:
        return False
