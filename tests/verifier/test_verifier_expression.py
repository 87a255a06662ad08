"""`logic:countdown` / `logic:game_of_24`: own parser, exact numbers, target, never eval()."""
import json

import pytest

from verifier import verify
from verifier.graders.expression import ExpressionError, evaluate

GOLD = json.dumps({"numbers": [8, 3, 8, 3], "target": 24})


@pytest.mark.parametrize("response", [
    "So the answer is 8 / (3 - 8 / 3).",  # needs exact fractions: 3 - 8/3 = 1/3
    "<answer>8/(3-8/3)</answer>",
    "The answer is $8 \\div (3 - 8 \\div 3) = 24$.",
    "Answer: 24 = 8 / (3 - 8/3)",
    "So the answer is [8 / (3 - 8 / 3)].",
])
def test_countdown_correct(response):
    v = verify("logic:countdown", response, GOLD)
    assert (v.status, v.correct) == ("ok", True), v


@pytest.mark.parametrize("response,why", [
    ("So the answer is 8 * 3.", "uses"),  # misses numbers
    ("So the answer is 8 * 3 + 8 - 8 + 3 - 3.", "uses"),  # extra numbers
    ("So the answer is 8 + 3 + 8 + 3.", "evaluates to 22"),
    ("So the answer is 83 - 83 + 24.", "uses"),  # concatenated digits are not the given numbers
    ("So the answer is 8 / (3 - 3) + 8 + 3.", "division by zero"),
    ("So the answer is -8 + 3 * 8 + 3 + 5.", "invalid expression"),  # unary minus is not allowed
    ("So the answer is __import__('os').system('echo hi').", "invalid expression"),
    ("So the answer is 2 ** 3.", "invalid expression"),
    ("So the answer is (" * 30 + "8" + ")" * 30 + ".", "invalid expression"),
])
def test_countdown_wrong(response, why):
    v = verify("logic:countdown", response, GOLD)
    assert v.status == "ok" and not v.correct and why in v.detail, v


def test_subset_mode_and_game_of_24_default_target():
    gold = json.dumps({"numbers": [1, 2, 3, 100], "target": 6, "use_all": False})
    assert verify("logic:countdown", "So the answer is 1 + 2 + 3.", gold).correct
    assert not verify("logic:countdown", "So the answer is 2 * 3 * 1 * 1.", gold).correct
    assert verify("logic:game_of_24", "So the answer is (1 + 2 + 3) * 4.", json.dumps({"numbers": [1, 2, 3, 4]})).correct


def test_bad_gold_and_no_answer():
    assert verify("logic:countdown", "So the answer is 1 + 2.", "not json").status == "error"
    assert verify("logic:countdown", "I tried but could not find a way to combine them at all.", GOLD).status == "no_answer"


def test_evaluate_is_exact_and_strict():
    value, used = evaluate("8 / (3 - 8 / 3)")
    assert value == 24 and used == [8, 3, 8, 3]
    assert evaluate("2 × 3 ÷ 4")[0] * 2 == 3
    for bad in ["1 +", "(1 + 2", "1 2", "1 + a", "1" * 300]:
        with pytest.raises(ExpressionError):
            evaluate(bad)
