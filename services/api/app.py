"""The job API (FastAPI): submit, list, inspect, resize and cancel training jobs.

Each accepted job gets a controller process (`python -m services.control.controller`), in its own session
so a cancel can stop it and everything it started. Job state lives in Redis (services.control.jobs), so
restarting the API loses nothing. Every route but /health and the job page's HTML shells and script
(/ui, services/api/ui.py: they hold no job data) needs `Authorization: Bearer <token>`.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.api import ui
from services.control.jobs import TERMINAL, JobRecord, JobState, JobStore, UnknownJob, new_job_id
from services.control.jobspec import JobSpec, JobSpecError


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIMKO_API_")

    redis_url: str = "redis://127.0.0.1:6379/0"
    token: SecretStr | None = None
    token_file: Path | None = None
    dev_mode: bool = False  # allow running without a token (local development only)
    runs_dir: Path = Path("runs")
    ray_address: str | None = None  # the Ray cluster controllers join (None: each starts a local one)
    verifier_url: str | None = None  # default verifier for jobs that name none
    cancel_grace_s: float = 30.0

    def resolve_token(self) -> str | None:
        if self.token is not None and self.token.get_secret_value():
            return self.token.get_secret_value()
        if self.token_file is not None:
            token = self.token_file.read_text().strip()
            if token:
                return token
        if self.dev_mode:
            return None
        raise ValueError("the job API needs a bearer token: set SIMKO_API_TOKEN or SIMKO_API_TOKEN_FILE "
                         "(or SIMKO_API_DEV_MODE=1 for local development without auth)")


class ResizeRequest(BaseModel):
    replicas: int = Field(ge=0, le=1024)


class ControllerLauncher:
    """Starts and stops controller processes on this host."""

    def __init__(self, settings: ApiSettings):
        self.settings = settings
        self.procs: dict[str, subprocess.Popen] = {}

    def launch(self, record: JobRecord) -> int:
        run_dir = Path(record.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "services.control.controller", "--job-id", record.id,
                "--redis-url", self.settings.redis_url]
        if self.settings.ray_address:
            argv += ["--ray-address", self.settings.ray_address]
        with open(run_dir / "controller.log", "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[record.id] = proc
        return proc.pid

    def running(self, job_id: str) -> bool:
        proc = self.procs.get(job_id)
        return proc is not None and proc.poll() is None

    def kill(self, job_id: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(job_id)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop_all(self) -> None:
        for job_id in list(self.procs):
            self.kill(job_id, signal.SIGTERM)


def create_app(settings: ApiSettings | None = None, *, launcher: ControllerLauncher | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    token = settings.resolve_token()  # refuses to build the app without one (unless dev mode)
    store = JobStore(settings.redis_url)
    launcher = launcher or ControllerLauncher(settings)
    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(status_code=401, detail="missing or invalid bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(title="SimKO job API", version="1")
    app.state.store, app.state.launcher = store, launcher

    @app.exception_handler(UnknownJob)
    async def unknown_job(_request: Request, exc: UnknownJob) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": f"unknown job {exc.args[0]!r}"})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        try:
            await asyncio.to_thread(store.kv.ping)
            return {"status": "ok", "redis": True}
        except ConnectionError as exc:
            return JSONResponse(status_code=503, content={"status": "degraded", "redis": False, "error": str(exc)})

    @app.post("/v1/jobs", status_code=201, dependencies=[Depends(authorised)])
    async def submit(body: dict[str, Any] = Body(...)) -> dict[str, str]:
        try:
            spec = JobSpec.parse(body)
        except JobSpecError as exc:
            raise HTTPException(status_code=422, detail=exc.errors) from None
        if spec.verifier.url is None and settings.verifier_url:
            # The deployment's shared verifier service, rather than a private one per job.
            spec = spec.model_copy(update={"verifier": spec.verifier.model_copy(update={"url": settings.verifier_url})})
        job_id = new_job_id(spec.name)
        record = JobRecord(id=job_id, name=spec.name, state=JobState.QUEUED, spec=spec.model_dump(mode="json"),
                           run_dir=str((settings.runs_dir / job_id).resolve()))
        await asyncio.to_thread(store.create, record)
        pid = await asyncio.to_thread(launcher.launch, record)
        await asyncio.to_thread(store.update, job_id, controller_pid=pid)
        return {"id": job_id}

    @app.get("/v1/jobs", dependencies=[Depends(authorised)])
    async def list_jobs() -> list[dict[str, Any]]:
        return [r.public(with_spec=False) for r in await asyncio.to_thread(store.list)]

    @app.get("/v1/jobs/{job_id}", dependencies=[Depends(authorised)])
    async def get_job(job_id: str) -> dict[str, Any]:
        return (await asyncio.to_thread(store.get, job_id)).public()

    @app.get("/v1/jobs/{job_id}/metrics", dependencies=[Depends(authorised)])
    async def job_metrics(job_id: str, since: int = 0) -> list[dict[str, Any]]:
        await asyncio.to_thread(store.get, job_id)
        return await asyncio.to_thread(store.metrics, job_id, max(since, 0))

    @app.post("/v1/jobs/{job_id}/workers", dependencies=[Depends(authorised)])
    async def resize(job_id: str, request: ResizeRequest) -> dict[str, Any]:
        record = await asyncio.to_thread(store.get, job_id)
        if record.state in TERMINAL:
            raise HTTPException(status_code=409, detail=f"job {job_id} is {record.state.value}")
        await asyncio.to_thread(store.set_desired_workers, job_id, request.replicas)
        return {"id": job_id, "replicas": request.replicas}

    @app.post("/v1/jobs/{job_id}/cancel", dependencies=[Depends(authorised)])
    async def cancel(job_id: str) -> dict[str, Any]:
        record = await asyncio.to_thread(store.get, job_id)
        if record.state in TERMINAL:
            return {"id": job_id, "state": record.state.value}
        await asyncio.to_thread(store.request_cancel, job_id)
        record = await asyncio.to_thread(store.update, job_id, state=JobState.CANCELLING)
        asyncio.get_running_loop().create_task(_enforce_cancel(job_id))
        return {"id": job_id, "state": record.state.value}

    async def _enforce_cancel(job_id: str) -> None:
        """The controller stops at its next step boundary; one that does not within the grace
        period is killed with its whole process group."""
        deadline = asyncio.get_running_loop().time() + settings.cancel_grace_s
        while launcher.running(job_id) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.5)
        if launcher.running(job_id):
            launcher.kill(job_id, signal.SIGTERM)
            await asyncio.sleep(5)
            launcher.kill(job_id, signal.SIGKILL)
        record = await asyncio.to_thread(store.get, job_id)
        if record.state not in TERMINAL:
            await asyncio.to_thread(store.update, job_id, state=JobState.CANCELLED)

    add_ui_routes(app, store, authorised)
    return app


def add_ui_routes(app: FastAPI, store: JobStore, authorised: Any) -> None:
    """The job page (services/api/ui.py). The HTML shells and their script are public and hold no
    job data; what they show comes from the bearer-protected /v1 routes."""

    @app.get("/ui", include_in_schema=False)
    async def ui_jobs() -> HTMLResponse:
        return HTMLResponse(ui.page_html("jobs"))

    @app.get("/ui/jobs/{job_id}", include_in_schema=False)
    async def ui_job(job_id: str) -> HTMLResponse:  # the id is read by the script from the URL
        return HTMLResponse(ui.page_html("job"))

    @app.get("/ui/static/{name}", include_in_schema=False)
    async def ui_static(name: str) -> Response:
        try:
            content, media_type = ui.static_asset(name)
        except KeyError:
            raise HTTPException(status_code=404, detail=f"no such asset {name!r}") from None
        return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @app.get("/v1/ui/jobs", dependencies=[Depends(authorised)])
    async def ui_job_summaries() -> list[dict[str, Any]]:
        return await asyncio.to_thread(ui.job_summaries, store)

    @app.get("/v1/jobs/{job_id}/log", dependencies=[Depends(authorised)])
    async def job_log(job_id: str, lines: int = 200) -> dict[str, Any]:
        record = await asyncio.to_thread(store.get, job_id)
        return await asyncio.to_thread(ui.job_log, record, lines)


def run_server(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
