"""A real tiny job (`simko train configs/tiny.yaml`: redis-server, Ray, the verifier, vLLM, DeepSpeed)
with every tracker on, read back with TensorBoard's, W&B's and MLflow's own readers; then the same
run directory trained further, which must continue the same W&B and MLflow runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.control.tracking.base import load_state
from tests.control.tracking_readers import read_mlflow, read_tensorboard, read_wandb
from tests.job_overrides import EAGER_ARGS

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("dist/lambda_1", "dist/lambda_2", "dist/lambda_3", "reward/mean", "loss/policy")


def simko_train(run_dir: Path, tmp_path: Path, steps: int) -> None:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true",
               WANDB_CONFIG_DIR=str(tmp_path / "wandb-home" / "config"),
               WANDB_CACHE_DIR=str(tmp_path / "wandb-home" / "cache"),
               WANDB_DATA_DIR=str(tmp_path / "wandb-home" / "data"))
    for var in ("WANDB_DIR", "WANDB_API_KEY", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "services.cli", "train", "configs/tiny.yaml", "--out", str(run_dir),
           "--set", f"trainer.steps={steps}", "--set", "trainer.loggers=[jsonl,tensorboard,wandb,mlflow]",
           "--set", "trainer.export_final=false", *EAGER_ARGS]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "could not be opened" not in done.stderr and "switched off" not in done.stderr, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_real_tiny_job_reaches_tensorboard_wandb_and_mlflow_and_resumes_into_the_same_runs(tmp_path):
    run_dir = tmp_path / "run"
    simko_train(run_dir, tmp_path, steps=3)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["trainer/step"] for r in rows] == [1, 2, 3]

    tb = read_tensorboard(run_dir / "tensorboard")
    for key in REQUIRED:
        assert tb["scalars"][key] == pytest.approx({r["trainer/step"]: r[key] for r in rows}, rel=1e-6), key
    assert sorted(tb["histograms"]["dist/entropy_hist"]) == [1, 2, 3]
    assert list(tb["histograms"]["dist/entropy_hist"][1].bucket) == rows[0]["dist/entropy_hist"]

    wb = read_wandb(run_dir / "wandb")
    first_run_id = load_state(run_dir)["wandb_run_id"]
    assert wb["run_ids"] == [first_run_id] and wb["config"]["trainer"]["steps"] == 3
    for key in REQUIRED:
        assert {s: row[key] for s, row in wb["history"].items() if key in row} == \
            pytest.approx({r["trainer/step"]: r[key] for r in rows}), key

    state = load_state(run_dir)
    ml = read_mlflow(state["mlflow_tracking_uri"], state["mlflow_run_id"], list(REQUIRED))
    for key in REQUIRED:
        assert ml["metrics"][key] == pytest.approx({r["trainer/step"]: r[key] for r in rows}), key
    assert ml["run"].info.status == "FINISHED"

    # Resume: a new job id, the same run directory -> the same tracker runs, one step more.
    simko_train(run_dir, tmp_path, steps=4)
    assert [json.loads(line)["trainer/step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] \
        == [1, 2, 3, 4]
    wb = read_wandb(run_dir / "wandb")
    assert wb["run_ids"] == [first_run_id, first_run_id]
    assert sorted(s for s, row in wb["history"].items() if "dist/lambda_1" in row) == [1, 2, 3, 4]
    after = load_state(run_dir)
    assert after["mlflow_run_id"] == state["mlflow_run_id"]
    ml = read_mlflow(after["mlflow_tracking_uri"], after["mlflow_run_id"], ["reward/mean"])
    assert sorted(ml["metrics"]["reward/mean"]) == [1, 2, 3, 4]
    assert sorted(read_tensorboard(run_dir / "tensorboard")["scalars"]["loss/policy"]) == [1, 2, 3, 4]
