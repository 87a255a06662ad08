"""Job records and their store. The state lives in Redis (through services.wire.streams.RedisKV) so the
job API can restart without losing jobs; controllers write progress, the API reads it.

Keys: simko:jobs (set of ids), simko:job:{id} (hash: the record), simko:job:{id}:metrics (list of
JSON step metrics), simko:job:{id}:control (hash: cancel flag and time, desired rollout workers),
simko:job:{id}:controller (hash: the identity of the attempt's controller process, ControllerProcess).

The controller process identity is a key of its own, written only by the API that launched it; the
record's updates (the controller's step, an API's state) are atomic read-modify-writes (JobStore.update).
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from services.wire.streams import QueueConfig, RedisKV


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


class UnknownJob(KeyError):
    pass


@dataclass
class JobRecord:
    id: str
    name: str
    state: JobState
    spec: dict[str, Any]
    run_dir: str
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    step: int = 0
    error: str | None = None
    controller_pid: int | None = None
    attempt: int = 1  # 1 for the submitted run, +1 per POST /v1/jobs/{id}/resume

    def public(self, with_spec: bool = True) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        if not with_spec:
            out.pop("spec")
        return out

    def to_hash(self) -> dict[str, str]:
        return {"json": json.dumps(self.public())}

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> "JobRecord":
        values = json.loads(data["json"])
        values["state"] = JobState(values["state"])
        return cls(**values)


@dataclass(frozen=True)
class ControllerProcess:
    """Which process runs a job's attempt: enough for any API process (a restarted one included) to
    tell whether it still runs and to signal it without ever hitting a recycled pid."""

    pid: int
    host: str  # hostname of the machine (container) it runs on
    boot_id: str  # that host's kernel boot: a reboot ends every process
    start: str  # the process's start time token (clock ticks since boot): a recycled pid differs
    attempt: int

    def to_hash(self) -> dict[str, str]:
        return {"json": json.dumps(asdict(self))}

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> "ControllerProcess":
        return cls(**json.loads(data["json"]))


def new_job_id(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name.lower())[:32].strip("-") or "job"
    return f"{safe}-{uuid.uuid4().hex[:8]}"


class JobStore:
    def __init__(self, redis_url: str):
        self.kv = RedisKV(QueueConfig(url=redis_url))

    @staticmethod
    def _key(job_id: str, suffix: str = "") -> str:
        return f"simko:job:{job_id}{suffix}"

    def create(self, record: JobRecord) -> JobRecord:
        self.kv.hset(self._key(record.id), record.to_hash())
        self.kv.sadd("simko:jobs", record.id)
        return record

    def get(self, job_id: str) -> JobRecord:
        data = self.kv.hgetall(self._key(job_id))
        if not data:
            raise UnknownJob(job_id)
        return JobRecord.from_hash(data)

    def list(self) -> list[JobRecord]:
        records = []
        for job_id in self.kv.smembers("simko:jobs"):
            try:
                records.append(self.get(job_id))
            except UnknownJob:
                continue
        return sorted(records, key=lambda r: r.created_at)

    def update(self, job_id: str, *, keep_state_if: frozenset[JobState] = frozenset(), **changes: Any) -> JobRecord:
        """Change some fields of the record, atomically: the controller writes its step while an API
        writes the state (cancelling), and a plain read-modify-write let the step's write put back
        the state it had read (seen: a cancelled job recorded failed, tests/control/test_job_store.py).
        keep_state_if: a `state` change is dropped (the other fields still apply) when the record is
        in one of these states at the moment of the write, e.g. a controller starting up must not
        write RUNNING over a cancel the API recorded meanwhile."""
        def change(data: dict[str, str]) -> dict[str, str]:
            if not data:
                raise UnknownJob(job_id)
            record = JobRecord.from_hash(data)
            for name, value in changes.items():
                if name == "state" and record.state in keep_state_if:
                    continue
                setattr(record, name, JobState(value) if name == "state" else value)
            record.updated_at = time.time()
            return record.to_hash()

        return JobRecord.from_hash(self.kv.update_hash(self._key(job_id), change))

    # metrics -------------------------------------------------------------------------------
    def append_metrics(self, job_id: str, metrics: dict[str, Any]) -> None:
        self.kv.rpush(self._key(job_id, ":metrics"), json.dumps(metrics))

    def metrics(self, job_id: str, since: int = 0) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.kv.lrange(self._key(job_id, ":metrics"), since, -1)]

    # control -------------------------------------------------------------------------------
    def request_cancel(self, job_id: str) -> None:
        # The time lets an API that restarts during the grace period finish enforcing the cancel.
        self.kv.hset(self._key(job_id, ":control"), {"cancel": "1", "cancel_at": repr(time.time())})

    def clear_cancel(self, job_id: str) -> None:
        self.kv.hset(self._key(job_id, ":control"), {"cancel": "0"})

    def cancel_requested(self, job_id: str) -> bool:
        return self.kv.hget(self._key(job_id, ":control"), "cancel") == "1"

    def cancel_requested_at(self, job_id: str) -> float | None:
        if not self.cancel_requested(job_id):
            return None
        value = self.kv.hget(self._key(job_id, ":control"), "cancel_at")
        return float(value) if value is not None else None

    def set_desired_workers(self, job_id: str, replicas: int) -> None:
        self.kv.hset(self._key(job_id, ":control"), {"workers": str(replicas)})

    def desired_workers(self, job_id: str) -> int | None:
        value = self.kv.hget(self._key(job_id, ":control"), "workers")
        return int(value) if value is not None else None

    # the controller process ----------------------------------------------------------------
    def set_controller(self, job_id: str, process: ControllerProcess) -> None:
        self.kv.hset(self._key(job_id, ":controller"), process.to_hash())

    def controller(self, job_id: str) -> ControllerProcess | None:
        data = self.kv.hgetall(self._key(job_id, ":controller"))
        return ControllerProcess.from_hash(data) if data else None
