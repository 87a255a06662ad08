"""What per-token log-probs cost the rollout: our Engine's generate with rollout.top_logprobs None
(the default: training needs none), 0 (the sampled token's) and K, same engine, same prompts, in
one run. Prints one JSON object.

    source scripts/env.sh && .venv/bin/python bench/sampling_cost.py [--model DIR] [--prompts 8] [--n 8]

Seconds per generated token (samples differ between calls, so not wall time per call), the median
of --rounds rounds in which every variant runs once, in a rotating order, after one untimed warm-up
call per variant. Ratios are each variant over None.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_support import cpu_model  # noqa: E402
from bench.rollout_overhead import stdout_to_stderr  # noqa: E402
from rollout.config import RolloutSection  # noqa: E402
from rollout.engine import Engine  # noqa: E402


def seconds_per_token(engine: Engine, prompts: list[str], section: RolloutSection) -> float:
    started = time.perf_counter()
    results = engine.generate(prompts, sampling=section)
    elapsed = time.perf_counter() - started
    return elapsed / max(1, sum(len(s.token_ids) for r in results for s in r.samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "tiny-reasoner"))
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--k", type=int, default=3, help="the top-K variant")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()

    base = dict(n=args.n, temperature=1.0, max_tokens=args.max_tokens, max_model_len=256, kv_cache_bytes=256 << 20)
    variants = {str(k): RolloutSection(**base, top_logprobs=k) for k in (None, 0, args.k)}
    prompts = [f"Q: What is {i} + {3 * i}?\nA:" for i in range(args.prompts)]
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    with stdout_to_stderr():  # vLLM logs to stdout: keep it for the JSON
        engine = Engine(args.model, variants["None"], seed=0)
        for section in variants.values():
            seconds_per_token(engine, prompts, section)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                times[name].append(seconds_per_token(engine, prompts, variants[name]))
        engine.shutdown()
    median = {name: statistics.median(v) for name, v in times.items()}
    print(json.dumps({
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
        "model": args.model, "prompts": args.prompts, "n": args.n, "max_tokens": args.max_tokens, "rounds": args.rounds,
        "ms_per_token_median": {f"top_logprobs={n}": round(1e3 * s, 4) for n, s in median.items()},
        "ratio_over_none": {f"top_logprobs={n}": round(s / median["None"], 3) for n, s in median.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
