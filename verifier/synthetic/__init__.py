"""Synthetic verifiable tasks: seeded generators (with difficulty knobs) whose answers the
verifier's graders check. Each generator yields `Problem(prompt, answer, task, solution)`, where
`solution` is a worked answer in the format the graders accept (used to warm-start tiny models).
`suite` names every generator, its checker, and the embedded default's mixture."""
from verifier.synthetic.arithmetic import arithmetic_problems
from verifier.synthetic.base import Problem
from verifier.synthetic.suite import CHECKERS, DEFAULT_MIX, GENERATORS, generate, generate_mix, split_mix, write_jsonl

__all__ = ["CHECKERS", "DEFAULT_MIX", "GENERATORS", "Problem", "arithmetic_problems", "generate", "generate_mix",
           "split_mix", "write_jsonl"]
