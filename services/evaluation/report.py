"""`simko report RUN_DIR [RUN_DIR ...]`: a comparison table and PNG plots across runs.

Reads each run's `metrics.jsonl` (one object per learner step, docs/architecture.md) and, when present,
its pass@K evaluation (`RUN_DIR/eval/pass_at_k.json` and the per-problem `counts.jsonl`, written by
`simko eval --out` or `simko demo`), and writes report.md with:
  pass@K per run, with 95% intervals from a bootstrap over problems (services/evaluation/bootstrap.py),
  and each run minus the baseline per K with a paired-bootstrap interval (same problems, same resamples);
  pass@K curves with their intervals (paper fig. 1), Lambda^(1..3) and Lambda of the sampled tokens
  over steps (figs. 3 and 5) with their start -> end values, token-entropy histograms at the start and
  end of training (fig. 6), and reward over steps.
Plotting uses matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

LAMBDA_KEYS = ("dist/lambda_1", "dist/lambda_2", "dist/lambda_3", "dist/lambda_sampled")


@dataclass
class Run:
    name: str
    path: Path | None
    metrics: list[dict] = field(default_factory=list)
    pass_at_k: dict[int, float] = field(default_factory=dict)
    per_task: dict[str, dict[int, float]] = field(default_factory=dict)
    eval_n: int | None = None
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # problem id -> (n, correct)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of a scalar metric, skipping steps where it is missing or NaN."""
        xs, ys = [], []
        for row in self.metrics:
            value = row.get(key)
            if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
                xs.append(int(row.get("trainer/step", row.get("learner/step", len(xs) + 1))))
                ys.append(float(value))
        return xs, ys

    def histograms(self) -> list[tuple[list[float], list[float]]]:
        """(edges, counts) of every step that logged a token-entropy histogram."""
        out = []
        for row in self.metrics:
            counts, edges = row.get("dist/entropy_hist"), row.get("dist/entropy_hist_edges")
            if isinstance(counts, list) and isinstance(edges, list) and len(edges) == len(counts) + 1:
                out.append((edges, counts))
        return out


def _int_keys(table: dict) -> dict[int, float]:
    return {int(k): float(v) for k, v in table.items()}


def load_eval(path: Path) -> tuple[dict[int, float], dict[str, dict[int, float]], int | None]:
    data = json.loads(path.read_text())
    return (_int_keys(data["pass_at_k"]), {t: _int_keys(v) for t, v in data.get("per_task", {}).items()},
            data.get("n"))


def load_run(path: str | Path, name: str | None = None) -> Run:
    path = Path(path)
    metrics_file = path / "metrics.jsonl"
    eval_file = path / "eval" / "pass_at_k.json"
    if not metrics_file.is_file() and not eval_file.is_file():
        raise FileNotFoundError(f"{path}: neither metrics.jsonl nor eval/pass_at_k.json")
    run = Run(name=name or _run_name(path), path=path)
    if metrics_file.is_file():
        run.metrics = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    if eval_file.is_file():
        run.pass_at_k, run.per_task, run.eval_n = load_eval(eval_file)
    counts_file = path / "eval" / "counts.jsonl"
    if counts_file.is_file():
        rows = [json.loads(line) for line in counts_file.read_text().splitlines() if line.strip()]
        run.counts = {str(r["id"]): (int(r["n"]), int(r["c"])) for r in rows}
    return run


def _run_name(path: Path) -> str:
    spec = path / "jobspec.json"
    if spec.is_file():
        loss = json.loads(spec.read_text()).get("algorithm", {}).get("loss")
        return f"{path.name} ({loss})" if loss and loss not in path.name else path.name
    return path.name


