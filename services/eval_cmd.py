"""`simko eval --model PATH --data FILE --n N --k 1,2,4,...`: standalone pass@K evaluation.

    load the dataset (any layout services.data reads) -> start a private verifier service ->
    one in-process vLLM rollout engine samples n responses per problem -> the verifier grades them
    -> per-problem counts (JSONL) + the unbiased pass@K table (JSON + markdown)

Why an in-process engine rather than rollout worker actors: evaluation has no learner and no
weight versions, so the worker's queue/weight machinery adds nothing but start-up time; the engine
is the same `rollout.engine.Engine` the workers wrap, so sampling is identical. Grading goes
through the verifier HTTP service (its worker pool enforces per-item deadlines), so hostile outputs
cannot hang an evaluation.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.sampling_eval import ProblemCount


@dataclass(frozen=True)
class EvalSettings:
    n: int = 64
    ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    template: str = "boxed"
    max_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    max_model_len: int = 2048
    kv_cache_bytes: int | None = 512 << 20
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if self.n < 1 or not self.ks or min(self.ks) < 1:
            raise ValueError("n and every k must be >= 1")
        if max(self.ks) > self.n:
            raise ValueError(f"k={max(self.ks)} > n={self.n}: pass@k needs n >= k samples per problem")


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise ValueError(f"--k must be comma-separated integers, got {text!r}") from None
    return ks


def format_table(tables: dict[str, dict[int, float]]) -> str:
    """Markdown: one row per model/run, one column per k (percent)."""
    ks = sorted({k for t in tables.values() for k in t})
    lines = ["| model | " + " | ".join(f"pass@{k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for name, table in tables.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * table[k]:.1f}" if k in table else "-" for k in ks) + " |")
    return "\n".join(lines)


def write_results(out_dir: Path, counts: Sequence[ProblemCount], settings: EvalSettings, meta: dict) -> dict:
    from services.sampling_eval import per_task_tables, table_of

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "counts.jsonl", "w") as f:
        for c in counts:
            f.write(json.dumps(c.row()) + "\n")
    table = table_of(counts, settings.ks)
    result = {**meta, "n": settings.n, "problems": len(counts), "pass_at_k": table,
              "per_task": per_task_tables(counts, settings.ks)}
    (out_dir / "pass_at_k.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "pass_at_k.md").write_text(format_table({meta.get("model", "model"): table}) + "\n")
    return result


def evaluate(model: str, data: str, settings: EvalSettings, *, out_dir: Path, fmt: str = "auto",
             default_task: str = "math", limit: int | None = None, verifier_url: str | None = None) -> dict:
    from rich.progress import Progress

    from rollout.engine import Engine, EngineConfig
    from services.data import load_dataset
    from services.local_stack import start_verifier
    from services.models import resolve_model_path
    from services.sampling_eval import count_correct, service_grader

    examples = load_dataset(data, format=fmt, default_task=default_task)[:limit]
    model_dir = resolve_model_path(model)
    verifier = None if verifier_url else start_verifier(workers=2, log_dir=out_dir / "logs")
    try:
        grade = service_grader(verifier_url or verifier.url)
        engine = Engine(EngineConfig(model=model_dir, max_model_len=settings.max_model_len, dtype=settings.dtype,
                                     kv_cache_bytes=settings.kv_cache_bytes, seed=settings.seed))
        try:
            with Progress() as progress:
                task = progress.add_task(f"eval n={settings.n}", total=len(examples))
                counts = count_correct(engine, examples, template=settings.template, n=settings.n, grade=grade,
                                       max_tokens=settings.max_tokens, temperature=settings.temperature,
                                       top_p=settings.top_p, seed=settings.seed, chunk=max(1, 512 // settings.n),
                                       on_chunk=lambda m: progress.advance(task, m))
        finally:
            engine.shutdown()
    finally:
        if verifier is not None:
            verifier.stop()
    return write_results(out_dir, counts, settings, {"model": model, "data": data, "template": settings.template,
                                                     "temperature": settings.temperature,
                                                     "max_tokens": settings.max_tokens})
