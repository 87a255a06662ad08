"""One raw row -> one Example, or a RowError naming the field that is missing or malformed (pure).

Three row shapes, told apart by their fields (so every file layout carries every shape):

- flat:  {prompt|problem|question|input: str, answer|gold|target|final_answer: str, task?}; a GSM8K
  answer keeps what follows "####", a MATH row without an answer takes its solution's last \\boxed{}.
- chat:  the prompt (`prompt` or `messages`) is a list of {role, content} messages: the rollout side
  renders it with the model's chat template; the answer as in a flat row.
- verl:  a chat (or text) prompt, the gold in `reward_model.ground_truth` (a string, or a dict with
  `target`, else `solution`'s last \\boxed{}), the task from `data_source` / `ability`, ids in
  `extra_info` (verl's examples/data_preprocess/*.py and docs/preparation/prepare_data.rst).

Task of a row: its own `task`; else `task_map[data_source]`, `task_map[ability]`; else "math" for
ability "math" or a known math data source (verl.utils.reward_score.default_compute_score's math
branch); else a data_source / ability that is itself a verifier task name; else, for a row that
names a data_source or ability, a RowError (it would otherwise be graded as something it is not);
a row naming neither gets `default_task`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from verifier.extract import last_boxed

PROMPT_KEYS = ("prompt", "problem", "question", "input")
ANSWER_KEYS = ("answer", "gold", "target", "final_answer")
MESSAGE_KEYS = ("prompt", "messages")
ROLES = ("system", "user", "assistant", "tool")

# verl's math data sources (verl/utils/reward_score/__init__.py) plus the SimKO repository's.
MATH_SOURCES = frozenset({"openai/gsm8k", "lighteval/MATH", "DigitalLearningGmbH/MATH-lighteval",
                          "HuggingFaceH4/MATH-500", "math_dapo", "math", "math_dapo_reasoning",
                          "TianHongZXY/MATH", "TianHongZXY/AIME2025", "TianHongZXY/amc23", "simplelr_abel"})
MATH_SOURCE_PREFIXES = ("aime", "numina_")


class RowError(ValueError):
    """A malformed row: `field` is the field that is missing or wrong (for the drop report)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class RowContext:
    default_task: str = "math"
    task_map: Mapping[str, str] | None = None
    gsm8k: bool = False  # data.format gsm8k: always keep what follows "####"
    stem: str = "data"  # the dataset's name, for ids of rows without one


def row_fields(row: Any, *, index: int, ctx: RowContext, layout_task: str | None = None) -> dict:
    """The Example fields of one row: id, prompt, answer, task, messages (None for a text prompt)."""
    if not isinstance(row, dict):
        raise RowError("row", f"expected an object, got {type(row).__name__}")
    messages = _messages(row)
    if messages is not None:
        prompt = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    else:
        prompt = next((row[k] for k in PROMPT_KEYS if isinstance(row.get(k), str)), None)
        if prompt is None:
            raise RowError("prompt", f"missing: needs a text ({'/'.join(PROMPT_KEYS)}) or a list of chat "
                                     "messages (prompt/messages)")
    if not prompt.strip():
        raise RowError("prompt", "empty")
    answer = _answer(row, ctx)
    if not answer.strip():
        raise RowError("answer", "empty")
    return {"id": _row_id(row, index, ctx.stem), "prompt": prompt, "answer": answer,
            "task": layout_task or _task(row, ctx), "messages": messages}


def _messages(row: dict) -> tuple[dict[str, str], ...] | None:
    key = next((k for k in MESSAGE_KEYS if isinstance(row.get(k), (list, tuple))), None)
    if key is None:
        return None
    value = row[key]
    if not value:
        raise RowError(key, "an empty list of chat messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise RowError(f"{key}[{i}]", f"expected a {{role, content}} message, got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise RowError(f"{key}[{i}].role", f"{role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise RowError(f"{key}[{i}].content", "missing" if content is None else
                           f"expected text, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "user" for m in out):
        raise RowError(key, "no user message")
    if out[-1]["role"] == "assistant":
        # add_generation_prompt opens a new assistant turn; a trailing one would be answered twice.
        raise RowError(f"{key}[{len(out) - 1}].role", "the last message is the assistant's")
    return tuple(out)


def _answer(row: dict, ctx: RowContext) -> str:
    if "reward_model" in row:
        return _verl_gold(row["reward_model"])
    answer = next((_text(row[k]) for k in ANSWER_KEYS if row.get(k) is not None), None)
    if answer is not None and (ctx.gsm8k or "####" in answer):
        answer = answer.rsplit("####", 1)[-1].strip().replace(",", "")
    if answer is None and isinstance(row.get("solution"), str):  # MATH: the answer is the solution's last box
        answer = last_boxed(row["solution"])
        if answer is None:
            raise RowError("solution", "has no \\boxed{} answer (and the row has no answer field)")
    if answer is None:
        raise RowError("answer", f"missing: needs {'/'.join(ANSWER_KEYS)}, reward_model.ground_truth (verl) or a "
                                 "MATH solution with \\boxed{}")
    return answer


def _verl_gold(reward_model: Any) -> str:
    if not isinstance(reward_model, dict):
        raise RowError("reward_model", f"expected an object, got {type(reward_model).__name__}")
    truth = reward_model.get("ground_truth")
    if truth is None:
        raise RowError("reward_model.ground_truth", "missing")
    if isinstance(truth, dict):
        target = truth.get("target")
        if target is not None and str(target).strip():
            return _text(target, "reward_model.ground_truth.target")
        # An empty or missing target (a preprocessing script's extractor failed, as on one row of the
        # SimKO repository's MATH test set): the reference solution's last box is the gold.
        boxed = last_boxed(truth["solution"]) if isinstance(truth.get("solution"), str) else None
        if boxed:
            return boxed
        raise RowError("reward_model.ground_truth.target", f"{'empty' if target is not None else 'missing'} "
                                                           "(and no solution with \\boxed{})")
    return _text(truth, "reward_model.ground_truth")


def _text(value: Any, field: str = "answer") -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        if isinstance(value, (list, tuple)) and len(value) == 1:
            return _text(value[0], field)
        raise RowError(field, f"expected one answer (text or a number), got {type(value).__name__}"
                       + (f" of {len(value)}" if isinstance(value, (list, tuple)) else ""))
    return str(value)


def _task(row: dict, ctx: RowContext) -> str:
    if row.get("task"):
        return str(row["task"])
    source, ability = row.get("data_source"), row.get("ability")
    if source is None and ability is None:
        return ctx.default_task
    task_map = ctx.task_map or {}
    for key in (source, ability):
        if key is not None and str(key) in task_map:
            return task_map[str(key)]
    if ability == "math" or source in MATH_SOURCES or str(source or "").startswith(MATH_SOURCE_PREFIXES):
        return "math"
    for key in (source, ability):
        if isinstance(key, str) and (key in ("math", "logic") or key.startswith("logic:")):
            return key
    raise RowError("data_source", f"no verifier task for data_source {source!r} / ability {ability!r}; "
                                  f"map it with data.task_map (e.g. {{{str(source or ability)!r}: 'logic'}})")


def _row_id(row: dict, index: int, stem: str) -> str:
    for key in ("id", "unique_id"):
        if row.get(key) is not None:
            return str(row[key])
    extra = row.get("extra_info")
    if isinstance(extra, dict):
        for key in ("id", "unique_id"):
            if extra.get(key) is not None:
                return str(extra[key])
        if extra.get("index") is not None:
            return f"{extra.get('split') or stem}-{extra['index']}"
    return f"{stem}-{index}"
