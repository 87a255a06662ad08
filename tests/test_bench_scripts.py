"""The benchmark scripts start: their imports resolve (a bench file named like a package, e.g.
bench/learner.py, once shadowed `learner` for bench/loss.py) and they print JSON. The numbers
themselves are measured by running them, not here."""
import importlib.util
import json
import os
import subprocess
import sys
import time
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


def test_e2e_vs_trl_help_creates_no_venv(tmp_path):
    # The TRL comparison builds its own virtual environment on first use; --help must not.
    venv = tmp_path / "trl-venv"
    result = subprocess.run([sys.executable, str(BENCH / "e2e_vs_trl.py"), "--help", "--venv", str(venv)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--staleness" in result.stdout and not venv.exists()


def _e2e_support():
    # bench/ is not a package; load the helper by path (no sys.path entry that could shadow a package)
    spec = importlib.util.spec_from_file_location("e2e_support", BENCH / "e2e_support.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A parent that holds 32 MiB, a child that holds 64 MiB, and a grandchild that re-parents itself to
# init (double fork, as a daemon would) holding 16 MiB. Each writes its pid once its memory is touched.
_TREE = r"""
import os, sys, time
ready = sys.argv[1]
def hold(mib, tag):
    block = bytearray(os.urandom(1)) * (mib << 20)  # written, so resident
    with open(f"{ready}/{tag}", "w") as f:
        f.write(str(os.getpid()))
    while not os.path.exists(f"{ready}/stop"):
        time.sleep(0.05)
    return block
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            hold(16, "daemon"); os._exit(0)
        os._exit(0)
    hold(64, "child"); os._exit(0)
hold(32, "parent")
"""


def test_e2e_memory_sums_the_whole_process_tree(tmp_path):
    support = _e2e_support()
    token = "test-" + os.urandom(4).hex()
    env = {**os.environ, support.MARKER: token}
    proc = subprocess.Popen([sys.executable, "-c", _TREE, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 60  # a generous cap, not a measured time
        while not all((tmp_path / t).exists() and (tmp_path / t).read_text() for t in ("parent", "child", "daemon")):
            assert proc.poll() is None and time.monotonic() < deadline, "tree did not start"
            time.sleep(0.05)
        pids = {int((tmp_path / t).read_text()) for t in ("parent", "child", "daemon")}
        found = support.side_pids(proc.pid, token)
        assert pids <= found  # the daemon through the environment marker, the child through ppid
        assert support.side_pids(proc.pid, "another-token") >= pids - {int((tmp_path / "daemon").read_text())}
        assert int((tmp_path / "daemon").read_text()) not in support.side_pids(proc.pid, "another-token")
        pss, rss = support.memory_kib(found)
        assert rss >= (32 + 64 + 16) << 10 and pss >= (32 + 64 + 16) << 10
        assert support.rss_kib(found) >= (32 + 64 + 16) << 10  # the cheap counter the sampler polls
        sampler = support.PeakMemory(proc.pid, token, interval=0.05)
        sampler.start()
        time.sleep(0.5)
        peak = sampler.stop()
        assert peak["rss_mib"] >= 32 + 64 + 16 and peak["pss_mib"] >= 32 + 64 + 16 and peak["processes"] >= 3
        # PSS (the page-table walk) is read only when RSS grew, never more often than RSS.
        assert 1 <= peak["pss_samples"] <= peak["samples"] and peak["sampler_cpu_s"] >= 0
    finally:
        (tmp_path / "stop").write_text("")
        proc.wait(timeout=60)


def test_e2e_summary_of_step_rows():
    support = _e2e_support()
    # step i at 100 + 10 + 2*i seconds, except a slow step 3; startup/* logged on step 1 only
    rows = [{"time": 110.0 + 2 * i + (5 if i >= 3 else 0), "reward/mean": i / 10, "perf/generate_s": float(i)}
            for i in range(1, 9)]
    rows[0]["startup/ray_s"] = 4.0
    out = support.summarize(rows, 100.0, 130.0, skip=3, last=2, reward_key="reward/mean",
                            breakdown_keys=support.our_breakdown_key)
    assert out["steps"] == 8 and out["first_step_s"] == 12.0 and out["wall_s"] == 31.0
    assert out["steady_steps"] == 5 and out["steady_s_per_step"] == 2.0  # steps 3..8: the slow step is before
    assert out["reward_last"] == pytest.approx(0.75)
    assert out["breakdown_median"] == {"perf/generate_s": 6.0}  # steps 4..8
    assert out["startup"] == {"startup/ray_s": 4.0}
    with pytest.raises(SystemExit):  # too few rows for the steady window
        support.summarize(rows[:3], 100.0, 130.0, skip=3, last=2, reward_key="reward/mean")


def _fake_demo_run(run_dir: Path, correct: dict[str, list[int]], n: int = 8) -> None:
    """What `simko demo` leaves for the aggregation: plan.json, each arm's per-problem counts."""
    run_dir.mkdir(parents=True)
    (run_dir / "plan.json").write_text(json.dumps({"arms": ["grpo", "simko"]}))
    for arm, cs in correct.items():
        (run_dir / arm / "eval").mkdir(parents=True)
        with open(run_dir / arm / "eval" / "counts.jsonl", "w") as f:
            for i, c in enumerate(cs):
                f.write(json.dumps({"id": f"p{i}", "task": "math", "n": n, "c": c, "mean_tokens": 9.0}) + "\n")
        table = {"pass_at_k": {str(k): 0.5 for k in (1, 2, 4, 8)}, "per_task": {}, "n": n}
        (run_dir / arm / "eval" / "pass_at_k.json").write_text(json.dumps(table))


def test_demo_seeds_pools_the_seeds_problems_into_one_paired_interval(tmp_path):
    spec = importlib.util.spec_from_file_location("demo_seeds", BENCH / "demo_seeds.py")
    demo_seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo_seeds)
    # seed 0: SimKO solves one more sample on every problem; seed 1: identical arms
    _fake_demo_run(tmp_path / "seed0", {"base": [2] * 30, "grpo": [2] * 30, "simko": [3] * 30})
    _fake_demo_run(tmp_path / "seed1", {"base": [4] * 30, "grpo": [4] * 30, "simko": [4] * 30})
    text, result = demo_seeds.aggregate(tmp_path, [0, 1])
    assert result["ks"] == [1, 2, 4, 8]
    assert result["seeds"][0]["diff"][1][0] == pytest.approx(1 / 8)  # pass@1: 3/8 - 2/8
    assert result["seeds"][1]["diff"][1] == pytest.approx([0.0, 0.0, 0.0])
    pooled = result["pooled"]
    assert pooled["problems"] == 60 and pooled["diff"][1][0] == pytest.approx(1 / 16)
    low, high = pooled["diff"][1][1:]
    assert 0 < low < 1 / 16 < high < 1 / 8  # resampling mixes the seeds' problems
    assert "| pooled | 60 |" in text


def test_token_stats_memory_bench_runs_at_toy_size():
    # Both paths in their own processes; the losses must agree (the hidden path is the same loss).
    result = subprocess.run([sys.executable, str(BENCH / "token_stats_memory.py"), "--tokens", "64", "--vocab", "512",
                             "--hidden", "32", "--repeats", "1", "--chunk", "16"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert set(report["results"]) == {"logits", "hidden"} and report["same_loss"] is True
    assert report["hidden_over_logits_time"] > 0


def test_learner_bench_compares_token_stats_paths_on_a_model_dir(tiny_model_dir):
    # --model takes a ready model directory (a `simko make-model` twin at full size); each path runs
    # in its own process and both report the same first-update loss on the same batches.
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    result = subprocess.run([sys.executable, str(BENCH / "learner_update.py"), "--model", str(tiny_model_dir),
                             "--compare", "token_stats", "--updates", "1", "--groups", "2", "--n", "2",
                             "--prompt-len", "8", "--response-len", "16"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert set(report["results"]) == {"hidden", "logits"}
    assert report["model"]["vocab_size"] == 512
    hidden, logits = report["results"]["hidden"], report["results"]["logits"]
    assert abs(hidden["loss"] - logits["loss"]) <= 1e-4 * max(1.0, abs(logits["loss"]))
    assert report["hidden_over_logits_tokens_per_s"] > 0 and hidden["process_max_rss_mib"] > 0


@pytest.mark.slow
def test_sampling_cost_bench_prints_only_json_on_stdout(tiny_model_dir):
    result = subprocess.run([sys.executable, str(BENCH / "sampling_cost.py"), "--model", str(tiny_model_dir),
                             "--prompts", "2", "--n", "2", "--max-tokens", "4", "--rounds", "1"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert set(out["ratio_over_none"]) == {"top_logprobs=None", "top_logprobs=0", "top_logprobs=3"}
    assert out["ratio_over_none"]["top_logprobs=None"] == 1.0 and all(v > 0 for v in out["ms_per_token_median"].values())
