"""A short chaos schedule (bench/chaos.py): the tiny job for 10 steps with 2 rollout workers under
a SIGKILLed learner, a restarted redis-server and a SIGKILLed grader, one after the other.
Accounted by group id from the streams and the final checkpoint: nothing lost, nothing applied
twice, steps contiguous (redone after the restart), versions growing, the export generates in
vLLM, no process left. The kinds that wait for rollout.reclaim_idle_ms (a killed or stopped
rollout worker, a killed verifier) need a calibration run first and are the full bench's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_short_chaos_schedule_loses_nothing(tmp_path):
    argv = [sys.executable, str(REPO / "bench" / "chaos.py"), "--steps", "10", "--faults", "3",
            "--kinds", "learner_kill,redis_restart,grader_kill", "--seed", "0", "--out", str(tmp_path / "chaos")]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=840)
    assert result.stdout.strip(), result.stderr[-4000:]
    report = json.loads(result.stdout)
    acct, steps = report["accounting"], report["steps"]
    assert report["faults_injected"] == {"learner_kill": 1, "redis_restart": 1, "grader_kill": 1}, report["faults"]
    assert not any(f["stalled"] for f in report["faults"]), report["faults"]
    assert report["job_exit_code"] == 0, (tmp_path / "chaos" / "job.log").read_text()[-4000:]
    assert acct["groups_issued"] == 80 and acct["groups_trained"] == 80, acct
    assert acct["groups_lost"] == 0 and acct["groups_applied_twice"] == 0, acct
    assert acct["groups_trained_not_issued"] == 0 and acct["trained_in_data_order"], acct
    assert steps["steps_contiguous"] and steps["steps"] == 10 and steps["learner_restarts"] == 1, steps
    assert steps["weight_versions_increasing"], steps
    assert report["final_export_generates"], (tmp_path / "chaos" / "export_check.log").read_text()[-4000:]
    assert report["orphans"] == [], report["orphans"]
    assert report["ok"], report
