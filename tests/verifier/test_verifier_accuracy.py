"""Our math grader vs math-verify alone on the labelled set (known misses and false positives)."""
from tests.verifier.accuracy_cases import CASES, accuracy, mathverify_alone, ours


def test_ours_is_at_least_as_accurate_as_math_verify_alone():
    ours_acc, ours_wrong = accuracy(ours)
    mv_acc, _ = accuracy(mathverify_alone)
    assert ours_acc >= mv_acc
    assert ours_acc >= 0.97, [(c.tag, c.response[-40:], c.gold) for c in ours_wrong]
    assert len(CASES) >= 70


def test_known_issue_cases_are_fixed():
    known = {"scientific notation", "unicode", "number words", "textbf choice", "empty set",
             "repeating decimal", "frac over one", "false positive"}
    wrong = [c for c in CASES if c.tag in known and ours(c.response, c.gold) != c.expected]
    assert not wrong, wrong
