"""Experiment tracking: where a job's per-step metrics go besides metrics.jsonl.

    MetricsLog.write(step dict)                       services/control/metrics_log.py
        -> jsonl.JsonlLog.write      metrics.jsonl, always; an error here fails the job
        -> step.split_step           scalars / histograms (dist/entropy_hist + _edges) / tables (eval/pass@k)
        -> every Tracker selected by trainer.loggers (this package, one file each):
               tensorboard.py  RUN_DIR/tensorboard event files
               wandb.py        a W&B run (its own environment variables apply; RUN_DIR/wandb when offline)
               mlflow.py       an MLflow run (RUN_DIR/mlruns unless a tracking URI is given)
           a tracker that fails to open or to log is warned about once and switched off; the job goes on.

A new tracker is one file with a class satisfying `base.Tracker` and one line in `TRACKERS`.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable

from services.control.tracking.base import Tracker, TrackerContext

log = logging.getLogger("simko.tracking")

# trainer.loggers name -> "module:class", imported only when selected (the libraries are heavy and
# a missing one must cost a warning, not the job).
TRACKERS = {
    "tensorboard": "services.control.tracking.tensorboard:TensorBoardTracker",
    "wandb": "services.control.tracking.wandb:WandbTracker",
    "mlflow": "services.control.tracking.mlflow:MlflowTracker",
}
ALWAYS_ON = "jsonl"  # metrics.jsonl: written by MetricsLog itself, whatever the list says


def open_trackers(names: Iterable[str], ctx: TrackerContext) -> list[Tracker]:
    """One opened tracker per selected name (jsonl excluded: it is always on). A tracker that cannot
    be opened (library missing, bad URI, unwritable directory) is logged and left out."""
    trackers: list[Tracker] = []
    for name in dict.fromkeys(names):  # de-duplicated, in order
        if name == ALWAYS_ON:
            continue
        if name not in TRACKERS:
            raise ValueError(f"trainer.loggers: unknown tracker {name!r} (known: {', '.join([ALWAYS_ON, *TRACKERS])})")
        module_name, _, class_name = TRACKERS[name].partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
            trackers.append(cls(ctx))
        except Exception as exc:  # noqa: BLE001 - any failure to open must not stop the job
            log.warning("tracker %s could not be opened, the job goes on without it: %s: %s",
                        name, type(exc).__name__, exc)
    return trackers


__all__ = ["ALWAYS_ON", "TRACKERS", "Tracker", "TrackerContext", "open_trackers"]
