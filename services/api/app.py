"""The job API (FastAPI): submit, list, inspect, resize, cancel and resume training jobs.

Each accepted job gets a controller process (`python -m services.control.controller`, started by
services/api/controllers.py) in its own session, so a cancel can stop it and everything it started,
and not tied to the API's lifetime: jobs outlive an API restart. Job state and the controller's
identity live in Redis (services.control.jobs), so a restarted API lists, resizes and cancels the
jobs the previous one started; a job whose controller vanished is marked failed when it is read,
and `POST /v1/jobs/{id}/resume` starts a new controller on its record and run directory. Every route but /health and the job page's HTML shells and script
(/ui, services/api/ui.py: they hold no job data) needs `Authorization: Bearer <token>`.
"""
from __future__ import annotations

import asyncio
import secrets
import signal
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.api import ui
from services.api.controllers import ControllerLauncher, reconcile
from services.api.paths import confine, parse_roots
from services.control.jobs import TERMINAL, JobRecord, JobState, JobStore, UnknownJob, new_job_id
from services.control.jobspec import JobSpec, JobSpecError

RESUMABLE = {JobState.FAILED, JobState.CANCELLED}


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
    # Where a submitted job's model, data and tracking paths may point (services/api/paths.py):
    # folders separated by os.pathsep or commas; the deployments' shared volume by default.
    allowed_roots: str = "/data"

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


