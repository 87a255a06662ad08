"""Controller processes of the job API: started on this host, found again by any API process.

A controller runs in its own session (its process group is everything it started), is not a child
that dies with the API (no parent-death signal: jobs outlive an API restart), and is identified in
the job store by (host, boot id, pid, start time) rather than by an in-memory handle. From that
identity a freshly started API can tell whether an attempt's controller still runs, and signal its
group, without ever signalling a recycled pid (a new process with the same pid has another start
time). A controller that vanished without writing a final state (SIGKILL, OOM, a reboot) is found
by `reconcile` and its job marked failed (or cancelled, if a cancel was pending).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from services.control.jobs import TERMINAL, ControllerProcess, JobRecord, JobState, JobStore

# Set by services.wire.lifetime for children that must die with their parent; a controller must not.
_LIFETIME_ENV = ("SIMKO_DIE_WITH_PARENT", "SIMKO_PARENT_PID")


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: the boot time stands in for it
        return repr(psutil.boot_time())


def start_token(pid: int) -> str | None:
    """The process's start time, stable for its whole life and the same seen from any process on
    the host; None if no such process runs (a zombie counts as gone). On Linux the raw clock ticks
    since boot of /proc/PID/stat (psutil's create_time adds the boot time, which can shift by a
    second between readers after a clock adjustment)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _psutil_token(pid)
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    state, ticks = fields[0], fields[19]  # fields 3 and 22 of proc(5)
    return None if state in ("Z", "X", "x") else ticks


def _psutil_token(pid: int) -> str | None:
    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else repr(proc.create_time())
    except psutil.Error:
        return None


class ControllerLauncher:
    """Starts controller processes on this host and answers for any controller the store names."""

    def __init__(self, redis_url: str, ray_address: str | None = None):
        self.redis_url, self.ray_address = redis_url, ray_address
        self.host = socket.gethostname()
        self._children: dict[int, subprocess.Popen] = {}  # only to reap the ones this process started

    def argv(self, record: JobRecord) -> list[str]:
        argv = [sys.executable, "-m", "services.control.controller", "--job-id", record.id,
                "--redis-url", self.redis_url]
        return argv + ["--ray-address", self.ray_address] if self.ray_address else argv

    def launch(self, record: JobRecord) -> ControllerProcess:
        run_dir = Path(record.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        argv = self.argv(record)
        env = {k: v for k, v in os.environ.items() if k not in _LIFETIME_ENV}
        with open(run_dir / "controller.log", "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._children[proc.pid] = proc
        token = start_token(proc.pid)
        if token is None:  # it exited at once (it cannot have been recycled: it is our unreaped child)
            proc.wait()
            token = "exited"
        return ControllerProcess(pid=proc.pid, host=self.host, boot_id=boot_id(), start=token,
                                 attempt=record.attempt)

    def alive(self, process: ControllerProcess) -> bool | None:
        """True if that very process still runs, False if it is gone, None if it runs on another host
        (this API cannot see it)."""
        self._reap()
        if process.host != self.host:
            return None
        if process.boot_id != boot_id():
            return False  # the host rebooted since
        return start_token(process.pid) == process.start

    def signal(self, process: ControllerProcess, sig: int) -> bool:
        """Signal the controller's whole process group, only if it is still the recorded process."""
        if not self.alive(process):
            return False
        try:
            os.killpg(process.pid, sig)  # its own session: pgid == pid
        except ProcessLookupError:
            return False
        return True

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    def stop_all(self) -> None:
        """SIGTERM every controller this process started (a deliberate shutdown, not an API restart)."""
        for proc in self._children.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass


def vanished_reason(job_id: str, process: ControllerProcess) -> str:
    return (f"the controller (pid {process.pid} on {process.host}) ended without recording a final state "
            f"(killed, out of memory, or its host restarted); POST /v1/jobs/{job_id}/resume continues from "
            "the newest checkpoint")


def reconcile(store: JobStore, launcher: ControllerLauncher, record: JobRecord) -> JobRecord:
    """The record, with a non-final state corrected if this attempt's controller is gone."""
    if record.state in TERMINAL:
        return record
    process = store.controller(record.id)
    if process is None or process.attempt != record.attempt or launcher.alive(process) is not False:
        return record  # not launched yet, launched elsewhere, or running
    # Re-read after seeing it gone: a controller writes its final state before it exits.
    record = store.get(record.id)
    if record.state in TERMINAL:
        return record
    if record.state is JobState.CANCELLING:
        return store.update(record.id, state=JobState.CANCELLED)
    return store.update(record.id, state=JobState.FAILED, error=vanished_reason(record.id, process))
