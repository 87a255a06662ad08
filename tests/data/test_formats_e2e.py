"""The real formats through the whole system: `simko train` (the controller's feeder, a vLLM rollout
worker rendering chat prompts with the model's template, the verifier, the DeepSpeed learner, the
loop's pass@K evaluation) on a verl parquet file, and `simko eval` on a `save_to_disk` folder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data.format_fixtures import verl_rows, write_jsonl, write_parquet, write_save_to_disk
from tests.job_overrides import EAGER

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SIMKO = str(Path(sys.executable).parent / "simko")


def test_simko_train_on_verl_parquet_with_a_chat_eval_set(tmp_path):
    rows = verl_rows(split="train") * 2
    rows.append({"data_source": "DigitalLearningGmbH/MATH-lighteval", "prompt": [{"role": "user", "content": "?"}],
                 "ability": "math", "reward_model": {"style": "rule"}})  # no ground_truth: dropped, reported
    train = write_parquet(tmp_path / "math" / "train.parquet", rows)
    held_out = write_jsonl(tmp_path / "eval.jsonl", [{"messages": [{"role": "user", "content": q}], "answer": a}
                                                     for q, a in (("What is 1 + 1?", "2"), ("What is 2 + 2?", "4"))])
    out = tmp_path / "run"
    sets = [EAGER, f"data.train={train}", f"data.eval={held_out}", "data.on_bad_rows=skip", "trainer.steps=2",
            "trainer.eval_every=2", "trainer.eval_n=2", "trainer.eval_problems=2", "trainer.export_final=false",
            "learner.batch_prompts=4", "learner.mini_batch_prompts=4", "rollout.n=4", "rollout.max_tokens=16"]
    result = subprocess.run([SIMKO, "train", "configs/tiny.yaml", "--out", str(out),
                             *[arg for s in sets for arg in ("--set", s)]],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["trainer/step"] for m in metrics] == [1, 2]
    assert metrics[-1]["eval/problems"] == 2.0 and "eval/pass@2" in metrics[-1]
    report = json.loads((out / "data_report.json").read_text())
    assert (report["train"]["examples"], report["train"]["chat_examples"], report["train"]["dropped"]) == (8, 8, 1)
    assert report["train"]["dropped_rows"][0]["field"] == "reward_model.ground_truth"
    assert report["eval"]["chat_examples"] == 2


def test_simko_eval_on_a_save_to_disk_folder(tmp_path):
    data = write_save_to_disk(tmp_path / "ds", verl_rows(), shards=2)
    out = tmp_path / "eval"
    result = subprocess.run([SIMKO, "eval", "--model", "builtin:tiny", "--data", str(data), "--n", "2", "--k", "1,2",
                             "--max-tokens", "8", "--max-model-len", "256", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    table = json.loads((out / "pass_at_k.json").read_text())
    assert (table["problems"], table["chat_prompts"], table["text_prompts"]) == (4, 4, 0)
    assert [json.loads(line)["id"] for line in (out / "counts.jsonl").read_text().splitlines()] == [
        "test-0", "test-1", "test-2", "test-3"]
    assert json.loads((out / "data_report.json").read_text())["eval"]["format"] == "hf_disk"
