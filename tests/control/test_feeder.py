from services.data import Example
from services.control.feeder import PromptFeeder


def make(n_examples=5, **kw):
    examples = [Example(id=str(i), prompt=f"p{i}", answer=str(i), task="math") for i in range(n_examples)]
    return PromptFeeder(job_id="j", examples=examples, template="plain", n=4, seed=3, **kw)


def test_epochs_cover_every_example_once_and_ids_are_stable():
    feeder = make()
    first = feeder.next_groups(7, min_version=2)
    assert sorted(g.index for g in first[:5]) == [0, 1, 2, 3, 4]
    assert [g.epoch for g in first] == [0] * 5 + [1] * 2
    assert all(g.min_version == 2 and g.n == 4 and g.prompt == f"p{g.index}" for g in first)
    assert first[0].group_id == f"j-e0-i{first[0].index}"
    # a resumed feeder at the same cursor yields the same groups
    resumed = make(fed=3)
    assert [g.group_id for g in resumed.next_groups(4, 0)] == [g.group_id for g in first[3:7]]


def test_advance_moves_the_cursor():
    feeder = make()
    a = feeder.next_groups(2, 0)
    feeder.advance(2)
    b = feeder.next_groups(2, 0)
    assert {g.group_id for g in a}.isdisjoint({g.group_id for g in b})


def test_chat_examples_travel_as_messages_text_ones_through_the_template():
    examples = [Example(id="c", prompt="What is 2 + 3?", answer="5", task="math",
                        messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"})),
                Example(id="t", prompt="7 * 6", answer="42", task="math")]
    feeder = PromptFeeder(job_id="j", examples=examples, template="Q: {prompt}", n=2, seed=0, shuffle=False)
    chat, text = feeder.next_groups(2, min_version=0)
    assert chat.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"}]
    assert chat.prompt == "What is 2 + 3?"  # the question the verifier sees; the engine renders the messages
    assert (text.messages, text.prompt) == (None, "Q: 7 * 6")


def test_load_job_data_writes_the_data_report(tmp_path):
    import json

    from services.control.feeder import load_job_data
    from services.data.config import DataSection

    train = tmp_path / "train.jsonl"
    train.write_text('{"prompt": [{"role": "user", "content": "1+1?"}], "answer": "2"}\n{"prompt": "no answer"}\n'
                     '{"problem": "2+2?", "answer": "4"}\n')
    held_out = tmp_path / "eval.jsonl"
    held_out.write_text("".join(f'{{"problem": "{i}+0?", "answer": "{i}"}}\n' for i in range(5)))
    section = DataSection(train=str(train), eval=str(held_out), on_bad_rows="skip")
    examples, eval_examples = load_job_data(section, tmp_path / "run", eval_problems=3)
    assert [e.answer for e in examples] == ["2", "4"] and [e.answer for e in eval_examples] == ["0", "1", "2"]
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert (report["train"]["dropped"], report["train"]["chat_examples"], report["eval"]["examples"]) == (1, 1, 5)
    assert report["train"]["dropped_rows"][0]["field"] == "answer"
    examples, eval_examples = load_job_data(section, tmp_path / "run2", eval_problems=None)
    assert eval_examples is None and "eval" not in json.loads((tmp_path / "run2" / "data_report.json").read_text())
