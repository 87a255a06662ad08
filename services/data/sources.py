"""Where a dataset's rows come from: a path (file, folder or glob) -> its layout and files -> raw rows.

    locate(path, format)  ->  Source(format, files)       which files, read as which layout
    raw_rows(source)      ->  RawRow(file, row, line, value | error) per row, in file order

Layouts: JSONL, JSON (a list, or one object), Parquet, Arrow (IPC stream or file), a Hugging Face
`datasets` `save_to_disk` folder (state.json lists its Arrow shards; a DatasetDict's
dataset_dict.json lists its splits, one of which must be named), a MATH tree of per-problem JSON
files, and BIG-Bench Hard's {"examples": [{input, target}]} files (task named after the file).

A folder of shards must hold one split: `train-00000-of-00002.parquet` and `test.parquet` side by
side are refused (they would train on the test set), naming the splits; a glob
(`/data/ds/train-*.parquet`) says exactly which files. Nothing here interprets a row's fields.
"""
from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.data.errors import DataError

_SUFFIX_FORMAT = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "jsonl", ".json": "json"}
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")  # Hugging Face shard names: <split>-00000-of-00004


@dataclass(frozen=True)
class Source:
    format: str  # jsonl | json | parquet | arrow | hf_disk | math | gsm8k | bbh
    files: tuple[Path, ...]


@dataclass(frozen=True)
class RawRow:
    file: Path
    row: int  # 0-based row within `file`
    value: Any = None
    line: int | None = None  # 1-based line of a JSONL row
    error: str | None = None  # the row could not be parsed at all (invalid JSON)
    task: str | None = None  # the layout names the task (BBH: logic:<file stem>)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line} (row {self.row})" if self.line else f"{self.file} row {self.row}"


def locate(path: str | Path, format: str = "auto") -> Source:
    text = str(path)
    path = Path(path)
    if not path.exists():
        if any(ch in text for ch in "*?["):
            files = tuple(Path(f) for f in sorted(glob.glob(text, recursive=True)) if Path(f).is_file())
            if not files:
                raise DataError(f"no dataset files match {text}")
            return Source(_format_of_files(files, text) if format == "auto" else format, files)
        raise DataError(f"dataset not found: {path}")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "hf_disk":
        return Source(fmt, _hf_disk_files(path))
    if path.is_file():
        return Source(fmt, (path,))
    if fmt in ("parquet", "arrow"):
        return Source(fmt, _one_split(path, sorted(path.rglob(f"*.{fmt}"))))
    if fmt == "bbh":
        return Source(fmt, tuple(sorted(path.glob("*.json"))))
    # a MATH tree (or a folder of JSON / JSONL files): every file, recursively
    return Source(fmt, tuple(sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl"))))


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return "hf_disk"
        for fmt in ("parquet", "arrow"):
            if next(path.rglob(f"*.{fmt}"), None) is not None:
                return fmt
        # a BBH folder of <task>.json files, or a MATH tree of per-problem JSON files
        first = next(iter(sorted(path.glob("*.json"))), None)
        return "bbh" if first is not None and _looks_like_bbh(first) else "math"
    if path.suffix == ".json":
        return "bbh" if _looks_like_bbh(path) else "json"
    return _SUFFIX_FORMAT.get(path.suffix, "jsonl")


def _format_of_files(files: tuple[Path, ...], pattern: str) -> str:
    formats = {_SUFFIX_FORMAT.get(f.suffix, "jsonl") for f in files}
    if len(formats) > 1:
        raise DataError(f"{pattern} matches files of several formats ({', '.join(sorted(formats))}); "
                        "use one pattern per format")
    return formats.pop()


def _looks_like_bbh(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("examples"), list)


def _one_split(folder: Path, files: list[Path]) -> tuple[Path, ...]:
    """The shards of a folder, refused when they belong to several splits (or configs)."""
    groups = sorted({(str(f.parent.relative_to(folder)), _SHARD.sub("", f.stem)) for f in files})
    if len(groups) > 1:
        names = [str(Path(parent) / split) if parent != "." else split for parent, split in groups]
        raise DataError(f"{folder} holds shards of {len(groups)} splits ({', '.join(names[:6])}); point the "
                        f"dataset at one of them, e.g. {folder / names[0]}*{files[0].suffix}")
    return tuple(files)


def _hf_disk_files(path: Path) -> tuple[Path, ...]:
    """The Arrow shards of a `Dataset.save_to_disk` folder (state.json's `_data_files`)."""
    if (path / "dataset_dict.json").is_file():
        splits = _read_json(path / "dataset_dict.json").get("splits") or []
        if len(splits) != 1:
            raise DataError(f"{path} is a DatasetDict with splits {splits}: point the dataset at one split "
                            f"folder, e.g. {path / (splits[0] if splits else 'train')}")
        path = path / splits[0]
    state_file = path / "state.json"
    if not state_file.is_file():
        raise DataError(f"{path}: no state.json (not a Dataset.save_to_disk folder)")
    entries = _read_json(state_file).get("_data_files")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{state_file}: `_data_files` lists no Arrow shards")
    files = []
    for entry in entries:
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not (path / name).is_file():
            raise DataError(f"{state_file}: shard {name!r} listed in `_data_files` is missing")
        files.append(path / name)
    return tuple(files)


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}: invalid JSON ({exc.msg})") from None


def raw_rows(source: Source) -> Iterator[RawRow]:
    for file in source.files:
        if source.format == "parquet" or (source.format not in ("arrow", "hf_disk") and file.suffix == ".parquet"):
            yield from _table_rows(file, _read_parquet(file))
        elif source.format in ("arrow", "hf_disk") or file.suffix == ".arrow":
            yield from _table_rows(file, _read_arrow(file))
        elif source.format == "bbh":
            data = _read_json(file)
            examples = data.get("examples") if isinstance(data, dict) else None
            if not isinstance(examples, list):
                raise DataError(f"{file}: a BBH file needs an `examples` list")
            for i, example in enumerate(examples):
                yield RawRow(file, i, example, task=f"logic:{file.stem}")
        elif file.suffix == ".json" or source.format == "json":
            data = _read_json(file)
            for i, value in enumerate(data if isinstance(data, list) else [data]):
                yield RawRow(file, i, value)
        else:
            yield from _jsonl_rows(file)


def _jsonl_rows(file: Path) -> Iterator[RawRow]:
    row = 0
    with open(file, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield RawRow(file, row, json.loads(line), line=line_no)
            except json.JSONDecodeError as exc:
                yield RawRow(file, row, line=line_no, error=f"invalid JSON ({exc.msg})")
            row += 1


def _read_parquet(file: Path):
    import pyarrow.parquet as pq  # imported here: only Parquet datasets need it

    try:
        return pq.read_table(file)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{file}: not a readable Parquet file ({exc})") from None


def _read_arrow(file: Path):
    """Arrow IPC: `datasets` writes the stream format; the random-access file format is read too."""
    import pyarrow as pa

    # Read into memory (OSFile), not memory-mapped: the rows outlive the open file.
    try:
        with pa.OSFile(str(file), "rb") as source:
            return pa.ipc.open_stream(source).read_all()
    except pa.ArrowInvalid:
        try:
            with pa.OSFile(str(file), "rb") as source:
                return pa.ipc.open_file(source).read_all()
        except pa.ArrowInvalid as exc:
            raise DataError(f"{file}: not an Arrow IPC stream or file ({exc})") from None


def _table_rows(file: Path, table) -> Iterator[RawRow]:
    for i, value in enumerate(table.to_pylist()):
        yield RawRow(file, i, value)
