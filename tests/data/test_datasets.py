"""Dataset loaders and prompt templates on small local files."""
import json

import pytest

from services.data import DataError, epoch_order, load_dataset, render_prompt


def test_jsonl_with_aliases_and_default_task(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"problem": "1+1?", "answer": "2"}\n\n{"question": "x", "gold": 3, "task": "logic"}\n')
    examples = load_dataset(path)
    assert [(e.prompt, e.answer, e.task) for e in examples] == [("1+1?", "2", "math"), ("x", "3", "logic")]


def test_parquet_rows_load_like_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "train.parquet"
    # A null task (a column that only some rows fill) falls back to the default task.
    pq.write_table(pa.table({"problem": ["2+2?", "Sort: b a"], "answer": ["4", "a b"],
                             "task": [None, "logic:word_sorting"]}), path)
    examples = load_dataset(path)
    assert [(e.prompt, e.answer, e.task) for e in examples] == [("2+2?", "4", "math"),
                                                               ("Sort: b a", "a b", "logic:word_sorting")]


def test_gsm8k_answers_after_hashes(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "so 1,000 + 2 = 1,002\n#### 1,002"}) + "\n")
    assert load_dataset(path, format="gsm8k")[0].answer == "1002"


def test_math_tree_takes_last_boxed_of_solution(tmp_path):
    (tmp_path / "algebra").mkdir()
    (tmp_path / "algebra" / "1.json").write_text(json.dumps(
        {"problem": "p", "solution": "first \\boxed{1} then \\boxed{\\frac{1}{2}}", "level": "Level 1"}))
    examples = load_dataset(tmp_path)
    assert examples[0].answer == "\\frac{1}{2}" and examples[0].task == "math"


def test_bbh_file_names_the_task(tmp_path):
    path = tmp_path / "boolean_expressions.json"
    path.write_text(json.dumps({"examples": [{"input": "not True is", "target": "False"}]}))
    (example,) = load_dataset(path)
    assert example.task == "logic:boolean_expressions" and example.answer == "False"


def test_errors_name_file_and_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok", "answer": "1"}\n{"prompt": "no answer"}\n')
    with pytest.raises(DataError, match="row 1"):
        load_dataset(path)
    path.write_text('{"prompt": \n')
    with pytest.raises(DataError, match="bad.jsonl:1"):
        load_dataset(path)
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "missing.jsonl")


def test_templates():
    assert "\\boxed{}" in render_prompt("qwen_math_boxed", "What is 2+2?")
    assert render_prompt("Q: {prompt}\nA:", "hi") == "Q: hi\nA:"
    with pytest.raises(DataError, match="unknown prompt template"):
        render_prompt("nope", "x")


def test_epoch_order_is_seeded_permutation():
    a, b = epoch_order(10, 0, 1, True), epoch_order(10, 1, 1, True)
    assert sorted(a) == list(range(10)) and a != b and a == epoch_order(10, 0, 1, True)
    assert epoch_order(4, 3, 0, False) == [0, 1, 2, 3]
