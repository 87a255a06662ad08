"""MLflow: one MLflow run per job, resumed when the job resumes.

    tracking URI   trainer.tracking.mlflow_tracking_uri, else MLFLOW_TRACKING_URI, else a file store
                   in RUN_DIR/mlruns (`mlflow ui --backend-store-uri RUN_DIR/mlruns` views it)
    experiment     trainer.tracking.project, else MLFLOW_EXPERIMENT_NAME, else "simko"
    run            RUN_DIR/tracking.json "mlflow_run_id" (same URI) is continued, else a new run
                   with the JobSpec as params (section.field) and as the artifact jobspec.json
    per step       scalars as metrics (keys made MLflow-safe: eval/pass@4 -> eval/pass_at_4), one
                   log_batch call; histograms and the pass@K table as JSON / markdown artifacts

The client is given its URI explicitly (MlflowClient(tracking_uri=...)), the same as
mlflow.set_tracking_uri but without changing the process's global MLflow state.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from services.control.tracking.base import TrackerContext, load_state, save_state
from services.control.tracking.step import markdown_table

DEFAULT_EXPERIMENT = "simko"
MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_VALUE = 6000


def mlflow_key(name: str) -> str:
    """MLflow accepts letters, digits, _ - . / and spaces in keys; '@' becomes '_at_'."""
    return re.sub(r"[^\w\-./ ]", "_", name.replace("@", "_at_"))


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"trainer": {"steps": 3}} -> {"trainer.steps": "3"}; lists and None as JSON."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            out[f"{prefix}{key}"] = text[:MAX_PARAM_VALUE]
    return out


def tracking_uri(ctx: TrackerContext) -> str:
    uri = ctx.settings.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or (ctx.run_dir / "mlruns").resolve().as_uri()


class MlflowTracker:
    name = "mlflow"

    def __init__(self, ctx: TrackerContext):
        uri = tracking_uri(ctx)
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 refuses its file store unless opted in; a file store under the run directory is
            # the default asked for here (no server, no database), so opt in unless the user decided.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        name = ctx.project or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        state = load_state(ctx.run_dir)
        self.run_id = state.get("mlflow_run_id") if state.get("mlflow_tracking_uri") == uri else None
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")  # raises if the run is gone: a warning
        else:
            tags = {"simko.job_id": ctx.job_id} | {tag: "true" for tag in ctx.settings.tags}
            self.run_id = self.client.create_run(experiment_id, run_name=ctx.run_name, tags=tags).info.run_id
            params = [Param(k, v) for k, v in flatten(ctx.config).items()]
            for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
                self.client.log_batch(self.run_id, params=params[i:i + MAX_PARAMS_PER_BATCH])
            self.client.log_dict(self.run_id, ctx.config, "jobspec.json")
        save_state(ctx.run_dir, mlflow_run_id=self.run_id, mlflow_tracking_uri=uri)

    def log_metrics(self, step: int, scalars: Mapping[str, float], wall_time: float) -> None:
        timestamp = int(wall_time * 1000)
        metrics = [Metric(mlflow_key(k), v, timestamp, step) for k, v in scalars.items()]
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + MAX_METRICS_PER_BATCH])

    def log_histogram(self, step: int, tag: str, counts: Sequence[float], edges: Sequence[float]) -> None:
        self.client.log_dict(self.run_id, {"step": step, "counts": list(counts), "edges": list(edges)},
                             f"{mlflow_key(tag)}/step_{step:06d}.json")

    def log_table(self, step: int, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.client.log_text(self.run_id, markdown_table(list(columns), rows) + "\n",
                             f"{mlflow_key(tag)}/step_{step:06d}.md")

    def close(self, success: bool = True) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if success else "FAILED")
