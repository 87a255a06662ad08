"""Sample n responses per problem with the vLLM rollout engine and count the correct ones.

The shared core of `simko eval`, `simko make-tiny-model` (which measures the model it built) and
`simko demo` (the training loop's periodic evaluation samples through a rollout worker instead,
RolloutWorker.evaluate, and shares the pass@K tables). Grading is a callable, so a caller picks the verifier library in-process (trusted
outputs of a model it just trained) or the verifier HTTP service (hostile outputs cannot hang it).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from rollout.config import RolloutSection
from services.data import Example, prompt_for
from services.evaluation.passk import pass_at_k_table

# items: dicts with task / response / gold -> one bool per item
Grader = Callable[[list[dict]], list[bool]]


@dataclass(frozen=True)
class ProblemCount:
    id: str
    task: str
    n: int
    c: int  # correct samples
    mean_tokens: float

    def row(self) -> dict:
        return asdict(self)


def local_grader() -> Grader:
    from verifier import verify

    return lambda items: [verify(it["task"], it["response"], it["gold"]).correct for it in items]


def service_grader(url: str, *, deadline_s: float = 300.0) -> Grader:
    """Grade through the verifier HTTP service (its worker pool enforces per-item deadlines)."""
    from services.wire.verifier_client import VerifierClient

    client = VerifierClient(url, deadline_s=deadline_s)
    return lambda items: [v.correct for v in client.verify_sync(items)]


def count_correct(engine, examples: Sequence[Example], *, template: str, n: int, grade: Grader,
                  sampling: RolloutSection | None = None, seed: int | None = None, chunk: int = 64,
                  on_chunk: Callable[[int], None] | None = None) -> list[ProblemCount]:
    """n samples per example (in chunks of `chunk` prompts) with `sampling`'s temperature, top_p and
    max_tokens (default: the engine's section), graded; one ProblemCount per example."""
    sampling = (sampling or engine.section).model_copy(update={"top_logprobs": None})
    out: list[ProblemCount] = []
    for start in range(0, len(examples), chunk):
        part = list(examples[start:start + chunk])
        # text prompts through `template`; chat prompts as messages (the model's chat template)
        results = engine.generate([prompt_for(ex, template) for ex in part], n, sampling=sampling, seed=seed)
        items = []
        for ex, res in zip(part, results):
            if res.error:
                raise ValueError(f"problem {ex.id}: the engine refused its prompt ({res.error})")
            for s in res.samples:
                items.append({"task": ex.task, "response": s.text, "gold": ex.answer})
        verdicts = grade(items)
        for i, (ex, res) in enumerate(zip(part, results)):
            ok = verdicts[i * n:(i + 1) * n]
            out.append(ProblemCount(id=ex.id, task=ex.task, n=n, c=sum(ok),
                                    mean_tokens=sum(len(s.token_ids) for s in res.samples) / n))
        if on_chunk is not None:
            on_chunk(len(part))
    return out


def table_of(counts: Sequence[ProblemCount], ks: Sequence[int]) -> dict[int, float]:
    return pass_at_k_table([(p.n, p.c) for p in counts], ks)


def per_task_tables(counts: Sequence[ProblemCount], ks: Sequence[int]) -> dict[str, dict[int, float]]:
    tasks = sorted({p.task for p in counts})
    return {t: table_of([p for p in counts if p.task == t], ks) for t in tasks}
