"""Write the embedded datasets from the generators (seeded, reproducible) into OUT_DIR:

    python -m verifier.synthetic.datasets OUT_DIR

- tiny_train.jsonl / tiny_eval.jsonl: the embedded default's mixture (suite.DEFAULT_MIX), disjoint
  prompts, used by configs/tiny.yaml with the prompt template "Q: {prompt}\\nA:".
- arith_train.jsonl / arith_eval.jsonl: two-operand arithmetic only ("What is a op b?"); the
  held-out file leaves out prompts the training file has (tests/verifier/test_committed_data.py).

The committed tiny_*.jsonl predate commit c7d0814, which changed the suite's generators: this
command now writes a different (equally seeded, reproducible) tiny mix. The files were kept, not
regenerated, because the recorded results (README, docs/) trained and evaluated on them: writing
into configs/data replaces them with the current mix.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from verifier.synthetic.arithmetic import arithmetic_problems
from verifier.synthetic.suite import split_mix, write_jsonl


def write_all(out_dir: str | Path, *, seed: int = 0) -> list[Path]:
    out = Path(out_dir)
    train, held = split_mix(512, 64, seed=seed)
    arith = arithmetic_problems(96, seed=seed)
    # Independent draws repeat prompts: the held-out split leaves out what training already shows.
    seen = {p.prompt for p in arith[:64]}
    arith_held = [p for p in arith[64:] if p.prompt not in seen]
    return [write_jsonl(train, out / "tiny_train.jsonl", "tiny"), write_jsonl(held, out / "tiny_eval.jsonl", "tiny-eval"),
            write_jsonl(arith[:64], out / "arith_train.jsonl", "arith"),
            write_jsonl(arith_held, out / "arith_eval.jsonl", "arith-eval")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in write_all(args.out_dir, seed=args.seed):
        print(path)


if __name__ == "__main__":
    main()
