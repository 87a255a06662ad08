"""The `data` section of a JobSpec: where the problems come from and how prompts are rendered."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

# The verifier registry's naming rule (verifier.tasks.register_task): checked here without importing
# the graders, so a JobSpec still validates torch- and sympy-free.
_TASK_NAME = re.compile(r"^(math|logic|logic:\S+)$")


class DataSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # JSONL / JSON / Parquet / Arrow files (or a glob, or a folder of shards), a Hugging Face
    # `save_to_disk` folder, or a MATH / GSM8K / BBH layout; rows flat ({prompt, answer, task}),
    # chat ({prompt: [messages], answer}) or verl ({prompt: [messages], reward_model.ground_truth, ...}).
    train: str
    eval: str | None = None  # held-out problems for trainer.eval_every
    format: Literal["auto", "jsonl", "json", "parquet", "arrow", "hf_disk", "math", "gsm8k", "bbh"] = "auto"
    prompt_template: str = "qwen_math_boxed"  # text prompts: a name in services.data.TEMPLATES or a string with {prompt}
    default_task: str = "math"  # verifier task for rows that name neither a task nor a data_source / ability
    # verl rows: data_source (or ability) -> verifier task, checked before the built-in mapping
    # (math sources and ability "math" -> "math"); e.g. {"my_org/logic_set": "logic"}.
    task_map: dict[str, str] = {}
    # A malformed row: "error" stops the load naming file, row and field; "skip" drops it, and the
    # count and reasons go to the log and to the run's data_report.json.
    on_bad_rows: Literal["error", "skip"] = "error"
    shuffle: bool = True

    @field_validator("task_map")
    @classmethod
    def _verifier_task_names(cls, value: dict[str, str]) -> dict[str, str]:
        for source, task in value.items():
            if not _TASK_NAME.match(task):
                raise ValueError(f"task_map: {source!r} -> {task!r} is not a verifier task name "
                                 "('math', 'logic' or 'logic:<name>')")
        return value
