"""The job page: what the browser gets, and the data it asks for (pure functions; the routes that
serve them are in services/api/app.py, the one module of this unit that speaks FastAPI).

    GET /ui                   jobs list      } HTML shells + services/api/ui/*.js|css, public: they hold
    GET /ui/jobs/{id}         one job        } no job data, only the script that asks for it
    GET /ui/static/{name}     the page's script and style sheet (a fixed list: nothing else is served)
    GET /v1/ui/jobs           job summaries (state, step, reward, workers, age)    } bearer token, like
    GET /v1/jobs/{id}/log     the tail of RUN_DIR/controller.log + the final pass@K } every /v1 route
    + the existing GET /v1/jobs/{id} (JobSpec) and /v1/jobs/{id}/metrics?since=N (the charts, incrementally)

The script (ui/app.js) asks for the token once, keeps it in sessionStorage, draws inline SVG charts
and polls while the job runs. Nothing is fetched from anywhere but this API.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from services.control.jobs import JobRecord, JobStore

UI_DIR = Path(__file__).resolve().parent / "ui"
PAGES = {"jobs": "index.html", "job": "job.html"}
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
LOG_FILE = "controller.log"
FINAL_EVAL = Path("eval") / "pass_at_k.json"  # services/evaluation/results.py writes it
MAX_LOG_LINES = 2000
TAIL_BYTES = 256 * 1024  # read at most this much of the end of a log
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def page_html(name: str) -> str:
    return (UI_DIR / PAGES[name]).read_text()


def static_asset(name: str) -> tuple[bytes, str]:
    """(content, media type) of a listed asset; KeyError for anything else (no paths from the URL)."""
    media_type = ASSETS[name]
    return (UI_DIR / name).read_bytes(), media_type


def job_summary(record: JobRecord, last_metrics: dict[str, Any] | None, desired_workers: int | None,
                now: float | None = None) -> dict[str, Any]:
    """One row of the jobs list. `workers` is what the last step saw (rollout/workers), else the
    resize request, else the spec's rollout.workers."""
    last = last_metrics or {}
    spec = record.spec or {}
    workers = last.get("rollout/workers")
    if workers is None:
        workers = desired_workers if desired_workers is not None else spec.get("rollout", {}).get("workers")
    now = time.time() if now is None else now
    return {"id": record.id, "name": record.name, "state": record.state.value, "step": record.step,
            "steps": spec.get("trainer", {}).get("steps"), "reward": last.get("reward/mean"),
            "workers": int(workers) if isinstance(workers, (int, float)) else None,
            "created_at": record.created_at, "updated_at": record.updated_at,
            "age_s": max(0.0, now - record.created_at), "error": record.error}


def job_summaries(store: JobStore) -> list[dict[str, Any]]:
    """Newest first."""
    rows = []
    for record in store.list():
        last = store.metrics(record.id, since=-1)  # LRANGE -1 -1: only the last step
        rows.append(job_summary(record, last[-1] if last else None, store.desired_workers(record.id)))
    return sorted(rows, key=lambda r: r["created_at"], reverse=True)


def log_tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a (possibly large, possibly still growing) log; [] if it is absent."""
    lines = max(0, min(lines, MAX_LOG_LINES))
    if lines == 0 or not path.is_file():
        return []
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - TAIL_BYTES))
        data = f.read()
    text = ANSI_ESCAPE.sub("", data.decode("utf-8", errors="replace"))  # Ray colours its log prefixes
    out = text.splitlines()
    if size > TAIL_BYTES and out:
        out = out[1:]  # the first line read is probably cut
    return out[-lines:]


def final_eval(run_dir: Path) -> dict[str, float] | None:
    """pass@K of the final evaluation ({"1": 0.2, ...}) if the run has one, else None."""
    path = run_dir / FINAL_EVAL
    if not path.is_file():
        return None
    try:
        table = json.loads(path.read_text()).get("pass_at_k", {})
        return {str(k): float(v) for k, v in table.items()}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"{path}: not a pass@K result ({exc})") from None


def job_log(record: JobRecord, lines: int) -> dict[str, Any]:
    run_dir = Path(record.run_dir)
    try:
        evaluation, eval_error = final_eval(run_dir), None
    except ValueError as exc:
        evaluation, eval_error = None, str(exc)
    return {"id": record.id, "path": str(run_dir / LOG_FILE), "lines": log_tail(run_dir / LOG_FILE, lines),
            "final_eval": evaluation, "final_eval_error": eval_error}
