"""configs/paper-official-{simko,grpo}.yaml map the official run scripts (CLR-Lab/SimKO,
run_qwen2.5-math-7b_{SimKO,grpo}.sh on its verl fork) setting by setting, and the two differ only
where the scripts do."""
from pathlib import Path

from services.control.jobspec import JobSpec

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def load(name: str) -> JobSpec:
    return JobSpec.from_yaml(CONFIGS / f"paper-official-{name}.yaml")


def test_simko_config_has_the_official_scripts_settings():
    spec = load("simko")
    hp = spec.algorithm.loss_hp
    assert spec.algorithm.loss == "simko" and spec.algorithm.advantage == "grpo"
    assert (hp.top_k, hp.alpha, hp.tau_quantile, hp.tau_scope, hp.lambda_top1) == (3, 0.01, 0.8, "sequence", 1.1)
    assert (hp.clip_low, hp.clip_high, hp.aggregation, hp.entropy_coeff) == (0.2, 0.2, "token-mean", 0.0)
    assert not spec.algorithm.dynamic_sampling
    assert (spec.learner.lr, spec.learner.warmup_steps, spec.learner.weight_decay, spec.learner.grad_clip) == \
        (1e-6, 0, 0.01, 1.0)
    assert (spec.learner.batch_prompts, spec.learner.mini_batch_prompts, spec.learner.ppo_epochs) == (1024, 256, 1)
    assert spec.learner.optimizer_steps_per_update == 4
    assert (spec.rollout.n, spec.rollout.temperature, spec.rollout.top_p, spec.rollout.max_tokens) == (8, 1.0, 1.0, 3072)
    assert spec.rollout.max_model_len == spec.learner.max_seq_len == 1024 + 3072
    assert spec.rollout.tensor_parallel_size == 2 and spec.trainer.max_staleness == 0
    assert (spec.trainer.steps, spec.trainer.save_every, spec.trainer.eval_every) == (140, 7, 14)


def test_grpo_twin_differs_only_where_the_official_scripts_do():
    simko, grpo = load("simko"), load("grpo")
    assert grpo.algorithm.loss == "grpo" and grpo.algorithm.loss_hp.entropy_coeff == 0.001
    differs = {"name", "algorithm"}
    a = simko.model_dump(exclude=differs)
    b = grpo.model_dump(exclude=differs)
    # the scripts' other differences: memory knobs and the validation cadence
    for spec_dump, values in ((a, (0.5, 12000, 14)), (b, (0.7, 24000, 7))):
        assert (spec_dump["rollout"].pop("gpu_memory_utilization"), spec_dump["learner"].pop("micro_batch_tokens"),
                spec_dump["trainer"].pop("eval_every")) == values
    assert a == b
    assert simko.algorithm.advantage == grpo.algorithm.advantage and not grpo.algorithm.dynamic_sampling
    assert {k: v for k, v in grpo.algorithm.loss_hparams.items() if k != "entropy_coeff"} == \
        {k: v for k, v in simko.algorithm.loss_hparams.items() if k in grpo.algorithm.loss_hparams and k != "entropy_coeff"}
