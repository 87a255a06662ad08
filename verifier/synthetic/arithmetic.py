"""Arithmetic word problems answered in \\boxed{} (graded by the `math` task).

Knobs: `max_operand` (operand range), `ops` (which operators), `terms` (operands per problem; more
terms means more worked steps), `word` (a short story instead of a bare "What is a + b?").
"""
from __future__ import annotations

import random

from verifier.synthetic.base import Problem, boxed, check_count

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}

# Story templates for two-operand word problems: (template, op). {a} and {b} are the operands.
_STORIES = (
    ("{name} has {a} {item}s and gets {b} more. How many {item}s does {name} have?", "+"),
    ("{name} has {a} {item}s and gives away {b}. How many {item}s are left?", "-"),
    ("{name} buys {a} bags with {b} {item}s each. How many {item}s is that?", "*"),
)
_NAMES = ("Ann", "Bob", "Cai", "Dee", "Eve", "Fay", "Gus", "Hal")
_ITEMS = ("apple", "pen", "card", "coin", "book", "egg", "cup", "shell")


def arithmetic_problems(count: int, *, seed: int, max_operand: int = 20, ops: str = "+-*", terms: int = 2,
                        word: bool = False) -> list[Problem]:
    """`count` problems "What is a OP b?" (left to right, no precedence with terms > 2: each step
    is shown) with operands in [1, max_operand]; `word` tells two-operand ones as stories."""
    check_count(count, max_operand=max_operand, terms=terms)
    if not ops or set(ops) - set(OPS) or terms < 2:
        raise ValueError(f"need ops from {sorted(OPS)} and terms >= 2")
    if word and terms != 2:
        raise ValueError("word problems have exactly 2 terms")
    rng = random.Random(seed)
    problems = []
    for _ in range(count):
        if word:
            problems.append(_story(rng, max_operand, ops))
            continue
        values = [rng.randint(1, max_operand) for _ in range(terms)]
        chosen = [rng.choice(ops) for _ in range(terms - 1)]
        total, steps = values[0], []
        for op, v in zip(chosen, values[1:]):
            new = OPS[op](total, v)
            steps.append(f"{total} {op} {v} = {new}.")
            total = new
        expr = " ".join([str(values[0])] + [f"{op} {v}" for op, v in zip(chosen, values[1:])])
        question = f"What is {expr}?" if terms == 2 else f"Compute {expr} from left to right."
        problems.append(Problem(prompt=question, answer=str(total), task="math",
                                solution=" ".join(steps) + f" The answer is {boxed(str(total))}."))
    return problems


def _story(rng: random.Random, max_operand: int, ops: str) -> Problem:
    template, op = rng.choice([s for s in _STORIES if s[1] in ops])
    a, b = rng.randint(1, max_operand), rng.randint(1, max_operand)
    if op == "-" and b > a:  # nobody gives away more than they have
        a, b = b, a
    answer = OPS[op](a, b)
    prompt = template.format(name=rng.choice(_NAMES), item=rng.choice(_ITEMS), a=a, b=b)
    return Problem(prompt=prompt, answer=str(answer), task="math",
                   solution=f"{a} {op} {b} = {answer}. The answer is {boxed(str(answer))}.")
