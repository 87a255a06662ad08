"""End to end at a real shape: the qwen2.5-0.5b twin (vocabulary 151,936, tied embeddings, 2 layers,
166M parameters) built by `simko make-model`, trained by `simko train` for 2 SimKO steps through
the whole system (a private Redis + Ray, a vLLM rollout worker rendering verl chat prompts with the
twin's chat template, the verifier, the DeepSpeed learner with hidden-state token statistics, the
weight update to vLLM), then its export evaluated by `simko eval` on a verl parquet file.

A random model never writes a correct answer, so every advantage is 0; the run adds the official
GRPO baseline's entropy bonus (entropy_coeff 0.001) so the gradient is not zero and the export must
differ from the twin it started from (the optimizer steps really reached the weights).

    source scripts/env.sh && .venv/bin/python -m pytest tests/models/test_twin_e2e.py -s

With -s it prints the run's wall time, the learner's peak RSS (VmHWM of the LearnerActor process,
read while the job runs) and the weight-update times (perf/ keys of metrics.jsonl) as one JSON line.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.data.format_fixtures import verl_rows, write_parquet

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SIMKO = str(Path(sys.executable).parent / "simko")
VOCAB = 151936


def _vm_hwm_mib(pid: int) -> float | None:
    """The peak RSS of a live process (Linux VmHWM), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _run_watching_learner(argv: list[str], timeout_s: float) -> tuple[subprocess.CompletedProcess, float, dict]:
    """Run `argv`; while it runs, track the peak RSS of its descendant processes by title
    (Ray workers are named ray::ClassName...). Returns (result, wall seconds, {title: peak MiB})."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[str, float] = {}

    def watch() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                children = root.children(recursive=True)
            except psutil.Error:
                break
            for child in children:
                try:
                    title = " ".join(child.cmdline())[:60] or child.name()
                except psutil.Error:
                    continue
                for key in ("LearnerActor", "RolloutWorker", "ray::"):
                    if key in title:
                        hwm = _vm_hwm_mib(child.pid)
                        name = title.split()[0] if key == "ray::" else key
                        if hwm is not None:
                            peaks[name] = max(peaks.get(name, 0.0), hwm)
                        break
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    watcher.join(timeout=5)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr), time.monotonic() - started, peaks


def _tensors(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        out.update(load_file(shard))
    return out


def test_qwen05_twin_trains_two_simko_steps_and_evaluates(tmp_path):
    timings: dict[str, float] = {}
    started = time.monotonic()
    twin = tmp_path / "twin"
    made = subprocess.run([SIMKO, "make-model", "--like", "qwen2.5-0.5b", "--layers", "2", "--out", str(twin)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-4000:]
    timings["make_model_s"] = time.monotonic() - started
    config = json.loads((twin / "config.json").read_text())
    assert (config["vocab_size"], config["num_hidden_layers"], config["tie_word_embeddings"]) == (VOCAB, 2, True)

    train = write_parquet(tmp_path / "math" / "train.parquet", verl_rows(split="train"))
    test = write_parquet(tmp_path / "math" / "test.parquet", verl_rows(split="test"))
    out = tmp_path / "run"
    # Small everywhere but the shapes: 2 prompts x 2 samples x <= 16 tokens per step; a 64 MiB KV
    # cache (2 layers x 2 KV heads x 64 x fp32 = 2 KiB per token: 32k tokens).
    sets = [f"model.path={twin}", f"data.train={train}", "trainer.steps=2", "trainer.export_final=true",
            "learner.batch_prompts=2", "learner.mini_batch_prompts=2", "learner.token_stats=hidden",
            "algorithm.loss_hparams.entropy_coeff=0.001",
            "rollout.n=2", "rollout.max_tokens=16", "rollout.max_model_len=256", "rollout.batch_groups=2",
            f"rollout.kv_cache_bytes={64 << 20}", "rollout.dtype=float32"]
    result, train_s, peaks = _run_watching_learner(
        [SIMKO, "train", "configs/tiny.yaml", "--out", str(out), *[arg for s in sets for arg in ("--set", s)]],
        timeout_s=900)
    assert result.returncode == 0, result.stderr[-4000:]
    timings["train_s"] = train_s

    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["trainer/step"] for m in metrics] == [1, 2]
    for m in metrics:
        assert math.isfinite(m["loss/policy"]) and math.isfinite(m["loss/grad_norm"]), m
        assert m["learner/optimizer_steps"] >= 1 and m["perf/response_tokens"] > 0
        assert m["loss/entropy_bonus"] > 5.0  # a random init over 151,936 ids: near-uniform (ln V = 11.9)
    # Step 2's batch was sampled with the weights step 1 published (max_staleness 0): the rollout
    # worker applied at least one update in vLLM.
    assert metrics[-1]["perf/weight_update_s"] > 0

    final = out / "final"
    exported, initial = _tensors(final), _tensors(twin)
    assert set(exported) == set(initial)
    embed = "model.embed_tokens.weight"
    assert exported[embed].shape == (VOCAB, 896)
    changed = [name for name in initial if not (exported[name] == initial[name]).all()]
    assert embed in changed and len(changed) >= len(initial) // 2, changed  # the steps reached the export

    ev_started = time.monotonic()
    ev_out = tmp_path / "eval"
    evaluated = subprocess.run([SIMKO, "eval", "--model", str(final), "--data", str(test), "--n", "2", "--k", "1,2",
                                "--max-tokens", "8", "--max-model-len", "256", "--out", str(ev_out)],
                               cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-4000:]
    timings["eval_s"] = time.monotonic() - ev_started
    table = json.loads((ev_out / "pass_at_k.json").read_text())
    assert (table["problems"], table["chat_prompts"]) == (4, 4)
    assert json.loads((ev_out / "data_report.json").read_text())["eval"]["format"] == "parquet"

    timings["total_s"] = time.monotonic() - started
    perf = {key: [round(m[key], 4) for m in metrics] for key in sorted(metrics[0])
            if key.startswith("perf/") and isinstance(metrics[0][key], (int, float))}
    print(json.dumps({"test": "twin_e2e", "timings_s": {k: round(v, 1) for k, v in timings.items()},
                      "peak_rss_mib": {k: round(v, 1) for k, v in peaks.items()}, "perf": perf}))
    assert peaks.get("LearnerActor"), f"no learner process seen: {sorted(peaks)}"
