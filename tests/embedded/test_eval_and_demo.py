"""The embedded default end to end, with real components: the shipped tiny model through vLLM and
the verifier service (`simko eval`), and `simko demo` at smoke size (both algorithms through
services.control.controller.run_job: redis, verifier, Ray, vLLM rollout worker, DeepSpeed learner)."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SIMKO = str(Path(sys.executable).parent / "simko")


def test_shipped_model_loads_in_transformers():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from services.models import resolve_model_path

    path = resolve_model_path("builtin:tiny")
    assert Path(path) == ROOT / "models" / "tiny-reasoner"
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "qwen2" and model.config.head_dim >= 32
    assert tok.decode(tok("Q: What is 2 + 3?\nA:")["input_ids"]) == "Q: What is 2 + 3?\nA:"


def test_eval_cli_on_the_shipped_model(tmp_path):
    """pass@1 low but non-zero, pass@8 clearly higher: the property RL and pass@K need."""
    out = tmp_path / "eval"
    result = subprocess.run(
        [SIMKO, "eval", "--model", "builtin:tiny", "--data", "configs/data/tiny_eval.jsonl", "--n", "8",
         "--k", "1,2,8", "--limit", "40", "--template", "Q: {prompt}\nA:", "--max-tokens", "48",
         "--max-model-len", "256", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    counts = [json.loads(line) for line in (out / "counts.jsonl").read_text().splitlines()]
    assert len(counts) == 40 and all(c["n"] == 8 and 0 <= c["c"] <= 8 for c in counts)
    table = {int(k): v for k, v in json.loads((out / "pass_at_k.json").read_text())["pass_at_k"].items()}
    assert sorted(table) == [1, 2, 8]
    assert 0.03 < table[1] < 0.6, table
    assert table[8] > table[1] + 0.1, table
    assert "pass@8" in result.stdout


def test_demo_smoke(tmp_path):
    """`--steps N`: the run sized by hand (no calibration), the report's pieces."""
    out = tmp_path / "demo"
    result = subprocess.run([SIMKO, "demo", "--out", str(out), "--steps", "2", "--held-out", "4", "--n-eval", "8"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    for loss in ("grpo", "simko"):
        rows = [json.loads(line) for line in (out / loss / "metrics.jsonl").read_text().splitlines()]
        assert [r["trainer/step"] for r in rows] == [1, 2]


def test_demo_sizes_itself_to_its_budget(tmp_path):
    """--minutes 4 at reduced evaluation sizes: the demo measures the evaluation and the first arm's
    first steps on this machine, plans the steps (the same for both arms), prints the plan and an
    ETA, and finishes within the budget + 10% (wall time of the whole command)."""
    out, budget_s = tmp_path / "demo", 4 * 60
    started = time.monotonic()
    result = subprocess.run([SIMKO, "demo", "--out", str(out), "--minutes", "4", "--held-out", "16", "--n-eval", "8"],
                            cwd=ROOT, capture_output=True, text=True, timeout=budget_s * 1.1 + 300)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-4000:]
    assert wall <= budget_s * 1.1, f"{wall:.0f}s for a {budget_s}s budget\n{result.stdout[-3000:]}"
    steps = json.loads((out / "plan.json").read_text())["steps_per_arm"]
    assert steps >= 10, steps  # at least the calibration steps
    for arm in ("grpo", "simko"):  # grpo: 10 calibration steps, then resumed from its checkpoint to N
        rows = [json.loads(line) for line in (out / arm / "metrics.jsonl").read_text().splitlines()]
        assert [r["trainer/step"] for r in rows] == list(range(1, steps + 1)), arm
    assert f"plan: {steps} steps per arm" in result.stdout and "left, total" in result.stdout
    timing = json.loads((out / "timing.json").read_text())
    assert timing["total_s"] <= budget_s * 1.1 and timing["measured_costs_s"]["step_s"] > 0
    report = (out / "report.md").read_text()
    assert "difference to grpo" in report
    # the report's pieces
    for name in ("base", "grpo", "simko"):
        assert f"| {name} |" in report
        assert (out / name / "eval" / "counts.jsonl").is_file()
    for loss in ("grpo", "simko"):
        assert json.loads((out / loss / "jobspec.json").read_text())["algorithm"]["loss"] == loss
    assert (out / "pass_at_k.png").is_file() and (out / "lambda.png").is_file()
