"""JobSpec: YAML loading, overrides, and errors that name the field."""
import pytest

from services.jobspec import JobSpec, JobSpecError

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
    ({"algorithm": {"loss_hparams": {"alpha": 2.0}}}, "algorithm.loss_hparams"),
    ({"algorithm": {"advantage": "gae"}}, "algorithm.advantage"),
    ({"algorithm": {"advantage": "passk_training", "advantage_hparams": {"k": 16}}}, "algorithm.advantage_hparams"),
    ({"learner": {"batch_prompts": 6, "mini_batch_prompts": 4}}, "learner.mini_batch_prompts"),
    ({"rollout": {"max_tokens": 4096, "max_model_len": 2048}}, "rollout.max_tokens"),
    ({"model": {"path": None}}, "model.path"),
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
