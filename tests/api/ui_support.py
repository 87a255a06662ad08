"""Test helpers for the job page: the job API as a real uvicorn process, and step rows shaped like
the training loop's (services/control/loop.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from services.control.local_stack import free_port, http_ok

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def api_process(redis_url: str, runs_dir: Path, token: str, log_path: Path, **env_extra: str):
    """`uvicorn services.api.app:create_app` on a free port; yields (base URL, authorised client)."""
    port = free_port()
    env = dict(os.environ, SIMKO_API_TOKEN=token, SIMKO_API_REDIS_URL=redis_url, SIMKO_API_RUNS_DIR=str(runs_dir),
               SIMKO_API_ALLOWED_ROOTS=str(ROOT), **env_extra)  # jobs use the repository's configs and data
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "services.api.app:create_app", "--factory",
                                 "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not http_ok(port):
            assert proc.poll() is None, f"the API exited: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            yield base, client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


EDGES = [i * 0.25 for i in range(9)]


def step_row(step: int) -> dict:
    """Values that differ from step to step, so a chart that stopped updating shows it."""
    row = {"trainer/step": step, "loss/policy": 0.002 * step, "reward/mean": 0.1 + 0.05 * step,
           "reward/accuracy": 0.1 + 0.05 * step, "dist/lambda_1": -0.05 * step, "dist/lambda_2": -7.0 - 0.1 * step,
           "dist/lambda_3": -8.5 - 0.1 * step, "dist/lambda_sampled": -0.1 * step,
           "dist/entropy_mean": 0.2 + 0.01 * step,
           "dist/entropy_p50": 0.01, "dist/entropy_p80": 0.22, "dist/entropy_p95": 1.3 + 0.02 * step,
           "dist/entropy_hist": [900 - step, 120, 60, 30, 20 + step, 10, 5, 2],
           "dist/entropy_hist_edges": EDGES, "perf/tokens_per_s": 500.0 + 10 * step,
           "perf/rollout_generate_tokens_per_s": 1700.0 + step, "rollout/workers": 1.0, "time": time.time()}
    if step % 2 == 0:
        row.update({"eval/pass@1": 0.2 + 0.01 * step, "eval/pass@2": 0.3 + 0.01 * step,
                    "eval/pass@4": 0.4 + 0.01 * step})
    return row
