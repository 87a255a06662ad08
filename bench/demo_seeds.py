"""Run `simko demo` for several seeds and aggregate: pass@K per arm (mean and spread over seeds),
SimKO - GRPO per K with paired-bootstrap intervals per seed and pooled over the seeds' problems.

    .venv/bin/python bench/demo_seeds.py --out runs/demo-seeds                 # 3 seeds, --minutes 30 each
    .venv/bin/python bench/demo_seeds.py --out runs/demo-seeds --seeds 0 1 2 -- --minutes 25
    .venv/bin/python bench/demo_seeds.py --out runs/demo-seeds --aggregate-only

Arguments after `--` go to every `simko demo` (OUT/seedS is each one's run directory); without
--minutes or --steps among them each seed gets a longer budget than the demo's default (LONGER_MINUTES). Each seed
draws its own train / held-out split, so pooling the seeds' problems gives 3x the problems of one
run; the pooled interval covers problem and sampling noise, the spread over seeds adds the training
runs' own randomness. Prints markdown (for docs/demo_results.md) and writes OUT/seeds.md and
OUT/seeds.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from services.evaluation.bootstrap import paired_difference, per_problem
from services.evaluation.compare import difference, shared_ks
from services.evaluation.report import load_run

LONGER_MINUTES = 30  # the study's default budget per seed: about twice the demo's steps per arm


def arms_of(run_dir: Path) -> list[str]:
    plan = run_dir / "plan.json"
    arms = json.loads(plan.read_text()).get("arms") if plan.is_file() else None
    return ["base", *(arms or ["grpo", "simko"])]


def load_seed(run_dir: Path) -> dict:
    return {arm: load_run(run_dir / arm, name=arm) for arm in arms_of(run_dir) if (run_dir / arm).is_dir()}


def aggregate(out: Path, seeds: list[int]) -> tuple[str, dict]:
    per_seed = {seed: load_seed(out / f"seed{seed}") for seed in seeds if (out / f"seed{seed}").is_dir()}
    if not per_seed:
        raise SystemExit(f"no seed runs under {out}")
    arms = list(next(iter(per_seed.values())))
    ks = shared_ks([run for runs in per_seed.values() for run in runs.values()])
    result: dict = {"ks": ks, "seeds": {}, "pooled": {}}
    lines = [f"pass@K (%), mean ± standard deviation over {len(per_seed)} seeds:", "",
             "| model | seeds | " + " | ".join(f"pass@{k}" for k in ks) + " |", "|---|---|" + "---|" * len(ks)]
    for arm in arms:
        rows = [runs[arm].pass_at_k for runs in per_seed.values() if arm in runs and runs[arm].pass_at_k]
        cells = []
        for k in ks:
            values = [100 * r[k] for r in rows]
            spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.1f}{spread}" if values else "-")
        lines.append(f"| {arm} | {len(rows)} | " + " | ".join(cells) + " |")

    lines += ["", "SimKO - GRPO (points) per K, [95% paired-bootstrap interval over problems]; * excludes 0:", "",
              "| seed | problems | steps per arm | " + " | ".join(f"pass@{k}" for k in ks) + " |",
              "|---|---|---|" + "---|" * len(ks)]
    pooled_a, pooled_b = [], []
    for seed, runs in per_seed.items():
        problems, diffs = difference(runs["grpo"], runs["simko"], ks, seed=seed)
        steps = len(runs["simko"].metrics)
        result["seeds"][seed] = {"problems": problems, "steps": steps,
                                 "diff": {k: [d.value, d.low, d.high] for k, d in zip(ks, diffs)}}
        lines.append(f"| {seed} | {problems} | {steps} | " + " | ".join(_cell(d) for d in diffs) + " |")
        ids = [i for i in runs["grpo"].counts if i in runs["simko"].counts]
        pooled_a.append(per_problem([runs["grpo"].counts[i] for i in ids], ks))
        pooled_b.append(per_problem([runs["simko"].counts[i] for i in ids], ks))
    a, b = np.concatenate(pooled_a), np.concatenate(pooled_b)
    pooled = paired_difference(a, b, seed=0)
    result["pooled"] = {"problems": int(a.shape[0]), "diff": {k: [d.value, d.low, d.high] for k, d in zip(ks, pooled)}}
    lines.append(f"| pooled | {a.shape[0]} | | " + " | ".join(_cell(d) for d in pooled) + " |")
    return "\n".join(lines), result


def _cell(d) -> str:
    return f"{100 * d.value:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]" + (" *" if d.excludes_zero() else "")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/demo-seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--aggregate-only", action="store_true")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if not any(a.split("=")[0] in ("--minutes", "--steps") for a in extra):
        extra += ["--minutes", str(LONGER_MINUTES)]
    out = Path(args.out)
    simko = str(Path(sys.executable).parent / "simko")
    walls = {}
    if not args.aggregate_only:
        for seed in args.seeds:
            t0 = time.perf_counter()
            subprocess.run([simko, "demo", "--out", str(out / f"seed{seed}"), "--seed", str(seed), *extra], check=True)
            walls[seed] = time.perf_counter() - t0
    text, result = aggregate(out, args.seeds)
    if walls:
        text += "\n\nWall time per seed (s): " + ", ".join(f"seed {s} {w:.0f}" for s, w in walls.items())
        result["wall_s"] = walls
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.md").write_text(text + "\n")
    (out / "seeds.json").write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
