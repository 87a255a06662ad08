"""Evaluation: the unbiased pass@K estimator (passk), sampling and counting correct answers with a
rollout engine (sampling), and reports across runs (report).

Public contract: `services.evaluation.pass_at_k(n, c, k) -> float`.
"""
from services.evaluation.passk import pass_at_k, pass_at_k_table

__all__ = ["pass_at_k", "pass_at_k_table"]
