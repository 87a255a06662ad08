"""No orphans: `simko train` owns redis-server, the verifier and its graders, a local Ray (GCS,
raylet, workers), the learner rank and the rollout worker with its vLLM engine; all of it dies with
the `simko train` process under SIGKILL as under SIGTERM."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.reliability.owners import REPO, describe, kill_and_collect, wait_for
from tests.reliability.process_table import kill_tagged, new_tag, tagged_env
from tests.job_overrides import EAGER_ARGS

pytestmark = pytest.mark.slow
SIMKO = str(REPO / ".venv" / "bin" / "simko")


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_simko_train_takes_everything_along(sig, tmp_path):
    tag, out = new_tag(), tmp_path / "run"
    job = subprocess.Popen([SIMKO, "train", "configs/tiny.yaml", "--out", str(out), "--set", "trainer.steps=1000", *EAGER_ARGS],
                           cwd=REPO, env=tagged_env(tag), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        metrics = Path(out) / "metrics.jsonl"
        # One step done: every component (redis, verifier, Ray, learner, rollout + vLLM) is running.
        wait_for("first step", lambda: metrics.is_file() and metrics.read_text().count("\n") >= 1, job,
                 timeout_s=900)
        before, left = kill_and_collect(tag, job.pid, sig, expect_at_least=6)
    finally:
        kill_tagged(tag)
        job.kill()
        job.wait(timeout=30)
    kinds = " ".join(f.cmdline for f in before)
    assert all(k in kinds for k in ("redis-server", "verifier.service", "verifier.worker", "raylet")), kinds
    assert not left, describe(before, left)
