"""Owners for the orphan tests: start a tagged owner process, kill it, and report what survived.

An owner is started with SIMKO_OWNER_TAG=<fresh uuid> in its environment; everything it starts
inherits the tag, so after the kill the whole process table is searched for it (process_table.py).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.reliability.process_table import Found, kill_tagged, owned, roots, survivors

REPO = Path(__file__).resolve().parents[2]
GRACE_S = 10.0  # the bound: nothing an owner started survives it by more than this
SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]


def wait_for(what: str, ready: Callable[[], bool], proc: subprocess.Popen | None = None,
             timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc is None or proc.poll() is None, f"the owner exited (code {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s"
        time.sleep(0.5)


def kill_and_collect(tag: str, owner_pid: int, sig: int, expect_at_least: int) -> tuple[list[Found], list[Found]]:
    """(what ran under the tag before the kill, what still runs GRACE_S after it). Always leaves
    nothing behind: survivors are SIGKILLed after being recorded."""
    before = owned(tag, owner_pid)
    assert len(before) >= expect_at_least, "fewer processes than expected: " + "; ".join(map(str, before))
    assert owner_pid in {f.pid for f in roots(before)}, f"{owner_pid} is not the tagged tree's root"
    os.kill(owner_pid, sig)
    try:
        left = survivors(tag, GRACE_S, known=before)
    finally:
        kill_tagged(tag, known=before)
    return before, left


def describe(before: list[Found], left: list[Found]) -> str:
    return ("survived the owner by more than 10 s:\n  " + "\n  ".join(map(str, left))
            + "\nstarted before the kill:\n  " + "\n  ".join(map(str, before)))
