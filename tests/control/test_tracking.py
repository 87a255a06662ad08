"""Experiment tracking: MetricsLog driven with synthetic step dicts, read back with each library's own
reader (tests/control/tracking_readers.py). Real TensorBoard writer, real W&B SDK (offline, its
wandb-core process), real MLflow file store; no network."""
from __future__ import annotations

import json
import logging
import math
import sys

import pytest

from services.control.jobspec import JobSpec, JobSpecError
from services.control.metrics_log import MetricsLog
from services.control.tracking.base import load_state, stable_run_id
from services.control.tracking.mlflow import mlflow_key
from services.control.tracking.step import split_step
from tests.control.tracking_readers import read_mlflow, read_tensorboard, read_wandb

ALL = ["jsonl", "tensorboard", "wandb", "mlflow"]
REQUIRED = ("dist/lambda_1", "dist/lambda_2", "dist/lambda_3", "reward/mean", "loss/policy")
EDGES = [0.0, 0.5, 1.0, 1.5, 2.0]


def step_metrics(step: int) -> dict:
    """A step dict shaped like the loop's (services/control/loop.py), values distinct per step."""
    row = {"trainer/step": step, "loss/policy": 0.01 * step, "reward/mean": 0.1 * step,
           "dist/lambda_1": -0.1 * step, "dist/lambda_2": -2.0 - step, "dist/lambda_3": -3.0 - step,
           "dist/lambda_sampled": -0.2 * step, "dist/entropy_mean": 0.3, "perf/tokens_per_s": 100.0 * step,
           "rollout/workers": 1.0, "dist/entropy_hist": [step, 2, 0, 1], "dist/entropy_hist_edges": EDGES,
           "time": 1_800_000_000.0 + step}
    if step % 2 == 0:
        row.update({"eval/pass@1": 0.2, "eval/pass@2": 0.3, "eval/pass@4": 0.35 + 0.01 * step})
    return row


