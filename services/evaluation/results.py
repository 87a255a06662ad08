"""pass@K evaluation settings and results: the table, the files, the markdown.

    EvalSettings   ks, the prompt template, the seed, and `sampling` (a rollout section: n, max_tokens,
                   temperature, top_p and the engine's max_model_len / dtype / KV cache)
    write_results  counts.jsonl (one row per problem) + pass_at_k.json + pass_at_k.md
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rollout.config import RolloutSection
from services.evaluation.sampling import ProblemCount, per_task_tables, table_of

# Evaluation defaults differ from training's (64 samples, longer answers, a smaller KV cache):
# they are a rollout section of their own, built from the same declaration.
EVAL_SAMPLING = RolloutSection(n=64, max_tokens=512, kv_cache_bytes=512 << 20)


@dataclass(frozen=True)
class EvalSettings:
    ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    template: str = "boxed"
    seed: int = 0
    sampling: RolloutSection = field(default_factory=lambda: EVAL_SAMPLING)

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ValueError("every k must be >= 1")
        if max(self.ks) > self.sampling.n:
            raise ValueError(f"k={max(self.ks)} > n={self.sampling.n}: pass@k needs n >= k samples per problem")

    @property
    def n(self) -> int:
        return self.sampling.n


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
