"""JobSpec: YAML loading, overrides, and errors that name the field."""
from pathlib import Path

import pytest

from services.control.jobspec import JobSpec, JobSpecError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MINIMAL = {"model": {"path": "m"}, "data": {"train": "d.jsonl"}}


def errors_of(data):
    with pytest.raises(JobSpecError) as err:
        JobSpec.parse(data)
    return {e["field"]: e["message"] for e in err.value.errors}


def test_minimal_spec_gets_paper_defaults():
    spec = JobSpec.parse(MINIMAL)
    assert spec.algorithm.loss == "simko" and spec.algorithm.advantage == "grpo"
    assert spec.trainer.max_staleness == 0 and spec.rollout.n == 8


@pytest.mark.parametrize("patch,field", [
    ({"learner": {"lr": -1}}, "learner.lr"),
    ({"learner": {"zero_stage": 5}}, "learner.zero_stage"),
    ({"rollout": {"n": 0}}, "rollout.n"),
    ({"rollout": {"temprature": 1.0}}, "rollout.temprature"),
    ({"algorithm": {"loss": "ppo"}}, "algorithm.loss"),
    ({"algorithm": {"loss_hparams": {"alpha": 2.0}}}, "algorithm.loss_hparams.alpha"),
    ({"algorithm": {"loss_hparams": {"alphaa": 0.1}}}, "algorithm.loss_hparams"),
    ({"algorithm": {"advantage": "gae"}}, "algorithm.advantage"),
    ({"algorithm": {"advantage": "passk_training", "advantage_hparams": {"k": 16}}}, "algorithm.advantage_hparams"),
    ({"learner": {"batch_prompts": 6, "mini_batch_prompts": 4}}, "learner.mini_batch_prompts"),
    ({"rollout": {"max_tokens": 4096, "max_model_len": 2048}}, "rollout.max_tokens"),
    ({"model": {"path": None}}, "model.path"),
    ({"trainer": {"eval_every": 5}}, "trainer.eval_every"),  # needs data.eval
    ({"learner": {"precision": "bf16"}}, "learner.precision"),  # bf16 needs ZeRO >= 1
])
def test_invalid_fields_are_named(patch, field):
    data = {**MINIMAL}
    for section, values in patch.items():
        data[section] = {**data.get(section, {}), **values}
    errors = errors_of(data)
    assert field in errors, errors


def test_yaml_with_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("model: {path: m}\ndata: {train: d.jsonl}\ntrainer: {steps: 3}\n")
    spec = JobSpec.from_yaml(path, ["trainer.steps=7", "algorithm.loss_hparams.alpha=0.05", "rollout.stop=['\\n\\n']"])
    assert spec.trainer.steps == 7
    assert spec.algorithm.loss_hparams == {"alpha": 0.05}
    with pytest.raises(JobSpecError, match="trainer.steps"):
        JobSpec.from_yaml(path, ["trainer.steps=zero"])
    with pytest.raises(JobSpecError, match="KEY=VALUE"):
        JobSpec.from_yaml(path, ["trainer.steps"])


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_a_valid_jobspec(config):
    assert JobSpec.from_yaml(config).trainer.steps >= 1


def test_paper_config_has_the_papers_hyper_parameters():
    spec = JobSpec.from_yaml(CONFIGS / "qwen2.5-math-7b-simko.yaml")
    assert spec.learner.lr == 1e-6 and spec.learner.batch_prompts == 1024 and spec.learner.mini_batch_prompts == 256
    assert spec.rollout.n == 8 and spec.rollout.temperature == 1.0 and spec.trainer.max_staleness == 0
    hp = spec.algorithm.loss_hparams
    assert (hp["top_k"], hp["alpha"], hp["tau_quantile"], hp["lambda_top1"]) == (3, 0.01, 0.8, 1.1)
    baseline = JobSpec.from_yaml(CONFIGS / "qwen2.5-math-7b-grpo.yaml")
    assert baseline.algorithm.loss == "grpo"
    assert baseline.model_dump(exclude={"name", "algorithm"}) == spec.model_dump(exclude={"name", "algorithm"})
    assert spec.rollout.resources == {"rollout": 1}
    # The compose / KubeRay learner node offers one `learner` unit: the ranks share it.
    assert spec.learner.world_size * spec.learner.resources["learner"] == 1


def test_validating_a_spec_loads_no_torch():
    """The job API and `simko submit` validate specs (names, hyper-parameters) without torch."""
    import subprocess
    import sys

    code = ("import sys; from services.control.jobspec import JobSpec; "
            "JobSpec.from_yaml('configs/qwen2.5-math-7b-simko.yaml'); "
            "JobSpec.parse({'model': {'path': 'm'}, 'data': {'train': 'd'}, "
            "'algorithm': {'advantage': 'passk_training', 'advantage_hparams': {'k': 4}}}); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=CONFIGS.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
