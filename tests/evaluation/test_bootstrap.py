"""Bootstrap intervals for pass@K and the paired difference of two models (pure numpy)."""
import numpy as np
import pytest

from services.evaluation.bootstrap import common_problems, mean_interval, paired_difference, per_problem
from services.evaluation.passk import pass_at_k


def test_per_problem_values_are_the_unbiased_estimator():
    values = per_problem([(8, 0), (8, 2), (8, 8)], [1, 4, 8])
    assert values.shape == (3, 3)
    assert values[1].tolist() == [pass_at_k(8, 2, 1), pass_at_k(8, 2, 4), 1.0]
    assert values[0].tolist() == [0.0, 0.0, 0.0] and values[2].tolist() == [1.0, 1.0, 1.0]


def test_identical_problems_give_a_zero_width_interval():
    ivs = mean_interval(np.full((50, 2), 0.3))
    assert all(iv.value == pytest.approx(0.3) and iv.low == pytest.approx(0.3) and iv.high == pytest.approx(0.3)
               for iv in ivs)


def test_interval_width_shrinks_like_one_over_sqrt_problems():
    rng = np.random.default_rng(1)
    small = mean_interval(rng.integers(0, 2, size=(50, 1)).astype(float), seed=3)[0]
    large = mean_interval(rng.integers(0, 2, size=(800, 1)).astype(float), seed=3)[0]
    ratio = (small.high - small.low) / (large.high - large.low)
    assert 3.0 < ratio < 5.5  # sqrt(800 / 50) = 4
    # a fair coin per problem: the 95% interval of the mean of 800 is about +-1.96 * 0.5 / sqrt(800)
    assert (large.high - large.low) / 2 == pytest.approx(1.96 * 0.5 / np.sqrt(800), rel=0.15)
    assert large.low < large.value < large.high


def test_paired_difference_cancels_shared_difficulty():
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0, 1, size=(200, 1))
    a = difficulty
    b = np.clip(difficulty + 0.02, 0, 1)  # the same problems, each 2 points easier for b
    diff = paired_difference(a, b)[0]
    assert diff.value == pytest.approx(float((b - a).mean()))
    assert diff.excludes_zero() and diff.high - diff.low < 0.01
    # unpaired, the two means' intervals overlap almost entirely: pairing is what resolves 2 points
    ia, ib = mean_interval(a)[0], mean_interval(b)[0]
    assert ib.low < ia.high
    same = paired_difference(a, a)[0]
    assert same.value == 0 and same.low == 0 and same.high == 0 and not same.excludes_zero()
    with pytest.raises(ValueError):
        paired_difference(a, b[:10])


def test_seeded_and_common_problems_in_order():
    values = np.random.default_rng(2).uniform(size=(40, 3))
    assert mean_interval(values, seed=5) == mean_interval(values, seed=5)
    assert common_problems({"p2": (8, 1), "p1": (8, 0), "p3": (8, 2)}, {"p1": (8, 1), "p2": (8, 3)}) == ["p2", "p1"]