def spec_with(loggers=ALL, **tracking) -> JobSpec:
    return JobSpec.parse({"name": "track", "model": {"path": "m"}, "data": {"train": "d"},
                          "trainer": {"loggers": loggers, "tracking": tracking}})


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    """W&B offline with its config / cache / data dirs in tmp (it must never reach the network)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_DIR", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_RUN_ID", "MLFLOW_TRACKING_URI",
                "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    for var, sub in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / sub))


def run_steps(run_dir, spec, steps, job_id="track-0001"):
    with MetricsLog.for_job(run_dir, spec, job_id=job_id) as log:
        for step in steps:
            log.write(step_metrics(step))
    return log


def jsonl_steps(run_dir) -> list[int]:
    return [json.loads(line)["trainer/step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------ pure parts
def test_split_step_sorts_a_loop_row_into_scalars_histograms_and_tables():
    record = split_step(step_metrics(2) | {"note": "text", "dist/other_list": [1, 2]}, fallback_step=99)
    assert record.step == 2 and record.wall_time == 1_800_000_002.0
    assert record.scalars["dist/lambda_1"] == pytest.approx(-0.2) and "time" not in record.scalars
    assert "dist/entropy_hist" not in record.scalars and "dist/entropy_hist_edges" not in record.scalars
    [hist] = record.histograms
    assert (hist.tag, hist.counts, hist.edges) == ("dist/entropy_hist", (2.0, 2.0, 0.0, 1.0), tuple(EDGES))
    [table] = record.tables
    assert table.tag == "eval/pass_at_k" and [row[0] for row in table.rows] == [1, 2, 4]
    assert sorted(record.other) == ["dist/other_list", "note"]  # reported, not silently dropped
    assert split_step({"loss/policy": 1.0}, fallback_step=7).step == 7
    bad_edges = split_step({"dist/entropy_hist": [1, 2], "dist/entropy_hist_edges": [0, 1]}, fallback_step=1)
    assert not bad_edges.histograms and sorted(bad_edges.other) == ["dist/entropy_hist", "dist/entropy_hist_edges"]


def test_mlflow_keys_and_run_ids_are_what_the_libraries_accept():
    assert mlflow_key("eval/pass@16") == "eval/pass_at_16" and mlflow_key("dist/lambda_1") == "dist/lambda_1"
    assert stable_run_id("tiny-simko-1a2b3c4d") == "tiny-simko-1a2b3c4d" and stable_run_id("a b/c") == "a-b-c"


def test_loggers_are_validated_in_the_jobspec():
    assert JobSpec.parse({"model": {"path": "m"}, "data": {"train": "d"}}).trainer.loggers == ["jsonl"]
    with pytest.raises(JobSpecError) as err:
        spec_with(["jsonl", "neptune"])
    assert [e["field"] for e in err.value.errors] == ["trainer.loggers.1"]


# ------------------------------------------------------------------------- each tracker, read back
def test_tensorboard_gets_every_step_a_real_histogram_and_the_pass_at_k_text(tmp_path):
    run_steps(tmp_path, spec_with(["tensorboard"]), range(1, 5))
    tb = read_tensorboard(tmp_path / "tensorboard")
    for key in REQUIRED + ("dist/lambda_sampled", "perf/tokens_per_s", "rollout/workers"):
        assert sorted(tb["scalars"][key]) == [1, 2, 3, 4], key
    assert tb["scalars"]["dist/lambda_1"][3] == pytest.approx(-0.3)
    hist = tb["histograms"]["dist/entropy_hist"][3]
    assert list(hist.bucket) == [3, 2, 0, 1] and list(hist.bucket_limit) == EDGES[1:] and hist.num == 6
    text = tb["tensors"]["eval/pass_at_k"]
    assert sorted(text) == [2, 4] and b"| 4 | 0.3900 |" in text[4].string_val[0]
    assert "custom_scalars__config__" in tb["tensors"]  # the Lambda^(k) / pass@K chart layout
    assert jsonl_steps(tmp_path) == [1, 2, 3, 4]


def test_wandb_offline_gets_every_step_with_the_jobspec_as_config(tmp_path, offline_wandb):
    spec = spec_with(["wandb"], project="simko-test", run_name="first-try", tags=["cpu", "tiny"])
    run_steps(tmp_path, spec, range(1, 5))
    wb = read_wandb(tmp_path / "wandb")
    assert wb["run_ids"] == ["track-0001"] and wb["names"] == ["first-try"] and wb["tags"] == ["cpu", "tiny"]
    assert wb["config"]["trainer"]["loggers"] == ["wandb"] and wb["config"]["name"] == "track"
    for key in REQUIRED:
        assert {s: round(row[key], 6) for s, row in wb["history"].items() if key in row} == \
            {s: round(step_metrics(s)[key], 6) for s in range(1, 5)}, key
    hist = wb["history"][2]["dist/entropy_hist"]
    assert hist["_type"] == "histogram" and hist["values"] == [2, 2, 0, 1] and hist["bins"] == EDGES
    assert wb["history"][4]["eval/pass_at_k"]["_type"] == "table-file"
    assert load_state(tmp_path)["wandb_run_id"] == "track-0001"


def test_mlflow_file_store_gets_every_step_under_the_run_dir(tmp_path, offline_wandb):
    run_steps(tmp_path, spec_with(["mlflow"], project="simko-test", tags=["cpu"]), range(1, 5))
    state = load_state(tmp_path)
    assert state["mlflow_tracking_uri"] == (tmp_path / "mlruns").resolve().as_uri()
    ml = read_mlflow(state["mlflow_tracking_uri"], state["mlflow_run_id"], list(REQUIRED) + ["eval/pass_at_4"])
    for key in REQUIRED:
        assert ml["metrics"][key] == pytest.approx({s: step_metrics(s)[key] for s in range(1, 5)}), key
    assert sorted(ml["metrics"]["eval/pass_at_4"]) == [2, 4]
    run = ml["run"]
    assert run.info.status == "FINISHED" and run.info.run_name == "track-0001"
    assert run.data.params["trainer.loggers"] == '["mlflow"]' and run.data.tags["cpu"] == "true"
    assert ml["client"].get_experiment(run.info.experiment_id).name == "simko-test"
    assert {"jobspec.json", "dist", "eval"} <= set(ml["artifacts"])


def test_a_resumed_job_continues_the_same_tracker_runs(tmp_path, offline_wandb):
    """`simko train --out DIR` twice: a new job id, the same run directory, the same tracker runs."""
    run_steps(tmp_path, spec_with(), [1, 2], job_id="track-first")
    run_steps(tmp_path, spec_with(), [3, 4], job_id="track-second")
    wb = read_wandb(tmp_path / "wandb")
    assert len(wb["files"]) == 2 and wb["run_ids"] == [stable_run_id("track-first")] * 2
    assert sorted(s for s, row in wb["history"].items() if "dist/lambda_1" in row) == [1, 2, 3, 4]
    state = load_state(tmp_path)
    ml = read_mlflow(state["mlflow_tracking_uri"], state["mlflow_run_id"], ["dist/lambda_1"])
    assert sorted(ml["metrics"]["dist/lambda_1"]) == [1, 2, 3, 4]
    assert len(ml["client"].search_runs([ml["run"].info.experiment_id])) == 1
    assert sorted(read_tensorboard(tmp_path / "tensorboard")["scalars"]["reward/mean"]) == [1, 2, 3, 4]
    assert jsonl_steps(tmp_path) == [1, 2, 3, 4]


# ----------------------------------------------------------------------------------- failures
def test_an_unwritable_mlflow_uri_costs_a_warning_not_the_job(tmp_path, offline_wandb, caplog):
    # /proc refuses new directories even to root: a real "cannot be written" store.
    spec = spec_with(["jsonl", "tensorboard", "mlflow"], mlflow_tracking_uri="file:///proc/simko-cannot-write/mlruns")
    with caplog.at_level(logging.WARNING, logger="simko.tracking"):
        log = run_steps(tmp_path, spec, range(1, 6))
    warnings = [r.getMessage() for r in caplog.records if "mlflow" in r.getMessage()]
    assert len(warnings) == 1 and "could not be opened" in warnings[0]
    assert jsonl_steps(tmp_path) == [1, 2, 3, 4, 5]
    assert sorted(read_tensorboard(tmp_path / "tensorboard")["scalars"]["loss/policy"]) == [1, 2, 3, 4, 5]
    assert [t.name for t in log.trackers] == []  # closed


def test_a_tracker_failing_mid_job_is_switched_off_with_one_warning(tmp_path, offline_wandb, caplog):
    """The MLflow store breaks after step 2 (its metrics folder replaced by a file, as a full or
    broken disk would): one warning, MLflow off, TensorBoard and metrics.jsonl get every step."""
    spec = spec_with(["tensorboard", "mlflow"])
    with caplog.at_level(logging.WARNING, logger="simko.metrics"):
        log = MetricsLog.for_job(tmp_path, spec, job_id="track-0001")
        for step in (1, 2):
            log.write(step_metrics(step))
        [metrics_dir] = list((tmp_path / "mlruns").glob("*/*/metrics"))
        for path in sorted(metrics_dir.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        metrics_dir.rmdir()
        metrics_dir.write_text("not a directory")
        for step in (3, 4, 5):
            log.write(step_metrics(step))
        log.close()
    assert list(log.failures) == ["mlflow"]
    switched_off = [r for r in caplog.records if "switched off" in r.getMessage() and "at step" in r.getMessage()]
    assert len(switched_off) == 1 and "step 3" in switched_off[0].getMessage()
    assert jsonl_steps(tmp_path) == [1, 2, 3, 4, 5]
    assert sorted(read_tensorboard(tmp_path / "tensorboard")["scalars"]["dist/lambda_3"]) == [1, 2, 3, 4, 5]


def test_a_tracker_library_that_cannot_be_imported_costs_a_warning(tmp_path, monkeypatch, caplog):
    # A missing package cannot be provoked in the shared venv without uninstalling it: a None entry in
    # sys.modules makes `import wandb` raise ImportError, exactly as a missing package does.
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.delitem(sys.modules, "services.control.tracking.wandb", raising=False)
    with caplog.at_level(logging.WARNING, logger="simko.tracking"):
        log = run_steps(tmp_path, spec_with(["jsonl", "wandb", "tensorboard"]), range(1, 4))
    assert any("wandb could not be opened" in r.getMessage() and "ModuleNotFoundError" in r.getMessage()
               for r in caplog.records)
    assert jsonl_steps(tmp_path) == [1, 2, 3] and not log.failures


def test_metrics_jsonl_errors_are_not_swallowed(tmp_path):
    log = MetricsLog(tmp_path / "gone")  # its run directory does not exist: the write must fail loudly
    with pytest.raises(FileNotFoundError):
        log.write(step_metrics(1))
    with pytest.raises(TypeError):  # not JSON: nothing half-written
        MetricsLog(tmp_path).write({"trainer/step": 1, "bad": object()})
    assert not (tmp_path / "metrics.jsonl").exists() or (tmp_path / "metrics.jsonl").read_text() == ""


def test_nan_and_bool_scalars_reach_the_trackers(tmp_path):
    with MetricsLog.for_job(tmp_path, spec_with(["tensorboard"]), job_id="j") as log:
        log.write({"trainer/step": 1, "loss/policy": math.nan, "trainer/flag": True})
    scalars = read_tensorboard(tmp_path / "tensorboard")["scalars"]
    assert math.isnan(scalars["loss/policy"][1]) and scalars["trainer/flag"][1] == 1.0
