"""The real compose stack in Docker on CPU: scripts/compose_smoke.sh builds the images, brings up
docker-compose.yml + deploy/compose.cpu.yml with two rollout nodes, runs configs/tiny.yaml through
the job API with `simko submit`, checks the run directory on the /data volume, scales rollout
2 -> 1 -> 2 under a second job and tears everything down (`down -v`, nothing of the project left).

Opt-in, never part of CI: SIMKO_COMPOSE_SMOKE=1, as root, on a machine that has or may install a
Docker engine (a from-scratch build takes longer than CI's whole budget; see the README's deploy
section for the figures). The script takes no lock; run it under the heavy-jobs lock:
    SIMKO_COMPOSE_SMOKE=1 flock /tmp/simko-heavy.lock .venv/bin/python -m pytest tests/deploy/test_compose_docker.py
The process-level test (test_compose_processes.py) is what the default run checks.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.deploy.compose_support import REPO

TIMEOUT_S = 5400  # from scratch on the 2-core AMD profile: debootstrap, ~6 GB of wheels, two jobs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("SIMKO_COMPOSE_SMOKE") != "1",
                       reason="opt-in: SIMKO_COMPOSE_SMOKE=1 builds Docker images and runs the compose stack"),
]


def summary_of(stdout: str) -> dict:
    """The script's JSON summary: the last block of stdout that starts with a line `{`."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


@pytest.mark.timeout(TIMEOUT_S + 60)
def test_compose_stack_in_docker_runs_and_scales_jobs():
    assert os.geteuid() == 0, "scripts/compose_smoke.sh needs root (apt-get, dockerd)"
    proc = subprocess.run(["bash", str(REPO / "scripts" / "compose_smoke.sh")], cwd=REPO, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-8000:]
    summary = summary_of(proc.stdout)
    assert summary["ok"] and summary["left_behind"] == []
    job = summary["job"]
    assert job["steps"] == 5 and job["checkpoints"] and job["final_params"] > 0  # configs/tiny.yaml: 5 steps
    assert job["verifier_url"] == "http://verifier:8001"  # the compose verifier, filled in by the API
    scale = summary["scale_job"]
    assert scale["workers_replaced"] >= 1 and scale["scaled_down_at_step"] < scale["scaled_up_at_step"] < scale["steps"]
