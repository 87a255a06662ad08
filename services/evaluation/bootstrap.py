"""Intervals for pass@K: a bootstrap over problems, and a paired one for the difference of two models.

    per_problem(counts, ks)        [P, K] unbiased pass@k of each problem (services.evaluation.passk)
    mean_interval(values)          mean pass@k per K with a percentile interval: resample the P problems with
                                   replacement, take the mean, repeat; the spread is how much the number
                                   would move on another draw of problems of the same kind
    paired_difference(a, b)        b - a per K with its interval, both models resampled with the SAME problem
                                   indices (they were evaluated on the same problems), so the problems'
                                   difficulty, shared by both, cancels instead of widening the interval

The sampling noise of the n answers per problem is inside each problem's value and is carried
along by resampling problems. Pure numpy; the seed makes every interval reproducible.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from services.evaluation.passk import pass_at_k

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    value: float  # the estimate on the problems as drawn
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def per_problem(counts: Sequence[tuple[int, int]], ks: Sequence[int]) -> np.ndarray:
    """(n, c) per problem -> [P, K] pass@k values."""
    return np.array([[pass_at_k(n, c, k) for k in ks] for n, c in counts], dtype=np.float64).reshape(len(counts), len(ks))


def _indices(problems: int, resamples: int, seed: int) -> np.ndarray:
    if problems < 1:
        raise ValueError("no problems to resample")
    return np.random.default_rng(seed).integers(0, problems, size=(resamples, problems))


def _interval(estimate: np.ndarray, draws: np.ndarray, level: float) -> list[Interval]:
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail], axis=0)
    return [Interval(float(v), float(lo), float(hi)) for v, lo, hi in zip(estimate, low, high)]


def mean_interval(values: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0,
                  level: float = LEVEL) -> list[Interval]:
    """values [P, K] -> one Interval per K for the mean over problems."""
    draws = values[_indices(values.shape[0], resamples, seed)].mean(axis=1)  # [B, K]
    return _interval(values.mean(axis=0), draws, level)


def paired_difference(a: np.ndarray, b: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0,
                      level: float = LEVEL) -> list[Interval]:
    """mean(b) - mean(a) per K; a and b are [P, K] over the same problems in the same order."""
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same problems: {a.shape} vs {b.shape}")
    diff = b - a
    draws = diff[_indices(diff.shape[0], resamples, seed)].mean(axis=1)
    return _interval(diff.mean(axis=0), draws, level)


def common_problems(*tables: Mapping[str, tuple[int, int]]) -> list[str]:
    """Problem ids every table has, in the first table's order."""
    shared = set(tables[0]).intersection(*tables[1:])
    return [pid for pid in tables[0] if pid in shared]
