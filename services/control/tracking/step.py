"""Splitting one step's metrics dict into what trackers can show (pure).

    numbers                                   -> scalars (every namespace; bools as 0/1)
    K (list) with K + "_edges" (one longer)   -> a histogram      e.g. dist/entropy_hist
    eval/pass@K scalars                       -> also one table "eval/pass_at_k" (k, pass@k), sorted by k
    "time"                                    -> the wall time, not a scalar
    anything else (strings, dicts, lists without edges, None) -> `other`: kept in metrics.jsonl only
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STEP_KEY = "trainer/step"
TIME_KEY = "time"
EDGES_SUFFIX = "_edges"
PASS_AT_K = re.compile(r"^eval/pass@(\d+)$")
PASS_AT_K_TABLE = "eval/pass_at_k"


@dataclass(frozen=True)
class Histogram:
    tag: str
    counts: tuple[float, ...]
    edges: tuple[float, ...]


@dataclass(frozen=True)
class Table:
    tag: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class StepRecord:
    step: int
    wall_time: float
    scalars: dict[str, float] = field(default_factory=dict)
    histograms: tuple[Histogram, ...] = ()
    tables: tuple[Table, ...] = ()
    other: tuple[str, ...] = ()  # keys no tracker can show


def _number(value: Any) -> bool:
    return isinstance(value, (int, float))  # bool included (an int): logged as 0 / 1


def _numeric_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(_number(v) for v in value)


def split_step(metrics: Mapping[str, Any], fallback_step: int) -> StepRecord:
    """`fallback_step` is used when the dict has no integer trainer/step (e.g. a hand-written row)."""
    raw_step = metrics.get(STEP_KEY)
    step = int(raw_step) if _number(raw_step) and float(raw_step).is_integer() else fallback_step
    raw_time = metrics.get(TIME_KEY)
    wall_time = float(raw_time) if _number(raw_time) and math.isfinite(raw_time) else time.time()

    scalars: dict[str, float] = {}
    histograms: list[Histogram] = []
    other: list[str] = []
    edge_keys = {key + EDGES_SUFFIX for key, value in metrics.items()
                 if _numeric_list(value) and _numeric_list(metrics.get(key + EDGES_SUFFIX))
                 and len(metrics[key + EDGES_SUFFIX]) == len(value) + 1 and len(value) > 0}
    for key, value in metrics.items():
        if key == TIME_KEY or key in edge_keys:
            continue
        if _number(value):
            scalars[key] = float(value)
        elif key + EDGES_SUFFIX in edge_keys:
            histograms.append(Histogram(key, tuple(float(v) for v in value),
                                        tuple(float(v) for v in metrics[key + EDGES_SUFFIX])))
        else:
            other.append(key)

    pass_at_k = sorted((int(m.group(1)), value) for key, value in scalars.items() if (m := PASS_AT_K.match(key)))
    tables = (Table(PASS_AT_K_TABLE, ("k", "pass@k"), tuple((k, v) for k, v in pass_at_k)),) if pass_at_k else ()
    return StepRecord(step=step, wall_time=wall_time, scalars=scalars, histograms=tuple(histograms),
                      tables=tables, other=tuple(other))


def markdown_table(columns: tuple[str, ...] | list[str], rows) -> str:
    """A GitHub-style table (what TensorBoard's text plugin and MLflow's artifact view render)."""
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
