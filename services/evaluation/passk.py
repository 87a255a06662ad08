"""pass@K evaluation: the unbiased estimator of Chen et al. (2021).

pass@k = 1 - C(n - c, k) / C(n, k) for n samples of which c are correct. Computed with exact integer
arithmetic (Python ints and Fraction) and rounded once, so it is exact to float precision for any
n (n = 1024, k = 512 included) where the usual float product loses digits near 0 and 1.
"""
from __future__ import annotations

from fractions import Fraction
from math import comb
from typing import Iterable, Sequence


def _check_counts(n: int, c: int, k: int) -> None:
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c must be in [0, n={n}], got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}], got {k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples, c of them correct."""
    _check_counts(n, c, k)
    if n - c < k:
        return 1.0
    total = comb(n, k)
    return float(Fraction(total - comb(n - c, k), total))


def pass_at_k_table(counts: Sequence[tuple[int, int]], ks: Iterable[int]) -> dict[int, float]:
    """Mean pass@k over problems. counts: (n, c) per problem; ks larger than a problem's n are
    skipped (reported only where every problem has n >= k)."""
    counts = list(counts)
    if not counts:
        raise ValueError("no problems to evaluate")
    table: dict[int, float] = {}
    min_n = min(n for n, _ in counts)
    for k in ks:
        if k > min_n:
            continue
        table[k] = sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
    return table
