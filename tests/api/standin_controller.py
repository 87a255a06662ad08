"""A stand-in for `python -m services.control.controller` in the fast job-API tests: the same
arguments and the same job-store protocol (RUNNING with its pid, one step at a time, the cancel
flag, desired workers, a final state), without Ray, vLLM or DeepSpeed, which take minutes to start.
The real controller is exercised by tests/integration/test_api_restart.py.

A job whose name starts with "stubborn" ignores the cancel flag and SIGTERM and keeps a child in its
process group (run_dir/child.pid), so only the API's forced kill of the whole group ends it.
"""
import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.control.jobs import JobState, JobStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    store = JobStore(args.redis_url)
    record = store.get(args.job_id)
    stubborn = record.name.startswith("stubborn")
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        (Path(record.run_dir) / "child.pid").write_text(str(child.pid))
    store.update(args.job_id, state=JobState.RUNNING, controller_pid=os.getpid())
    step = record.step
    while step < record.spec["trainer"]["steps"]:
        if store.cancel_requested(args.job_id) and not stubborn:
            store.update(args.job_id, state=JobState.CANCELLED)
            return
        step += 1
        store.append_metrics(args.job_id, {"trainer/step": step, "attempt": record.attempt,
                                           "rollout/workers": store.desired_workers(args.job_id)})
        store.update(args.job_id, step=step)
        time.sleep(0.2)
    store.update(args.job_id, state=JobState.SUCCEEDED)


if __name__ == "__main__":
    main()
