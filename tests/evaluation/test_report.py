"""`simko report`: table and plots from run directories (metrics.jsonl as the learner writes it,
eval/pass_at_k.json as `simko eval` writes it). Pure file in, files out: no servers needed."""
import json
import subprocess
import sys
from pathlib import Path

from services.evaluation.report import load_run, write_report

SIMKO = str(Path(sys.executable).parent / "simko")


def _fake_run(root: Path, name: str, loss: str, drift: float) -> Path:
    run = root / name
    (run / "eval").mkdir(parents=True)
    (run / "jobspec.json").write_text(json.dumps({"algorithm": {"loss": loss}}))
    edges = [0.0, 0.5, 1.0, 2.0, 4.0]
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(1, 11):
            f.write(json.dumps({"trainer/step": step, "reward/mean": 0.1 * step / 10 + drift, "time": 100.0 + step,
                                "dist/lambda_1": -0.5 + drift, "dist/lambda_2": -2.0, "dist/lambda_3": -3.0,
                                "dist/lambda_sampled": -0.8, "dist/entropy_mean": 0.7,
                                "dist/entropy_hist": [5, 3, 2, step], "dist/entropy_hist_edges": edges,
                                "loss/policy": float("nan") if step == 1 else 0.01}) + "\n")
    table = {"1": 0.2 + drift, "2": 0.3, "4": 0.45, "8": 0.6}
    (run / "eval" / "pass_at_k.json").write_text(json.dumps({"n": 8, "pass_at_k": table,
                                                             "per_task": {"math": table, "logic:dyck": table}}))
    return run


def test_report_writes_table_and_plots(tmp_path):
    a, b = _fake_run(tmp_path, "run-a", "grpo", 0.0), _fake_run(tmp_path, "run-b", "simko", 0.05)
    runs = [load_run(a), load_run(b)]
    assert runs[0].name == "run-a (grpo)" and runs[0].pass_at_k[1] == 0.2
    assert runs[0].series("loss/policy")[0] == list(range(2, 11))  # NaN steps are skipped
    report = write_report(runs, tmp_path / "out")
    text = report.read_text()
    assert "| run-b (simko) | 25.0 | 30.0 | 45.0 | 60.0 |" in text
    for png in ("pass_at_k.png", "lambda.png", "entropy_hist.png", "reward.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000
        assert f"({png})" in text


def test_report_cli(tmp_path):
    a = _fake_run(tmp_path, "run-a", "grpo", 0.0)
    result = subprocess.run([SIMKO, "report", str(a), "--out", str(tmp_path / "r")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "report.md").is_file()
    missing = subprocess.run([SIMKO, "report", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "metrics.jsonl" in missing.stderr


def _with_counts(run: Path, correct: list[int], n: int = 8) -> Path:
    """eval/counts.jsonl as `simko eval` writes it: one row per problem."""
    with open(run / "eval" / "counts.jsonl", "w") as f:
        for i, c in enumerate(correct):
            f.write(json.dumps({"id": f"p{i}", "task": "math", "n": n, "c": c, "mean_tokens": 20.0}) + "\n")
    return run


def test_report_intervals_and_paired_difference(tmp_path):
    """With per-problem counts: pass@K with bootstrap intervals, run - baseline per K (paired over the
    same problems), the difference plot, and Lambda start -> end."""
    a = _with_counts(_fake_run(tmp_path, "run-a", "grpo", 0.0), [0, 1, 2, 8] * 10)
    b = _with_counts(_fake_run(tmp_path, "run-b", "simko", 0.05), [1, 1, 2, 8] * 10)
    runs = [load_run(a), load_run(b)]
    assert len(runs[0].counts) == 40 and runs[0].counts["p1"] == (8, 1)
    text = write_report(runs, tmp_path / "out").read_text()
    assert "95% intervals" in text and "| run-a (grpo) | 40 | " in text
    # b solves one more sample on every 4th problem: +1/8 of a problem at pass@1 on a quarter of them
    row = next(line for line in text.splitlines() if line.startswith("| run-b (simko) - run-a (grpo) | 40 |"))
    assert row.split("|")[3].strip().startswith("+3.1 [")  # 100 * (1/8) / 4
    assert "*" in row.split("|")[3]  # b is never worse: the interval excludes 0
    assert "| run-a (grpo) | -0.500 -> -0.500 (+0.000) | -2.000 -> -2.000" in text  # Lambda start -> end
    assert "| run-b (simko) | -0.450 -> -0.450 (+0.000) |" in text
    assert (tmp_path / "out" / "pass_at_k_difference.png").stat().st_size > 1000
