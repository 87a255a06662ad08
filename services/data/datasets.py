"""Datasets of verifiable problems and the prompt templates that render them.

    read_dataset(path, ...)  ->  Dataset(examples, report)
        sources.locate   the layout and its files (JSONL, JSON, Parquet, Arrow, a `save_to_disk`
                         folder, a glob, a MATH tree, BBH files)
        sources.raw_rows one raw row at a time, naming its file and row
        rows.row_fields  flat / chat / verl row -> Example fields, or a RowError naming the field
        on_bad_rows      "error": the first malformed row raises DataError(file, row, field);
                         "skip": it is dropped and counted, with its reason, in the report
    load_dataset(...)    the examples alone (what most callers want)

An Example's prompt is either text (rendered with a prompt template, `render_prompt`) or chat
messages (rendered on the rollout side with the model's own chat template); `prompt_for` gives what
the rollout engine receives for either. Files are read from local paths only.
"""
from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from services.data.errors import DataError
from services.data.rows import ANSWER_KEYS, PROMPT_KEYS, RowContext, RowError, row_fields
from services.data.sources import locate, raw_rows

log = logging.getLogger(__name__)

TEMPLATES = {
    # Qwen2.5-Math's chat format with its boxed instruction (the paper's setting).
    "qwen_math_boxed": ("<|im_start|>system\nPlease reason step by step, and put your final answer within "
                        "\\boxed{{}}.<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"),
    "boxed": "{prompt}\nPlease reason step by step, and put your final answer within \\boxed{{}}.\n",
    "bbh": "{prompt}\nThink step by step, then finish with \"So the answer is <answer>.\"\n",
    "plain": "{prompt}",
}
BAD_ROW_POLICIES = ("error", "skip")
REPORTED_DROPS = 100  # dropped rows listed one by one in a report (all are counted)


@dataclass(frozen=True)
class Example:
    id: str
    prompt: str  # the problem text: a text prompt before its template, or a chat prompt's last user turn
    answer: str
    task: str
    # Chat prompts: the {role, content} turns, rendered by the model's chat template on the rollout side.
    messages: tuple[dict[str, str], ...] | None = None


@dataclass(frozen=True)
class BadRow:
    file: str
    row: int
    field: str
    reason: str


@dataclass
class DataReport:
    """What a load read and what it dropped (written to the run directory as data_report.json)."""

    path: str
    format: str
    files: list[str]
    rows: int = 0
    dropped: list[BadRow] = field(default_factory=list)
    examples: int = 0
    chat_examples: int = 0
    tasks: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"path": self.path, "format": self.format, "files": self.files[:20], "num_files": len(self.files),
                "rows": self.rows, "examples": self.examples, "chat_examples": self.chat_examples,
                "tasks": self.tasks, "dropped": len(self.dropped),
                "dropped_by_field": dict(Counter(b.field for b in self.dropped)),
                "dropped_rows": [b.__dict__ for b in self.dropped[:REPORTED_DROPS]]}


@dataclass(frozen=True)
class Dataset:
    examples: list[Example]
    report: DataReport


def render_prompt(template: str, prompt: str) -> str:
    """A named template from TEMPLATES, or a custom string containing "{prompt}"."""
    fmt = TEMPLATES.get(template)
    if fmt is None:
        if "{prompt}" not in template:
            raise DataError(f"unknown prompt template {template!r}; named: {sorted(TEMPLATES)} "
                            "(or pass a string containing {prompt})")
        return template.replace("{prompt}", prompt)
    return fmt.format(prompt=prompt)


def prompt_for(example: Example, template: str) -> str | list[dict[str, str]]:
    """What the rollout engine receives: a chat prompt's messages (the model's chat template renders
    them), or a text prompt rendered with `template`."""
    if example.messages is not None:
        return [dict(m) for m in example.messages]
    return render_prompt(template, example.prompt)


def read_dataset(path: str | Path, *, format: str = "auto", default_task: str = "math",
                 task_map: dict[str, str] | None = None, on_bad_rows: str = "error") -> Dataset:
    if on_bad_rows not in BAD_ROW_POLICIES:
        raise DataError(f"on_bad_rows must be one of {BAD_ROW_POLICIES}, got {on_bad_rows!r}")
    source = locate(path, format)
    report = DataReport(path=str(path), format=source.format, files=[str(f) for f in source.files])
    ctx = RowContext(default_task=default_task, task_map=task_map, gsm8k=source.format == "gsm8k",
                     stem=Path(str(path).split("*")[0]).stem or "data")
    examples: list[Example] = []
    for index, raw in enumerate(raw_rows(source)):
        report.rows += 1
        try:
            if raw.error:
                raise RowError("row", raw.error)
            examples.append(Example(**row_fields(raw.value, index=index, ctx=ctx, layout_task=raw.task)))
        except RowError as exc:
            if on_bad_rows == "error":
                raise DataError(f"{raw.where}: {exc}") from None
            report.dropped.append(BadRow(str(raw.file), raw.row, exc.field, str(exc)))
    report.examples = len(examples)
    report.chat_examples = sum(e.messages is not None for e in examples)
    report.tasks = dict(sorted(Counter(e.task for e in examples).items()))
    if report.dropped:
        first = report.dropped[0]
        log.warning("%s: dropped %d of %d rows (by field: %s); first: %s row %d: %s", path, len(report.dropped),
                    report.rows, dict(Counter(b.field for b in report.dropped)), first.file, first.row, first.reason)
    if not examples:
        raise DataError(f"dataset {path} has no examples" + (f" ({len(report.dropped)} rows dropped, e.g. "
                                                              f"{report.dropped[0].reason})" if report.dropped else ""))
    return Dataset(examples, report)


def load_dataset(path: str | Path, *, format: str = "auto", default_task: str = "math",
                 task_map: dict[str, str] | None = None, on_bad_rows: str = "error") -> list[Example]:
    return read_dataset(path, format=format, default_task=default_task, task_map=task_map,
                        on_bad_rows=on_bad_rows).examples


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool) -> list[int]:
    """The example order of one epoch: a seeded permutation, reproducible on resume."""
    order = list(range(n))
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


__all__ = ["ANSWER_KEYS", "PROMPT_KEYS", "TEMPLATES", "BadRow", "DataError", "DataReport", "Dataset", "Example",
           "epoch_order", "load_dataset", "prompt_for", "read_dataset", "render_prompt"]
