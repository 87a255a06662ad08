"""Synthetic task suite: generated gold always verifies; hand-checked instances; perturbed answers fail.

Every generator is exercised through `verifier.verify` with the task it names, i.e. through the same
registry the verifier service uses.
"""
from __future__ import annotations

import json

import pytest

from verifier import known_tasks, verify
from verifier.synthetic import CHECKERS, GENERATORS, generate, generate_mix, split_mix
from verifier.synthetic.expressions import boolean_problems, multistep_problems
from verifier.synthetic.language import dyck_problems, object_count_problems, word_sort_problems


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generated_solutions_verify_and_are_seeded(name):
    problems = generate(name, 200, seed=5)
    assert len(problems) == 200
    for p in problems:
        assert verify(p.task, p.solution, p.answer).correct, p
        assert verify(p.task, "I do not know.", p.answer).correct is False
    assert generate(name, 20, seed=5) == problems[:20] or name == "game_of_24"  # same seed, same problems
    assert generate(name, 20, seed=6) != generate(name, 20, seed=5)


def test_checkers_are_registered_in_the_verifier():
    assert set(CHECKERS) <= set(known_tasks())
    assert {"logic:countdown", "math"} <= set(known_tasks())


@pytest.mark.parametrize("task,gold,right,wrong", [
    ("logic:bool_expr", "False", "not True = False. The answer is \\boxed{False}.", "\\boxed{True}"),
    ("logic:multistep", "-44", "-54 + 10 = -44. The answer is \\boxed{-44}.", "\\boxed{44}"),
    ("logic:dyck", ") ] ] )", "The answer is \\boxed{) ] ] )}.", "The answer is \\boxed{) ] )}."),
    ("logic:dyck", ") ] ] )", "The answer is \\boxed{) ] ] )}.", "The answer is \\boxed{] ) ] )}."),
    ("logic:word_sort", "egg ink leaf queen", "\\boxed{egg ink leaf queen}", "\\boxed{egg leaf ink queen}"),
    ("logic:object_count", "5", "2 + 2 + 1 = 5. The answer is \\boxed{5}.", "2 + 2 + 1 + 3 = 8. \\boxed{8}"),
    ("math", "24", "5 + 19 = 24. The answer is \\boxed{24}.", "5 + 19 = 23. The answer is \\boxed{23}."),
])
def test_hand_checked_answers(task, gold, right, wrong):
    assert verify(task, right, gold).correct
    assert not verify(task, wrong, gold).correct


def test_countdown_accepts_any_valid_expression_and_rejects_misuse():
    gold = json.dumps({"numbers": [2, 3, 10], "target": 15, "use_all": True})
    for expr in ("3 + 10 + 2", "(10 + 2) + 3", "10 * 3 / 2", "(3 - 2) * 10 + 5"):
        ok = verify("logic:countdown", f"The answer is \\boxed{{{expr}}}.", gold).correct
        assert ok is (expr != "(3 - 2) * 10 + 5")  # 5 is not one of the numbers
    assert not verify("logic:countdown", "\\boxed{3 * 10 - 2}", gold).correct  # 28
    assert not verify("logic:countdown", "\\boxed{10 + 3}", gold).correct  # 2 unused


def test_hand_derived_instances():
    b = boolean_problems(50, seed=0, ops=1)
    assert all(p.answer in ("True", "False") for p in b)
    assert {p.prompt.count(" and ") + p.prompt.count(" or ") + p.prompt.count("not ") for p in b} == {1}
    m = multistep_problems(50, seed=0, depth=1, max_operand=3)
    for p in m:  # "Compute: ( a op b ) =" evaluated by hand
        _, a, op, b_, _ = p.prompt.removeprefix("Compute: ").split(" ", 4)
        a, b_ = int(a), int(b_)
        assert int(p.answer) == {"+": a + b_, "-": a - b_, "*": a * b_}[op]
    d = dyck_problems(50, seed=0, length=6)
    pairs = {"(": ")", "[": "]", "<": ">"}
    for p in d:  # prompt + answer is balanced, and the answer closes only
        stack = []
        for ch in p.prompt.removeprefix("Close the sequence: ").split() + p.answer.split():
            if ch in pairs:
                stack.append(ch)
            else:
                assert pairs[stack.pop()] == ch
        assert not stack and p.answer and set(p.answer.split()) <= set(pairs.values())
    w = word_sort_problems(20, seed=0, words=5)
    assert all(p.answer.split() == sorted(p.prompt.split(": ")[1].split()) for p in w)
    o = object_count_problems(1, seed=3, items=2, max_each=1, distractors=0)[0]
    assert o.answer == "2" and o.prompt.startswith("I have ")


