"""The HTTP service against a real uvicorn process: contract, limits, metrics, isolation."""
import asyncio
import os
import signal
import time

import httpx
import pytest

from tests.verifier.conftest import DEADLINE_S, MAX_ITEMS
from services.wire.verifier_client import VerifierClient

pytestmark = pytest.mark.slow

EASY = {"task": "math", "response": "So the answer is $\\boxed{\\frac{1}{2}}$.", "gold": "0.5"}
LOGIC = {"task": "logic:navigate", "response": "So the answer is Yes.", "gold": "Yes"}
SLOW = {"task": "math", "response": "\\boxed{(x+1)^{2000}-(x-1)^{2000}}", "gold": "(x+2)^{2000}"}
HOSTILE = [
    SLOW,
    {"task": "math", "response": "\\boxed{10^{10^{10}}}", "gold": "3"},
    {"task": "math", "response": "\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}", "gold": "1"},
    # Nested braces around x are x (graded on the cheap path, see test_nested_braces_are_graded);
    # against another gold this stays a reward-0 item that must be answered within the deadline.
    {"task": "math", "response": "\\boxed{" + "{" * 15 + "x" + "}" * 15 + "}", "gold": "y"},
]


def post(url: str, items: list[dict], timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/v1/verify", json={"items": items}, timeout=timeout)


def test_health(service_url):
    body = httpx.get(f"{service_url}/health").json()
    assert body["status"] == "ok" and body["workers_alive"] == 2 and body["deadline_s"] == DEADLINE_S


def test_verify_contract(service_url):
    wrong = dict(EASY, gold="0.25")
    resp = post(service_url, [EASY, LOGIC, wrong, {"task": "nope", "response": "x", "gold": "y"},
                              {"task": "math", "response": "I give up.", "gold": "1"}])
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["ok", "ok", "ok", "error", "no_answer"]
    assert [r["correct"] for r in results] == [True, True, False, False, False]
    assert [r["reward"] for r in results] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert results[0]["extracted"] == "\\frac{1}{2}" and results[4]["extracted"] is None
    assert "valid tasks" in results[3]["detail"]
    assert post(service_url, []).json() == {"results": []}


def test_request_limits(service_url):
    too_many = post(service_url, [EASY] * (MAX_ITEMS + 1))
    assert too_many.status_code == 413 and "limit" in too_many.json()["detail"]
    missing = httpx.post(f"{service_url}/v1/verify", json={"items": [{"task": "math", "response": "1"}]})
    assert missing.status_code == 422
    long_gold = post(service_url, [dict(EASY, gold="1" * 500)])
    assert long_gold.status_code == 422 and "gold" in long_gold.json()["detail"]
    assert httpx.post(f"{service_url}/v1/verify", content=b"not json",
                      headers={"content-type": "application/json"}).status_code == 422


def test_long_response_keeps_its_tail(service_url):
    tail = post(service_url, [dict(EASY, response="word " * 20_000 + EASY["response"])]).json()["results"][0]
    head = post(service_url, [dict(EASY, response=EASY["response"] + " word" * 20_000)]).json()["results"][0]
    assert tail["correct"] and head["status"] == "no_answer"


@pytest.mark.parametrize("item", HOSTILE, ids=["poly", "tower", "braces3000", "braces15"])
def test_hostile_input_answered_within_deadline(service_url, item):
    started = time.monotonic()
    result = post(service_url, [item]).json()["results"][0]
    assert time.monotonic() - started <= DEADLINE_S + 1.0
    # (the 6000-brace answer loses its "\boxed{" to the 4000-character tail cut: no_answer)
    assert result["reward"] == 0.0 and result["status"] in ("ok", "timeout", "no_answer")


def test_nested_braces_are_graded(service_url):
    started = time.monotonic()
    item = {"task": "math", "response": "\\boxed{" + "{" * 15 + "x" + "}" * 15 + "}", "gold": "x"}
    result = post(service_url, [item]).json()["results"][0]
    assert time.monotonic() - started <= DEADLINE_S + 1.0
    assert (result["status"], result["correct"]) == ("ok", True)


async def test_concurrent_clients(service_url):
    items = [EASY, LOGIC] * 10

    async def one_client(i: int):
        async with VerifierClient(service_url, max_batch=7) as client:
            extra = [HOSTILE[1]] if i == 0 else []  # one pre-filtered hostile item among them
            return await client.verify(items + extra)

    started = time.monotonic()
    all_results = await asyncio.gather(*(one_client(i) for i in range(6)))
    assert all(v.correct for results in all_results for v in results[: len(items)])
    assert all_results[0][-1].status == "timeout"
    assert time.monotonic() - started < 60


async def test_worker_killed_mid_request(service_url):
    before = httpx.get(f"{service_url}/health").json()
    async with httpx.AsyncClient(timeout=60) as http:
        request = asyncio.create_task(http.post(f"{service_url}/v1/verify", json={"items": [SLOW] + [EASY] * 6}))
        await asyncio.sleep(0.7)
        for pid in before["worker_pids"]:
            os.kill(pid, signal.SIGKILL)
        resp = await request
    results = resp.json()["results"]
    assert resp.status_code == 200
    assert results[0]["status"] == "error" and "died" in results[0]["detail"]
    assert all(r["status"] in ("ok", "error") for r in results[1:])
    assert post(service_url, [EASY] * 4).json()["results"][0]["correct"]
    after = httpx.get(f"{service_url}/health").json()
    assert after["workers_alive"] == 2 and not set(after["worker_pids"]) & set(before["worker_pids"])
    assert after["restarts"] >= before["restarts"] + 1


def test_metrics(service_url):
    post(service_url, [EASY, LOGIC])
    text = httpx.get(f"{service_url}/metrics").text
    assert 'simko_verifier_verdicts_total{status="ok",task="math"}' in text
    assert 'simko_verifier_verdicts_total{status="ok",task="logic:navigate"}' in text
    assert "simko_verifier_item_seconds_bucket" in text and "simko_verifier_request_seconds_count" in text
    assert "simko_verifier_workers_alive 2.0" in text
