"""The exported in-process entry point is bounded; the unbounded one is `grade` (docs/verifier.md)."""
import time

import pytest

import verifier.inprocess as inprocess
from verifier import grade, verify
from verifier.graders.logic import final_answer_grader
from verifier.tasks import is_isolated, register_task

SLOW = ("\\boxed{(x+1)^{2000}-(x-1)^{2000}}", "(x+2)^{2000}")  # minutes of sympy, passes the pre-filter


@pytest.fixture
def short_deadline(monkeypatch):
    inprocess.close()
    monkeypatch.setenv("SIMKO_VERIFIER_DEADLINE_S", "1.5")
    yield 1.5
    inprocess.close()  # the next test's pool gets the default settings again


def test_hostile_math_gets_a_timeout_verdict_within_the_deadline(short_deadline):
    verify("math", "\\boxed{1}", "1")  # start the pool (worker start-up is not the item's time)
    started = time.monotonic()
    v = verify("math", *SLOW)
    assert time.monotonic() - started <= short_deadline + 1.5
    assert (v.status, v.correct, v.reward) == ("timeout", False, 0.0)
    assert verify("math", "\\boxed{\\frac{1}{2}}", "0.5").correct  # the replacement grader works


@pytest.mark.parametrize("answer,gold", [
    ("(" * 300 + "7" + ")" * 300, "7"),
    ("\\frac{1}{" * 101 + "2" + "}" * 101, "\\frac{1}{2}"),
    ("{" * 200 + "x" + "}" * 200, "x"),
    ("-(" * 150 + "4" + ")" * 150, "4"),
    ("\\sqrt{" * 80 + "1" + "}" * 80, "1"),
])
def test_deeply_nested_trivially_small_answers_take_the_exact_cheap_path(answer, gold):
    started = time.monotonic()
    v = grade("math", f"\\boxed{{{answer}}}", gold)  # in process, no deadline: it must be cheap anyway
    assert time.monotonic() - started < 0.5
    assert (v.status, v.correct) == ("ok", True), v


def test_logic_tasks_run_in_process_and_runtime_tasks_too():
    assert is_isolated("math") and not is_isolated("logic:navigate")
    register_task("logic:test_only_inprocess", final_answer_grader("number"), replace=True)
    assert not is_isolated("logic:test_only_inprocess")
    assert verify("logic:test_only_inprocess", "So the answer is 3.", "3").correct


def test_bad_input_gets_a_verdict():
    assert verify("math", None, "1").status == "error"  # type: ignore[arg-type]
    assert verify("math", "\\boxed{1}", "1", question=5).status == "error"  # type: ignore[arg-type]
    assert verify("nope", "x", "y").status == "error"
    assert verify("math", "", "1").status == "no_answer"
