"""JobSpec: the one description of a training job, shared by the CLI (YAML) and the job API (JSON).

Sections mirror the components; the entry point composes each component's frozen config from its
section (`rollout_config`, `learner_config`) and hands it only that. Validation happens once, here:
an invalid spec fails at submission with the offending field named (`JobSpecError.field`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from learner.advantages import compute_advantages, advantage_names
from learner.losses import loss_names, make_hparams


class JobSpecError(ValueError):
    """An invalid JobSpec; `errors` is a list of {"field": "a.b", "message": ...}."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("invalid JobSpec: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors))


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSection(_Section):
    path: str  # a local Hugging Face model directory (weights + tokenizer); nothing is downloaded


class DataSection(_Section):
    train: str  # JSONL / JSON / Parquet file of {prompt, answer, task}, or a MATH / GSM8K / BBH layout
    eval: str | None = None
    format: Literal["auto", "jsonl", "json", "parquet", "math", "gsm8k", "bbh"] = "auto"
    prompt_template: str = "qwen_math_boxed"
    default_task: str = "math"  # task for rows that do not name one
    shuffle: bool = True


class AlgorithmSection(_Section):
    loss: str = "simko"
    loss_hparams: dict[str, Any] = Field(default_factory=dict)
    advantage: str = "grpo"
    advantage_hparams: dict[str, Any] = Field(default_factory=dict)
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal

    @model_validator(mode="after")
    def _registry_names(self) -> "AlgorithmSection":
        if self.loss not in loss_names():
            raise ValueError(f"loss: unknown {self.loss!r}; valid: {loss_names()}")
        try:
            make_hparams(self.loss, **self.loss_hparams)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"loss_hparams: {exc}") from None
        if self.advantage not in advantage_names():
            raise ValueError(f"advantage: unknown {self.advantage!r}; valid: {advantage_names()}")
        return self


class RolloutSection(_Section):
    workers: int = Field(1, ge=0)  # rollout worker replicas (resizable while the job runs)
    n: int = Field(8, ge=1)  # samples per prompt (the GRPO group size)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)
    top_logprobs: int = Field(3, ge=0)
    chat_template: bool = False
    max_model_len: int = Field(2048, ge=16)
    dtype: str = "auto"
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    kv_cache_bytes: int | None = Field(None, ge=1)
    batch_groups: int = Field(16, ge=1)  # prompt groups per generate call
    num_cpus: float = Field(1.0, ge=0)  # Ray resources per worker
    num_gpus: float = Field(0.0, ge=0)
    # Custom Ray resources per worker, e.g. {"rollout": 1} to place workers on the nodes that
    # deploy/ray-node.sh started with that resource (docker-compose, KubeRay worker groups).
    resources: dict[str, float] = Field(default_factory=dict)


class LearnerSection(_Section):
    lr: float = Field(1e-6, gt=0)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    zero_stage: Literal[0, 1, 2, 3] = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    batch_prompts: int = Field(8, ge=1)  # prompt groups per update
    mini_batch_prompts: int = Field(8, ge=1)
    ppo_epochs: int = Field(1, ge=1)
    micro_batch_tokens: int = Field(4096, ge=1)
    max_seq_len: int = Field(2048, ge=2)
    gradient_checkpointing: bool = False
    world_size: int = Field(1, ge=1)  # learner ranks (Ray actors forming one DeepSpeed process group)
    num_cpus: float = Field(1.0, ge=0)  # Ray resources per rank
    num_gpus: float = Field(0.0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)  # custom Ray resources, e.g. {"learner": 1}


class TrainerSection(_Section):
    steps: int = Field(10, ge=1)  # learner updates
    max_staleness: int = Field(0, ge=0)  # 0 = on-policy, as the paper
    save_every: int = Field(0, ge=0)  # checkpoint cadence in steps (0: only at the end)
    eval_every: int = Field(0, ge=0)
    export_final: bool = True  # write the final model in Hugging Face format
    rollout_timeout_s: float = Field(1800.0, gt=0)  # fail the job when no scored group arrives this long
    seed: int = 0


class VerifierSection(_Section):
    url: str | None = None  # None: start a private verifier service for this job
    workers: int = Field(2, ge=1)
    timeout_s: float = Field(30.0, gt=0)
    deadline_s: float = Field(120.0, gt=0)


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
        if self.learner.batch_prompts % self.learner.mini_batch_prompts:
            raise ValueError(f"learner.mini_batch_prompts: {self.learner.mini_batch_prompts} must divide "
                             f"learner.batch_prompts ({self.learner.batch_prompts})")
        hp = self.algorithm.advantage_hparams
        try:  # a dry run on one group of the job's size checks group-size-dependent hparams (pass@k's k)
            compute_advantages(self.algorithm.advantage, _dry_run_rewards(self.rollout.n), **hp)
        except ValueError as exc:
            raise ValueError(f"algorithm.advantage_hparams: {exc}") from None
        if self.rollout.max_tokens >= self.rollout.max_model_len:
            raise ValueError(f"rollout.max_tokens: {self.rollout.max_tokens} leaves no room for the prompt "
                             f"in rollout.max_model_len ({self.rollout.max_model_len})")
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


def _dry_run_rewards(n: int):
    import torch

    return torch.tensor([[float(i % 2) for i in range(n)]])


def describe_validation_error(exc: ValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        location = ".".join(str(part) for part in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        # Cross-field validators put the field at the start of their message: "learner.x: ...".
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
