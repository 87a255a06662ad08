"""`simko eval --model PATH --data FILE --n N --k 1,2,4,...`: standalone pass@K evaluation.

    load the dataset (any layout services.data reads; what it read and dropped -> data_report.json)
    -> start a private verifier service ->
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
from pathlib import Path

from services.evaluation.results import EvalSettings, write_results


def evaluate(model: str, data: str, settings: EvalSettings, *, out_dir: Path, fmt: str = "auto",
             default_task: str = "math", limit: int | None = None, verifier_url: str | None = None,
             task_map: dict[str, str] | None = None, on_bad_rows: str = "error") -> dict:
    """Chat rows are rendered with the model's chat template, text rows with `settings.template`."""
    from rich.progress import Progress

    from rollout.engine import Engine
    from services.control.feeder import DATA_REPORT
    from services.control.local_stack import start_verifier
    from services.data import read_dataset
    from services.evaluation.sampling import count_correct, service_grader
    from services.models import resolve_model_path

    dataset = read_dataset(data, format=fmt, default_task=default_task, task_map=task_map, on_bad_rows=on_bad_rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DATA_REPORT).write_text(json.dumps({"eval": dataset.report.to_json()}, indent=2) + "\n")
    examples = dataset.examples[:limit]
    model_dir = resolve_model_path(model)
    sampling = settings.sampling
    verifier = None if verifier_url else start_verifier(workers=2, log_dir=out_dir / "logs")
    try:
        grade = service_grader(verifier_url or verifier.url)
        engine = Engine(model_dir, sampling, seed=settings.seed)
        try:
            with Progress() as progress:
                task = progress.add_task(f"eval n={settings.n}", total=len(examples))
                counts = count_correct(engine, examples, template=settings.template, n=settings.n, grade=grade,
                                       seed=settings.seed, chunk=max(1, 512 // settings.n),
                                       on_chunk=lambda m: progress.advance(task, m))
        finally:
            engine.shutdown()
    finally:
        if verifier is not None:
            verifier.stop()
    chat = sum(ex.messages is not None for ex in examples)
    return write_results(out_dir, counts, settings, {"model": model, "data": data, "template": settings.template,
                                                     "chat_prompts": chat, "text_prompts": len(examples) - chat,
                                                     "temperature": sampling.temperature,
                                                     "max_tokens": sampling.max_tokens})
