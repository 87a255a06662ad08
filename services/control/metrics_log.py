"""Where a job's per-step metrics go: metrics.jsonl in the run directory (one object per step),
mirrored to the job store for the API and to a progress display."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


class MetricsLog:
    def __init__(self, run_dir: Path, *, mirror: Callable[[dict], None] | None = None,
                 on_step: Callable[[dict], None] | None = None):
        self.path = run_dir / "metrics.jsonl"
        self.sinks = [s for s in (mirror, on_step) if s is not None]

    def write(self, metrics: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        for sink in self.sinks:
            sink(metrics)
