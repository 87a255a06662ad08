"""Real data formats on fixtures written in each format (tests/data/format_fixtures.py): verl parquet,
chat JSONL, `save_to_disk` folders, hub parquet / arrow shards and globs; malformed rows; task mapping."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from services.data import DataError, Example, load_dataset, prompt_for, read_dataset
from services.data.config import DataSection
from tests.data.format_fixtures import (QUESTIONS, verl_rows, write_arrow_stream, write_dataset_dict, write_jsonl,
                                        write_parquet, write_save_to_disk)

GOLDS = [answer for _, answer in QUESTIONS]


def chat(question: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": question},)


@pytest.mark.parametrize("gold", ["dict", "str"])
def test_verl_parquet_rows_become_chat_examples(tmp_path, gold):
    path = write_parquet(tmp_path / "math" / "test.parquet", verl_rows(gold=gold))
    examples = load_dataset(path)
    assert [e.answer for e in examples] == GOLDS
    assert [e.messages for e in examples] == [chat(q) for q, _ in QUESTIONS]
    assert examples[0].prompt == QUESTIONS[0][0]  # the problem text (the verifier's question)
    assert {e.task for e in examples} == {"math"} and [e.id for e in examples][:2] == ["test-0", "test-1"]


def test_verl_gold_falls_back_to_the_solution_box_and_keeps_system_turns(tmp_path):
    rows = verl_rows(gold="dict")
    rows[0]["reward_model"]["ground_truth"]["target"] = ""  # a preprocess script's extractor failed
    rows[1]["prompt"] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 7 * 6?"}]
    examples = load_dataset(write_parquet(tmp_path / "t.parquet", rows))
    assert examples[0].answer == "5"
    assert examples[1].messages[0] == {"role": "system", "content": "Be brief."}
    assert examples[1].prompt == "What is 7 * 6?"


def test_verl_task_from_data_source_ability_and_task_map(tmp_path):
    rows = verl_rows(data_source="openai/gsm8k", ability="arithmetic")  # a known math source
    rows[1].update(data_source="aime2025", ability="x")  # verl's aime* prefix
    rows[2].update(data_source="my/logic", ability="logic:boolean_expressions")  # a task name as ability
    rows[3].update(data_source="my/puzzles", ability="puzzle")  # unknown: must be mapped
    path = write_parquet(tmp_path / "t.parquet", rows)
    with pytest.raises(DataError, match=r"t.parquet row 3: data_source: .*'my/puzzles'.*data.task_map"):
        load_dataset(path)
    examples = load_dataset(path, task_map={"my/puzzles": "logic", "openai/gsm8k": "logic:gsm"})
    assert [e.task for e in examples] == ["logic:gsm", "math", "logic:boolean_expressions", "logic"]
    assert [e.task for e in load_dataset(path, task_map={"puzzle": "logic"})][3] == "logic"  # by ability


def test_chat_jsonl_and_text_rows_side_by_side(tmp_path):
    path = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "answer": "5", "id": "a"},
        {"prompt": [{"role": "user", "content": "What is 7 * 6?"}], "answer": 42},
        {"problem": "What is 10 - 4?", "answer": "6"},
    ])
    a, b, c = load_dataset(path)
    assert (a.id, a.messages, b.answer, b.messages) == ("a", chat("What is 2 + 3?"), "42", chat("What is 7 * 6?"))
    assert c.messages is None
    assert prompt_for(a, "plain") == [{"role": "user", "content": "What is 2 + 3?"}]  # the model's template renders it
    assert prompt_for(c, "Q: {prompt}") == "Q: What is 10 - 4?"


def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    rows = verl_rows(split="train")
    single = write_save_to_disk(tmp_path / "ds", rows, shards=2)
    assert [e.answer for e in load_dataset(single)] == GOLDS  # both shards, in state.json order
    both = write_dataset_dict(tmp_path / "dd", {"train": rows, "test": verl_rows(split="test")[:2]})
    with pytest.raises(DataError, match=r"DatasetDict with splits \['train', 'test'\].*dd/train"):
        load_dataset(both)
    assert len(load_dataset(both / "test")) == 2
    only = write_dataset_dict(tmp_path / "one", {"train": rows})
    assert len(load_dataset(only)) == 4 and read_dataset(only).report.format == "hf_disk"


def test_save_to_disk_with_a_missing_shard_names_it(tmp_path):
    folder = write_save_to_disk(tmp_path / "ds", verl_rows(), shards=2)
    (folder / "data-00001-of-00002.arrow").unlink()
    with pytest.raises(DataError, match="data-00001-of-00002.arrow"):
        load_dataset(folder)


@pytest.mark.parametrize("file_format", [False, True])
def test_arrow_files_stream_and_file_format(tmp_path, file_format):
    path = write_arrow_stream(tmp_path / "gsm8k-train.arrow", pa.Table.from_pylist(verl_rows(gold="str")),
                              file_format=file_format)
    assert [e.answer for e in load_dataset(path)] == GOLDS


def test_hub_parquet_shards_one_split_per_folder_or_a_glob(tmp_path):
    rows = [{"question": q, "answer": f"step\n#### {a}"} for q, a in QUESTIONS]  # GSM8K's hub layout
    data = tmp_path / "gsm8k" / "main"
    write_parquet(data / "train-00000-of-00002.parquet", rows[:2])
    write_parquet(data / "train-00001-of-00002.parquet", rows[2:])
    assert [e.answer for e in load_dataset(data)] == GOLDS
    write_parquet(data / "test-00000-of-00001.parquet", rows[:1])
    with pytest.raises(DataError, match=r"2 splits \(test, train\)"):
        load_dataset(data)  # never silently mixes test rows into training
    assert len(load_dataset(f"{data}/train-*.parquet")) == 4
    with pytest.raises(DataError, match="no dataset files match"):
        load_dataset(f"{data}/validation-*.parquet")


def test_verl_train_and_test_side_by_side_are_refused(tmp_path):
    write_parquet(tmp_path / "math" / "train.parquet", verl_rows(split="train"))
    write_parquet(tmp_path / "math" / "test.parquet", verl_rows(split="test"))
    with pytest.raises(DataError, match=r"2 splits \(test, train\)"):
        load_dataset(tmp_path / "math")


def test_bad_rows_name_file_row_and_field(tmp_path):
    rows = verl_rows()
    del rows[1]["reward_model"]["ground_truth"]
    rows[2]["prompt"] = [{"role": "user"}]
    path = write_parquet(tmp_path / "bad.parquet", rows)
    with pytest.raises(DataError, match=r"bad.parquet row 1: reward_model.ground_truth: missing"):
        load_dataset(path)
    cases = {
        '{"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], "answer": "1"}':
            r"prompt\[1\].role: the last message is the assistant's",
        '{"messages": [{"role": "wizard", "content": "hi"}], "answer": "1"}': r"messages\[0\].role",
        '{"messages": [], "answer": "1"}': "messages: an empty list",
        '{"prompt": "  ", "answer": "1"}': "prompt: empty",
        '{"prompt": "x", "answer": ["1", "2"]}': "answer: expected one answer",
        '{"prompt": "x", "reward_model": {"ground_truth": {"style": "rule"}}}': "reward_model.ground_truth.target: missing",
    }
    for line, message in cases.items():
        (tmp_path / "c.jsonl").write_text(line + "\n")
        with pytest.raises(DataError, match=f"c.jsonl:1 \\(row 0\\): {message}"):
            load_dataset(tmp_path / "c.jsonl")


def test_skip_drops_and_reports_every_bad_row(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"prompt": "ok", "answer": "1"}\n{"prompt": "no answer"}\n{not json\n'
                    '{"prompt": "ok too", "answer": "2"}\n[1, 2]\n')
    dataset = read_dataset(path, on_bad_rows="skip")
    assert [e.prompt for e in dataset.examples] == ["ok", "ok too"]
    report = dataset.report.to_json()
    assert (report["rows"], report["examples"], report["dropped"]) == (5, 2, 3)
    assert report["dropped_by_field"] == {"answer": 1, "row": 2}
    assert [(d["row"], d["field"]) for d in report["dropped_rows"]] == [(1, "answer"), (2, "row"), (4, "row")]
    assert "invalid JSON" in report["dropped_rows"][1]["reason"]
    json.dumps(report)  # goes to data_report.json as is
    path.write_text('{"prompt": "no answer"}\n')
    with pytest.raises(DataError, match="has no examples .1 rows dropped"):
        read_dataset(path, on_bad_rows="skip")


def test_existing_layouts_still_load(tmp_path):
    (tmp_path / "m" / "algebra").mkdir(parents=True)
    (tmp_path / "m" / "algebra" / "1.json").write_text(json.dumps({"problem": "p", "solution": "\\boxed{3}"}))
    (tmp_path / "bbh").mkdir()
    (tmp_path / "bbh" / "navigate.json").write_text(json.dumps({"examples": [{"input": "go", "target": "Yes"}]}))
    write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "x\n#### 1,000"}])
    (tmp_path / "l.json").write_text(json.dumps([{"prompt": "a", "answer": "b"}]))
    assert load_dataset(tmp_path / "m")[0].answer == "3"
    assert load_dataset(tmp_path / "bbh")[0] == Example(id="bbh-0", prompt="go", answer="Yes", task="logic:navigate")
    assert load_dataset(tmp_path / "g.jsonl", format="gsm8k")[0].answer == "1000"
    assert load_dataset(tmp_path / "l.json")[0].answer == "b"


def test_data_section_checks_task_map_names():
    assert DataSection(train="d", task_map={"src": "logic:x"}).task_map == {"src": "logic:x"}
    with pytest.raises(ValueError, match="task_map: 'src' -> 'code'"):
        DataSection(train="d", task_map={"src": "code"})
    with pytest.raises(ValueError, match="on_bad_rows"):
        DataSection(train="d", on_bad_rows="ignore")


def test_simko_eval_checks_its_data_flags_before_starting_anything(tmp_path, capsys):
    from services.cli import main

    argv = ["eval", "--model", str(tmp_path), "--data", str(tmp_path / "d.jsonl"), "--n", "2"]
    assert main([*argv, "--task-map", "no-equals-sign"]) == 2
    assert "--task-map takes KEY=VALUE" in capsys.readouterr().err
    assert main([*argv, "--task-map", "my/source=code"]) == 2
    assert "task_map: 'my/source' -> 'code'" in capsys.readouterr().err
    assert main([*argv, "--format", "csv"]) == 2
    assert "format" in capsys.readouterr().err
