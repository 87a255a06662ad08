"""Many valid solutions per problem: the worked solutions of countdown, all of them.

Why: a model warm-started on ONE solution per problem is nearly deterministic (token entropy ~0.2
nats), so an RL method that works on the probability of the top-ranked alternatives (SimKO) has
nothing to act on. Warm-starting on solutions drawn uniformly from every valid derivation gives
the model real forking tokens (which two numbers to combine first, with which operator), where
the rank-2 and rank-3 candidates carry probability mass.

    countdown_solutions(numbers, target)  every derivation that reaches target: repeatedly combine two of
                                          the remaining numbers with + - * (/ if allowed); each step is
                                          written "a op b = c." and the committed answer is the expression
    countdown_paths_problems(...)         the instances of `countdown_problems` (same knobs and seed give the
                                          same prompts and golds), each with a solution drawn uniformly
                                          from countdown_solutions
    worked_solutions(problem)             every worked solution of a problem (one for tasks with a single path)

Intermediate values stay natural numbers (as in countdown.py) and division must be exact, so
every step is one a small model can learn; the grader (verifier/graders/expression.py) accepts
any expression over the numbers that equals the target.
"""
from __future__ import annotations

import json
import random
from collections.abc import Sequence

from verifier.synthetic.base import Problem, boxed
from verifier.synthetic.countdown import countdown_problems

_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}
# A derivation: the remaining (value, expression) pairs and the steps written so far.
_Item = tuple[int, str]


def _combine(a: _Item, b: _Item, op: str) -> _Item | None:
    """a op b, or None when the step leaves the natural numbers or divides inexactly."""
    (x, ex), (y, ey) = a, b
    if op == "-" and x < y or op == "/" and (y == 0 or x % y):
        return None
    wrap = lambda e: f"({e})" if " " in e else e  # compound operands get parentheses
    return _OPS[op](x, y), f"{wrap(ex)} {op} {wrap(ey)}"


def countdown_solutions(numbers: Sequence[int], target: int, *, divide: bool = False) -> list[str]:
    """Every distinct worked solution (steps + boxed expression) that reaches `target` using each
    number once. Ordered pairs count separately ("3 + 5" and "5 + 3" are different solutions)."""
    ops = "+-*/" if divide else "+-*"
    out: set[str] = set()

    def search(items: list[_Item], steps: list[str]) -> None:
        if len(items) == 1:
            if items[0][0] == target:
                out.add(" ".join(steps) + f" The answer is {boxed(items[0][1])}.")
            return
        for i in range(len(items)):
            for j in range(len(items)):
                if i == j:
                    continue
                rest = [it for k, it in enumerate(items) if k not in (i, j)]
                for op in ops:
                    made = _combine(items[i], items[j], op)
                    if made is not None:
                        search(rest + [made], steps + [f"{items[i][0]} {op} {items[j][0]} = {made[0]}."])

    search([(n, str(n)) for n in numbers], [])
    return sorted(out)


def _countdown_gold(problem: Problem) -> tuple[list[int], int]:
    gold = json.loads(problem.answer)
    return list(gold["numbers"]), int(gold["target"])


def countdown_paths_problems(count: int, *, seed: int, numbers: int = 3, max_number: int = 10,
                             max_target: int = 100, divide: bool = False) -> list[Problem]:
    """countdown_problems' instances, each solution drawn uniformly from all valid derivations."""
    rng = random.Random(seed + 31337)
    out = []
    for p in countdown_problems(count, seed=seed, numbers=numbers, max_number=max_number, max_target=max_target,
                                divide=divide):
        nums, target = _countdown_gold(p)
        solutions = countdown_solutions(nums, target, divide=divide)
        out.append(Problem(prompt=p.prompt, answer=p.answer, task=p.task, solution=rng.choice(solutions)))
    return out


def worked_solutions(problem: Problem, *, divide: bool = False) -> list[str]:
    """All worked solutions of `problem`: every derivation for countdown, else its one solution."""
    if problem.task == "logic:countdown":
        nums, target = _countdown_gold(problem)
        return countdown_solutions(nums, target, divide=divide) or [problem.solution]
    return [problem.solution]
