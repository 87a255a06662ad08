"""Jobs outlive the job API, with the real controller (issue 16): `simko serve api` is SIGKILLed
after step 1 of the tiny job and a new API process started on the same Redis; the job keeps
training under it, is cancelled through it and resumed through `POST /v1/jobs/{id}/resume`, and the
resumed controller continues from the newest checkpoint of the run directory to the last step."""
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration import api_process
from tests.integration.api_process import ROOT, SIMKO, read_metrics
from tests.reliability.process_table import kill_tagged, new_tag, survivors, tagged_env
from tests.job_overrides import EAGER_ARGS

pytestmark = pytest.mark.slow
TOKEN = "restart-token"
STEPS = 5


def start_api(env: dict) -> tuple[subprocess.Popen, httpx.Client]:
    proc, client, _ = api_process.start_api(env, TOKEN, client_timeout_s=60)
    return proc, client


def wait_job(client: httpx.Client, job_id: str, until, timeout_s: float = 900) -> dict:
    deadline = time.monotonic() + timeout_s
    while not until(job := client.get(f"/v1/jobs/{job_id}").json()):
        assert time.monotonic() < deadline, job
        time.sleep(1.0)
    return job


def test_job_survives_an_api_sigkill_then_cancels_and_resumes_from_its_checkpoint(redis_url, tmp_path):
    tag = new_tag()
    env = tagged_env(tag, {**os.environ, "SIMKO_API_TOKEN": TOKEN, "SIMKO_API_REDIS_URL": redis_url,
                           "SIMKO_API_RUNS_DIR": str(tmp_path), "SIMKO_API_ALLOWED_ROOTS": str(ROOT),
                           # no forced kill here (a SIGTERMed controller records failed): the tests in
                           # tests/api/test_jobs_outlive_api.py cover that path
                           "SIMKO_API_CANCEL_GRACE_S": "600"})
    first, client = start_api(env)
    second = None
    try:
        submit = subprocess.run([SIMKO, "submit", "configs/tiny.yaml", "--api", str(client.base_url), "--token", TOKEN,
                                 "--set", f"trainer.steps={STEPS}", "--set", "trainer.save_every=1", *EAGER_ARGS],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert submit.returncode == 0, submit.stderr
        job_id = submit.stdout.strip()
        run_dir = tmp_path / job_id
        job = wait_job(client, job_id, lambda j: j["step"] >= 1 or j["state"] in ("failed", "succeeded"))
        assert job["state"] == "running", job
        controller = job["controller_pid"]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        client.close()

        second, client = start_api(env)
        listed = {j["id"]: j for j in client.get("/v1/jobs").json()}
        assert listed[job_id]["state"] == "running" and listed[job_id]["controller_pid"] == controller
        assert psutil.pid_exists(controller)
        # Still training under the new API: a later step is reported through it.
        job = wait_job(client, job_id, lambda j: j["step"] >= 2 or j["state"] != "running")
        assert job["state"] == "running" and job["step"] < STEPS, job
        assert client.post(f"/v1/jobs/{job_id}/cancel").json()["state"] == "cancelling"
        job = wait_job(client, job_id, lambda j: j["state"] not in ("running", "cancelling"), timeout_s=300)
        assert job["state"] == "cancelled", job
        before = read_metrics(run_dir)
        checkpoint = max(int(p.name.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*"))
        assert 2 <= checkpoint < STEPS and before[-1]["trainer/step"] < STEPS

        response = client.post(f"/v1/jobs/{job_id}/resume")
        assert response.status_code == 200 and response.json()["attempt"] == 2, response.text
        job = wait_job(client, job_id, lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
        assert job["state"] == "succeeded" and job["attempt"] == 2, job
        assert job["controller_pid"] != controller
        resumed = read_metrics(run_dir)[len(before):]
        # From the step after the newest checkpoint, not from step 1 of a fresh model.
        assert [r["trainer/step"] for r in resumed] == list(range(checkpoint + 1, STEPS + 1)), resumed
        assert resumed[0]["learner/weight_version"] >= before[checkpoint - 1]["learner/weight_version"] >= 1
        assert (run_dir / "final" / "config.json").is_file()
    finally:
        client.close()
        for api in (first, second):
            if api is not None and api.poll() is None:
                api.terminate()
                api.wait(timeout=30)
    left = survivors(tag, within_s=10, under=tmp_path)
    kill_tagged(tag, under=tmp_path)
    assert not left, "the job left processes behind: " + "; ".join(map(str, left))
