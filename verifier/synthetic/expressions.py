"""BBH-style expression tasks with step-by-step solutions: boolean expressions and multistep
arithmetic. A random expression tree is rendered with parentheses and evaluated bottom-up; every
internal node becomes one worked step ("3 - 4 = -1."), so the solution is a real derivation."""
from __future__ import annotations

import random
from dataclasses import dataclass

from verifier.synthetic.base import Problem, boxed, check_count


@dataclass(frozen=True)
class Node:
    op: str | None  # None for a leaf
    value: object  # a leaf's constant
    children: tuple["Node", ...] = ()


def _evaluate(node: Node, apply, steps: list[str]) -> tuple[object, str]:
    """(value, rendered text) of `node`, appending one step per internal node (post-order)."""
    if node.op is None:
        return node.value, _fmt(node.value)
    parts = [_evaluate(c, apply, steps) for c in node.children]
    values = [v for v, _ in parts]
    value = apply(node.op, values)
    text = f"not {parts[0][1]}" if node.op == "not" else f"( {f' {node.op} '.join(t for _, t in parts)} )"
    # A step names the children's values, not their text: "( ( 1 + 2 ) * 3 )" -> "1 + 2 = 3." "3 * 3 = 9."
    done = f"not {_fmt(values[0])}" if node.op == "not" else f" {node.op} ".join(map(_fmt, values))
    steps.append(f"{done} = {_fmt(value)}.")
    return value, text


def _fmt(value: object) -> str:
    return str(value)


# ---------------------------------------------------------------- boolean expressions
def _bool_apply(op: str, args: list[bool]) -> bool:
    return {"not": lambda: not args[0], "and": lambda: args[0] and args[1], "or": lambda: args[0] or args[1]}[op]()


def _bool_tree(rng: random.Random, ops: int) -> Node:
    if ops == 0:
        return Node(None, rng.choice((True, False)))
    op = rng.choice(("not", "and", "or"))
    if op == "not":
        return Node("not", None, (_bool_tree(rng, ops - 1),))
    left = rng.randint(0, ops - 1)
    return Node(op, None, (_bool_tree(rng, left), _bool_tree(rng, ops - 1 - left)))


def boolean_problems(count: int, *, seed: int, ops: int = 3) -> list[Problem]:
    """"not ( True and False ) is" with `ops` operators (the difficulty knob); answer True/False."""
    check_count(count, ops=ops)
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        steps: list[str] = []
        value, text = _evaluate(_bool_tree(rng, ops), _bool_apply, steps)
        text = text[2:-2] if text.startswith("( ") and text.endswith(" )") else text  # BBH drops outer parens
        out.append(Problem(prompt=f"Evaluate: {text}", answer=str(value), task="logic:bool_expr",
                           solution=" ".join(steps) + f" The answer is {boxed(str(value))}."))
    return out


# ---------------------------------------------------------------- multistep arithmetic
def _arith_apply(op: str, args: list[int]) -> int:
    a, b = args
    return a + b if op == "+" else a - b if op == "-" else a * b


def _arith_tree(rng: random.Random, depth: int, max_operand: int) -> Node:
    if depth == 0:
        return Node(None, rng.randint(-max_operand, max_operand))
    return Node(rng.choice("+-*"), None, (_arith_tree(rng, depth - 1, max_operand),
                                          _arith_tree(rng, depth - 1, max_operand)))


def multistep_problems(count: int, *, seed: int, depth: int = 2, max_operand: int = 9) -> list[Problem]:
    """BBH multistep_arithmetic: "((-1 + 2) * (3 - 4)) =", a full tree of `depth` levels."""
    check_count(count, depth=depth, max_operand=max_operand)
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        steps: list[str] = []
        value, text = _evaluate(_arith_tree(rng, depth, max_operand), _arith_apply, steps)
        out.append(Problem(prompt=f"Compute: {text} =", answer=str(value), task="logic:multistep",
                           solution=" ".join(steps) + f" The answer is {boxed(str(value))}."))
    return out
