"""Extraction policies (lenient / strict) and the optional question, in process and over HTTP."""
import asyncio
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.wire.verifier_client import VerifierClient, VerifierSection
from tests.verifier.conftest import free_port
from verifier import verify
from verifier.extract import extract_math_answer

UNMARKED = "Dividing both sides by 3, therefore $x \\geq 5$ is the solution."
MARKED = "So the answer is $x \\geq 5$."
LD_Q = ("In a golf tournament, there were three golfers: Amy, Eli, and Eve. Eve finished above Amy. Eli finished "
        "below Amy.\nOptions:\n(A) Amy finished last\n(B) Eli finished last\n(C) Eve finished last")


@pytest.mark.parametrize("response,lenient,strict", [
    (UNMARKED, "x \\geq 5", None),
    (MARKED, "x \\geq 5", "x \\geq 5"),
    ("Working...\n#### 18", "18", "18"),
    ("She earns 9 * 2 = $18 every day.", "18", None),
    ("Answer: 12", "12", "12"),
    ("The result is 2/3. <|im_start|>user\nnext", "2/3", None),
    ("<think>maybe \\boxed{5}</think>\nThe answer is 6.", "6", "6"),
    ("✅ Final Answer: **73**", "73", "73"),
    ("$\\boxed{7}$ and $\\boxed{8}$", "7, 8", "7, 8"),
])
def test_policies_on_math_extraction(response, lenient, strict):
    assert extract_math_answer(response, "lenient") == lenient
    assert extract_math_answer(response, "strict") == strict


def test_lenient_is_the_default_and_strict_denies_unmarked_answers():
    assert verify("math", UNMARKED, "[5,\\infty)").correct
    assert verify("math", UNMARKED, "[5,\\infty)", extraction="lenient").correct
    v = verify("math", UNMARKED, "[5,\\infty)", extraction="strict")
    assert (v.status, v.correct) == ("no_answer", False)
    assert verify("math", MARKED, "[5,\\infty)", extraction="strict").correct
    assert verify("math", "x", "1", extraction="sloppy").status == "error"


def test_strict_applies_to_logic_tasks_too():
    assert verify("logic:sports_understanding", "So the sentence is plausible.", "yes").correct
    assert verify("logic:sports_understanding", "So the sentence is plausible.", "yes",
                  extraction="strict").status == "no_answer"
    assert verify("logic:sports_understanding", "So the answer is yes.", "yes", extraction="strict").correct


def test_question_maps_option_text_to_its_letter():
    response = "Eli is below Amy, so he is last.\nThe correct choice is: Eli finished last."
    assert verify("logic:logical_deduction_three_objects", response, "(B)", question=LD_Q).correct
    assert verify("logic:logical_deduction_three_objects", response, "(B)").status == "no_answer"


def post(url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/v1/verify", json=body, timeout=60)


def test_http_policy_per_request_and_per_item_and_old_requests(service_url):
    item = {"task": "math", "response": UNMARKED, "gold": "[5,\\infty)"}
    old = post(service_url, {"items": [item]}).json()["results"][0]  # no new fields: still valid
    assert old["correct"]
    strict = post(service_url, {"items": [item], "extraction": "strict"}).json()["results"][0]
    assert strict["status"] == "no_answer"
    per_item = post(service_url, {"items": [item, dict(item, extraction="lenient")], "extraction": "strict"})
    assert [r["correct"] for r in per_item.json()["results"]] == [False, True]
    assert post(service_url, {"items": [dict(item, extraction="sloppy")]}).status_code == 422


def test_http_question_field(service_url):
    item = {"task": "logic:logical_deduction_three_objects", "gold": "(B)", "question": LD_Q,
            "response": "The correct choice is: Eli finished last."}
    assert post(service_url, {"items": [item]}).json()["results"][0]["correct"]


class _Recorder:
    """A stand-in verifier that records request bodies (the client's side of the contract)."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.port = free_port()
        app = FastAPI()

        @app.post("/v1/verify")
        async def verify_endpoint(body: dict):
            self.bodies.append(body)
            return {"results": [{"correct": True, "reward": 1.0, "status": "ok", "extracted": "1"}] * len(body["items"])}

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)


def test_client_sends_the_job_policy_and_optional_item_fields():
    assert VerifierSection().extraction == "lenient"
    with pytest.raises(ValueError):
        VerifierSection(extraction="sloppy")
    rec = _Recorder()
    with rec as url:
        asyncio.run(VerifierClient.for_section(url, VerifierSection(extraction="strict")).verify(
            [{"task": "math", "response": "1", "gold": "1"},
             {"task": "math", "response": "1", "gold": "1", "question": "Q?", "extraction": "lenient"}]))
        asyncio.run(VerifierClient(url).verify([{"task": "math", "response": "1", "gold": "1", "question": None}]))
    first, second = rec.bodies
    assert first["extraction"] == "strict"
    assert first["items"][0] == {"task": "math", "response": "1", "gold": "1"}
    assert first["items"][1] == {"task": "math", "response": "1", "gold": "1", "question": "Q?", "extraction": "lenient"}
    assert second == {"items": [{"task": "math", "response": "1", "gold": "1"}]}  # an old-style request
