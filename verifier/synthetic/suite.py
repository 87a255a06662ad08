"""The synthetic task suite: every generator by name, the checker that grades each task, and
seeded mixtures written as JSONL datasets (the `{id, prompt, answer, task}` rows services.data reads).

Checkers are registered in the verifier's task registry as `logic:<generator>` (arithmetic is
graded by `math`, countdown by the existing `logic:countdown`), so the verifier service knows them.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from verifier.graders.logic import final_answer_grader
from verifier.synthetic.arithmetic import arithmetic_problems
from verifier.synthetic.base import Problem
from verifier.synthetic.countdown import countdown_problems, game_of_24_problems
from verifier.synthetic.expressions import boolean_problems, multistep_problems
from verifier.synthetic.language import dyck_problems, object_count_problems, word_sort_problems
from verifier.synthetic.paths import countdown_paths_problems
from services.wire.verdicts import Verdict

Generator = Callable[..., list[Problem]]

GENERATORS: dict[str, Generator] = {
    "arithmetic": arithmetic_problems,
    "countdown": countdown_problems,
    "countdown_paths": countdown_paths_problems,  # the same instances, solutions drawn from all derivations
    "game_of_24": game_of_24_problems,
    "bool_expr": boolean_problems,
    "multistep": multistep_problems,
    "dyck": dyck_problems,
    "word_sort": word_sort_problems,
    "object_count": object_count_problems,
}

# The answer kind each BBH-style generator's checker parses (verifier.graders.logic.KINDS).
_KINDS = {"bool_expr": "true_false", "multistep": "number", "dyck": "dyck", "word_sort": "words",
          "object_count": "number"}
CHECKERS: dict[str, Callable[[str, str], Verdict]] = {
    f"logic:{name}": final_answer_grader(kind) for name, kind in _KINDS.items()}

# The embedded default's mixture: name -> (share of the problems, generator knobs). Easy settings:
# a 2.6M-parameter model gets some of these right, rarely all (see services/embedded/tiny_reasoner.py).
# Countdown, half the mix, is where many solution paths exist: its worked solutions are drawn from all
# valid derivations (paths.py), so the warm-started model keeps several paths per problem (its prompts
# and golds are those of "countdown"); the other tasks keep pass@1 clearly above 0 from the first step.
DEFAULT_MIX: dict[str, tuple[float, dict[str, Any]]] = {
    "arithmetic": (0.2, {"max_operand": 20, "ops": "+-"}),
    "countdown_paths": (0.5, {"numbers": 3, "max_number": 9, "max_target": 50}),
    "bool_expr": (0.075, {"ops": 2}),
    "multistep": (0.075, {"depth": 1, "max_operand": 9}),
    "dyck": (0.075, {"length": 4}),
    "object_count": (0.075, {"items": 2, "max_each": 3, "distractors": 1}),
}


def generate(name: str, count: int, *, seed: int, **knobs: Any) -> list[Problem]:
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; valid: {sorted(GENERATORS)}")
    return GENERATORS[name](count, seed=seed, **knobs)


def generate_mix(count: int, *, seed: int, mix: Mapping[str, tuple[float, dict[str, Any]]] = DEFAULT_MIX
                 ) -> list[Problem]:
    """`count` problems split over the mixture by share (rounded; the remainder goes to the first
    task), interleaved in a seeded order. Each task gets its own seed derived from `seed`."""
    import random

    total = sum(share for share, _ in mix.values())
    sizes = {name: int(count * share / total) for name, (share, _) in mix.items()}
    first = next(iter(mix))
    sizes[first] += count - sum(sizes.values())
    problems: list[Problem] = []
    for offset, (name, (_, knobs)) in enumerate(mix.items()):
        problems += generate(name, sizes[name], seed=seed * 1000 + offset, **knobs)
    random.Random(seed).shuffle(problems)
    return problems


def write_jsonl(problems: list[Problem], path: str | Path, prefix: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i, p in enumerate(problems):
            f.write(json.dumps(p.as_row(i, prefix)) + "\n")
    return path


def split_mix(train: int, held_out: int, *, seed: int, mix=DEFAULT_MIX) -> tuple[list[Problem], list[Problem]]:
    """Disjoint train / held-out problems (held-out prompts never appear in train)."""
    held = generate_mix(held_out, seed=seed + 7919, mix=mix)
    held_prompts = {p.prompt for p in held}
    pool = [p for p in generate_mix(train + held_out * 2, seed=seed, mix=mix) if p.prompt not in held_prompts]
    return pool[:train], held
