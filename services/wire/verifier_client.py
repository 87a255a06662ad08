"""Async HTTP client of the verifier service (used by rollout workers and evaluation).

Batches items, retries transport errors and 5xx with capped exponential backoff (with jitter)
inside one overall deadline, and raises typed errors: VerifierUnavailable when the deadline or the
retry budget runs out, VerifierRequestError at once on a 4xx (retrying a bad request cannot help).
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence

import httpx
from pydantic import BaseModel, ConfigDict, Field

from services.wire.verdicts import DEFAULT_EXTRACTION, Extraction, Verdict

# Optional item fields passed through to the service when present (docs/verifier.md).
_OPTIONAL_ITEM_FIELDS = ("question", "extraction")


class VerifierSection(BaseModel):
    """The `verifier` section of a JobSpec: how a job reaches (or starts) its verifier service. The
    service's own limits (deadline per item, memory cap, request sizes) are verifier.settings, read
    from SIMKO_VERIFIER_* where the service runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = None  # None: start a private verifier service for this job
    workers: int = Field(2, ge=1)  # grader processes of that private service
    timeout_s: float = Field(30.0, gt=0)  # one HTTP request (transport errors are retried)
    deadline_s: float = Field(120.0, gt=0)  # every retry of one batch together
    max_batch: int = Field(64, ge=1)  # items per HTTP request
    # Which statements count as the final answer: "lenient" (a correct answer without a \boxed{} or
    # "the answer is" still counts) or "strict" (explicit markers only; rewards the asked-for format).
    extraction: Extraction = DEFAULT_EXTRACTION


class VerifierError(RuntimeError):
    """Base class of the client's errors."""


class VerifierUnavailable(VerifierError):
    """The service did not answer successfully before the deadline / retry budget ran out."""


class VerifierRequestError(VerifierError):
    """The service refused the request (4xx); `status_code` and `detail` say why."""

    def __init__(self, status_code: int, detail: str):
        super().__init__(f"verifier refused the request ({status_code}): {detail}")
        self.status_code, self.detail = status_code, detail


class VerifierClient:
    """Timeouts and batch size default to VerifierSection's (`for_section` takes a job's)."""

    def __init__(self, base_url: str, *, timeout_s: float | None = None, deadline_s: float | None = None,
                 max_batch: int | None = None, max_retries: int = 5, backoff_s: float = 0.1,
                 max_backoff_s: float = 5.0, extraction: Extraction | None = None):
        section = VerifierSection(**{k: v for k, v in (("timeout_s", timeout_s), ("deadline_s", deadline_s),
                                                       ("max_batch", max_batch)) if v is not None})
        self.base_url = base_url.rstrip("/")
        self.timeout_s, self.deadline_s, self.max_batch = section.timeout_s, section.deadline_s, section.max_batch
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        # The request-level policy (None: the service's default, lenient); an item's own wins.
        self.extraction = VerifierSection(extraction=extraction).extraction if extraction is not None else None
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def for_section(cls, base_url: str, section: VerifierSection) -> "VerifierClient":
        return cls(base_url, timeout_s=section.timeout_s, deadline_s=section.deadline_s, max_batch=section.max_batch,
                   extraction=section.extraction)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s)
        return self._client

    async def verify(self, items: Sequence[Mapping[str, str]]) -> list[Verdict]:
        """Verdicts in the order of `items` (dicts with task, response, gold, and optionally
        question and extraction)."""
        deadline = time.monotonic() + self.deadline_s
        payload = [{"task": it["task"], "response": it["response"], "gold": it["gold"],
                    **{k: it[k] for k in _OPTIONAL_ITEM_FIELDS if it.get(k) is not None}} for it in items]
        batches = [payload[i : i + self.max_batch] for i in range(0, len(payload), self.max_batch)]
        results = await asyncio.gather(*(self._post_batch(b, deadline) for b in batches))
        return [v for batch in results for v in batch]

    async def _post_batch(self, batch: list[dict], deadline: float) -> list[Verdict]:
        last_error = "no attempt made"
        for attempt in range(self.max_retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                body = {"items": batch} if self.extraction is None else {"items": batch, "extraction": self.extraction}
                resp = await self._http().post("/v1/verify", json=body, timeout=min(self.timeout_s, remaining))
            except httpx.TransportError as err:  # connect/read errors and timeouts: worth a retry
                last_error = f"{type(err).__name__}: {err}"
            else:
                if resp.status_code < 400:
                    results = resp.json()["results"]
                    if len(results) != len(batch):
                        raise VerifierError(f"verifier returned {len(results)} results for {len(batch)} items")
                    return [Verdict.from_dict(r) for r in results]
                if resp.status_code < 500:
                    raise VerifierRequestError(resp.status_code, _detail(resp))
                last_error = f"HTTP {resp.status_code}: {_detail(resp)}"
            if attempt == self.max_retries:
                break
            pause = min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
            if time.monotonic() + pause >= deadline:
                break
            await asyncio.sleep(pause)
        raise VerifierUnavailable(f"verifier at {self.base_url} unavailable: {last_error}")

    def verify_sync(self, items: Sequence[Mapping[str, str]]) -> list[Verdict]:
        """Blocking variant for code without an event loop (uses its own short-lived connection)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop running in this thread: fine
        else:
            raise RuntimeError("verify_sync() called from a running event loop; await verify() instead")

        async def run() -> list[Verdict]:
            sync_client = VerifierClient(self.base_url, timeout_s=self.timeout_s, deadline_s=self.deadline_s,
                                         max_batch=self.max_batch, max_retries=self.max_retries,
                                         backoff_s=self.backoff_s, max_backoff_s=self.max_backoff_s,
                                         extraction=self.extraction)
            try:
                return await sync_client.verify(items)
            finally:
                await sync_client.aclose()

        return asyncio.run(run())

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> VerifierClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    return str(body.get("detail", body))[:1000] if isinstance(body, dict) else str(body)[:1000]
