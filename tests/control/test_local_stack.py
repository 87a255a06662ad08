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


def test_a_deferred_stack_spawns_both_at_once_and_is_ready_after_wait_ready(tmp_path):
    """run_job enters the stack, starts Ray, then waits: entering only spawns the children."""
    with LocalStack(tmp_path, redis_url=None, verifier_url=None, verifier_workers=1, defer_ready=True) as stack:
        assert set(stack.services) == {"redis", "verifier"}
        assert all(s.proc.poll() is None for s in stack.services.values())
        assert stack._watcher is None  # nothing to restart before they were ever up
        stack.wait_ready()
        assert redis_ping(urlparse(stack.redis_url).port) and http_ok(urlparse(stack.verifier_url).port)
        assert stack._watcher is not None and stack._watcher.is_alive()
    assert all(s.proc.poll() is not None for s in stack.services.values())


def test_a_child_that_dies_during_a_deferred_start_is_an_error_naming_it(tmp_path):
    import pytest

    from services.control.local_stack import StackError

    with pytest.raises(StackError, match="verifier exited"):
        with LocalStack(tmp_path, redis_url=None, verifier_url=None, verifier_workers=1, defer_ready=True) as stack:
            os.killpg(stack.services["verifier"].proc.pid, signal.SIGKILL)
            stack.wait_ready()
    assert all(s.proc.poll() is not None for s in stack.services.values())
