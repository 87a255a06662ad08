"""The `math` grader: extraction, normalisation, guards and equivalence (pure, in-process)."""
import pytest

from verifier import Verdict, known_tasks, verify
from verifier.extract import extract_math_answer, last_boxed, strip_gold
from verifier.guards import explosive_reason
from verifier.normalize import choice_letter, normalize_math, words_to_number


def boxed(ans: str) -> str:
    return f"Some reasoning first.\nTherefore the final answer is $\\boxed{{{ans}}}$."


EQUIVALENT = [
    ("\\frac{1}{2}", "0.5"), ("0.5", "\\frac12"), ("\\dfrac{3}{4}", "0.75"), ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"), ("x^2+2x+1", "(x+1)^2"), ("(x+1)(x-1)", "x^2-1"),
    ("\\{1,2,3\\}", "\\{3,2,1\\}"), ("2, 3", "3, 2"), ("[1,2)", "[1,2)"), ("(-\\infty, 3]", "(-\\infty,3]"),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"), ("50\\%", "50"),
    ("30^\\circ", "30"), ("5\\text{ cm}", "5"), ("x=2", "2"), ("1,000", "1000"), ("\\pi/2", "\\frac{\\pi}{2}"),
    ("6.7e-5", "6.7\\times10^{-5}"), ("6.7e-5", "0.000067"), ("x²+1", "x^2+1"), ("√2", "\\sqrt{2}"),
    ("½", "\\frac12"), ("2½", "\\frac52"), ("１２", "12"), ("3π", "3\\pi"), ("−4", "-4"), ("45°", "45"),
    ("\\textbf{(C)}", "C"), ("\\textbf{(C) } 12", "(C)"), ("\\varnothing", "\\emptyset"), ("∅", "\\emptyset"),
    ("0.\\overline{3}", "\\frac13"), ("0.1\\overline{6}", "\\frac16"), ("\\frac{x}{1}", "x"),
    ("\\text{Monday}", "Monday"), ("3 \\text{ and } 2", "2, 3"), ("x=2 \\text{ or } x=3", "2, 3"),
    ("\\frac{1}{2^{100}}", "2^{-100}"), ("2^{2^{3}}", "256"), ("10!", "3628800"),
]
NOT_EQUIVALENT = [
    ("3", "2"), ("\\frac13", "\\frac14"), ("\\sqrt2", "\\sqrt3"), ("-5", "5"), ("(1,2]", "[1,2)"),
    ("\\pi", "3.14159"), ("2x+1", "2x-1"), ("\\textbf{(D)}", "C"), ("\\varnothing", "\\{1\\}"),
    ("0.\\overline{3}", "\\frac14"), ("x³", "x^2"), ("6.7e-5", "6.7\\times10^{-4}"), ("2, 4", "2, 3"),
    ("\\frac{1}{2004!}", "\\frac{1}{2006!}"), ("1-\\frac{1}{e}", "1+\\frac{1}{e}"), ("1e-7", "2\\times10^{-7}"),
    ("0.0000001", "0.0000002"), ("\\text{Tuesday}", "Monday"), ("\\begin{pmatrix}1\\\\3\\end{pmatrix}",
                                                                  "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
]


@pytest.mark.parametrize("pred,gold", EQUIVALENT)
def test_equivalent_forms_are_correct(pred, gold):
    v = verify("math", boxed(pred), gold)
    assert (v.status, v.correct, v.reward) == ("ok", True, 1.0), v


@pytest.mark.parametrize("pred,gold", NOT_EQUIVALENT)
def test_non_equivalent_forms_are_wrong(pred, gold):
    v = verify("math", boxed(pred), gold)
    assert (v.status, v.correct, v.reward) == ("ok", False, 0.0), v


@pytest.mark.parametrize("response,expected", [
    ("so \\boxed{\\frac{1}{\\sqrt{2}}} done", "\\frac{1}{\\sqrt{2}}"),
    ("first \\boxed{4}, corrected: \\fbox{5}", "5"),
    ("thus \\boxed 7 .", "7"),
    ("48/2 = 24\n#### 72", "72"),
    ("So the answer is $\\frac{7}{2}$. Done.", "\\frac{7}{2}"),
    ("The final answer is **12**.", "12"),
    ("Work...\nAnswer: 3.5\n", "3.5"),
    ("$\\frac12$", "\\frac12"),
    ("I do not know how to finish this problem.", None),
    ("\\boxed{unclosed", None),
])
def test_extract_math_answer(response, expected):
    assert extract_math_answer(response) == expected


def test_last_boxed_handles_nested_and_escaped_braces():
    assert last_boxed("\\boxed{\\{1, \\frac{2}{3}\\}}") == "\\{1, \\frac{2}{3}\\}"


def test_gold_forms():
    assert strip_gold("Natalia sold 24.\n#### 72") == "72"
    assert strip_gold("$\\boxed{3}$") == "3"
    assert strip_gold(" $\\frac12$ ") == "\\frac12"


def test_no_answer_and_verdict_shape():
    v = verify("math", "I give up.", "5")
    assert v == Verdict(False, 0.0, "no_answer", None)
    assert set(v.to_dict()) == {"correct", "reward", "status", "extracted", "detail"}


def test_unknown_task_is_an_error_verdict_naming_valid_tasks():
    v = verify("chemistry", "\\boxed{1}", "1")
    assert v.status == "error" and not v.correct and v.reward == 0.0
    assert "math" in v.detail and "logic:countdown" in v.detail


def test_long_response_keeps_its_tail():
    response = "blah " * 40_000 + "\\boxed{42}"
    assert verify("math", response, "42").correct
    assert verify("math", "\\boxed{42}" + " blah" * 40_000, "42").status == "no_answer"


def test_verdict_validates_status_and_reward():
    with pytest.raises(ValueError):
        Verdict(False, 0.0, "maybe", None)
    with pytest.raises(ValueError):
        Verdict(True, 1.0, "timeout", None)
    assert Verdict.from_dict({"correct": True, "reward": 1.0, "status": "ok", "extracted": "1", "new": 1}).correct


@pytest.mark.parametrize("text,value", [
    ("five", 5), ("twenty-one", 21), ("one hundred and five", 105), ("two thousand twenty", 2020),
    ("minus three", -3), ("a half", 0.5), ("banana", None), ("", None),
])
def test_words_to_number(text, value):
    result = words_to_number(text)
    assert (result is None and value is None) or result == value


def test_normalize_math_rules():
    assert normalize_math("6.7e-5") == "6.7\\times 10^{-5}"
    assert normalize_math("0.\\overline{3}") == "\\frac{1}{3}"
    assert normalize_math("-1.\\overline{142857}") == "-\\frac{8}{7}"
    assert normalize_math("x²") == "x^{2}"
    assert normalize_math("\\frac{x}{1}") == "(x)"
    assert normalize_math("18 dollars") == "18"
    assert normalize_math("e") == "e" and normalize_math("2e") == "2e"  # Euler's e is not notation
    assert choice_letter("\\textbf{(C)}") == "C" and choice_letter("(B) 12") == "B"
    assert choice_letter("a cat") is None and choice_letter("12") is None


@pytest.mark.parametrize("answer", [
    "10^{10^{10}}", "9^{9^{9}}", "1000000!", "(1000000)!", "{99999}!", "(2^{99999})!", "2^{100!}",
    "2^{100000}", "99999^{99999}", "(" * 30 + "1" + ")" * 30, "x" * 2000,
])
def test_guards_flag_explosive_answers(answer):
    assert explosive_reason(answer) is not None


@pytest.mark.parametrize("answer", [
    "2^{2^{3}}", "2^{99999}", "10!", "\\frac{5!}{3!2!}", "x^{y^{z}}", "10^{100}", "e^{i\\pi}",
    "\\left(\\frac{\\sqrt{3}}{2}\\right)^{2}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
])
def test_guards_leave_realistic_answers_alone(answer):
    assert explosive_reason(answer) is None


def test_prefiltered_answer_is_a_timeout_unless_identical_to_gold():
    v = verify("math", boxed("10^{10^{10}}"), "3")
    assert v.status == "timeout" and v.reward == 0.0 and "pre-filter" in v.detail
    assert verify("math", boxed("10^{10^{10}}"), "10^{10^{10}}").correct


def test_known_tasks_lists_math_logic_and_all_bbh():
    tasks = known_tasks()
    assert "math" in tasks and "logic" in tasks and "logic:countdown" in tasks
    assert len([t for t in tasks if t.startswith("logic:")]) >= 27 + 1


def test_answer_line_after_a_sentence():
    assert extract_math_answer("We reason carefully. Answer: 12") == "12"
    assert extract_math_answer("The answer key: none") is None
