"""Arithmetic word problems answered in \\boxed{} (graded by the `math` task)."""
from __future__ import annotations

import random

from verifier.synthetic.base import Problem

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def arithmetic_problems(count: int, *, seed: int, max_operand: int = 20, ops: str = "+-*") -> list[Problem]:
    """`count` problems "What is a OP b?" with operands in [1, max_operand]."""
    if count < 0 or max_operand < 1 or not ops or set(ops) - set(OPS):
        raise ValueError(f"need count >= 0, max_operand >= 1 and ops from {sorted(OPS)}")
    rng = random.Random(seed)
    problems = []
    for _ in range(count):
        a, b, op = rng.randint(1, max_operand), rng.randint(1, max_operand), rng.choice(ops)
        answer = OPS[op](a, b)
        problems.append(Problem(prompt=f"What is {a} {op} {b}?", answer=str(answer), task="math",
                                solution=f"{a} {op} {b} = {answer}. The answer is \\boxed{{{answer}}}."))
    return problems
