"""No orphans: the verifier service's grader processes, and the local stack (redis-server, the
verifier service and its graders), die with their owner under SIGKILL as under SIGTERM / SIGINT.
Nothing here starts vLLM or Ray."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading

import httpx
import psutil
import pytest

from services.control.local_stack import start_verifier
from tests.reliability.owners import REPO, describe, kill_and_collect, wait_for
from tests.reliability.process_table import kill_tagged, new_tag, owned, tagged, tagged_env

# A grader that runs for minutes in sympy's C code: a process that never reads its pipe, so only
# the parent-death signal can end it once the service is gone (tests/verifier/test_verifier_pool.py).
SLOW = {"task": "math", "response": "\\boxed{(x+1)^{2000}-(x-1)^{2000}}", "gold": "(x+2)^{2000}"}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_verifier_service_takes_its_graders_along(sig, tmp_path):
    tag = new_tag()
    service = start_verifier(workers=2, log_dir=tmp_path,
                             env=tagged_env(tag) | {"SIMKO_VERIFIER_DEADLINE_S": "600"})
    try:
        # One grader busy on the slow item when the service dies (it cannot notice a closed pipe).
        busy = threading.Thread(target=lambda: _post_quietly(service.url, [SLOW]), daemon=True)
        busy.start()
        wait_for("a busy grader", lambda: _busy_grader(tag, service.proc.pid), timeout_s=60)
        before, left = kill_and_collect(tag, service.proc.pid, sig, expect_at_least=3)  # service + 2 graders
    finally:
        kill_tagged(tag)
        service.proc.wait(timeout=10)
    assert not left, describe(before, left)


# The owner takes SIGINT as a foreground process does (KeyboardInterrupt): started from a shell
# without job control in the background (`cmd &`), the suite and so the owner inherit SIGINT
# ignored, and the SIGINT case then tested nothing but that (it failed so in a full run).
STACK_OWNER = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
from services.control.local_stack import LocalStack
with LocalStack(Path(sys.argv[1]), redis_url=None, verifier_url=None, verifier_workers=1) as stack:
    print(stack.redis_url, stack.verifier_url, flush=True)
    time.sleep(3600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_local_stack_dies_with_its_owner(sig, tmp_path):
    tag = new_tag()
    owner = subprocess.Popen([sys.executable, "-c", STACK_OWNER, str(tmp_path)], cwd=REPO, env=tagged_env(tag),
                             stdout=subprocess.PIPE, text=True)
    try:
        owner.stdout.readline()  # the stack is up (redis answers PING, the verifier /health)
        names = [f.cmdline for f in owned(tag, owner.pid)]
        assert any("redis-server" in n for n in names) and any("verifier.service" in n for n in names), names
        before, left = kill_and_collect(tag, owner.pid, sig, expect_at_least=4)  # owner, redis, verifier, grader
    finally:
        kill_tagged(tag)
        owner.wait(timeout=10)
    assert not left, describe(before, left)


def _post_quietly(url: str, items: list[dict]) -> None:
    try:
        httpx.post(f"{url}/v1/verify", json={"items": items}, timeout=120)
    except httpx.HTTPError:
        pass  # the service is killed mid-request: that is the point


def _busy_grader(tag: str, service_pid: int) -> bool:
    for found in tagged(tag):
        if found.pid != service_pid and "verifier.worker" in found.cmdline:
            try:
                if psutil.Process(found.pid).cpu_percent(interval=0.3) > 50:
                    return True
            except psutil.NoSuchProcess:
                continue
    return False


