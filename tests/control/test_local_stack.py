"""The local stack (a job's private redis-server and verifier service) restarts a child that dies,
on the same address, so a job survives a killed verifier or redis (real processes, SIGKILLed)."""
import os
import signal
import time
from urllib.parse import urlparse

from services.control.local_stack import LocalStack, http_ok, redis_ping


def _until(predicate, timeout_s: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_killed_verifier_and_a_killed_redis_come_back_on_their_ports(tmp_path):
    with LocalStack(tmp_path, redis_url=None, verifier_url=None, verifier_workers=1, watch_s=0.2) as stack:
        verifier_port, redis_port = urlparse(stack.verifier_url).port, urlparse(stack.redis_url).port
        first_verifier, first_redis = stack.services["verifier"].proc.pid, stack.services["redis"].proc.pid
        os.killpg(first_verifier, signal.SIGKILL)  # the service and its grader processes
        os.kill(first_redis, signal.SIGKILL)
        assert _until(lambda: stack.restarts.get("verifier") == 1 and http_ok(verifier_port))
        assert _until(lambda: stack.restarts.get("redis") == 1 and redis_ping(redis_port))
        assert stack.services["verifier"].proc.pid != first_verifier
        assert stack.verifier_url.endswith(f":{verifier_port}")  # clients keep their address
        replacement = stack.services["verifier"].proc
    assert replacement.poll() is not None  # the replacement is stopped with the stack