# ---------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_pass_at_k(runs: list[Run], out: Path, *, seed: int = 0) -> Path | None:
    """pass@K curves; with per-problem counts, a shaded 95% bootstrap interval around each."""
    from services.evaluation.compare import run_intervals, shared_ks

    runs = [r for r in runs if r.pass_at_k]
    if not runs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ks_ci = shared_ks(runs)
    for r in runs:
        ks = sorted(r.pass_at_k)
        line, = ax.plot(ks, [100 * r.pass_at_k[k] for k in ks], marker="o", label=r.name)
        if r.counts and ks_ci:
            ivs = run_intervals(r, ks_ci, seed=seed)
            ax.fill_between(ks_ci, [100 * iv.low for iv in ivs], [100 * iv.high for iv in ivs],
                            color=line.get_color(), alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("K")
    ax.set_ylabel("pass@K (%)")
    ax.set_title("pass@K on the held-out split (95% bootstrap interval)" if ks_ci else "pass@K on the held-out split",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out / "pass_at_k.png")


def plot_difference(runs: list[Run], baseline: Run | None, out: Path, *, seed: int = 0) -> Path | None:
    """run - baseline per K (points) with its paired-bootstrap 95% interval."""
    from services.evaluation.compare import difference, shared_ks

    ks = shared_ks(runs)
    others = [r for r in runs if r.counts and r is not baseline and r.name != "base"]
    if baseline is None or not ks or not others:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for offset, r in enumerate(others):
        problems, diffs = difference(baseline, r, ks, seed=seed)
        if not problems:
            continue
        xs = [k * 2 ** (0.08 * (offset - (len(others) - 1) / 2)) for k in ks]  # side by side on a log axis
        ys = [100 * d.value for d in diffs]
        err = [[100 * (d.value - d.low) for d in diffs], [100 * (d.high - d.value) for d in diffs]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=f"{r.name} - {baseline.name}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("K")
    ax.set_ylabel("difference (points)")
    ax.set_title("pass@K difference, paired bootstrap over problems (95%)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / "pass_at_k_difference.png")


def plot_lambdas(runs: list[Run], out: Path) -> Path | None:
    runs = [r for r in runs if r.metrics]
    if not runs or not any(r.series(k)[0] for r in runs for k in LAMBDA_KEYS):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(LAMBDA_KEYS), figsize=(4 * len(LAMBDA_KEYS), 3.5), sharex=True)
    for ax, key in zip(axes, LAMBDA_KEYS):
        for r in runs:
            xs, ys = r.series(key)
            ax.plot(xs, _smooth(ys), label=r.name)
        label = "sampled" if key.endswith("sampled") else f"k={key[-1]}"
        ax.set_title(f"Lambda ({label}): mean log-prob, 5-step avg", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, out / "lambda.png")


def plot_entropy(runs: list[Run], out: Path, *, window: int = 5) -> Path | None:
    """Token-entropy histograms (fraction of tokens per bin, log scale): the first and the last
    `window` steps of each run, summed, one panel per run; a last panel overlays every run's end."""
    runs = [r for r in runs if r.histograms()]
    if not runs:
        return None
    plt = _plt()
    panels = len(runs) + (1 if len(runs) > 1 else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.5), squeeze=False, sharey=True)
    for ax, r in zip(axes[0], runs):
        hists = r.histograms()
        for label, part in (("start", hists[:window]), ("end", hists[-window:])):
            centers, widths, fractions = _histogram(part)
            ax.bar(centers, fractions, width=widths, alpha=0.5, label=label)
        ax.set_yscale("log")
        ax.set_title(f"token entropy: {r.name}", fontsize=9)
        ax.set_xlabel("entropy (nats)")
        ax.legend()
    if len(runs) > 1:
        ax = axes[0][-1]
        for r in runs:
            centers, _, fractions = _histogram(r.histograms()[-window:])
            ax.step(centers, fractions, where="mid", label=r.name)
        ax.set_yscale("log")
        ax.set_title(f"end of training (last {window} steps)", fontsize=9)
        ax.set_xlabel("entropy (nats)")
        ax.legend(fontsize=8)
    return _save(fig, out / "entropy_hist.png")


def _histogram(part: list[tuple[list[float], list[float]]]) -> tuple[list[float], list[float], list[float]]:
    """(bin centers, widths, fraction of tokens) of histograms summed over steps."""
    edges = part[0][0]
    counts = [sum(h[1][i] for h in part) for i in range(len(edges) - 1)]
    total = sum(counts) or 1
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    return centers, widths, [c / total for c in counts]


def plot_reward(runs: list[Run], out: Path) -> Path | None:
    runs = [r for r in runs if r.series("reward/mean")[0]]
    if not runs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in runs:
        xs, ys = r.series("reward/mean")
        ax.plot(xs, _smooth(ys), label=r.name)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward (5-step moving average)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out / "reward.png")


def _smooth(ys: list[float], width: int = 5) -> list[float]:
    return [sum(ys[max(0, i - width + 1): i + 1]) / len(ys[max(0, i - width + 1): i + 1]) for i in range(len(ys))]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# ---------------------------------------------------------------- markdown
