"""`logic:*` graders: final committed answer per answer kind, hedging, revisions, BBH registry."""
import pytest

from verifier import known_tasks, verify
from verifier.graders.logic import BBH_KINDS, committed_answer, final_answer_grader, infer_kind
from verifier.tasks import register_task

BBH_SUBSETS = [
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa", "dyck_languages",
    "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
    "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
    "multistep_arithmetic_two", "navigate", "object_counting", "penguins_in_a_table",
    "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks",
    "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies",
    "word_sorting",
]


def test_all_27_bbh_subsets_are_registered():
    assert sorted(BBH_KINDS) == sorted(BBH_SUBSETS) and len(BBH_SUBSETS) == 27
    assert all(f"logic:{s}" in known_tasks() for s in BBH_SUBSETS)


@pytest.mark.parametrize("response", [
    "Let's think step by step. ... So the answer is (B).",
    "So the answer is **(B)**.",
    "So the answer is B.",
    "So the answer is (B) Sherlock Holmes.",
    "the answer is: (B)",
    "Answer: (B)",
    "(B)",
    "So the answer is (A). Wait, I misread the table. Actually, the answer is (B).",
    "The final answer is $\\boxed{B}$",
    "<answer>(B)</answer>",
])
def test_choice_correct_forms(response):
    v = verify("logic:date_understanding", response, "(B)")
    assert (v.status, v.correct) == ("ok", True), v


@pytest.mark.parametrize("response,status", [
    ("So the answer is (A) or (D).", "ok"),
    ("So the answer is A or B.", "ok"),
    ("So the answer is (B). Hmm, on reflection the answer is (C).", "ok"),
    ("So the answer is (C).", "ok"),
    ("I cannot decide between the options given here, sorry.", "no_answer"),
])
def test_choice_wrong_or_hedged(response, status):
    v = verify("logic:date_understanding", response, "(B)")
    assert (v.status, v.correct, v.reward) == (status, False, 0.0), v


def test_hedge_is_reported():
    v = verify("logic:snarks", "So the answer is (A) or (D).", "(A)")
    assert not v.correct and "hedged" in v.detail


@pytest.mark.parametrize("task,response,gold,correct", [
    ("logic:navigate", "So the answer is Yes.", "Yes", True),
    ("logic:navigate", "So the answer is no.", "Yes", False),
    ("logic:web_of_lies", "So the answer is **Yes**", "Yes", True),
    ("logic:causal_judgement", "So the answer is yes or no, hard to say.", "Yes", False),
    ("logic:sports_understanding", "So the answer is plausible.", "yes", True),
    ("logic:sports_understanding", "So the answer is not plausible.", "yes", False),
    ("logic:boolean_expressions", "So the answer is True.", "True", True),
    ("logic:boolean_expressions", "So the answer is False.", "True", False),
    ("logic:formal_fallacies", "So the answer is invalid.", "invalid", True),
    ("logic:formal_fallacies", "So the answer is valid.", "invalid", False),
    ("logic:formal_fallacies", "So the answer is valid. No wait, the answer is invalid.", "invalid", True),
    ("logic:multistep_arithmetic_two", "So the answer is -42.", "-42", True),
    ("logic:multistep_arithmetic_two", "So the answer is ((-3) * 14) = -42.", "-42", True),
    ("logic:multistep_arithmetic_two", "So the answer is 42.", "-42", False),
    ("logic:object_counting", "So the answer is 7.", "7", True),
    ("logic:object_counting", "So the answer is seven.", "7", True),
    ("logic:object_counting", "So the answer is 6 or 7.", "7", False),
    ("logic:object_counting", "So the answer is 1,234.", "1234", True),
    ("logic:word_sorting", "So the answer is apple banana cherry.", "apple banana cherry", True),
    ("logic:word_sorting", "So the answer is: apple, banana, cherry", "apple banana cherry", True),
    ("logic:word_sorting", "So the answer is banana apple cherry.", "apple banana cherry", False),
    ("logic:dyck_languages", "So the answer is ] ) }.", "] ) }", True),
    ("logic:dyck_languages", "So the answer is ])}", "] ) }", True),
    ("logic:dyck_languages", "So the answer is ) ] }.", "] ) }", False),
])
def test_answer_kinds(task, response, gold, correct):
    v = verify(task, response, gold)
    assert v.status == "ok" and v.correct is correct, v


@pytest.mark.parametrize("gold,kind", [
    ("(C)", "choice"), ("Yes", "yes_no"), ("False", "true_false"), ("invalid", "validity"), ("-12", "number"),
    ("] ) }", "dyck"), ("Paris", "text"),
])
def test_generic_logic_infers_kind(gold, kind):
    assert infer_kind(gold) == kind


def test_generic_logic_task():
    assert verify("logic", "The answer is Paris.", "Paris").correct
    assert verify("logic", "The answer is (C).", "(C)").correct
    assert not verify("logic", "The answer is Rome.", "Paris").correct


def test_bad_gold_is_an_error_not_a_crash():
    v = verify("logic:navigate", "So the answer is Yes.", "maybe")
    assert v.status == "error" and "gold" in v.detail


def test_committed_answer_prefers_the_latest_statement():
    assert committed_answer("Answer: (A)\nOn second thought the answer is (C).") == "(C)"
    assert committed_answer("The answer is (C).\nAnswer: (D)") == "(D)"
    assert committed_answer("long text\n" * 10) is None


def test_generated_tasks_can_register_standard_kinds():
    register_task("logic:test_only_counter", final_answer_grader("number"), replace=True)
    assert verify("logic:test_only_counter", "So the answer is 12.", "12").correct
    with pytest.raises(ValueError):
        register_task("chemistry", final_answer_grader("number"))
    with pytest.raises(ValueError):
        final_answer_grader("colour")
