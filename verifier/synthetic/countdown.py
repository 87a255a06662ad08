"""Countdown / game of 24: reach the target with + - * / using each given number once.

Many expressions solve one instance, which is where pass@K matters. Instances are built forwards
(a random expression over the numbers gives the target), so every one is solvable. Graded by the
verifier's `logic:countdown` checker (verifier/countdown.py); gold is JSON
{"numbers": [...], "target": N, "use_all": true}. Knobs: `numbers` (how many), `max_number`,
`max_target`, `divide` (allow exact division).
"""
from __future__ import annotations

import json
import random

from verifier.synthetic.base import Problem, boxed, check_count

_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


def countdown_problems(count: int, *, seed: int, numbers: int = 3, max_number: int = 10, max_target: int = 100,
                       divide: bool = False) -> list[Problem]:
    check_count(count, numbers=numbers, max_number=max_number, max_target=max_target)
    if numbers < 2:
        raise ValueError("countdown needs at least 2 numbers")
    rng = random.Random(seed)
    return [_instance(rng, numbers, max_number, max_target, divide) for _ in range(count)]


def game_of_24_problems(count: int, *, seed: int, max_number: int = 13) -> list[Problem]:
    """Four numbers that make 24 (target fixed; rejection sampling over random expressions)."""
    check_count(count, max_number=max_number)
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        p = _instance(rng, 4, max_number, 24, divide=True)
        if json.loads(p.answer)["target"] == 24:
            out.append(p)
    return out


def _instance(rng: random.Random, k: int, max_number: int, max_target: int, divide: bool) -> Problem:
    ops = "+-*/" if divide else "+-*"
    while True:
        nums = [rng.randint(1, max_number) for _ in range(k)]
        # Left-deep combination of the numbers in order: ((a o b) o c) o d, every step shown.
        value, expr, steps = nums[0], str(nums[0]), []
        for n in nums[1:]:
            op = rng.choice(ops)
            if op == "/" and (n == 0 or value % n):
                op = "+"
            if op == "-" and value < n:  # keep intermediate values natural numbers
                op = "+"
            new = _APPLY[op](value, n)
            steps.append(f"{value} {op} {n} = {new}.")
            expr = f"({expr}) {op} {n}" if op in "*/" and any(c in expr for c in "+-") else f"{expr} {op} {n}"
            value = new
        if 1 <= value <= max_target:
            break
    shown = sorted(nums)
    gold = json.dumps({"numbers": shown, "target": value, "use_all": True})
    prompt = (f"Use the numbers {' '.join(map(str, shown))} once each with + - * / to make {value}.")
    return Problem(prompt=prompt, answer=gold, task="logic:countdown",
                   solution=" ".join(steps) + f" The answer is {boxed(expr)}.")
