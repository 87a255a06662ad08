"""The report's comparison tables: pass@K with bootstrap intervals, run - baseline per K (paired),
and Lambda^(k) / entropy at the start and end of training. Pure: Runs in, markdown out.

A difference is shown only over the problems both runs were evaluated on (matched by problem id),
so the paired bootstrap resamples the same problems for both.
"""
from __future__ import annotations

from services.evaluation.bootstrap import Interval, common_problems, mean_interval, paired_difference, per_problem

LAMBDA_COLUMNS = (("dist/lambda_1", "Lambda_1"), ("dist/lambda_2", "Lambda_2"), ("dist/lambda_3", "Lambda_3"),
                  ("dist/lambda_sampled", "Lambda (sampled)"), ("dist/entropy_mean", "entropy"))


def shared_ks(runs) -> list[int]:
    """The K every run with per-problem counts reports (K <= its smallest n)."""
    with_counts = [r for r in runs if r.counts]
    if not with_counts:
        return []
    ks = set.intersection(*(set(r.pass_at_k) for r in with_counts))
    smallest_n = min(n for r in with_counts for n, _ in r.counts.values())
    return sorted(k for k in ks if k <= smallest_n)


def run_intervals(run, ks: list[int], *, seed: int = 0) -> list[Interval]:
    return mean_interval(per_problem(list(run.counts.values()), ks), seed=seed)


def difference(baseline, run, ks: list[int], *, seed: int = 0) -> tuple[int, list[Interval]]:
    """(problems compared, run - baseline per K) over the problems both were evaluated on."""
    ids = common_problems(baseline.counts, run.counts)
    if not ids:
        return 0, []
    a = per_problem([baseline.counts[i] for i in ids], ks)
    b = per_problem([run.counts[i] for i in ids], ks)
    return len(ids), paired_difference(a, b, seed=seed)


def _cell(iv: Interval, signed: bool = False) -> str:
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f"{fmt.format(100 * iv.value)} [{fmt.format(100 * iv.low)}, {fmt.format(100 * iv.high)}]"


def interval_table(runs, ks: list[int], *, seed: int = 0) -> str:
    lines = ["| model | problems | " + " | ".join(f"pass@{k}" for k in ks) + " |", "|---|---|" + "---|" * len(ks)]
    for r in runs:
        if r.counts:
            cells = [_cell(iv) for iv in run_intervals(r, ks, seed=seed)]
            lines.append(f"| {r.name} | {len(r.counts)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def difference_table(baseline, runs, ks: list[int], *, seed: int = 0) -> str:
    """One row per run (not the baseline): run - baseline in points, [95% interval]; * where the
    interval excludes 0."""
    lines = [f"| run - {baseline.name} | problems | " + " | ".join(f"pass@{k}" for k in ks) + " |",
             "|---|---|" + "---|" * len(ks)]
    for r in runs:
        if r is baseline or not r.counts:
            continue
        problems, diffs = difference(baseline, r, ks, seed=seed)
        if problems:
            cells = [_cell(iv, signed=True) + (" *" if iv.excludes_zero() else "") for iv in diffs]
            lines.append(f"| {r.name} - {baseline.name} | {problems} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def lambda_table(runs, *, window: int = 5) -> str:
    """Mean of the first and the last `window` steps: GRPO concentrating shows as Lambda_1 rising
    toward 0 and Lambda_2, Lambda_3 falling (the paper's Figure 3)."""
    lines = ["| run | " + " | ".join(label for _, label in LAMBDA_COLUMNS) + " |", "|---|" + "---|" * len(LAMBDA_COLUMNS)]
    for r in runs:
        if not r.metrics:
            continue
        cells = []
        for key, _ in LAMBDA_COLUMNS:
            _, ys = r.series(key)
            if len(ys) < 2:
                cells.append("-")
                continue
            head, tail = ys[:window], ys[-window:]
            start, end = sum(head) / len(head), sum(tail) / len(tail)
            cells.append(f"{start:.3f} -> {end:.3f} ({end - start:+.3f})")
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pick_baseline(runs, name: str | None = None):
    """The run others are compared with: `name` if given, else the first evaluated run whose name
    mentions grpo, else the first evaluated run that is not the base model."""
    evaluated = [r for r in runs if r.counts]
    if name is not None:
        return next((r for r in evaluated if r.name == name), None)
    return (next((r for r in evaluated if "grpo" in r.name.lower()), None)
            or next((r for r in evaluated if r.name != "base"), None))
