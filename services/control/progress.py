"""A one-line progress display for long jobs: step, reward, pass@1, tokens/s, ETA (rich)."""
from __future__ import annotations

import math

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class StepProgress:
    def __init__(self, total: int, title: str):
        self.total = total
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn())
        self.task = self.progress.add_task(title, total=total, stats="starting (engines load first)")

    def __enter__(self) -> "StepProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, metrics: dict) -> None:
        def fmt(key: str, spec: str) -> str:
            value = metrics.get(key)
            return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

        # With 0/1 rewards the mean reward of the sampled responses is their pass@1.
        stats = (f"reward {fmt('reward/mean', '.3f')}  pass@1 {fmt('reward/accuracy', '.3f')}  "
                 f"loss {fmt('loss/policy', '.4f')}  {fmt('perf/tokens_per_s', '.0f')} tok/s")
        self.progress.update(self.task, completed=metrics.get("trainer/step", 0), stats=stats)
