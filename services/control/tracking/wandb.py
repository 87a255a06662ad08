"""Weights & Biases: one W&B run per job, resumed when the job resumes.

W&B's own environment variables apply (WANDB_MODE, WANDB_API_KEY, WANDB_ENTITY, WANDB_PROJECT,
WANDB_DIR, ...): nothing here overrides them except what the JobSpec sets explicitly
(trainer.tracking.project / run_name / tags). WANDB_MODE=offline needs no network and writes
RUN_DIR/wandb/offline-run-*/ (or under WANDB_DIR); `wandb sync RUN_DIR/wandb/offline-run-*` uploads it.

    run id   RUN_DIR/tracking.json "wandb_run_id" if present (a resumed job), else from the job id;
             wandb.init(id=..., resume="allow") continues that run
    config   the JobSpec (JSON)
    per step scalars + the entropy histogram (wandb.Histogram) + the pass@K table (wandb.Table),
             merged into one history row at `step`
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import wandb  # the W&B SDK (an absolute import: this module's own name does not shadow it)

from services.control.tracking.base import TrackerContext, load_state, save_state, stable_run_id

DEFAULT_PROJECT = "simko"


class WandbTracker:
    name = "wandb"

    def __init__(self, ctx: TrackerContext):
        run_id = load_state(ctx.run_dir).get("wandb_run_id") or stable_run_id(ctx.job_id)
        kwargs: dict[str, Any] = {
            "project": ctx.project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            "name": ctx.run_name, "id": run_id, "resume": "allow", "job_type": "train",
            "config": ctx.config,
        }
        if ctx.settings.tags:
            kwargs["tags"] = list(ctx.settings.tags)
        if not os.environ.get("WANDB_DIR"):
            kwargs["dir"] = str(ctx.run_dir)
        self.run = wandb.init(**kwargs)
        save_state(ctx.run_dir, wandb_run_id=run_id)

    def log_metrics(self, step: int, scalars: Mapping[str, float], wall_time: float) -> None:
        # Every call at the same step lands in the same history row (W&B merges until the step grows).
        self.run.log(dict(scalars), step=step)

    def log_histogram(self, step: int, tag: str, counts: Sequence[float], edges: Sequence[float]) -> None:
        self.run.log({tag: wandb.Histogram(np_histogram=(list(counts), list(edges)))}, step=step)

    def log_table(self, step: int, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.run.log({tag: wandb.Table(columns=list(columns), data=[list(r) for r in rows])}, step=step)

    def close(self, success: bool = True) -> None:
        self.run.finish(exit_code=0 if success else 1)
        # finish() returns before wandb-core has flushed the run's transaction log (seen: a .wandb file
        # read right after it held no records); teardown waits for the core to exit, so the offline
        # run is complete on disk when the job's MetricsLog is closed. One W&B run per job process.
        wandb.teardown()
