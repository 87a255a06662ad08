"""The `data` section of a JobSpec: where the problems come from and how prompts are rendered."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class DataSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    train: str  # JSONL / JSON / Parquet of {prompt, answer, task}, or a MATH / GSM8K / BBH layout
    eval: str | None = None  # held-out problems for trainer.eval_every
    format: Literal["auto", "jsonl", "json", "parquet", "math", "gsm8k", "bbh"] = "auto"
    prompt_template: str = "qwen_math_boxed"  # a name in services.data.TEMPLATES or a string with {prompt}
    default_task: str = "math"  # verifier task for rows that do not name one
    shuffle: bool = True
