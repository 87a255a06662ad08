"""Jobs outlive the job API (issue 16): the real API over HTTP (uvicorn subprocesses) on a real Redis,
its launcher starting tests/api/standin_controller.py (the real controller's store protocol without
Ray/vLLM/DeepSpeed; the real one runs in tests/integration/test_api_restart.py).

A restarted API lists, resizes and cancels (forced kill included) the jobs of the one before; a
controller that vanished without a final state is marked failed; failed and cancelled jobs resume."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from services.api.controllers import ControllerLauncher, boot_id, reconcile, start_token
from services.control.jobs import ControllerProcess, JobRecord, JobState, JobStore, new_job_id
from services.control.local_stack import free_port, http_ok

TOKEN = "outlive-token"
REPO = Path(__file__).resolve().parents[2]
SPEC = {"model": {"path": str(REPO / "no-such-model")}, "data": {"train": "configs/data/arith_train.jsonl"}}


class Api:
    """One API process; `kill()` SIGKILLs it (what an OOM kill or a crashed host process does)."""

    def __init__(self, redis_url: str, runs: Path, cancel_grace_s: float):
        self.port = free_port()
        env = dict(os.environ, SIMKO_API_TOKEN=TOKEN, SIMKO_API_REDIS_URL=redis_url, SIMKO_API_RUNS_DIR=str(runs),
                   SIMKO_API_ALLOWED_ROOTS=str(REPO), SIMKO_API_CANCEL_GRACE_S=str(cancel_grace_s))
        self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "tests.api.standin_api:create", "--factory",
                                      "--host", "127.0.0.1", "--port", str(self.port)], cwd=REPO, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not http_ok(self.port):
            assert self.proc.poll() is None and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}",
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def job(self, job_id: str) -> dict:
        response = self.http.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def submit(self, **spec) -> str:
        response = self.http.post("/v1/jobs", json={**SPEC, **spec})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def wait(self, job_id: str, until, timeout_s: float = 60) -> dict:
        deadline = time.monotonic() + timeout_s
        while not until(job := self.job(job_id)):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        return job

    def kill(self) -> None:
        self.http.close()
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def apis(redis_url, tmp_path):
    started: list[Api] = []

    def start(cancel_grace_s: float = 600.0) -> Api:
        started.append(Api(redis_url, tmp_path / "runs", cancel_grace_s))
        return started[-1]

    yield start
    for api in started:
        if api.proc.poll() is None:
            api.kill()
    for pid_file in (tmp_path / "runs").glob("*/child.pid"):  # a stubborn stand-in's child, if a test failed
        _kill(int(pid_file.read_text()))


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _gone(pid: int) -> bool:
    return start_token(pid) is None


def _wait_gone(pids, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while (left := [p for p in pids if not _gone(p)]):
        assert time.monotonic() < deadline, [psutil.Process(p).cmdline() for p in left]
        time.sleep(0.2)


def running(job: dict) -> bool:
    return job["state"] == "running" and job["step"] >= 1


def test_resume_is_404_for_unknown_and_409_unless_failed_or_cancelled(apis):
    api = apis()
    assert api.http.post("/v1/jobs/nope/resume").status_code == 404
    live = api.submit(name="live", trainer={"steps": 100000})
    api.wait(live, running)
    response = api.http.post(f"/v1/jobs/{live}/resume")
    assert response.status_code == 409 and "running" in response.json()["detail"]
    done = api.submit(name="done", trainer={"steps": 1})
    api.wait(done, lambda j: j["state"] == "succeeded")
    response = api.http.post(f"/v1/jobs/{done}/resume")
    assert response.status_code == 409 and "succeeded" in response.json()["detail"]
    assert api.http.post(f"/v1/jobs/{live}/cancel").status_code == 200
    api.wait(live, lambda j: j["state"] == "cancelled")


def test_vanished_controller_fails_the_job_which_resumes_with_a_new_attempt(apis, redis_url):
    api = apis()
    job_id = api.submit(name="vanishing", trainer={"steps": 100000})
    job = api.wait(job_id, running)
    assert job["attempt"] == 1
    first = job["controller_pid"]
    os.kill(first, signal.SIGKILL)  # no final state written: as an OOM kill
    job = api.wait(job_id, lambda j: j["state"] != "running")
    assert job["state"] == "failed", job
    assert "ended without recording a final state" in job["error"] and str(first) in job["error"]
    assert {j["id"]: j["state"] for j in api.http.get("/v1/jobs").json()}[job_id] == "failed"
    # `simko resume` (the CLI through services.api.client) starts attempt 2 on the same record.
    resumed = subprocess.run([str(Path(sys.executable).parent / "simko"), "resume", job_id,
                              "--api", f"http://127.0.0.1:{api.port}", "--token", TOKEN],
                             capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert '"attempt": 2' in resumed.stdout
    job = api.wait(job_id, lambda j: running(j) and j["controller_pid"] != first)
    assert job["attempt"] == 2 and job["error"] is None
    # A cancelled job resumes too, with the cancel flag cleared (or it would stop at once).
    assert api.http.post(f"/v1/jobs/{job_id}/cancel").json()["state"] == "cancelling"
    api.wait(job_id, lambda j: j["state"] == "cancelled")
    response = api.http.post(f"/v1/jobs/{job_id}/resume")
    assert response.status_code == 200 and response.json()["attempt"] == 3, response.text
    step = api.job(job_id)["step"]
    api.wait(job_id, lambda j: running(j) and j["step"] > step)  # progressing, not cancelled again
    assert not JobStore(redis_url).cancel_requested(job_id)
    api.http.post(f"/v1/jobs/{job_id}/cancel")
    api.wait(job_id, lambda j: j["state"] == "cancelled")


def test_a_restarted_api_lists_resizes_and_cancels_the_jobs_of_the_one_before(apis, redis_url, tmp_path):
    first = apis(cancel_grace_s=600)  # never forces a kill within this test
    early = first.submit(name="stubborn-early", trainer={"steps": 100000})
    late = first.submit(name="stubborn-late", trainer={"steps": 100000})
    pids = {j: first.wait(j, running)["controller_pid"] for j in (early, late)}
    children = {j: int((tmp_path / "runs" / j / "child.pid").read_text()) for j in (early, late)}
    assert first.http.post(f"/v1/jobs/{early}/cancel").json()["state"] == "cancelling"
    first.kill()
    assert not any(_gone(p) for p in [*pids.values(), *children.values()])  # the jobs outlived the API

    second = apis(cancel_grace_s=1)
    listed = {j["id"]: j for j in second.http.get("/v1/jobs").json()}
    assert listed[late]["state"] == "running" and listed[late]["controller_pid"] == pids[late]
    # The cancel the first API accepted is enforced by the second (the stand-in ignores it and
    # SIGTERM): its whole process group is killed, the job recorded cancelled.
    second.wait(early, lambda j: j["state"] == "cancelled", timeout_s=60)
    _wait_gone([pids[early], children[early]])
    # Resize and cancel through the second API reach the job the first one started.
    assert second.http.post(f"/v1/jobs/{late}/workers", json={"replicas": 3}).status_code == 200
    deadline = time.monotonic() + 30
    while JobStore(redis_url).metrics(late, since=-1)[-1]["rollout/workers"] != 3:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert second.http.post(f"/v1/jobs/{late}/cancel").json()["state"] == "cancelling"
    second.wait(late, lambda j: j["state"] == "cancelled", timeout_s=60)
    _wait_gone([pids[late], children[late]])


def test_a_recycled_pid_is_never_signalled(redis_url, tmp_path):
    """The store names a pid that now belongs to another process (another start time): that process
    is neither signalled nor taken for the controller, and the job is marked failed."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        launcher = ControllerLauncher(redis_url)
        real = ControllerProcess(pid=other.pid, host=launcher.host, boot_id=boot_id(), start=start_token(other.pid),
                                 attempt=1)
        recycled = ControllerProcess(**{**real.__dict__, "start": str(int(real.start) - 1)})
        assert launcher.alive(real) is True and launcher.alive(recycled) is False
        assert launcher.signal(recycled, signal.SIGKILL) is False
        assert other.poll() is None  # untouched
        elsewhere = ControllerProcess(**{**real.__dict__, "host": "another-host"})
        assert launcher.alive(elsewhere) is None  # another host's processes are not judged from here
        store = JobStore(redis_url)
        job_id = new_job_id("recycled")
        store.create(JobRecord(id=job_id, name="recycled", state=JobState.RUNNING, spec={}, run_dir=str(tmp_path)))
        store.set_controller(job_id, recycled)
        record = reconcile(store, launcher, store.get(job_id))
        assert record.state is JobState.FAILED and "ended without recording" in record.error
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
