"""The job API over real HTTP (uvicorn subprocess) with a real Redis."""
import os
import subprocess
import sys
import time

import httpx
import pytest

from pathlib import Path

from services.api.app import ApiSettings, create_app
from services.control.local_stack import free_port, http_ok

TOKEN = "test-token-123"
REPO = Path(__file__).resolve().parents[2]
# The API's allowed roots below are the repository and the fixture's own folder (ROOTS).
GOOD_SPEC = {"model": {"path": str(REPO / "no-such-model")}, "data": {"train": "configs/data/arith_train.jsonl"},
             "trainer": {"steps": 1}}
SHARED_VERIFIER = "http://verifier.invalid:8001"  # the deployment's verifier; never contacted here


@pytest.fixture(scope="module")
def api(redis_url, tmp_path_factory, allowed_root):
    port = free_port()
    runs = tmp_path_factory.mktemp("runs")
    env = dict(os.environ, SIMKO_API_TOKEN=TOKEN, SIMKO_API_REDIS_URL=redis_url, SIMKO_API_RUNS_DIR=str(runs),
               SIMKO_API_VERIFIER_URL=SHARED_VERIFIER, SIMKO_API_ALLOWED_ROOTS=f"{REPO}{os.pathsep}{allowed_root}")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "services.api.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not http_ok(port) and time.monotonic() < deadline:
        assert proc.poll() is None, "the API exited during start-up"
        time.sleep(0.2)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=30)
    yield client
    client.close()
    proc.terminate()
    proc.wait(timeout=20)


def test_refuses_to_start_without_a_token(redis_url, monkeypatch):
    monkeypatch.delenv("SIMKO_API_TOKEN", raising=False)
    with pytest.raises(ValueError, match="SIMKO_API_TOKEN"):
        create_app(ApiSettings(redis_url=redis_url))
    create_app(ApiSettings(redis_url=redis_url, dev_mode=True))  # explicit local dev mode is allowed


@pytest.fixture(scope="module")
def allowed_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("allowed-root")


@pytest.mark.slow
def test_auth_required(api):
    assert api.get("/health").status_code == 200  # health is open
    assert httpx.get(f"{api.base_url}/v1/jobs").status_code == 401
    assert httpx.get(f"{api.base_url}/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.get("/v1/jobs").status_code == 200


@pytest.mark.slow
def test_invalid_spec_is_422_naming_the_field(api):
    response = api.post("/v1/jobs", json={**GOOD_SPEC, "learner": {"lr": -1.0}})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["detail"]] == ["learner.lr"]
    response = api.post("/v1/jobs", json={**GOOD_SPEC, "algorithm": {"loss": "ppo"}})
    assert response.status_code == 422 and "algorithm.loss" in response.text


@pytest.mark.slow
def test_unknown_job_is_404(api):
    assert api.get("/v1/jobs/nope").status_code == 404
    assert api.get("/v1/jobs/nope/metrics").status_code == 404
    assert api.post("/v1/jobs/nope/cancel").status_code == 404


@pytest.mark.slow
def test_submitted_job_runs_a_controller_that_reports_its_failure(api):
    """A real controller process starts, finds no model at the path and marks the job failed."""
    response = api.post("/v1/jobs", json=GOOD_SPEC)
    assert response.status_code == 201
    job_id = response.json()["id"]
    assert job_id in [j["id"] for j in api.get("/v1/jobs").json()]
    assert api.get(f"/v1/jobs/{job_id}").json()["spec"]["verifier"]["url"] == SHARED_VERIFIER
    deadline = time.monotonic() + 120
    while (job := api.get(f"/v1/jobs/{job_id}").json())["state"] not in ("failed", "succeeded"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["state"] == "failed"
    assert "not a Hugging Face model directory" in job["error"]
    assert api.post(f"/v1/jobs/{job_id}/workers", json={"replicas": 2}).status_code == 409


def _refused(api, spec: dict) -> list[str]:
    response = api.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    return [e["field"] for e in response.json()["detail"]]


@pytest.mark.slow
def test_paths_outside_the_allowed_roots_are_refused_naming_the_field(api, allowed_root):
    """SIMKO_API_ALLOWED_ROOTS confines every path a job names (services/api/paths.py)."""
    (allowed_root / "train.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
    (allowed_root / "out-link").symlink_to("/etc")
    model = allowed_root / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").symlink_to("/etc/hostname")  # a symlink out, inside the folder
    inside = str(allowed_root / "train.jsonl")
    escape = str(allowed_root) + "/.." * len(allowed_root.parts) + "/etc/hostname"
    ok = {**GOOD_SPEC, "data": {"train": inside, "eval": inside}}
    assert api.post("/v1/jobs", json=ok).status_code == 201  # inside the roots: accepted
    assert _refused(api, {**GOOD_SPEC, "data": {"train": "/etc/hostname"}}) == ["data.train"]
    assert _refused(api, {**GOOD_SPEC, "data": {"train": inside, "eval": escape}}) \
        == ["data.eval"]  # a `..` escape
    assert _refused(api, {**GOOD_SPEC, "data": {"train": str(allowed_root / "out-link" / "hostname")}}) \
        == ["data.train"]  # a symlink out of the root
    assert _refused(api, {**GOOD_SPEC, "model": {"path": str(model)}}) == ["model.path"]  # a link in the folder
    assert _refused(api, {**GOOD_SPEC, "data": {"train": str(allowed_root / "out-link" / "host*")}}) \
        == ["data.train"]  # a glob through the link
    response = api.post("/v1/jobs", json={**GOOD_SPEC, "model": {"path": "/usr/lib"},
                                          "trainer": {"tracking": {"mlflow_tracking_uri": "file:///tmp/mlruns"}}})
    assert response.status_code == 422
    detail = {e["field"]: e["message"] for e in response.json()["detail"]}
    assert set(detail) == {"model.path", "trainer.tracking.mlflow_tracking_uri"}  # every offender at once
    assert "outside the allowed roots" in detail["model.path"] and str(allowed_root) in detail["model.path"]