def training_table(runs: list[Run]) -> str:
    rows = ["| run | steps | reward (first 5) | reward (last 5) | response tokens (last 5) | s per step | "
            "steps' time (s) |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        if not r.metrics:
            continue
        _, rewards = r.series("reward/mean")
        _, lengths = r.series("rollout/response_len_mean")
        # the steps' own time (perf/step_s): a resumed run's restart is not a step
        _, step_s = r.series("perf/step_s")
        per_step = f"{sorted(step_s)[len(step_s) // 2]:.2f} (median)" if step_s else "-"
        rows.append(f"| {r.name} | {len(r.metrics)} | {_mean(rewards[:5])} | {_mean(rewards[-5:])} | "
                    f"{_mean(lengths[-5:], '.1f')} | {per_step} | {sum(step_s):.0f} |")
    return "\n".join(rows)


def _mean(xs: list[float], spec: str = ".3f") -> str:
    return format(sum(xs) / len(xs), spec) if xs else "-"


def write_report(runs: list[Run], out_dir: str | Path, *, title: str = "SimKO run comparison",
                 preamble: str = "", baseline: str | None = None, seed: int = 0) -> Path:
    """report.md + PNGs in out_dir. `baseline`: the run the others are compared with (default: the
    GRPO run, see compare.pick_baseline); `seed`: the bootstrap's."""
    from services.evaluation.compare import difference_table, interval_table, lambda_table, pick_baseline, shared_ks
    from services.evaluation.results import format_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_run = pick_baseline(runs, baseline)
    plots = [p for p in (plot_pass_at_k(runs, out, seed=seed), plot_difference(runs, base_run, out, seed=seed),
                         plot_lambdas(runs, out), plot_entropy(runs, out), plot_reward(runs, out)) if p is not None]
    parts = [f"# {title}", preamble] if preamble else [f"# {title}"]
    evaluated = [r for r in runs if r.pass_at_k]
    if evaluated:
        ns = sorted({r.eval_n for r in evaluated if r.eval_n})
        parts += ["## pass@K (%)", f"Unbiased estimator, n = {', '.join(map(str, ns))} samples per problem.", "",
                  format_table({r.name: r.pass_at_k for r in evaluated})]
        ks = shared_ks(runs)
        if ks:
            parts += ["### with 95% intervals (bootstrap over problems)",
                      "Each interval: the problems resampled with replacement 2000 times; the spread is how much "
                      "the number would move on another draw of problems like these.", "",
                      interval_table(runs, ks, seed=seed)]
            if base_run is not None and any(r.counts and r is not base_run and r.name != "base" for r in runs):
                parts += [f"### difference to {base_run.name} (points, paired bootstrap over problems)",
                          "Both models resampled with the same problem indices (they were evaluated on the same "
                          "problems), so the problems' shared difficulty cancels; * marks an interval that "
                          "excludes 0.", "",
                          difference_table(base_run, [r for r in runs if r.name != "base"], ks, seed=seed)]
        tasks = sorted({t for r in evaluated for t in r.per_task})
        if len(tasks) > 1:
            parts.append("\n### per task (pass@1 / pass@max K)\n")
            parts.append(_per_task_table(evaluated, tasks))
    if any(r.metrics for r in runs):
        parts += ["## Training", training_table(runs),
                  "### Lambda^(k) and entropy: mean of the first 5 steps -> the last 5",
                  "Lambda^(k): mean log-probability of the rank-k candidate over each sampled response, then "
                  "over responses (the paper's eq. 2). Concentration shows as Lambda_1 rising toward 0 while "
                  "Lambda_2 and Lambda_3 fall (Figure 3).", "", lambda_table(runs)]
    if plots:
        parts += ["## Plots"] + [f"![{p.stem}]({p.name})" for p in plots]
    sources = [f"- {r.name}: `{r.path}`" for r in runs if r.path is not None]
    if sources:
        parts += ["## Raw data", "metrics.jsonl (one object per step) and eval/ in each run directory:"] + sources
    path = out / "report.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path


def _per_task_table(runs: list[Run], tasks: list[str]) -> str:
    lines = ["| task | " + " | ".join(r.name for r in runs) + " |", "|---|" + "---|" * len(runs)]
    for t in tasks:
        cells = []
        for r in runs:
            table = r.per_task.get(t, {})
            cells.append(f"{100 * table[min(table)]:.1f} / {100 * table[max(table)]:.1f}" if table else "-")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
