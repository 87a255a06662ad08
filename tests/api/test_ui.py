"""The job page: its data functions, its routes (public shells, bearer-protected data), and the page
itself in a real headless Chromium against a real uvicorn API whose job store holds a job and its
step metrics (appended by the test, as a controller would)."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from services.api import ui
from services.api.app import ApiSettings, create_app
from services.control.jobs import JobRecord, JobState, JobStore, new_job_id
from services.control.jobspec import JobSpec
from tests.api.cdp import Chromium
from tests.api.ui_support import ROOT, api_process, step_row

TOKEN = "ui-test-token-4711"
CHARTS = ("lambda", "entropy", "reward", "loss", "throughput", "passk")


def make_job(store: JobStore, runs: Path, name: str) -> JobRecord:
    spec = JobSpec.from_yaml(ROOT / "configs" / "tiny.yaml").model_dump(mode="json")
    job_id = new_job_id(name)
    record = JobRecord(id=job_id, name=name, state=JobState.RUNNING, spec=spec, run_dir=str(runs / job_id))
    Path(record.run_dir).mkdir(parents=True)
    return store.create(record)


def add_steps(store: JobStore, record: JobRecord, steps, log_line: str | None = None) -> None:
    for step in steps:
        store.append_metrics(record.id, step_row(step))
        store.update(record.id, step=step)
    if log_line:
        with open(Path(record.run_dir) / "controller.log", "a") as f:
            f.write(log_line + "\n")


# ------------------------------------------------------------------------------ pure functions
def test_log_tail_reads_only_the_end_of_a_large_log(tmp_path):
    log = tmp_path / "controller.log"
    log.write_text("".join(f"line {i} " + "x" * 200 + "\n" for i in range(5000)))  # ~1 MB
    tail = ui.log_tail(log, 3)
    assert [t.split()[1] for t in tail] == ["4997", "4998", "4999"]
    assert len(ui.log_tail(log, 10_000)) <= ui.MAX_LOG_LINES
    assert ui.log_tail(tmp_path / "missing.log", 5) == [] and ui.log_tail(log, 0) == []
    log.write_text("\x1b[33m(raylet)\x1b[0m It looks like...\n")  # Ray's coloured prefixes
    assert ui.log_tail(log, 5) == ["(raylet) It looks like..."]


def test_job_summary_takes_reward_and_workers_from_the_last_step():
    record = JobRecord(id="j-1", name="j", state=JobState.RUNNING, spec={"trainer": {"steps": 7},
                       "rollout": {"workers": 2}}, run_dir="/x", created_at=100.0, step=3)
    row = ui.job_summary(record, step_row(3), desired_workers=None, now=160.0)
    assert (row["state"], row["step"], row["steps"], row["workers"], row["age_s"]) == ("running", 3, 7, 1, 60.0)
    assert row["reward"] == pytest.approx(0.25)
    assert ui.job_summary(record, None, desired_workers=4)["workers"] == 4  # no step yet: the resize request
    assert ui.job_summary(record, None, desired_workers=None)["workers"] == 2  # else the spec


def test_final_eval_is_read_and_a_broken_file_is_named(tmp_path):
    assert ui.final_eval(tmp_path) is None
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "pass_at_k.json").write_text('{"pass_at_k": {"1": 0.2, "8": 0.5}, "n": 8}')
    assert ui.final_eval(tmp_path) == {"1": 0.2, "8": 0.5}
    (tmp_path / "eval" / "pass_at_k.json").write_text("{not json")
    with pytest.raises(ValueError, match="pass_at_k.json"):
        ui.final_eval(tmp_path)


def test_the_page_loads_nothing_from_outside_the_api():
    for path in sorted(ui.UI_DIR.iterdir()):
        text = path.read_text()
        urls = set(re.findall(r"""(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s"'<>)]*""", text))
        urls.discard("http://www.w3.org/2000/svg")  # the SVG namespace name, never fetched
        assert not urls, f"{path.name} refers outside the API: {urls}"
        assert "@import" not in text and "integrity=" not in text, path.name
    assert set(ui.ASSETS) | set(ui.PAGES.values()) == {p.name for p in ui.UI_DIR.iterdir()}


