"""Datasets of verifiable problems and the prompt templates that render them.

A dataset is a list of `Example(id, prompt, answer, task)`. Files are read from local paths only:
JSONL / JSON / Parquet of {prompt, answer, task} (common aliases accepted), and the usual local
layouts of MATH (problem + solution with a final \\boxed{}), GSM8K (question + "#### answer") and
BIG-Bench Hard ({"examples": [{"input", "target"}]}, task named after the file).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from verifier.extract import last_boxed

PROMPT_KEYS = ("prompt", "problem", "question", "input")
ANSWER_KEYS = ("answer", "gold", "target", "final_answer")

TEMPLATES = {
    # Qwen2.5-Math's chat format with its boxed instruction (the paper's setting).
    "qwen_math_boxed": ("<|im_start|>system\nPlease reason step by step, and put your final answer within "
                        "\\boxed{{}}.<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"),
    "boxed": "{prompt}\nPlease reason step by step, and put your final answer within \\boxed{{}}.\n",
    "bbh": "{prompt}\nThink step by step, then finish with \"So the answer is <answer>.\"\n",
    "plain": "{prompt}",
}


class DataError(ValueError):
    """A dataset file that cannot be read as the requested layout (names the file and row)."""


@dataclass(frozen=True)
class Example:
    id: str
    prompt: str  # the raw problem text (the template is applied by render_prompt)
    answer: str
    task: str


def render_prompt(template: str, prompt: str) -> str:
    """A named template from TEMPLATES, or a custom string containing "{prompt}"."""
    fmt = TEMPLATES.get(template)
    if fmt is None:
        if "{prompt}" not in template:
            raise DataError(f"unknown prompt template {template!r}; named: {sorted(TEMPLATES)} "
                            "(or pass a string containing {prompt})")
        return template.replace("{prompt}", prompt)
    return fmt.format(prompt=prompt)


def load_dataset(path: str | Path, *, format: str = "auto", default_task: str = "math") -> list[Example]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset not found: {path}")
    fmt = _detect_format(path) if format == "auto" else format
    if fmt == "bbh":
        examples = list(_bbh(path))
    else:
        rows = _read_rows(path, fmt)
        examples = [_example(row, i, path, fmt, default_task) for i, row in enumerate(rows)]
    if not examples:
        raise DataError(f"dataset {path} has no examples")
    return examples


def _detect_format(path: Path) -> str:
    if path.is_dir():  # a BBH folder of <task>.json files, or a MATH tree of per-problem JSON files
        first = next(iter(sorted(path.glob("*.json"))), None)
        return "bbh" if first is not None and _looks_like_bbh(first) else "math"
    if path.suffix == ".json":
        return "bbh" if _looks_like_bbh(path) else "json"
    return "parquet" if path.suffix == ".parquet" else "jsonl"


def _looks_like_bbh(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("examples"), list)


def _read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl")) if path.is_dir() else [path]
    rows: list[dict[str, Any]] = []
    for file in files:
        if fmt == "parquet":
            import pyarrow.parquet as pq  # imported here: only Parquet datasets need it

            rows.extend(pq.read_table(file).to_pylist())
            continue
        text = file.read_text()
        if file.suffix == ".json":
            data = _parse_json(text, file)
            rows.extend(data if isinstance(data, list) else [data])
        else:
            rows.extend(_parse_json(line, file, n) for n, line in enumerate(text.splitlines(), 1) if line.strip())
    return rows


def _parse_json(text: str, file: Path, line: int | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{file}:{line}" if line else str(file)
        raise DataError(f"{where}: invalid JSON ({exc.msg})") from None


def _example(row: Any, index: int, path: Path, fmt: str, default_task: str) -> Example:
    if not isinstance(row, dict):
        raise DataError(f"{path} row {index}: expected an object, got {type(row).__name__}")
    prompt = next((row[k] for k in PROMPT_KEYS if isinstance(row.get(k), str)), None)
    answer = next((str(row[k]) for k in ANSWER_KEYS if row.get(k) is not None), None)
    if fmt == "gsm8k" or (answer and "####" in answer):
        answer = answer.rsplit("####", 1)[-1].strip().replace(",", "") if answer else None
    if answer is None and isinstance(row.get("solution"), str):  # MATH: the answer is the solution's last box
        answer = last_boxed(row["solution"])
    if prompt is None or answer is None:
        raise DataError(f"{path} row {index}: needs a prompt ({'/'.join(PROMPT_KEYS)}) and an answer "
                        f"({'/'.join(ANSWER_KEYS)}, a GSM8K '####' or a MATH solution with \\boxed{{}})")
    return Example(id=str(row.get("id", row.get("unique_id", f"{path.stem}-{index}"))), prompt=prompt,
                   answer=answer, task=str(row.get("task") or default_task))


def _bbh(path: Path) -> Iterator[Example]:
    files = [path] if path.is_file() else sorted(path.glob("*.json"))
    for file in files:
        data = _parse_json(file.read_text(), file)
        for i, ex in enumerate(data.get("examples", [])):
            yield Example(id=f"{file.stem}-{i}", prompt=ex["input"], answer=str(ex["target"]),
                          task=f"logic:{file.stem}")


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool) -> list[int]:
    """The example order of one epoch: a seeded permutation, reproducible on resume."""
    order = list(range(n))
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order
