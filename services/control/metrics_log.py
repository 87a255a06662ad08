"""Where a job's per-step metrics go:

    metrics.jsonl in the run directory (one object per step, always; services.control.tracking.jsonl)
    the mirror (the job store, for the API and its job page) and the progress display
    the experiment trackers selected by trainer.loggers (services.control.tracking: TensorBoard,
    W&B, MLflow), each fed the step split into scalars / histograms / tables

A tracker that raises is warned about once and switched off for the rest of the job (a tracker
that keeps failing, e.g. an unreachable MLflow server retrying every request, would otherwise slow
every step); the job goes on and metrics.jsonl still gets every step.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from services.control.tracking import Tracker, TrackerContext, open_trackers
from services.control.tracking.jsonl import JsonlLog
from services.control.tracking.step import StepRecord, split_step

if TYPE_CHECKING:
    from services.control.jobspec import JobSpec

log = logging.getLogger("simko.metrics")


class MetricsLog:
    def __init__(self, run_dir: Path, *, mirror: Callable[[dict], None] | None = None,
                 on_step: Callable[[dict], None] | None = None, trackers: Sequence[Tracker] = ()):
        self.jsonl = JsonlLog(run_dir)
        self.path = self.jsonl.path
        self.sinks = [s for s in (mirror, on_step) if s is not None]
        self.trackers = list(trackers)
        self.failures: dict[str, str] = {}  # tracker name -> the error that switched it off
        self.written = 0
        self._unshown: set[str] = set()  # keys already reported as kept in metrics.jsonl only

    @classmethod
    def for_job(cls, run_dir: Path, spec: "JobSpec", *, job_id: str, mirror: Callable[[dict], None] | None = None,
                on_step: Callable[[dict], None] | None = None) -> "MetricsLog":
        """The job's log with the trackers its spec selects (trainer.loggers, trainer.tracking)."""
        run_dir.mkdir(parents=True, exist_ok=True)
        ctx = TrackerContext(run_dir=run_dir, job_id=job_id, config=spec.model_dump(mode="json"),
                             settings=spec.trainer.tracking)
        return cls(run_dir, mirror=mirror, on_step=on_step, trackers=open_trackers(spec.trainer.loggers, ctx))

    def write(self, metrics: dict) -> None:
        self.jsonl.write(metrics)  # first, and unguarded: the record every other view is checked against
        self.written += 1
        for sink in self.sinks:
            sink(metrics)
        if not self.trackers:
            return
        record = split_step(metrics, fallback_step=self.written)
        new = set(record.other) - self._unshown
        if new:
            self._unshown |= new
            log.warning("metrics %s are neither numbers nor histograms: kept in metrics.jsonl only", sorted(new))
        for tracker in list(self.trackers):
            self._guarded(tracker, "log", lambda t=tracker: send(t, record))

    def close(self, success: bool = True) -> None:
        """Close every tracker (success=False marks the tracker runs failed). Idempotent."""
        for tracker in list(self.trackers):
            self._guarded(tracker, "close", lambda t=tracker: t.close(success))
        self.trackers = []
        if self.failures:
            log.warning("trackers switched off during the job: %s", self.failures)

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(success=exc_type is None)

    def _guarded(self, tracker: Tracker, what: str, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - no tracker may stop the job
            name = getattr(tracker, "name", type(tracker).__name__)
            self.failures[name] = f"{type(exc).__name__}: {exc}"
            self.trackers.remove(tracker)
            log.warning("tracker %s failed to %s at step %d and is switched off (metrics.jsonl goes on): %s",
                        name, what, self.written, self.failures[name])
            if what != "close":
                try:
                    tracker.close(False)
                except Exception:  # noqa: BLE001 - already reported; a broken tracker may not close either
                    pass


def send(tracker: Tracker, record: StepRecord) -> None:
    """One step to one tracker: scalars, then histograms, then tables."""
    tracker.log_metrics(record.step, record.scalars, record.wall_time)
    for h in record.histograms:
        tracker.log_histogram(record.step, h.tag, h.counts, h.edges)
    for t in record.tables:
        tracker.log_table(record.step, t.tag, t.columns, t.rows)