# ------------------------------------------------------------------------------ the routes (ASGI)
def test_shells_are_public_without_job_data_and_the_data_needs_the_token(redis_url, tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(ApiSettings(redis_url=redis_url, token=TOKEN, runs_dir=tmp_path))
    store = JobStore(redis_url)
    record = make_job(store, tmp_path, "secret-name-1b7")
    add_steps(store, record, [1, 2], log_line="secret log line 42")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app) as client:
        for path in ("/ui", f"/ui/jobs/{record.id}"):
            page = client.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert record.name not in page.text and "secret log" not in page.text and "lambda" not in page.text
        assert client.get("/ui/static/app.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/ui/static/style.css").status_code == 200
        for bad in ("/ui/static/ui.py", "/ui/static/..%2Fui.py", "/ui/static/index.html"):
            assert client.get(bad).status_code == 404, bad
        for path in ("/v1/ui/jobs", f"/v1/jobs/{record.id}/log"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        [mine] = [j for j in client.get("/v1/ui/jobs", headers=auth).json() if j["id"] == record.id]
        assert (mine["state"], mine["step"], mine["steps"], mine["workers"]) == ("running", 2, 5, 1)
        assert mine["reward"] == pytest.approx(step_row(2)["reward/mean"])
        log = client.get(f"/v1/jobs/{record.id}/log?lines=5", headers=auth).json()
        assert log["lines"] == ["secret log line 42"] and log["final_eval"] is None
        assert client.get("/v1/jobs/nope/log", headers=auth).status_code == 404


# ------------------------------------------------------------------------------ in Chromium
def lambda_points(tab) -> str:
    return tab.evaluate("(document.querySelector('#chart-lambda') || {dataset: {}}).dataset.points || ''")


def last_value(tab, chart: str, key: str) -> float:
    return float(tab.evaluate(f"document.querySelector('#chart-{chart} polyline[data-key=\"{key}\"]').dataset.last"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_job_page_shows_live_charts_in_chromium(redis_url, tmp_path):
    store = JobStore(redis_url)
    runs = tmp_path / "runs"
    record = make_job(store, runs, "ui-live-job")
    add_steps(store, record, [1, 2, 3], log_line="2026-12-01 INFO simko.loop: step 3 done")
    with api_process(redis_url, runs, TOKEN, tmp_path / "api.log") as (base, _client), Chromium(tmp_path) as browser:
        tab = browser.new_tab()
        url = f"{base}/ui/jobs/{record.id}?refresh=400"

        # Without the token: the form, and nothing of the job anywhere in the DOM.
        tab.navigate(url)
        tab.wait_for("document.querySelector('#login #token')")
        html = tab.evaluate("document.documentElement.outerHTML")
        assert record.name not in html and "svg" not in html and "step 3 done" not in html

        tab.type_into("#token", TOKEN)
        tab.click("#login-submit")
        tab.wait_for("document.querySelector('#chart-lambda')?.dataset.points === '3'")
        for chart in CHARTS:
            assert int(tab.evaluate(f"document.querySelector('#chart-{chart}').dataset.points")) > 0, chart
        keys = tab.evaluate("[...document.querySelectorAll('#chart-lambda polyline')].map(p => p.dataset.key)")
        assert keys == ["dist/lambda_1", "dist/lambda_2", "dist/lambda_3", "dist/lambda_sampled"]
        assert last_value(tab, "lambda", "dist/lambda_1") == pytest.approx(step_row(3)["dist/lambda_1"])
        assert tab.evaluate("document.querySelector('#chart-passk').dataset.points") == "1"  # step 2 only
        assert tab.evaluate("document.querySelectorAll('#chart-entropy_hist rect.bar').length") == 8
        assert tab.evaluate("document.querySelector('#job-step').textContent") == "3 / 5"
        assert "tiny-simko" in tab.evaluate("document.querySelector('#jobspec').textContent")
        assert "step 3 done" in tab.evaluate("document.querySelector('#log').textContent")
        assert tab.js_errors() == []

        # New steps arrive while the page is open: the same load redraws.
        add_steps(store, record, [4, 5], log_line="2026-12-01 INFO simko.loop: step 5 done")
        tab.wait_for("document.querySelector('#chart-lambda').dataset.points === '5'", timeout=20)
        assert last_value(tab, "lambda", "dist/lambda_1") == pytest.approx(step_row(5)["dist/lambda_1"])
        assert last_value(tab, "throughput", "perf/tokens_per_s") == pytest.approx(550.0)
        assert tab.evaluate("document.querySelector('#chart-passk').dataset.points") == "2"
        assert tab.evaluate("document.querySelector('#chart-entropy_hist').dataset.step") == "5"
        tab.wait_for("document.querySelector('#log').textContent.includes('step 5 done')", timeout=10)

        # A second load of the page: the token is still in this tab's session, the values are the new ones.
        tab.navigate(url)
        tab.wait_for("document.querySelector('#chart-lambda')?.dataset.points === '5'")
        assert tab.evaluate("document.querySelector('#login')") is None
        shot = tab.screenshot(tmp_path / "job_page.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

        # The job finishes: the page says so and stops polling.
        store.update(record.id, state=JobState.SUCCEEDED)
        tab.wait_for("document.querySelector('#status').textContent.startsWith('finished (succeeded)')", timeout=10)

        # The jobs list.
        tab.navigate(f"{base}/ui?refresh=400")
        row = f"document.querySelector('tr[data-job-id=\"{record.id}\"]')"
        tab.wait_for(row)
        assert tab.evaluate(f"{row}.querySelector('.state').textContent") == "succeeded"
        assert tab.evaluate(f"{row}.querySelector('.step').textContent") == "5 / 5"
        assert tab.evaluate(f"{row}.querySelector('.reward').textContent") == "0.35"
        assert tab.evaluate(f"{row}.querySelector('.workers').textContent") == "1"
        assert tab.js_errors() == []

        # Another tab has its own session storage: no token, no data; a wrong token is refused.
        other = browser.new_tab()
        other.navigate(url)
        other.wait_for("document.querySelector('#login #token')")
        time.sleep(1.0)  # a page that polled without a token would have drawn by now
        assert record.name not in other.evaluate("document.documentElement.outerHTML")
        other.type_into("#token", "not-the-token")
        other.click("#login-submit")
        other.wait_for("document.querySelector('#login-error')?.textContent.includes('refused')")
        assert other.evaluate("document.querySelectorAll('svg.chart').length") == 0
