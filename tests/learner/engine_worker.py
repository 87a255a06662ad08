"""Run by test_engine_zero under torchrun: a few updates, then rank 0 saves the full weights.

usage: torchrun --nproc_per_node N tests/learner/engine_worker.py MODEL_DIR ZERO_STAGE OUT_FILE
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from learner.engine import LearnerEngine  # noqa: E402
from tests.learner.test_engine_zero import UPDATES, agreement_config, agreement_groups  # noqa: E402


def main() -> None:
    model_dir, stage, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    engine = LearnerEngine(agreement_config(model_dir, stage))
    for update in range(UPDATES):
        engine.update(agreement_groups(update))
    state = engine.full_state_dict()
    if engine.rank == 0:
        torch.save({"weights": state, "world_size": engine.world_size}, out)


if __name__ == "__main__":
    main()
