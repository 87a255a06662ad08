"""Thin FastAPI adapter over the grader pool: POST /v1/verify, GET /health, GET /metrics."""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from verifier.pool import GraderPool, Item
from verifier.settings import VerifierSettings
from verifier.tasks import known_tasks
from services.wire.verdicts import DEFAULT_EXTRACTION, Extraction, Status


class VerifyItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=200)
    response: str
    gold: str
    question: str | None = None  # the prompt text (optional): BBH option text -> letter, SynLogic puzzles
    extraction: Extraction | None = None  # this item's policy; None: the request's


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[VerifyItem]
    extraction: Extraction = DEFAULT_EXTRACTION  # the default for items that do not say


class VerdictOut(BaseModel):
    correct: bool
    reward: float
    status: Status
    extracted: str | None
    detail: str | None = None


class VerifyResponse(BaseModel):
    results: list[VerdictOut]


class _Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.verdicts = Counter("simko_verifier_verdicts", "Verdicts by task and status",
                                ["task", "status"], registry=self.registry)
        self.item_seconds = Histogram("simko_verifier_item_seconds",
                                      "Per-item latency (queueing + grading) by task",
                                      ["task"], registry=self.registry,
                                      buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.request_seconds = Histogram("simko_verifier_request_seconds", "POST /v1/verify latency",
                                         registry=self.registry,
                                         buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.rejected = Counter("simko_verifier_rejected_requests", "Requests refused (413/422)",
                                ["code"], registry=self.registry)
        self.workers_alive = Gauge("simko_verifier_workers_alive", "Live grader processes", registry=self.registry)
        self.worker_restarts = Gauge("simko_verifier_worker_restarts", "Grader processes replaced so far",
                                     registry=self.registry)


def create_app(settings: VerifierSettings) -> FastAPI:
    tasks = set(known_tasks())
    metrics = _Metrics()
    pool = GraderPool(settings.workers, deadline_s=settings.deadline_s, memory_mb=settings.memory_mb,
                      max_response_chars=settings.max_response_chars, recycle_after=settings.recycle_after)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(pool.start)  # uvicorn accepts connections only after this
        try:
            yield
        finally:
            await asyncio.to_thread(pool.close)

    app = FastAPI(title="SimKO verifier", lifespan=lifespan)
    app.state.pool = pool

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            metrics.rejected.labels("413").inc()
            return JSONResponse({"detail": f"request body over {settings.max_body_bytes} bytes"}, status_code=413)
        return await call_next(request)

    @app.post("/v1/verify", response_model=VerifyResponse)
    async def verify(req: VerifyRequest) -> VerifyResponse:
        started = time.perf_counter()
        if len(req.items) > settings.max_items:
            metrics.rejected.labels("413").inc()
            raise HTTPException(413, f"{len(req.items)} items in one request; the limit is {settings.max_items}")
        for i, it in enumerate(req.items):
            if len(it.gold) > settings.max_gold_chars:
                metrics.rejected.labels("422").inc()
                raise HTTPException(422, f"items[{i}].gold is {len(it.gold)} characters; the limit is "
                                         f"{settings.max_gold_chars}")
        # Truncate here too (the worker also does): keeps pipe traffic small. The tail holds the answer.
        items = [Item(it.task, it.response[-settings.max_response_chars:], it.gold,
                      it.question[-settings.max_question_chars:] if it.question else None,
                      it.extraction or req.extraction) for it in req.items]

        async def grade(item: Item):
            verdict = await pool.agrade(item)
            task = item.task if item.task in tasks else "unknown"  # bounded label cardinality
            metrics.verdicts.labels(task, verdict.status).inc()
            metrics.item_seconds.labels(task).observe(time.perf_counter() - started)
            return verdict

        verdicts = await asyncio.gather(*(grade(it) for it in items))
        metrics.request_seconds.observe(time.perf_counter() - started)
        return VerifyResponse(results=[VerdictOut(**v.to_dict()) for v in verdicts])

    @app.get("/health")
    async def health() -> dict:
        alive = pool.alive_workers()
        return {"status": "ok" if alive > 0 else "degraded", "workers": pool.size, "workers_alive": alive,
                "worker_pids": pool.pids(), "restarts": pool.restarts, "timeouts": pool.timeouts,
                "crashes": pool.crashes, "deadline_s": settings.deadline_s, "tasks": len(tasks)}

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.workers_alive.set(pool.alive_workers())
        metrics.worker_restarts.set(pool.restarts)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
