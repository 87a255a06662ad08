"""The tracker interface, what a tracker is told about its run, and the run directory's record of
tracker run ids (RUN_DIR/tracking.json) that lets a resumed job continue the same tracker runs."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.control.jobspec import TrackingSection

STATE_FILE = "tracking.json"


class Tracker(Protocol):
    """One experiment tracker. Called once per step, in this order: log_metrics, then each histogram,
    then each table; close once at the end. Any method may raise: MetricsLog then switches it off."""

    name: str

    def log_metrics(self, step: int, scalars: Mapping[str, float], wall_time: float) -> None: ...

    def log_histogram(self, step: int, tag: str, counts: Sequence[float], edges: Sequence[float]) -> None:
        """`counts[i]` values fell in [edges[i], edges[i+1]); len(edges) == len(counts) + 1."""

    def log_table(self, step: int, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...

    def close(self, success: bool = True) -> None: ...


@dataclass(frozen=True)
class TrackerContext:
    run_dir: Path
    job_id: str
    config: dict[str, Any]  # the JobSpec as JSON: the tracker run's config / params
    settings: TrackingSection = field(default_factory=TrackingSection)

    @property
    def run_name(self) -> str:
        return self.settings.run_name or self.job_id

    @property
    def project(self) -> str | None:
        return self.settings.project


def stable_run_id(job_id: str) -> str:
    """A tracker run id from the job id: the characters W&B and MLflow accept, at most 64."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", job_id)[:64] or "job"


def load_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATE_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable tracker state ({exc}); delete it to start new tracker runs") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def save_state(run_dir: Path, **values: Any) -> None:
    """Merge `values` into RUN_DIR/tracking.json (written atomically: a crash leaves the old file)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state = load_state(run_dir) | values
    tmp = run_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(run_dir / STATE_FILE)
