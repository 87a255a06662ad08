"""The job page on a real tiny job: configs/tiny.yaml submitted to a real job API (uvicorn), whose
controller runs redis streams, Ray, the verifier, vLLM and DeepSpeed; headless Chromium watches the
page while it trains and after it finished, and takes the screenshot docs/job_page.png is made from:
    SIMKO_UI_SCREENSHOT=docs/job_page.png flock /tmp/simko-heavy.lock \
        .venv/bin/python -m pytest -m slow tests/api/test_ui_job.py
"""
from __future__ import annotations

import os
import shutil

import pytest

from services.control.jobspec import JobSpec
from tests.api.cdp import Chromium
from tests.api.ui_support import ROOT, api_process
from tests.job_overrides import EAGER

TOKEN = "ui-job-token-0815"
STEPS = 4


def points(tab, chart: str) -> int:
    return int(tab.evaluate(f"(document.querySelector('#chart-{chart}') || {{dataset: {{}}}}).dataset.points || 0"))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_real_tiny_job_on_the_job_page(redis_url, tmp_path):
    spec = JobSpec.from_yaml(ROOT / "configs" / "tiny.yaml", [
        f"trainer.steps={STEPS}", "trainer.eval_every=2", "trainer.eval_n=4", "trainer.eval_problems=8",
        "trainer.export_final=false", "trainer.loggers=[jsonl,tensorboard]", EAGER]).model_dump(mode="json")
    runs = tmp_path / "runs"
    with api_process(redis_url, runs, TOKEN, tmp_path / "api.log") as (base, client), Chromium(tmp_path) as browser:
        response = client.post("/v1/jobs", json=spec)
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        tab = browser.new_tab()
        url = f"{base}/ui/jobs/{job_id}?refresh=1000"
        tab.navigate(url)
        tab.type_into("#token", TOKEN)
        tab.click("#login-submit")
        failed = "document.querySelector('#job-state')?.textContent === 'failed'"

        # First load, while it trains: the first step's points.
        tab.wait_for(f"document.querySelector('#chart-lambda')?.dataset.points >= 1 || {failed}", timeout=900)
        assert not tab.evaluate(failed), client.get(f"/v1/jobs/{job_id}").json().get("error")
        first = points(tab, "lambda")
        first_status = tab.evaluate("document.querySelector('#job-state').textContent")

        # The page follows the job to its end; a second load shows every step.
        tab.wait_for("document.querySelector('#status').textContent.startsWith('finished')", timeout=900)
        assert tab.evaluate("document.querySelector('#job-state').textContent") == "succeeded", \
            client.get(f"/v1/jobs/{job_id}").json().get("error")
        tab.navigate(url)
        tab.wait_for(f"document.querySelector('#chart-lambda')?.dataset.points === '{STEPS}'", timeout=60)
        assert first < STEPS or first_status == "succeeded"  # it was seen mid-run (or the run was quicker)
        for chart in ("lambda", "entropy", "reward", "loss", "throughput"):
            assert points(tab, chart) == STEPS, chart
        assert points(tab, "passk") == STEPS // 2  # evaluations at steps 2 and 4
        assert tab.evaluate("document.querySelectorAll('#chart-entropy_hist rect.bar').length") > 0
        assert tab.evaluate("document.querySelector('#log').textContent.length") > 0
        assert tab.js_errors() == []
        shot = tab.screenshot(tmp_path / "job_page.png")
        assert shot.stat().st_size > 20_000
        if os.environ.get("SIMKO_UI_SCREENSHOT"):  # how docs/job_page.png is refreshed
            shutil.copyfile(shot, os.environ["SIMKO_UI_SCREENSHOT"])

        tab.navigate(f"{base}/ui")
        tab.wait_for(f"document.querySelector('tr[data-job-id=\"{job_id}\"] .state')?.textContent === 'succeeded'")
        assert tab.evaluate(f"document.querySelector('tr[data-job-id=\"{job_id}\"] .step').textContent") \
            == f"{STEPS} / {STEPS}"
    assert (runs / job_id / "tensorboard").is_dir()  # the API-launched controller built the trackers too
