"""Synthetic verifiable tasks: seeded generators (with difficulty knobs) whose answers the
verifier's graders check. Each generator yields `Problem(prompt, answer, task, solution)`, where
`solution` is a worked answer in the format the graders accept (used to warm-start tiny models)."""
from verifier.synthetic.base import Problem
from verifier.synthetic.arithmetic import arithmetic_problems

__all__ = ["Problem", "arithmetic_problems"]
