"""pass@k against exact integer arithmetic."""
from fractions import Fraction
from math import comb

import pytest

from services.evaluation import pass_at_k, pass_at_k_table


def exact(n, c, k):
    return Fraction(comb(n, k) - comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (10, 3, 8), (64, 1, 64),
                                   (300, 1, 256), (300, 2, 256), (300, 150, 256), (1024, 1, 1),
                                   (1024, 1, 512), (1024, 3, 1000), (1024, 1023, 2)])
def test_matches_exact_fraction(n, c, k):
    value = pass_at_k(n, c, k)
    assert value == float(exact(n, c, k))  # correctly rounded: bit-exact to the rational value


def test_known_small_values():
    assert pass_at_k(4, 2, 1) == 0.5
    assert pass_at_k(4, 2, 2) == 1 - 1 / 6
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0  # n - c < k: every k-subset has a correct sample


def test_tiny_probability_keeps_precision():
    # 1 correct out of 1024 at k=1: exactly 1/1024; the float product form also gets this, but
    # e.g. (1024, 1, 1) complement near 1 needs exact arithmetic to stay correctly rounded.
    assert pass_at_k(1024, 1, 1) == 1 / 1024
    assert pass_at_k(1024, 1023, 1) == 1023 / 1024


def test_table_averages_and_skips_large_k():
    table = pass_at_k_table([(4, 2), (4, 0), (8, 8)], ks=[1, 2, 4, 8])
    assert table[1] == pytest.approx((0.5 + 0 + 1) / 3)
    assert table[4] == pytest.approx((1 + 0 + 1) / 3)
    assert 8 not in table


@pytest.mark.parametrize("n,c,k", [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6), (5.0, 2, 1), (5, True, 1)])
def test_rejects_invalid_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)
