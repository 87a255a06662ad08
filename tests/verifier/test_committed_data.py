"""The committed datasets (configs/data) against their generator (verifier/synthetic/datasets.py).

arith_*.jsonl are what the generator writes today, byte for byte. tiny_*.jsonl predate a change of
the suite's generators (the module's docstring says why they were kept): they are pinned by hash
instead, so a regeneration that silently replaces the data every recorded result trained on fails
here, and a deliberate one has to update the pin (and say so in the README's measurements).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from verifier.synthetic.datasets import write_all

DATA = Path(__file__).resolve().parents[2] / "configs" / "data"
PINNED = {
    "tiny_train.jsonl": "9753e444af8f3b97c275f5d5a9b7c9efba2aca8fc389013693ed9aee7439d6b0",
    "tiny_eval.jsonl": "7ec9668371a2bda6672537a71cdc55d9b7599555e7918b7f4d632ddb4152d5ce",
}


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("regenerated")
    write_all(out, seed=0)
    return out


@pytest.mark.parametrize("name", ["arith_train.jsonl", "arith_eval.jsonl"])
def test_arith_data_is_what_the_generator_writes(regenerated, name):
    assert (DATA / name).read_bytes() == (regenerated / name).read_bytes()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_tiny_data_is_pinned(name):
    assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == PINNED[name]


def test_committed_splits_are_disjoint_and_complete():
    for train, held in [("tiny_train.jsonl", "tiny_eval.jsonl"), ("arith_train.jsonl", "arith_eval.jsonl")]:
        a, b = rows(DATA / train), rows(DATA / held)
        assert not {r["prompt"] for r in a} & {r["prompt"] for r in b}, (train, held)
        for row in a + b:
            assert row["prompt"] and row["answer"] and row["task"], row
    assert (len(rows(DATA / "tiny_train.jsonl")), len(rows(DATA / "tiny_eval.jsonl"))) == (512, 64)
