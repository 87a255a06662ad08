"""The grader pool: hard deadlines, worker replacement, crash and memory isolation (real processes)."""
import os
import signal
import threading
import time

import psutil
import pytest

from verifier.pool import GraderPool, Item

DEADLINE = 2.0
EASY = Item("math", "So the answer is \\boxed{\\frac{1}{2}}.", "0.5")
# Inputs that hang or explode sympy/latex2sympy. Some the pre-filter catches, others only the deadline.
HOSTILE = [
    Item("math", "\\boxed{10^{10^{10}}}", "3"),
    Item("math", "\\boxed{9^{9^{9}}}", "3"),
    Item("math", "\\boxed{1000000!}", "3"),
    Item("math", "\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}", "1"),
    Item("math", "\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}", "1"),
    Item("math", "\\boxed{" + "{" * 15 + "x" + "}" * 15 + "}", "x"),
    Item("math", "\\boxed{(x+1)^{2000}-(x-1)^{2000}}", "(x+2)^{2000}"),
    Item("math", "x " * 50_000 + "\\boxed{5}", "5"),
    Item("math", "\\boxed{" + "1" * 100_000 + "}", "5"),
    Item("math", "\\boxed{\\frac{1}{2}}" * 20_000, "0.5"),
    Item("logic:countdown", "So the answer is " + "(" * 5000 + "1" + ")" * 5000, '{"numbers":[1],"target":1}'),
    Item("logic:word_sorting", "So the answer is " + "a " * 50_000, "a"),
]
SLOW = Item("math", "\\boxed{(x+1)^{2000}-(x-1)^{2000}}", "(x+2)^{2000}")  # > DEADLINE, passes the pre-filter


@pytest.fixture(scope="module")
def pool():
    with GraderPool(2, deadline_s=DEADLINE, memory_mb=2048) as p:
        yield p


def test_easy_items(pool):
    verdicts = pool.grade_many([EASY] * 6)
    assert all(v.correct and v.status == "ok" for v in verdicts)


@pytest.mark.parametrize("item", HOSTILE, ids=lambda it: it.response[:24] + f"..{len(it.response)}")
def test_hostile_input_answered_within_deadline_plus_one_second(pool, item):
    started = time.monotonic()
    verdict = pool.grade(item)
    elapsed = time.monotonic() - started
    assert elapsed <= DEADLINE + 1.0, (elapsed, verdict)
    assert verdict.status in ("ok", "timeout", "no_answer", "error")
    if verdict.status != "ok":
        assert verdict.reward == 0.0 and not verdict.correct


def test_timeout_kills_only_that_worker_and_others_proceed(pool):
    restarts = pool.restarts
    started = time.monotonic()
    verdicts = pool.grade_many([SLOW] + [EASY] * 8)
    assert verdicts[0].status == "timeout" and verdicts[0].reward == 0.0
    assert all(v.correct for v in verdicts[1:])
    assert time.monotonic() - started < DEADLINE + 3.0
    assert pool.restarts == restarts + 1
    assert pool.grade(EASY).correct  # the replacement works


def _wait_gone(pids, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)


def test_worker_killed_mid_item_gives_error_and_is_replaced(pool):
    pids_before = set(pool.pids())
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("v", pool.grade(SLOW)))
    t.start()
    time.sleep(0.5)
    for pid in pids_before:  # kill both: one is grading SLOW, the other is idle
        os.kill(pid, signal.SIGKILL)
    # SIGKILL is asynchronous: wait until both are really gone, so an item dispatched next is not
    # racing a worker that is still being torn down (that race gives an honest "error" verdict).
    _wait_gone(pids_before)
    t.join(timeout=DEADLINE + 5)
    assert result["v"].status == "error" and "died" in result["v"].detail
    verdicts = pool.grade_many([EASY] * 4)
    assert all(v.correct for v in verdicts), verdicts
    assert not pids_before & set(pool.pids()) and pool.alive_workers() == 2


def test_memory_cap_turns_into_error_verdict():
    # Expanding this grows a worker from ~60 MB to > 110 MB resident within seconds.
    heavy = Item("math", "\\boxed{(x+y+z+w+1)^{40}}", "(x+y+z+w+2)^{40}")
    with GraderPool(1, deadline_s=60, memory_mb=90) as small:
        started = time.monotonic()
        verdict = small.grade(heavy)
        assert verdict.status == "error" and "memory" in verdict.detail, verdict
        assert time.monotonic() - started < 60  # stopped by the cap, not the deadline
        after = small.grade(EASY)
        assert after.correct, after


async def test_async_grading(pool):
    verdicts = await pool.agrade_many([EASY, Item("logic:navigate", "So the answer is Yes.", "Yes")])
    assert [v.correct for v in verdicts] == [True, True]


def test_pool_rejects_bad_config():
    with pytest.raises(ValueError):
        GraderPool(0)
    with pytest.raises(ValueError):
        GraderPool(1, deadline_s=0)
