"""`logic:synlogic/<task>`: SynLogic's answer formats and gold shapes; parsers, never eval()."""
import json

import pytest

from verifier import known_tasks, verify

S = "logic:synlogic/"
G24 = json.dumps({"numbers": [1, 4, 5, 6], "operators": ["+", "-", "*", "/"], "result": 24})


def grid():
    return [[(3 * (r % 3) + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)]


def tup(g):
    return "(" + ",".join("(" + ",".join(map(str, row)) + ")" for row in g) + ")"


def test_the_seven_tasks_are_registered():
    names = ["game_of_24", "cryptarithm", "sudoku", "dyck_language", "web_of_lies", "word_sorting", "object_counting"]
    assert {S + n for n in names} <= set(known_tasks())


@pytest.mark.parametrize("response,correct", [
    ("```python\n4 / (1 - 5 / 6)\n```", True),  # float division: 24.000000000000004 in Python, 24 exactly here
    ("<think>try</think>\n<answer>```python\n4/(1-5/6)\n```</answer>", True),
    ("```python\n(6 - 5) * 4 * 1 * 6\n```", False),  # a number used twice
    ("```python\n6 * 4 * (5 - 1)\n```", False),  # 96
    ("```python\n__import__('os').system('echo hi')\n```", False),
    ("```python\n4 ** (1 + 5 - 6)\n```", False),  # ** is not an allowed operator
])
def test_game_of_24(response, correct):
    v = verify(S + "game_of_24", response, G24)
    assert (v.status, v.correct) == ("ok", correct), v


def test_game_of_24_gold_shapes_and_operators():
    with_mod = json.dumps({"numbers": [3, 5, 7, 8], "operators": ["+", "-", "*", "/", "%"], "target": 24})
    assert verify(S + "game_of_24", "```python\n(8 % 5) * 7 + 3\n```", with_mod).correct
    no_mod = json.dumps({"numbers": [3, 5, 7, 8], "result": 24})  # operators default to + - * /
    v = verify(S + "game_of_24", "```python\n(8 % 5) * 7 + 3\n```", no_mod)
    assert not v.correct and "invalid" in v.detail
    assert verify(S + "game_of_24", "```python\n1\n```", "not json").status == "error"
    assert verify(S + "game_of_24", "I give up.", G24, extraction="strict").status == "no_answer"


@pytest.mark.parametrize("response,correct", [
    ("The answer is 9567 + 1085 = 10652.", True),
    ("答案是 9567+1085=10652。", True),
    ("So the digits give\n9567 + 1085 = 10652", True),
    ("The answer is 9567 + 1085 = 10653.", False),
])
def test_cryptarithm(response, correct):
    v = verify(S + "cryptarithm", response, "9567 + 1085 = 10652")
    assert (v.status, v.correct) == ("ok", correct), v


def test_cryptarithm_strict_needs_a_marker():
    assert verify(S + "cryptarithm", "9567 + 1085 = 10652", "9567 + 1085 = 10652", extraction="strict").status == "no_answer"


def test_sudoku_any_valid_completion_consistent_with_the_puzzle():
    g = grid()
    puzzle = [[0 if v in (1, 2) else v for v in row] for row in g]
    gold = json.dumps({"solution": tup(g), "puzzle": puzzle})
    swapped = [[{1: 2, 2: 1}.get(v, v) for v in row] for row in g]  # another valid grid, same givens
    assert verify(S + "sudoku", f"```python\n{tup(g)}\n```", gold).correct
    assert verify(S + "sudoku", f"```python\n{tup(swapped)}\n```", gold).correct
    clash = [[{3: 4, 4: 3}.get(v, v) for v in row] for row in g]  # valid, but contradicts givens
    assert not verify(S + "sudoku", f"```python\n{tup(clash)}\n```", gold).correct
    broken = [row[:] for row in g]
    broken[0][0], broken[0][1] = broken[0][1], broken[0][0]
    v = verify(S + "sudoku", f"```python\n{tup(broken)}\n```", gold)
    assert not v.correct and "valid" in v.detail
    synlogic_shape = json.dumps({"answer": tup(g), "original_sudoku": [["X" if v == 5 else v for v in r] for r in g]})
    assert verify(S + "sudoku", f"```python\n{g}\n```", synlogic_shape).correct
    assert verify(S + "sudoku", "no grid here", gold).status == "no_answer"


def test_dyck_language_full_sequence_or_completion_with_the_question():
    q = "Complete the following sequence.\n([])({})([(\n\nOutput only the complete sequence. Example:\n<()[]>"
    gold = "([])({})([()])"
    assert verify(S + "dyck_language", "<answer>([])({})([()])</answer>", gold).correct
    assert verify(S + "dyck_language", "( [ ] ) ( { } ) ( [ ( ) ] )", gold).correct
    assert verify(S + "dyck_language", ")])", gold, question=q).correct
    assert not verify(S + "dyck_language", ")])", gold).correct  # without the question: not the sequence
    assert not verify(S + "dyck_language", "([])({})([(])", gold, question=q).correct


@pytest.mark.parametrize("response,gold,correct", [
    ("The answer is **yes, no, yes**.", "yes, no, yes", True),
    ("答案是 **是，否，是**。", "是, 否, 是", True),
    ("The answer is **yes, no**.", "yes, no, yes", False),
    ("The answer is **no, no, yes**.", "yes, no, yes", False),
])
def test_web_of_lies(response, gold, correct):
    assert verify(S + "web_of_lies", response, gold).correct is correct


def test_word_sorting_and_object_counting():
    assert verify(S + "word_sorting", "\\boxed{banana,cherry,apple}", "banana, cherry, apple").correct
    assert not verify(S + "word_sorting", "\\boxed{apple,banana,cherry}", "banana, cherry, apple").correct
    assert verify(S + "object_counting", "3 + 4 + 5 = 12\n\\boxed{12}", "12").correct
    assert verify(S + "object_counting", "\\boxed{twelve}", "12").correct
    assert not verify(S + "object_counting", "\\boxed{13}", "12").correct
    assert verify(S + "object_counting", "\\boxed{12}", "many").status == "error"
