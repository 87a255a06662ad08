"""Learner update throughput and peak memory: SimKO vs GRPO, or token statistics from hidden states vs logits.

Same model, same batches, one run: the two losses (hidden-state token statistics, the default), or
SimKO with each token-statistics path (learner.token_stats = hidden | logits).

    source scripts/env.sh && OMP_NUM_THREADS=1 .venv/bin/python bench/learner_update.py [--updates 3] ...
    # a real shape: the qwen2.5-0.5b twin (vocabulary 151,936, 2 layers), hidden states vs logits
    .venv/bin/simko make-model --like qwen2.5-0.5b --layers 2 --out runs/twin-qwen05
    OMP_NUM_THREADS=2 .venv/bin/python bench/learner_update.py --model runs/twin-qwen05 --compare token_stats \
        --groups 2 --n 8 --prompt-len 32 --response-len 256 --micro-batch-tokens 8192 --updates 2
    # (~8 min on 2 cores; results in docs/real_shapes.md)

Prints one JSON object. tokens/s counts trained response tokens (x PPO epochs) per second of
update() wall time, old-log-prob recomputation included. Peak memory: on GPU the CUDA allocator's
peak; on CPU the process RSS peak above the RSS before the first measured update (sampled every
2 ms), which includes allocator caching and is a coarser number, and the process's lifetime peak
RSS (model load and optimizer state included). `--compare losses` (the default) runs both losses
in this process; `--compare token_stats` runs each path in its own process, so neither inherits
the other's allocator pools and each lifetime peak is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# DeepSpeed prints to stdout (at import and at init); stdout is kept for the one JSON result.
sys.stdout.flush()
RESULT_OUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)

from learner.config import AlgorithmSection, LearnerJob, LearnerSection  # noqa: E402
from learner.engine import LearnerEngine  # noqa: E402
from services.wire.messages import Sample, ScoredGroup  # noqa: E402
from services.models.tiny import build_tiny_model  # noqa: E402


class PeakRss:
    """Background sampler of this process's RSS."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s, self.peak, self._stop = interval_s, 0, threading.Event()
        self._proc = psutil.Process()

    def __enter__(self):
        self.base = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_batch(seed: int, groups: int, n: int, vocab: int, prompt_len: int, response_len: int) -> list[ScoredGroup]:
    rng = random.Random(seed)
    out = []
    for g in range(groups):
        prompt = [rng.randrange(8, vocab) for _ in range(prompt_len)]
        samples = []
        for i in range(n):
            length = rng.randint(response_len // 2, response_len)
            ids = [rng.randrange(8, vocab) for _ in range(length)]
            reward = float(rng.random() < 0.5) if i > 1 else float(i)  # never all-equal
            samples.append(Sample(token_ids=ids, logprobs=[0.0] * length, top_ids=[], top_logprobs=[], text="",
                                  finish_reason="stop", reward=reward, correct=reward > 0.5))
        out.append(ScoredGroup(job_id="bench", group_id=f"{seed}-{g}", prompt_token_ids=prompt, task="math",
                               gold="", samples=samples, policy_version=0, worker_id="bench", index=g))
    return out


def run_loss(loss: str, args, model_dir: Path, token_stats: str = "hidden") -> dict:
    section = LearnerSection(zero_stage=args.zero_stage, lr=1e-5, batch_prompts=args.groups,
                             mini_batch_prompts=max(1, args.groups // 2), micro_batch_tokens=args.micro_batch_tokens,
                             max_seq_len=args.prompt_len + args.response_len, token_stats=token_stats,
                             precision=args.precision)
    cfg = LearnerJob(model_path=str(model_dir), temperature=1.0, max_response_tokens=args.response_len, seed=0,
                     learner=section, algorithm=AlgorithmSection(loss=loss))
    engine = LearnerEngine(cfg)
    vocab = engine.vocab_size
    batch = lambda i: make_batch(i, args.groups, args.n, vocab, args.prompt_len, args.response_len)  # noqa: E731
    engine.update(batch(-1))  # warm-up: first-call allocations and lazy init
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    tokens, seconds = 0, 0.0
    with PeakRss() as rss:
        for i in range(args.updates):
            metrics = engine.update(batch(i))
            tokens += metrics["perf/response_tokens"]
            seconds += metrics["perf/update_s"]
    result = {"tokens_per_s": round(tokens / seconds, 1), "update_s": round(seconds / args.updates, 4),
              "response_tokens_per_update": tokens // args.updates,
              "optimizer_steps_per_update": metrics["learner/optimizer_steps"],
              "peak_rss_delta_mib": round((rss.peak - rss.base) / 2**20, 1),
              "peak_rss_mib": round(rss.peak / 2**20, 1),
              "process_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "loss": round(metrics.get("loss/policy", float("nan")), 6)}
    if torch.cuda.is_available():
        result["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["peak_cuda_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    if loss == "simko":
        result["simko/pos_gate_frac"] = round(metrics["simko/pos_gate_frac"], 4)
    return result


def run_isolated(variant: str, argv: list[str]) -> dict:
    """One token-statistics path in a fresh process (its own peak RSS and allocator pools)."""
    out = subprocess.run([sys.executable, __file__, *argv, "--only", variant], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{variant} run failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--response-len", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--micro-batch-tokens", type=int, default=4096)
    parser.add_argument("--zero-stage", type=int, default=0)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16 needs --zero-stage >= 1")
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="train this Hugging Face model directory (e.g. a `simko make-model` twin) instead of "
                             "a random tiny one built from --vocab/--hidden/--layers")
    parser.add_argument("--compare", choices=["losses", "token_stats"], default="losses",
                        help="losses: grpo vs simko (token_stats hidden); token_stats: simko with the hidden-state "
                             "path vs the logits path, each in its own process")
    parser.add_argument("--only", choices=["hidden", "logits"], help=argparse.SUPPRESS)  # child of token_stats
    args = parser.parse_args()
    if args.only:  # one token-statistics path; the parent compares
        print(json.dumps(run_loss("simko", args, Path(args.model), token_stats=args.only)), file=RESULT_OUT,
              flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else build_tiny_model(
            Path(tmp) / "model", vocab_size=args.vocab, hidden=args.hidden, layers=args.layers,
            heads=args.hidden // 64, kv_heads=max(1, args.hidden // 128), head_dim=64)
        if args.compare == "losses":
            results = {loss: run_loss(loss, args, model_dir) for loss in ("grpo", "simko")}
        else:
            argv = [arg for key, value in vars(args).items() if key not in ("model", "only", "compare")
                    for arg in (f"--{key.replace('_', '-')}", str(value))] + ["--model", str(model_dir)]
            results = {variant: run_isolated(variant, argv) for variant in ("logits", "hidden")}
        model_config = json.loads((model_dir / "config.json").read_text())
    out = {
        "benchmark": "learner_update",
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        # --vocab/--hidden/--layers only shape the built model; with --model the "model" entry says what ran
        "config": {key: value for key, value in vars(args).items()
                   if key != "only" and not (args.model and key in ("vocab", "hidden", "layers"))},
        "model": {key: model_config.get(key) for key in ("vocab_size", "hidden_size", "num_hidden_layers",
                                                          "num_attention_heads", "num_key_value_heads",
                                                          "tie_word_embeddings")},
        "results": results,
    }
    if args.compare == "losses":
        out["simko_over_grpo_tokens_per_s"] = round(results["simko"]["tokens_per_s"] / results["grpo"]["tokens_per_s"],
                                                    3)
    else:
        hidden, logits = results["hidden"], results["logits"]
        out["hidden_over_logits_tokens_per_s"] = round(hidden["tokens_per_s"] / logits["tokens_per_s"], 3)
        out["hidden_over_logits_peak_rss_delta"] = round(hidden["peak_rss_delta_mib"]
                                                         / max(logits["peak_rss_delta_mib"], 1e-9), 3)
        out["hidden_over_logits_process_max_rss"] = round(hidden["process_max_rss_mib"]
                                                          / logits["process_max_rss_mib"], 3)
        if "peak_cuda_mib" in hidden and "peak_cuda_mib" in logits:
            out["hidden_over_logits_peak_cuda"] = round(hidden["peak_cuda_mib"] / logits["peak_cuda_mib"], 3)
    print(json.dumps(out, indent=2), file=RESULT_OUT, flush=True)


if __name__ == "__main__":
    main()
