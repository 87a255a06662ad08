"""metrics.jsonl: one JSON object per step, exactly the dict the loop logged (the public contract of
docs/architecture.md). Always on and never switched off: an error writing it fails the job, since
every other view of the run (simko report, the trackers' gaps) is checked against it."""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FILE_NAME = "metrics.jsonl"


class JsonlLog:
    def __init__(self, run_dir: Path):
        self.path = run_dir / FILE_NAME

    def write(self, metrics: Mapping[str, Any]) -> None:
        line = json.dumps(dict(metrics)) + "\n"  # serialise first: a bad value leaves no half line
        with open(self.path, "a") as f:
            f.write(line)
