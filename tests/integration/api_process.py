"""`simko serve api` as a real process for the integration tests: started, waited for, a client; and
the rows a job wrote to its run directory's metrics.jsonl."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services.control.local_stack import free_port, http_ok

ROOT = Path(__file__).resolve().parents[2]
SIMKO = str(Path(sys.executable).parent / "simko")


def read_metrics(run_dir: Path) -> list[dict]:
    """Every row of the run's metrics.jsonl, in order."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def start_api(env: dict, token: str, *, timeout_s: float = 60,
              client_timeout_s: float = 30) -> tuple[subprocess.Popen, httpx.Client, int]:
    """The API on a free port with `env`, once /health answers: (process, authorised client, port)."""
    port = free_port()
    proc = subprocess.Popen([SIMKO, "serve", "api", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while not http_ok(port):
        assert proc.poll() is None and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.2)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=client_timeout_s)
    return proc, client, port
