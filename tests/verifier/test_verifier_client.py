"""VerifierClient: batching, typed errors, retries within the deadline (real servers)."""
import asyncio
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tests.verifier.conftest import MAX_ITEMS, free_port, start_service, stop_service, wait_healthy
from services.wire.verifier_client import VerifierClient, VerifierRequestError, VerifierUnavailable

EASY = {"task": "math", "response": "\\boxed{2}", "gold": "2"}


async def test_unavailable_when_nothing_listens():
    client = VerifierClient(f"http://127.0.0.1:{free_port()}", deadline_s=1.0, backoff_s=0.05)
    started = time.monotonic()
    with pytest.raises(VerifierUnavailable):
        await client.verify([EASY])
    assert time.monotonic() - started < 2.0
    await client.aclose()


def test_unavailable_after_max_retries_sync():
    client = VerifierClient(f"http://127.0.0.1:{free_port()}", deadline_s=30, max_retries=2, backoff_s=0.01)
    with pytest.raises(VerifierUnavailable):
        client.verify_sync([EASY])


class _FlakyServer:
    """A stand-in HTTP server (not our service) that fails with 503 a few times, then answers."""

    def __init__(self, failures: int):
        self.calls, self.failures, self.port = 0, failures, free_port()
        app = FastAPI()

        @app.post("/v1/verify")
        async def verify(body: dict):
            self.calls += 1
            if self.calls <= self.failures:
                return JSONResponse({"detail": "overloaded"}, status_code=503)
            n = len(body["items"])
            return {"results": [{"correct": True, "reward": 1.0, "status": "ok", "extracted": "2"}] * n}

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


async def test_retries_5xx_with_backoff_then_succeeds():
    with _FlakyServer(failures=2) as flaky:
        async with VerifierClient(f"http://127.0.0.1:{flaky.port}", backoff_s=0.05, max_batch=3) as client:
            verdicts = await client.verify([EASY] * 5)  # two batches: 3 + 2
        assert len(verdicts) == 5 and all(v.correct for v in verdicts)
        assert flaky.calls == 2 + 2


async def test_gives_up_on_persistent_5xx():
    with _FlakyServer(failures=100) as flaky:
        async with VerifierClient(f"http://127.0.0.1:{flaky.port}", backoff_s=0.01, max_retries=3) as client:
            with pytest.raises(VerifierUnavailable, match="503"):
                await client.verify([EASY])
        assert flaky.calls == 4


@pytest.mark.slow
async def test_against_the_real_service(service_url):
    async with VerifierClient(service_url, max_batch=10) as client:
        verdicts = await client.verify([EASY, dict(EASY, gold="3")] * 15)
        assert [v.correct for v in verdicts] == [True, False] * 15
        big = VerifierClient(service_url, max_batch=MAX_ITEMS + 1)
        with pytest.raises(VerifierRequestError) as err:  # 413: raised at once, no retry
            await big.verify([EASY] * (MAX_ITEMS + 1))
        assert err.value.status_code == 413
        await big.aclose()
    assert (await asyncio.to_thread(VerifierClient(service_url).verify_sync, [EASY]))[0].correct
    with pytest.raises(RuntimeError, match="running event loop"):
        VerifierClient(service_url).verify_sync([EASY])


@pytest.mark.slow
async def test_retries_until_the_service_comes_up():
    port = free_port()
    client = VerifierClient(f"http://127.0.0.1:{port}", deadline_s=90, backoff_s=0.2, max_backoff_s=1.0,
                            max_retries=200)
    pending = asyncio.create_task(client.verify([EASY]))
    await asyncio.sleep(0.5)
    proc = await asyncio.to_thread(start_service, port)
    try:
        verdicts = await pending
        assert verdicts[0].correct
        await asyncio.to_thread(wait_healthy, proc, f"http://127.0.0.1:{port}")
    finally:
        await client.aclose()
        await asyncio.to_thread(stop_service, proc)
