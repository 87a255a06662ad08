"""The algorithms `simko demo` can compare (`--algos`), as the JobSpec algorithm section of each arm.

GRPO is the baseline every other arm differs from by its loss or its advantage estimator only
(same model, data, seed, rollout and learner settings). SimKO's hyper-parameters are the paper's;
the others are the paper's other baselines with their published defaults
(learner/hparams.py), except KL-Cov's token ratio, which is scaled to a batch of ~2k tokens.
"""
from __future__ import annotations

ARMS: dict[str, dict] = {
    "grpo": {"loss": "grpo", "advantage": "grpo"},
    "simko": {"loss": "simko", "advantage": "grpo",
              "loss_hparams": {"top_k": 3, "alpha": 0.01, "tau_quantile": 0.8, "lambda_top1": 1.1}},
    "nsr": {"loss": "grpo", "advantage": "nsr"},  # negative samples only (Zhu et al. 2025)
    "w_reinforce": {"loss": "grpo", "advantage": "w_reinforce"},  # positives weighted 0.1
    # 0.0002 of a ~2k-token batch is the one-token minimum; 0.002 (KL-Cov's larger setting) penalises ~3.
    "kl_cov": {"loss": "kl_cov", "advantage": "grpo", "loss_hparams": {"kl_cov_ratio": 0.002}},
}
DEFAULT_ARMS = ("grpo", "simko")


def parse_arms(text: str) -> tuple[str, ...]:
    """`grpo,simko,nsr` -> ("grpo", "simko", "nsr"); GRPO and SimKO always run (the comparison)."""
    names = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    unknown = [a for a in names if a not in ARMS]
    if unknown:
        raise ValueError(f"--algos: unknown {unknown}; valid: {sorted(ARMS)}")
    missing = [a for a in DEFAULT_ARMS if a not in names]
    if missing:
        raise ValueError(f"--algos must include {', '.join(DEFAULT_ARMS)} (the comparison the report makes)")
    return names


def algorithm_section(arm: str) -> dict:
    spec = ARMS[arm]
    return {"loss": spec["loss"], "loss_hparams": dict(spec.get("loss_hparams", {})), "advantage": spec["advantage"]}
