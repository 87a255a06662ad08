"""The benchmark scripts start: their imports resolve (a bench file named like a package, e.g.
bench/learner.py, once shadowed `learner` for bench/loss.py) and they print JSON. The numbers
themselves are measured by running them, not here."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_bench_script_help(script):
    result = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_loss_bench_runs_at_toy_size():
    result = subprocess.run([sys.executable, str(BENCH / "loss.py"), "--tokens", "64", "--vocab", "128",
                             "--repeats", "1", "--rounds", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert set(report["results"]) == {"grpo", "simko", "dense_simko"}


def test_learner_bench_prints_only_json_on_stdout():
    # In-process learner tests leave this process's torch.distributed address in the environment
    # (and its port bound); the benchmark is a fresh single process.
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    result = subprocess.run([sys.executable, str(BENCH / "learner_update.py"), "--updates", "1", "--groups", "2",
                             "--n", "2", "--prompt-len", "8", "--response-len", "16"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)  # DeepSpeed's own prints went to stderr
    assert report["simko_over_grpo_tokens_per_s"] > 0
