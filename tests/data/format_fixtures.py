"""Small dataset fixtures in the public formats, written here with pyarrow (nothing downloaded, no
`datasets` package): what verl's preprocess scripts, `Dataset.save_to_disk` and the Hugging Face
hub's parquet shards produce, reduced to a few rows.

- verl parquet (verl docs/preparation/prepare_data.rst, examples/data_preprocess/gsm8k.py and
  math_dataset.py): data_source, prompt = [{"role": "user", "content": ...}], ability,
  reward_model = {"style": "rule", "ground_truth": str | {"question", "solution", "target"}},
  extra_info = {"split", "index"}.
- save_to_disk (datasets' arrow_dataset.py / arrow_writer.py): the Arrow IPC *stream* format in
  data-0000i-of-0000N.arrow shards, dataset_info.json, and state.json whose `_data_files` lists the
  shards; a DatasetDict adds dataset_dict.json ({"splits": [...]}) and one folder per split.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

QUESTIONS = [("What is 2 + 3?", "5"), ("What is 7 * 6?", "42"), ("Simplify 6/8.", "\\frac{3}{4}"),
             ("What is 10 - 4?", "6")]


def verl_rows(split: str = "test", *, gold: str = "dict", data_source: str = "DigitalLearningGmbH/MATH-lighteval",
              ability: str = "math") -> list[dict]:
    """Rows as verl's math preprocess writes them; gold "dict" (question/solution/target, as the
    SimKO repository's MATH files) or "str" (as verl's gsm8k.py)."""
    rows = []
    for index, (question, answer) in enumerate(QUESTIONS):
        truth = ({"question": question, "solution": f"So the answer is $\\boxed{{{answer}}}$.", "target": answer}
                 if gold == "dict" else answer)
        rows.append({"data_source": data_source, "prompt": [{"role": "user", "content": question}],
                     "ability": ability, "reward_model": {"style": "rule", "ground_truth": truth},
                     "extra_info": {"split": split, "index": index}})
    return rows


def write_parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_arrow_stream(path: Path, table: pa.Table, *, file_format: bool = False) -> Path:
    """`datasets` writes the IPC stream format (pa.RecordBatchStreamWriter); `file_format` writes the
    random-access file format instead (what pyarrow.feather / other tools produce)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink:
        writer = pa.ipc.new_file(sink, table.schema) if file_format else pa.ipc.new_stream(sink, table.schema)
        with writer:
            writer.write_table(table)
    return path


def write_save_to_disk(folder: Path, rows: list[dict], *, shards: int = 1, split: str | None = None) -> Path:
    """The folder `Dataset.save_to_disk(folder, num_shards=shards)` writes."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    # datasets keeps its Features in the schema metadata; readers must not need them.
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": None}})})
    names = [f"data-{i:05d}-of-{shards:05d}.arrow" for i in range(shards)]
    per = -(-len(rows) // shards)
    for i, name in enumerate(names):
        write_arrow_stream(folder / name, table.slice(i * per, per))
    (folder / "dataset_info.json").write_text(json.dumps({"citation": "", "description": "", "features": {},
                                                          "homepage": "", "license": ""}, indent=2))
    (folder / "state.json").write_text(json.dumps({
        "_data_files": [{"filename": name} for name in names], "_fingerprint": "0123456789abcdef",
        "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
        "_split": split}, indent=2))
    return folder


def write_dataset_dict(folder: Path, splits: dict[str, list[dict]]) -> Path:
    """The folder `DatasetDict.save_to_disk(folder)` writes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    for name, rows in splits.items():
        write_save_to_disk(folder / name, rows, split=name)
    return folder