def create_app(settings: ApiSettings | None = None, *, launcher: ControllerLauncher | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    token = settings.resolve_token()  # refuses to build the app without one (unless dev mode)
    roots = parse_roots(settings.allowed_roots)  # a malformed setting stops the API at start-up
    store = JobStore(settings.redis_url)
    launcher = launcher or ControllerLauncher(settings.redis_url, settings.ray_address)
    bearer = HTTPBearer(auto_error=False)
    launching = asyncio.Lock()  # one launch at a time: two resumes of one job must not start two controllers

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(status_code=401, detail="missing or invalid bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    def current(job_id: str) -> JobRecord:
        return reconcile(store, launcher, store.get(job_id))

    def current_all() -> list[JobRecord]:
        return [reconcile(store, launcher, r) for r in store.list()]

    def view(record: JobRecord, with_spec: bool = True) -> dict[str, Any]:
        out = record.public(with_spec=with_spec)
        process = store.controller(record.id)
        if process is not None and process.attempt == record.attempt:
            # Known from launch on (the controller writes controller_pid only once it has started).
            out["controller_pid"], out["controller_host"] = process.pid, process.host
        return out

    def start_controller(record: JobRecord) -> None:
        try:
            store.set_controller(record.id, launcher.launch(record))
        except OSError as exc:
            store.update(record.id, state=JobState.FAILED, error=f"could not start the controller: {exc}")

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Cancels the previous API process accepted but did not see through (it died in the grace period).
        try:
            records = await asyncio.to_thread(current_all)
        except ConnectionError:  # Redis down: the API still starts (/health says degraded)
            records = []
        for record in records:
            if record.state is JobState.CANCELLING:
                asyncio.get_running_loop().create_task(_enforce_cancel(record.id))
        yield

    app = FastAPI(title="SimKO job API", version="1", lifespan=lifespan)
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
        # Relative paths are the controller's: it runs in this process's working directory.
        confined = await asyncio.to_thread(confine, spec, roots)
        if confined:
            raise HTTPException(status_code=422, detail=confined)
        if spec.verifier.url is None and settings.verifier_url:
            # The deployment's shared verifier service, rather than a private one per job.
            spec = spec.model_copy(update={"verifier": spec.verifier.model_copy(update={"url": settings.verifier_url})})
        job_id = new_job_id(spec.name)
        record = JobRecord(id=job_id, name=spec.name, state=JobState.QUEUED, spec=spec.model_dump(mode="json"),
                           run_dir=str((settings.runs_dir / job_id).resolve()))
        async with launching:
            await asyncio.to_thread(store.create, record)
            await asyncio.to_thread(start_controller, record)
        return {"id": job_id}

    @app.get("/v1/jobs", dependencies=[Depends(authorised)])
    async def list_jobs() -> list[dict[str, Any]]:
        return [view(r, with_spec=False) for r in await asyncio.to_thread(current_all)]

    @app.get("/v1/jobs/{job_id}", dependencies=[Depends(authorised)])
    async def get_job(job_id: str) -> dict[str, Any]:
        return view(await asyncio.to_thread(current, job_id))

    @app.get("/v1/jobs/{job_id}/metrics", dependencies=[Depends(authorised)])
    async def job_metrics(job_id: str, since: int = 0) -> list[dict[str, Any]]:
        await asyncio.to_thread(store.get, job_id)
        return await asyncio.to_thread(store.metrics, job_id, max(since, 0))

    @app.post("/v1/jobs/{job_id}/workers", dependencies=[Depends(authorised)])
    async def resize(job_id: str, request: ResizeRequest) -> dict[str, Any]:
        record = await asyncio.to_thread(current, job_id)
        if record.state in TERMINAL:
            raise HTTPException(status_code=409, detail=f"job {job_id} is {record.state.value}")
        await asyncio.to_thread(store.set_desired_workers, job_id, request.replicas)
        return {"id": job_id, "replicas": request.replicas}

    @app.post("/v1/jobs/{job_id}/cancel", dependencies=[Depends(authorised)])
    async def cancel(job_id: str) -> dict[str, Any]:
        record = await asyncio.to_thread(current, job_id)
        if record.state in TERMINAL or record.state is JobState.CANCELLING:  # already being enforced
            return {"id": job_id, "state": record.state.value}
        await asyncio.to_thread(store.request_cancel, job_id)
        record = await asyncio.to_thread(store.update, job_id, state=JobState.CANCELLING)
        asyncio.get_running_loop().create_task(_enforce_cancel(job_id))
        return {"id": job_id, "state": record.state.value}

    @app.post("/v1/jobs/{job_id}/resume", dependencies=[Depends(authorised)])
    async def resume(job_id: str) -> dict[str, Any]:
        """A new controller on the job's record and run directory; `simko train`'s loop resumes from
        the newest checkpoint of RUN_DIR/checkpoints (a job that wrote none starts over)."""
        async with launching:
            record = await asyncio.to_thread(current, job_id)
            if record.state not in RESUMABLE:
                raise HTTPException(status_code=409, detail=f"job {job_id} is {record.state.value}: "
                                                            "only failed or cancelled jobs resume")
            process = await asyncio.to_thread(store.controller, job_id)
            # A controller writes its final state, then exits: give the previous one time to finish.
            stop_by = time.time() + settings.cancel_grace_s
            while process is not None and await asyncio.to_thread(launcher.alive, process) and time.time() < stop_by:
                await asyncio.sleep(0.2)
            if process is not None and await asyncio.to_thread(launcher.alive, process):
                raise HTTPException(status_code=409, detail=f"job {job_id} is {record.state.value} but its "
                                    f"controller (pid {process.pid}) is still stopping; try again")
            await asyncio.to_thread(store.clear_cancel, job_id)
            record = await asyncio.to_thread(store.update, job_id, state=JobState.QUEUED, error=None,
                                             controller_pid=None, attempt=record.attempt + 1)
            await asyncio.to_thread(start_controller, record)
        record = await asyncio.to_thread(store.get, job_id)
        return {"id": job_id, "state": record.state.value, "attempt": record.attempt}

    async def _enforce_cancel(job_id: str) -> None:
        """The controller stops at its next step boundary; one that does not within the grace period
        (counted from the cancel request, which the store keeps, so an API restarted meanwhile
        carries on) is stopped with its whole process group: SIGTERM, then SIGKILL."""
        requested = await asyncio.to_thread(store.cancel_requested_at, job_id)
        deadline = (requested or time.time()) + settings.cancel_grace_s

        def running() -> bool | None:
            record = store.get(job_id)
            process = store.controller(job_id)
            if record.state in TERMINAL or process is None or process.attempt != record.attempt:
                return False if record.state in TERMINAL else None
            return launcher.alive(process)

        while (alive := await asyncio.to_thread(running)) and time.time() < deadline:
            await asyncio.sleep(0.5)
        if alive:
            process = await asyncio.to_thread(store.controller, job_id)
            launcher.signal(process, signal.SIGTERM)
            stop_by = time.time() + 5.0  # its cleanup (Ray, vLLM, the local stack) on SIGTERM
            while await asyncio.to_thread(launcher.alive, process) and time.time() < stop_by:
                await asyncio.sleep(0.5)
            launcher.signal(process, signal.SIGKILL)
        if alive is not None:  # None: its controller runs on another host; it sees the cancel flag itself
            await asyncio.to_thread(current, job_id)  # a controller gone without a final state: cancelled

    add_ui_routes(app, store, authorised, current_all)
    return app


def add_ui_routes(app: FastAPI, store: JobStore, authorised: Any, refresh: Any) -> None:
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
        await asyncio.to_thread(refresh)  # vanished controllers' jobs show as failed here too
        return await asyncio.to_thread(ui.job_summaries, store)

    @app.get("/v1/jobs/{job_id}/log", dependencies=[Depends(authorised)])
    async def job_log(job_id: str, lines: int = 200) -> dict[str, Any]:
        record = await asyncio.to_thread(store.get, job_id)
        return await asyncio.to_thread(ui.job_log, record, lines)


def run_server(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
