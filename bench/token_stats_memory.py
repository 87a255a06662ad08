"""Token statistics from hidden states vs from full logits: peak memory and forward+backward time.

    source scripts/env.sh && .venv/bin/python bench/token_stats_memory.py [--tokens 8192 --vocab 151936 --hidden 896]

The shape of a Qwen2.5-0.5B micro-batch: hidden states [tokens, 896], an lm_head [151936, 896],
fp32 on CPU. One forward + backward of the SimKO policy loss (learner.losses.policy_loss) with
gradients for the hidden states and the lm_head weight, through
  logits: logits = hidden @ W^T ([tokens, V], and autograd keeps their gradient too), then the
          chunked statistics (learner.token_stats.compute_token_stats);
  hidden: learner.token_stats.HiddenStates: each chunk's logits computed in forward and again in
          backward, never all at once.
Each variant runs in its own process (peak RSS is per process); its peak is the RSS high-water mark
of the measured steps (reset after the warm-up) above the RSS before them. Prints one JSON object
with both and the ratios hidden / logits (targets: peak memory <= 0.25x, time <= 1.3x).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0: clear_refs "5"), so
    the peak read afterwards is the measured steps' own, not an earlier one (imports, set-up)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    """Peak RSS since the last _reset_peak (VmHWM), else over the process's life (ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_variant(variant: str, tokens: int, vocab: int, width: int, repeats: int, threads: int,
                chunk: int) -> dict:
    import torch

    from learner.losses import make_hparams, policy_loss
    from learner.token_stats import HiddenStates

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows = 8
    length = tokens // rows
    hidden = torch.randn(rows, length, width).requires_grad_()
    weight = (torch.randn(vocab, width) / width ** 0.5).requires_grad_()
    token_ids = torch.randint(0, vocab, (rows, length))
    old = torch.full((rows, length), -3.0)
    adv = torch.randn(rows)
    mask = torch.ones(rows, length, dtype=torch.bool)
    hp = make_hparams("simko", chunk_size=chunk)

    def step():
        hidden.grad = weight.grad = None
        predictions = hidden @ weight.t() if variant == "logits" else HiddenStates(hidden, weight)
        loss, _ = policy_loss("simko", hp, logits=predictions, tokens=token_ids, old_logprobs=old, advantages=adv,
                              mask=mask)
        loss.backward()
        return float(loss.detach())

    step()  # warm-up: allocator pools, and the .grad buffers both variants need alike
    hidden.grad = weight.grad = None
    baseline = _rss_mib()
    peak_reset = _reset_peak()
    times, values = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        values.append(step())
        times.append(time.perf_counter() - start)
    return {"variant": variant, "median_s": round(statistics.median(times), 3), "times_s": [round(t, 3) for t in times],
            "peak_extra_mib": round(_peak_mib() - baseline, 1), "peak_reset": peak_reset, "loss": values[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=1024, help="token rows per chunk (both paths)")
    parser.add_argument("--variant", choices=["logits", "hidden"], help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.tokens, args.vocab, args.hidden, args.repeats, args.threads,
                                     args.chunk)))
        return
    results = {}
    for variant in ("logits", "hidden"):
        argv = [sys.executable, __file__, "--variant", variant, "--tokens", str(args.tokens), "--vocab",
                str(args.vocab), "--hidden", str(args.hidden), "--repeats", str(args.repeats), "--threads",
                str(args.threads), "--chunk", str(args.chunk)]
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    logits, hidden = results["logits"], results["hidden"]
    print(json.dumps({
        "bench": "token_stats_memory", "config": {k: v for k, v in vars(args).items() if k != "variant"},
        "results": results,
        "hidden_over_logits_peak_memory": round(hidden["peak_extra_mib"] / max(logits["peak_extra_mib"], 0.1), 3),
        "hidden_over_logits_time": round(hidden["median_s"] / logits["median_s"], 3),
        "same_loss": abs(hidden["loss"] - logits["loss"]) <= 1e-4 * max(1.0, abs(logits["loss"])),
    }, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
