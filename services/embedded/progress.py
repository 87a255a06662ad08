"""What `simko demo` prints as it goes: the plan, each phase, and an ETA re-predicted after every step.

On a terminal an arm is a live progress bar (rich); in a log (a test, CI, `| tee`) it is a line
every tenth of the arm. Each line carries the time since the demo started, the predicted time
left and the budget, so a reader sees at once whether the promise holds.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

from services.embedded.budget import format_duration


class DemoLog:
    def __init__(self, started: float, budget_s: float | None, *, stream=None):
        self.started, self.budget_s = started, budget_s
        self.stream = stream or sys.stdout

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta_text(self, left_s: float | None) -> str:
        if left_s is None:
            return "ETA: measuring"
        total = self.elapsed() + left_s
        budget = f" of {format_duration(self.budget_s)} budget" if self.budget_s else ""
        return f"ETA {format_duration(left_s)} left, total {format_duration(total)}{budget}"

    def say(self, message: str) -> None:
        print(f"[demo {format_duration(self.elapsed())}] {message}", file=self.stream, flush=True)

    def arm(self, title: str, total: int, first: int = 0) -> "ArmProgress":
        return ArmProgress(self, title, total, first)


class ArmProgress:
    """Per-step display of one training run; `eta` maps the latest metrics to seconds left (or None)."""

    def __init__(self, log: DemoLog, title: str, total: int, first: int):
        self.log, self.title, self.total, self.first = log, title, total, first
        self.eta: Callable[[dict], float | None] = lambda metrics: None
        self.live = None
        if getattr(log.stream, "isatty", lambda: False)():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.live = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"))
            self.task = self.live.add_task(title, total=total, completed=first, stats="starting (engines load first)")

    def __enter__(self) -> "ArmProgress":
        if self.live is not None:
            self.live.start()
        else:
            self.log.say(f"{self.title}: starting (redis, verifier, Ray, vLLM, DeepSpeed)")
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()

    def update(self, metrics: dict) -> None:
        step = int(metrics.get("trainer/step", 0))
        reward = metrics.get("reward/mean")
        reward_text = "-" if reward is None or (isinstance(reward, float) and math.isnan(reward)) else f"{reward:.3f}"
        stats = f"reward {reward_text}  {self.log.eta_text(self.eta(metrics))}"
        if self.live is not None:
            self.live.update(self.task, completed=step, stats=stats)
            return
        every = max(1, (self.total - self.first) // 10)
        if step in (self.first + 1, self.total) or (step - self.first) % every == 0:
            self.log.say(f"{self.title}: step {step}/{self.total}  {stats}")
