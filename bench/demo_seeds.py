"""Run `simko demo` for several seeds and aggregate the pass@K tables (mean and spread over seeds).

    .venv/bin/python bench/demo_seeds.py --out runs/demo-seeds --seeds 0 1 2 -- --steps 105
    .venv/bin/python bench/demo_seeds.py --out runs/demo-seeds --aggregate-only

Arguments after `--` go to every `simko demo`. Prints a markdown table (used for docs/demo_results.md)
and writes it to OUT/seeds.md.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from services.evaluation.report import load_eval

ARMS = ("base", "grpo", "simko")


def aggregate(out: Path, seeds: list[int]) -> str:
    # per_seed[seed][arm] = that run's pass@K table (services.evaluation.report reads the eval files)
    per_seed: dict[int, dict[str, dict[int, float]]] = {}
    for seed in seeds:
        for arm in ARMS:
            path = out / f"seed{seed}" / arm / "eval" / "pass_at_k.json"
            if path.is_file():
                per_seed.setdefault(seed, {})[arm] = load_eval(path)[0]
    tables = {arm: [runs[arm] for runs in per_seed.values() if arm in runs] for arm in ARMS}
    ks = sorted({k for rows in tables.values() for row in rows for k in row})
    lines = ["| model | seeds | " + " | ".join(f"pass@{k}" for k in ks) + " |", "|---|---|" + "---|" * len(ks)]
    for arm, rows in tables.items():
        if not rows:
            continue
        cells = []
        for k in ks:
            values = [100 * r[k] for r in rows]
            spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.1f}{spread}")
        lines.append(f"| {arm} | {len(rows)} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed pass@1 / pass@64 (base, grpo, simko):", ""]
    for seed in seeds:
        lines.append(f"- seed {seed}: " + ", ".join(f"{arm} {100 * t[1]:.1f} / {100 * t[max(t)]:.1f}"
                                                    for arm, t in per_seed.get(seed, {}).items()))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/demo-seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--aggregate-only", action="store_true")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    out = Path(args.out)
    simko = str(Path(sys.executable).parent / "simko")
    if not args.aggregate_only:
        for seed in args.seeds:
            subprocess.run([simko, "demo", "--out", str(out / f"seed{seed}"), "--seed", str(seed), *extra], check=True)
    text = aggregate(out, args.seeds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
