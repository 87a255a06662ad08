"""Regenerate the `math_verify` column of the labelled sets: what math-verify 0.9.0 alone says.

    python tests/verifier/record_math_verify.py [tests/verifier/cases/*.jsonl]

For every `math` case, math-verify is used as its README shows, with no pre/post-processing of ours:
`verify(parse(gold), parse(response))`, the gold wrapped in `$...$` unless it already carries `$` or
`\\boxed`, its own default 5 s timeouts. Each case runs in a child process with a wall-clock cap,
because a hostile answer can hang sympy in C code where math-verify's signal.alarm cannot interrupt
it; a hang is recorded as False (math-verify gives no verdict, so no reward). Logic cases get null:
math-verify has no notion of BBH options or SynLogic puzzles. The column is written once and kept
in the file, so the tests compare against it without importing math-verify's slow paths.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import sys
from pathlib import Path

from math_verify import parse, verify  # imported once here; every forked child inherits it

CASES_DIR = Path(__file__).resolve().parent / "cases"
CAP_S = 30.0


def math_verify_alone(response: str, gold: str) -> bool:
    gold_text = gold if "$" in gold or "\\boxed" in gold else f"${gold}$"
    return bool(verify(parse(gold_text), parse(response)))


def _child(conn, response: str, gold: str) -> None:
    try:
        conn.send(math_verify_alone(response, gold))
    except Exception:  # math-verify raised: it gives no verdict, i.e. no reward
        conn.send(False)


def judge(response: str, gold: str) -> bool:
    parent, child = mp.Pipe(duplex=False)
    proc = mp.get_context("fork").Process(target=_child, args=(child, response, gold))
    proc.start()
    verdict = parent.recv() if parent.poll(CAP_S) else False
    proc.kill()
    proc.join()
    return verdict


def record(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for row in rows:
        row["math_verify"] = judge(row["response"], row["gold"]) if row["task"] == "math" else None
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    done = [r for r in rows if r["math_verify"] is not None]
    agree = sum(r["math_verify"] == r["expected"] for r in done)
    print(f"{path.name}: {len(done)} math cases recorded, math-verify agrees with the label on {agree}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or sorted(str(p) for p in CASES_DIR.glob("*.jsonl")):
        record(Path(arg))
