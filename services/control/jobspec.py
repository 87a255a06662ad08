"""JobSpec: the one description of a training job, shared by the CLI (YAML) and the job API (JSON).

Each section is the config of the component that reads it, declared once, in that component:
    model, trainer, infra   here                          data      services.data.config
    algorithm, learner      learner.config                rollout   rollout.config
    verifier                services.wire.verifier_client
The controller hands each component its own sections (learner.config.LearnerJob,
rollout.config.RolloutJob). Validation happens once, here, without torch: an invalid spec fails at
submission with the offending field named (`JobSpecError.errors`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from learner.config import AlgorithmSection, LearnerSection
from rollout.config import RolloutSection
from services.data.config import DataSection
from services.wire.verifier_client import VerifierSection


class JobSpecError(ValueError):
    """An invalid JobSpec; `errors` is a list of {"field": "a.b", "message": ...}."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("invalid JobSpec: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors))


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSection(_Section):
    path: str  # a local Hugging Face model directory (weights + tokenizer), or builtin:NAME; nothing is downloaded


class TrackingSection(_Section):
    """Experiment trackers' names for the run (services.control.tracking); None falls back to the
    tracker's own environment variable (WANDB_PROJECT, MLFLOW_EXPERIMENT_NAME, MLFLOW_TRACKING_URI),
    then to the defaults below."""
    project: str | None = None  # W&B project and MLflow experiment (default "simko")
    run_name: str | None = None  # the run's display name (default: the job id)
    tags: list[str] = []  # W&B tags; MLflow tags (tag -> "true")
    mlflow_tracking_uri: str | None = None  # default: a file store in RUN_DIR/mlruns


class TrainerSection(_Section):
    steps: int = Field(10, ge=1)  # learner updates
    max_staleness: int = Field(0, ge=0)  # 0 = on-policy, as the paper
    save_every: int = Field(0, ge=0)  # checkpoint cadence in steps (0: only at the end)
    # pass@K on data.eval every N steps through the rollout side and the verifier (0: never); n
    # samples per problem on the first eval_problems problems, K = 1, 2, 4, ... up to n.
    eval_every: int = Field(0, ge=0)
    eval_n: int = Field(8, ge=1)
    eval_problems: int = Field(64, ge=1)
    export_final: bool = True  # write the final model in Hugging Face format
    rollout_timeout_s: float = Field(1800.0, gt=0)  # fail the job when no scored group arrives this long
    # Restart budget: restarts of the learner group (from its newest checkpoint) plus replacements
    # of dead rollout workers; one more fails the job instead of looping on a persistent fault.
    max_restarts: int = Field(5, ge=0)
    seed: int = 0
    # Where each step's metrics go: metrics.jsonl always, plus TensorBoard (RUN_DIR/tensorboard),
    # W&B (its environment variables apply: WANDB_MODE=offline writes RUN_DIR/wandb) and MLflow.
    loggers: list[Literal["jsonl", "tensorboard", "wandb", "mlflow"]] = ["jsonl"]
    tracking: TrackingSection = TrackingSection()


class InfraSection(_Section):
    redis_url: str | None = None  # None: start a private redis-server
    ray_address: str | None = None  # None: a private local Ray


class JobSpec(_Section):
    name: str = "simko-job"
    model: ModelSection
    data: DataSection
    algorithm: AlgorithmSection = AlgorithmSection()
    rollout: RolloutSection = RolloutSection()
    learner: LearnerSection = LearnerSection()
    trainer: TrainerSection = TrainerSection()
    verifier: VerifierSection = VerifierSection()
    infra: InfraSection = InfraSection()

    @model_validator(mode="after")
    def _cross_section(self) -> "JobSpec":
        try:  # group-size-dependent hparams (pass@k's k) against the job's group size
            self.algorithm.advantage_hp.check_group_size(self.rollout.n)
        except ValueError as exc:
            raise ValueError(f"algorithm.advantage_hparams: {exc}") from None
        if self.rollout.max_tokens >= self.rollout.max_model_len:
            raise ValueError(f"rollout.max_tokens: {self.rollout.max_tokens} leaves no room for the prompt "
                             f"in rollout.max_model_len ({self.rollout.max_model_len})")
        if self.trainer.eval_every and not self.data.eval:
            raise ValueError("trainer.eval_every: needs data.eval (the held-out problems)")
        return self

    # ---------------------------------------------------------------- construction
    @classmethod
    def parse(cls, data: dict[str, Any]) -> "JobSpec":
        """Validate a dict; raise JobSpecError naming every bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise JobSpecError(describe_validation_error(exc)) from None

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] = ()) -> "JobSpec":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise JobSpecError([{"field": "<file>", "message": f"cannot read {path}: {exc}"}]) from None
        if not isinstance(data, dict):
            raise JobSpecError([{"field": "<file>", "message": f"{path} must hold a mapping"}])
        for item in overrides:
            apply_override(data, item)
        spec = cls.parse(data)
        return spec.resolve_paths(path.parent)

    def resolve_paths(self, base: Path) -> "JobSpec":
        """Relative model/data paths in a YAML file are relative to the file's folder or the cwd."""

        def resolve(p: str | None) -> str | None:
            if p is None or Path(p).is_absolute() or Path(p).exists():
                return p
            candidate = base / p
            return str(candidate) if candidate.exists() else p

        return self.model_copy(update={
            "model": self.model.model_copy(update={"path": resolve(self.model.path)}),
            "data": self.data.model_copy(update={"train": resolve(self.data.train), "eval": resolve(self.data.eval)}),
        })


def describe_validation_error(exc: ValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        location = ".".join(str(part) for part in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        # Validators put the field at the start of their message: "x: ..." (within the section
        # being validated) or "learner.x: ..." (cross-section, from the top).
        head, sep, rest = message.partition(": ")
        if sep and " " not in head:
            location = f"{location}.{head}" if location and not head.startswith(location.split(".")[0] + ".") \
                else head
            message = rest
        errors.append({"field": location or "<spec>", "message": message})
    return errors


def apply_override(data: dict[str, Any], item: str) -> None:
    """`a.b.c=value` -> data["a"]["b"]["c"] = yaml-parsed value (so numbers, bools and lists work)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise JobSpecError([{"field": "--set", "message": f"expected KEY=VALUE, got {item!r}"}])
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise JobSpecError([{"field": key, "message": f"{part} is not a section"}])
        node = child
    node[parts[-1]] = value