def test_difficulty_knobs_and_validation():
    assert all(len(json.loads(p.answer)["numbers"]) == 4 for p in generate("countdown", 20, seed=0, numbers=4))
    assert all(json.loads(p.answer)["target"] == 24 for p in generate("game_of_24", 10, seed=0))
    assert max(abs(int(p.answer)) for p in generate("arithmetic", 100, seed=0, max_operand=3, ops="+")) <= 6
    with pytest.raises(ValueError, match="unknown generator"):
        generate("nope", 1, seed=0)
    with pytest.raises(ValueError, match="words"):
        generate("word_sort", 1, seed=0, words=0)


def test_mix_and_held_out_split_are_disjoint():
    mix = generate_mix(100, seed=1)
    assert len(mix) == 100 and len({p.task for p in mix}) >= 5
    train, held = split_mix(300, 60, seed=2)
    assert len(train) == 300 and len(held) == 60
    assert not {p.prompt for p in train} & {p.prompt for p in held}


def test_countdown_solutions_are_every_valid_derivation():
    from verifier.synthetic.paths import countdown_solutions

    # 2 3 10 -> 15: by hand, the derivations are the orders of 2 + 3 + 10 (each pair combined
    # first, either operand order, then the rest on either side: 3 pairs x 2 x 2 = 12) and 10 * 3 / 2
    # is out without division.
    solutions = countdown_solutions([2, 3, 10], 15)
    assert len(solutions) == 12 and len(set(solutions)) == 12
    assert "2 + 3 = 5. 5 + 10 = 15. The answer is \\boxed{(2 + 3) + 10}." in solutions
    assert "3 + 10 = 13. 2 + 13 = 15. The answer is \\boxed{2 + (3 + 10)}." in solutions
    with_division = countdown_solutions([2, 3, 10], 15, divide=True)
    assert "10 * 3 = 30. 30 / 2 = 15. The answer is \\boxed{(10 * 3) / 2}." in with_division
    assert "3 / 2" not in " ".join(with_division)  # division is exact only
    assert countdown_solutions([2, 3], 7) == []
    gold = json.dumps({"numbers": [2, 3, 10], "target": 15, "use_all": True})
    assert all(verify("logic:countdown", s, gold).correct for s in with_division)
    steps = [step for s in countdown_solutions([1, 7, 8], 49) for step in s.split(" The answer")[0].split(". ")]
    assert steps and all(int(step.rstrip(".").split(" = ")[1]) >= 0 for step in steps)  # natural intermediates


def test_countdown_paths_keep_countdowns_instances_and_draw_among_solutions():
    from verifier.synthetic.countdown import countdown_problems
    from verifier.synthetic.paths import countdown_paths_problems, worked_solutions

    knobs = {"numbers": 3, "max_number": 9, "max_target": 50}
    plain, paths = countdown_problems(300, seed=4, **knobs), countdown_paths_problems(300, seed=4, **knobs)
    assert [(p.prompt, p.answer) for p in plain] == [(p.prompt, p.answer) for p in paths]
    assert all(p.solution in worked_solutions(p) for p in paths)
    several = [p for p in paths if len(worked_solutions(p)) >= 4]
    assert len(several) > 150  # most instances have several paths
    # the drawn solution is not always the one the instance was built from
    assert sum(a.solution != b.solution for a, b in zip(plain, paths)) > 150
    other = generate("dyck", 3, seed=1)
    assert [worked_solutions(p) for p in other] == [[p.solution] for p in other]
